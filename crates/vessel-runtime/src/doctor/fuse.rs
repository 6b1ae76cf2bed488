//! `/dev/fuse`: opened read-write as the user, as the FUSE image driver
//! opens it, then a FUSE mount made with it in a throwaway user namespace.

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use vessel_config::vessel_vars;
use vessel_sys::probe::in_throwaway_child;

use super::{owner_name, scratch_dir, Finding, Node};

const CHECK: &str = "/dev/fuse";

pub(super) fn device(node: &Node<'_>, have_userns: bool) -> Finding {
    let mode = std::fs::metadata("/dev/fuse")
        .map(|m| {
            format!(
                "mode {:04o}, owner {}",
                m.permissions().mode() & 0o7777,
                owner_name(m.uid())
            )
        })
        .unwrap_or_else(|_| "missing".into());
    // As a run decides it: the variable, else the site's `image driver`.
    let driver = node
        .var(vessel_vars::IMAGE_DRIVER.name)
        .or_else(|| node.site.as_ref().ok().and_then(|c| c.image_driver.clone()));
    if let Err(e) = vessel_sys::fuse::open_device() {
        let finding = format!("cannot open /dev/fuse read-write ({mode}): {}", e.errno);
        if driver.as_deref() == Some("extract") {
            return Finding::info(
                CHECK,
                format!("{finding}; not needed: the image driver is extract"),
            );
        }
        if node.is_root() {
            return Finding::info(
                CHECK,
                format!("{finding}; root runs images through kernel squashfs instead"),
            );
        }
        let fix = if e.errno.kind() == std::io::ErrorKind::NotFound {
            "an administrator: `modprobe fuse` (and `fuse` in /etc/modules-load.d/); \
             or run with VESSEL_IMAGE_DRIVER=extract (images are unpacked to the extract cache instead of served)"
        } else {
            "an administrator: `chmod 0666 /dev/fuse` (kept across boots by a udev rule: \
             KERNEL==\"fuse\", MODE=\"0666\"); or run with VESSEL_IMAGE_DRIVER=extract \
             (images are unpacked to the extract cache instead of served)"
        };
        return Finding::fail(CHECK, finding, fix);
    }
    if !have_userns {
        return Finding::pass(
            CHECK,
            format!(
                "opens read-write ({mode}); a FUSE mount was not tried without a user namespace"
            ),
        );
    }
    let scratch = match scratch_dir(node) {
        Ok(d) => d,
        Err(_) => return Finding::pass(CHECK, format!("opens read-write ({mode})")),
    };
    let target = scratch.path().to_path_buf();
    let (uid, gid) = (node.uid(), node.gid());
    let probe = in_throwaway_child(|| {
        super::userns::enter(uid, gid)?;
        let fd = vessel_sys::fuse::open_device().map_err(|e| e.to_string())?;
        // Nothing serves the connection: the mount is never looked into,
        // and closing the descriptor with the child aborts it.
        vessel_sys::fuse::mount(&fd, &target, "vessel-doctor", 0, 0).map_err(|e| e.to_string())?;
        vessel_sys::mount::unmount_detach(&target).map_err(|e| e.to_string())
    });
    match probe {
        Ok(Ok(())) => Finding::pass(
            CHECK,
            format!("opens read-write ({mode}) and mounts inside a user namespace"),
        ),
        Ok(Err(why)) => Finding::warn(
            CHECK,
            format!("opens ({mode}), but a FUSE mount in a user namespace was refused: {why}"),
            "FUSE mounts in user namespaces need Linux 4.18 or newer; meanwhile run with \
             VESSEL_IMAGE_DRIVER=extract",
        ),
        Err(e) => Finding::warn(
            CHECK,
            format!("opens ({mode}); the mount probe could not start: {e}"),
            "run `vessel doctor` again; if it persists, report it",
        ),
    }
}

const URING: &str = "FUSE io_uring";

/// FUSE over io_uring, which the image server uses where the kernel
/// offers it: off by default in the kernel, so only information, with how
/// an administrator turns it on.
pub(super) fn uring(node: &Node<'_>) -> Finding {
    let param = std::fs::read_to_string("/sys/module/fuse/parameters/enable_uring");
    let finding = match param.as_deref().map(str::trim) {
        Err(_) => "this kernel has no FUSE over io_uring (Linux 6.14+ built with \
                   CONFIG_FUSE_IO_URING); image metadata goes through /dev/fuse"
            .to_string(),
        Ok("Y") if node.var(vessel_vars::FUSE_URING.name).as_deref() == Some("0") => {
            "on in the kernel, turned off for Vessel by VESSEL_FUSE_URING=0".to_string()
        }
        Ok("Y") if vessel_sys::fuse_ring::available() => {
            return Finding::pass(
                URING,
                "on: the FUSE image server answers from one queue per CPU",
            )
        }
        Ok("Y") => "on in the kernel, but this user cannot make an io_uring \
                    (kernel.io_uring_disabled, or a seccomp filter); /dev/fuse is used"
            .to_string(),
        Ok(_) => "off in the kernel; an administrator can turn it on for faster metadata \
                  in FUSE-served images (a cold `find` about twice as fast): \
                  `echo Y > /sys/module/fuse/parameters/enable_uring`, kept across boots \
                  by `options fuse enable_uring=1` in /etc/modprobe.d/ or \
                  `fuse.enable_uring=1` on the kernel command line"
            .to_string(),
    };
    Finding::info(URING, finding)
}
