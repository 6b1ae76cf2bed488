//! Kernel squashfs and loop devices: how real root runs images (the
//! `kernel` driver). Users run images through FUSE or extraction instead.

use super::{Finding, Node};

const CHECK: &str = "kernel squashfs";

pub(super) fn squashfs(node: &Node<'_>) -> Finding {
    if !node.is_root() {
        return Finding::info(
            CHECK,
            format!(
                "not needed: as {}, images run through FUSE or extraction (kernel squashfs is root's)",
                node.user()
            ),
        );
    }
    let listed = std::fs::read_to_string("/proc/filesystems").is_ok_and(|t| {
        t.lines()
            .any(|l| l.split_whitespace().last() == Some("squashfs"))
    });
    // /proc/filesystems lists loaded modules only; the first mount loads it.
    let module = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|r| {
            std::path::Path::new("/lib/modules")
                .join(r.trim())
                .join("kernel/fs/squashfs")
        })
        .is_ok_and(|d| d.exists());
    let loop_control = std::path::Path::new("/dev/loop-control").exists();
    let loops = if loop_control {
        "/dev/loop-control is there"
    } else {
        "no /dev/loop-control"
    };
    match (listed || module, loop_control) {
        (true, true) => Finding::pass(
            CHECK,
            format!(
                "squashfs {} and {loops}",
                if listed { "is in /proc/filesystems" } else { "is a module, loaded on first mount" }
            ),
        ),
        (false, _) => Finding::fail(
            CHECK,
            "this kernel has no squashfs (not in /proc/filesystems, no module)",
            "an administrator: `modprobe squashfs`; or run root's containers with VESSEL_IMAGE_DRIVER=extract",
        ),
        (true, false) => Finding::fail(
            CHECK,
            format!("squashfs is there but {loops}"),
            "an administrator: `modprobe loop`; or run root's containers with VESSEL_IMAGE_DRIVER=extract",
        ),
    }
}
