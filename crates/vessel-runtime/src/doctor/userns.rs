//! Unprivileged user namespaces, and overlayfs inside one: each made for
//! real in a throwaway child. The sysctls that can forbid them are read
//! only to name the reason when the kernel refuses.

use vessel_sys::mount::{self, FsFlags};
use vessel_sys::ns::{self, Namespaces};
use vessel_sys::probe::in_throwaway_child;

use super::{scratch_dir, Finding, Node};
use crate::userns::{sysctl, why_refused, Refusal};

const CHECK: &str = "user namespaces";
const OVERLAY: &str = "overlay in userns";

/// How to set a sysctl now and at every boot.
fn set_sysctl(name: &str, value: &str) -> String {
    format!(
        "an administrator: `sysctl -w {name}={value}`, and `echo {name}={value} > /etc/sysctl.d/90-vessel.conf` to keep it"
    )
}

/// The user and mount namespaces a container starts with, the user mapped
/// to root in it, and one mount made there (changing `/`'s propagation
/// needs the capabilities the namespace should give: Ubuntu's AppArmor
/// restriction lets the namespace be made and takes them away).
pub(super) fn enter(uid: u32, gid: u32) -> Result<(), String> {
    let ns = Namespaces {
        user: true,
        mount: true,
        ..Namespaces::default()
    };
    ns::unshare(ns).map_err(|e| e.to_string())?;
    ns::write_id_maps(uid, gid, 0, 0).map_err(|e| e.to_string())?;
    mount::make_private_recursive().map_err(|e| e.to_string())
}

pub(super) fn user_namespaces(node: &Node<'_>) -> Finding {
    let max = sysctl("user.max_user_namespaces");
    let clone = sysctl("kernel.unprivileged_userns_clone");
    let apparmor = sysctl("kernel.apparmor_restrict_unprivileged_userns");
    let mut settings = vec![format!(
        "user.max_user_namespaces = {}",
        max.as_deref().unwrap_or("?")
    )];
    if let Some(c) = &clone {
        settings.push(format!("kernel.unprivileged_userns_clone = {c}"));
    }
    if let Some(a) = &apparmor {
        settings.push(format!(
            "kernel.apparmor_restrict_unprivileged_userns = {a}"
        ));
    }
    let settings = settings.join(", ");
    let (uid, gid) = (node.uid(), node.gid());
    let refused = match in_throwaway_child(|| enter(uid, gid)) {
        Ok(Ok(())) => {
            return Finding::pass(
                CHECK,
                format!("made a user and mount namespace and mounted in it ({settings})"),
            )
        }
        Ok(Err(why)) => why,
        Err(e) => {
            return Finding::fail(
                CHECK,
                format!("could not start the probe: {e}"),
                "run `vessel doctor` again; if it persists, report it",
            )
        }
    };
    let why = format!("the kernel refused: {refused} ({settings})");
    match why_refused(refused.contains("No space left")) {
        Refusal::Disabled => {
            Finding::fail(CHECK, why, set_sysctl("user.max_user_namespaces", "15000"))
        }
        Refusal::CloneOff => Finding::fail(
            CHECK,
            why,
            set_sysctl("kernel.unprivileged_userns_clone", "1"),
        ),
        Refusal::AppArmor => {
        let exe = std::env::current_exe()
            .map(|e| e.display().to_string())
            .unwrap_or_else(|_| "/usr/bin/vessel".into());
        Finding::fail(
            CHECK,
            format!("AppArmor restricts unprivileged user namespaces; {why}"),
            format!(
                "an administrator: allow them for Vessel with an AppArmor profile — \
                 `printf 'abi <abi/4.0>,\\ninclude <tunables/global>\\nprofile vessel {exe} flags=(unconfined) {{\\n  userns,\\n}}\\n' \
                 > /etc/apparmor.d/vessel && apparmor_parser -r /etc/apparmor.d/vessel` — \
                 or for every program: {}",
                set_sysctl("kernel.apparmor_restrict_unprivileged_userns", "0")
            ),
        )
        }
        Refusal::LimitReached => Finding::fail(
            CHECK,
            format!("the user namespace limit is reached; {why}"),
            "end some containers, or an administrator raises user.max_user_namespaces",
        ),
        Refusal::Other => Finding::fail(
            CHECK,
            why,
            "unprivileged user namespaces need Linux 4.18 or newer, enabled in the kernel (CONFIG_USER_NS); \
             inside another container, that container must allow them",
        ),
    }
}

/// An overlay of two directories, written through, inside a throwaway user
/// namespace: what `--writable-tmpfs`, `--overlay` and the mount points of
/// binds into the image need. Everything is made in a tmpfs mounted there,
/// so the file system of the tmp dir does not matter.
pub(super) fn overlay(node: &Node<'_>, have_userns: bool) -> Finding {
    if !have_userns {
        return Finding::warn(
            OVERLAY,
            "not tried: no user namespace could be made",
            "fix the user namespace check first",
        );
    }
    let scratch = match scratch_dir(node) {
        Ok(d) => d,
        Err(e) => {
            return Finding::warn(
                OVERLAY,
                format!("not tried: no scratch directory in the tmp dir or /tmp: {e}"),
                "see the tmp dir check",
            )
        }
    };
    let (uid, gid) = (node.uid(), node.gid());
    let top = scratch.path().to_path_buf();
    let probe = in_throwaway_child(|| {
        enter(uid, gid)?;
        mount::mount_fs("tmpfs", &top, FsFlags::default(), "mode=0700")
            .map_err(|e| e.to_string())?;
        let dir = |name: &str| {
            let d = top.join(name);
            std::fs::create_dir(&d)
                .map(|()| d)
                .map_err(|e| format!("creating {name} in the probe's tmpfs: {e}"))
        };
        let (lower, upper, work, merged) =
            (dir("lower")?, dir("upper")?, dir("work")?, dir("merged")?);
        std::fs::write(lower.join("old"), "old").map_err(|e| e.to_string())?;
        let options = format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.display(),
            upper.display(),
            work.display()
        );
        mount::mount_fs("overlay", &merged, FsFlags::default(), &options)
            .map_err(|e| e.to_string())?;
        std::fs::write(merged.join("new"), "new")
            .map_err(|e| format!("writing through the overlay: {e}"))?;
        if !upper.join("new").exists() || !merged.join("old").exists() {
            return Err("the overlay mounted but did not show its layers".into());
        }
        Ok(())
    });
    match probe {
        Ok(Ok(())) => Finding::pass(
            OVERLAY,
            "mounted a writable overlayfs inside a user namespace",
        ),
        Ok(Err(why)) => Finding::fail(
            OVERLAY,
            format!("the kernel refused: {why}"),
            "overlayfs in user namespaces needs Linux 5.11 or newer (EL8's 4.18 kernels lack it): \
             --writable-tmpfs, --overlay and binds onto missing mount points will fail",
        ),
        Err(e) => Finding::fail(
            OVERLAY,
            format!("could not start the probe: {e}"),
            "run `vessel doctor` again; if it persists, report it",
        ),
    }
}
