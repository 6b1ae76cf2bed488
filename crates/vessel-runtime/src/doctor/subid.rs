//! What fake root (`build --fakeroot`, unprivileged builds) needs for more
//! than the user's own id: a range of subordinate ids in `/etc/subuid` and
//! `/etc/subgid`, and the setuid `newuidmap`/`newgidmap` that may map it.
//! Without them builds still run, with only root mapped, so these are
//! warnings; when all is there, the mapping is made for real in a
//! throwaway namespace.

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use vessel_sys::ns::Namespaces;
use vessel_sys::probe::{has_file_capabilities, in_throwaway_child};

use super::{owner_name, Finding, Node};
use crate::fakeroot::{find_tool, subordinate_range, Fakeroot, SubIds, SUBGID, SUBUID};

/// The size of range Apptainer's `config fakeroot --add` and `useradd` give:
/// enough for every id a distribution's packages use.
const FULL_RANGE: u32 = 65536;

pub(super) fn checks(node: &Node<'_>, have_userns: bool) -> Vec<Finding> {
    if node.is_root() {
        return vec![Finding::info(
            "subordinate ids",
            "not needed: root builds as real root, without fake root",
        )];
    }
    let subuid = std::fs::read_to_string(SUBUID).unwrap_or_default();
    let subgid = std::fs::read_to_string(SUBGID).unwrap_or_default();
    let uids = subordinate_range(&subuid, &node.user(), node.uid());
    // subgid entries are keyed by user, not group (as fakeroot reads them).
    let gids = subordinate_range(&subgid, &node.user(), node.gid())
        .or_else(|| subordinate_range(&subgid, &node.user(), node.uid()));
    let mut findings = vec![
        range("subuid", SUBUID, &subuid, "--add-subuids", uids, node),
        range("subgid", SUBGID, &subgid, "--add-subgids", gids, node),
        helper("newuidmap"),
        helper("newgidmap"),
    ];
    let ready = findings.iter().all(|f| f.status == super::Status::Pass);
    findings.push(if !ready {
        Finding::warn(
            "fake root",
            "only your own id can be mapped: commands that switch users in %post (apt-get, useradd, chown) may fail",
            "see the subuid, subgid, newuidmap and newgidmap checks",
        )
    } else if !have_userns {
        Finding::warn(
            "fake root",
            "not tried: no user namespace could be made",
            "fix the user namespace check first",
        )
    } else {
        mapped(node)
    });
    findings
}

/// The user's range in one of the files.
fn range(
    check: &'static str,
    file: &str,
    text: &str,
    option: &str,
    found: Option<SubIds>,
    node: &Node<'_>,
) -> Finding {
    let start = vessel_config::subid::free_start(text).unwrap_or(100_000);
    let end = start as u64 + FULL_RANGE as u64 - 1;
    let fix = format!(
        "an administrator: `vessel config fakeroot --add {user}`, or `usermod {option} {start}-{end} {user}`",
        user = node.user()
    );
    match found {
        None => Finding::warn(
            check,
            format!(
                "{file} has no range for {} (uid {}): fake root maps only your own id",
                node.user(), node.uid()
            ),
            fix,
        ),
        Some(r) if r.count < FULL_RANGE => Finding::warn(
            check,
            format!(
                "{file} gives {} only {} ids from {} (fewer than {FULL_RANGE}): packages' users may not map",
                node.user(), r.count, r.start
            ),
            fix,
        ),
        Some(r) => Finding::pass(
            check,
            format!(
                "{file}: {} ids from {} for {}",
                r.count, r.start, node.user()
            ),
        ),
    }
}

/// `newuidmap` or `newgidmap`: installed, and privileged by its setuid bit
/// (owned by root) or by file capabilities.
fn helper(name: &'static str) -> Finding {
    let Some(path) = find_tool(name) else {
        return Finding::warn(
            name,
            format!("{name} is not installed"),
            "an administrator: install it (Debian/Ubuntu: `apt-get install uidmap`; RHEL, SUSE: `shadow-utils`)",
        );
    };
    let shown = path.display();
    let Ok(meta) = std::fs::metadata(&path) else {
        return Finding::warn(
            name,
            format!("{shown} cannot be read"),
            format!("an administrator: check {shown}"),
        );
    };
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o4000 != 0 && meta.uid() == 0 {
        return Finding::pass(name, format!("{shown} is setuid root (mode {mode:04o})"));
    }
    if has_file_capabilities(&path) {
        return Finding::pass(name, format!("{shown} has file capabilities"));
    }
    Finding::warn(
        name,
        format!(
            "{shown} has no setuid bit (mode {mode:04o}, owner {}) and no file capabilities: it cannot map subordinate ids",
            owner_name(meta.uid())
        ),
        format!("an administrator: `chown root {shown} && chmod u+s {shown}`"),
    )
}

/// The fake-root mapping itself, made with `newuidmap`/`newgidmap` in a
/// throwaway user namespace.
fn mapped(node: &Node<'_>) -> Finding {
    let mode = Fakeroot::for_user(&node.user(), node.uid(), node.gid());
    let (uid, gid) = (node.uid(), node.gid());
    let ns = Namespaces {
        user: true,
        ..Namespaces::default()
    };
    match in_throwaway_child(|| {
        mode.enter(ns, uid, gid).map_err(|e| vessel_sys::error_chain(&e))?;
        // Root and the range are there: every id the build may use.
        let map = std::fs::read_to_string("/proc/self/uid_map").map_err(|e| e.to_string())?;
        if map.lines().count() < 2 {
            return Err(format!("only one id mapped: {}", map.trim()));
        }
        Ok(())
    }) {
        Ok(Ok(())) => Finding::pass(
            "fake root",
            "mapped root and your subordinate ids in a user namespace with newuidmap/newgidmap",
        ),
        Ok(Err(why)) => Finding::warn(
            "fake root",
            format!("mapping your subordinate ids failed: {why}"),
            format!(
                "an administrator: check that newuidmap and newgidmap are setuid root and that the ranges of {} overlap no other user's",
                node.user()
            ),
        ),
        Err(e) => Finding::warn(
            "fake root",
            format!("could not start the probe: {e}"),
            "run `vessel doctor` again; if it persists, report it",
        ),
    }
}
