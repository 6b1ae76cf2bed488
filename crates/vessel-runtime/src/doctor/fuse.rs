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
