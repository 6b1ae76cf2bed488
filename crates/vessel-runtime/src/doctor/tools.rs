//! The programs builds and pulls run: `mksquashfs` (squashfs-tools) packs
//! a build's root file system, `tar2sqfs` (squashfs-tools-ng) converts
//! pulled layers. Runs need neither, so a missing one is a warning. And
//! the FUSE helpers of writable layers, looked up where runs look for
//! them: `fuse2fs` for ext3 overlay images, `fuse-overlayfs` where the
//! kernel's overlayfs cannot serve.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use super::{Finding, Node};

pub(super) fn checks(node: &Node<'_>) -> Vec<Finding> {
    [
        (
            "mksquashfs",
            "`vessel build` needs it to pack images",
            "install squashfs-tools (`apt-get install squashfs-tools`, `dnf install squashfs-tools`)",
        ),
        (
            "tar2sqfs",
            "`vessel pull` and `build` from docker:// need it to convert layers",
            "install squashfs-tools-ng (`apt-get install squashfs-tools-ng`, `dnf install squashfs-tools-ng` from EPEL)",
        ),
    ]
    .into_iter()
    .map(|(name, need, fix)| match in_path(node, name) {
        Some(p) => Finding::pass(name, p.display().to_string()),
        None => Finding::warn(name, format!("not found in PATH: {need}"), fix),
    })
    .chain(
        [
            (
                "fuse2fs",
                "--overlay IMAGE.img without root needs it",
                "install fuse2fs (`apt-get install fuse2fs`; e2fsprogs on EL)",
            ),
            (
                "fuse-overlayfs",
                "ext3 overlay images without root, and kernels without overlayfs in user namespaces, need it",
                "install fuse-overlayfs (`apt-get install fuse-overlayfs`, `dnf install fuse-overlayfs`)",
            ),
        ]
        .into_iter()
        .map(|(name, need, fix)| match crate::fuse_helper::find(name) {
            Some(p) => Finding::pass(name, p.display().to_string()),
            None => Finding::warn(name, format!("not installed: {need}"), fix),
        }),
    )
    .collect()
}

/// The first executable `name` in the user's `PATH`, as the build and
/// pull commands find it.
fn in_path(node: &Node<'_>, name: &str) -> Option<PathBuf> {
    let path = node
        .var("PATH")
        .unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}
