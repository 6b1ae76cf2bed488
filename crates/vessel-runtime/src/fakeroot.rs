//! Fake root: a user namespace in which the user is root. With a range of
//! subordinate ids in `/etc/subuid` and `/etc/subgid` (and the setuid
//! `newuidmap`/`newgidmap` from the `uidmap` package) the namespace maps
//! ids 1..=N to that range too, so that programs which switch users
//! (`apt-get` drops to `_apt`, `useradd`, `chown` in package scripts) work.
//! Without one, only root is mapped, to the user: enough for most `%post`
//! scripts, not for those.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use vessel_sys::ns::Namespaces;
use vessel_sys::SysError;

/// A range of subordinate ids: `count` ids from `start`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubIds {
    pub start: u32,
    pub count: u32,
}

/// How the fake-root namespace is mapped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fakeroot {
    /// Root is the user; ids 1..=count are the user's subordinate ids.
    Subordinate {
        uids: SubIds,
        gids: SubIds,
        newuidmap: PathBuf,
        newgidmap: PathBuf,
    },
    /// Only root, mapped to the user; `why` says what is missing for more.
    RootOnly { why: String },
}

pub(crate) const SUBUID: &str = "/etc/subuid";
pub(crate) const SUBGID: &str = "/etc/subgid";

impl Fakeroot {
    /// The mapping available to user `name` (`uid`).
    pub fn for_user(name: &str, uid: u32, gid: u32) -> Fakeroot {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let uids = subordinate_range(&read(SUBUID), name, uid);
        let subgid = read(SUBGID);
        let gids = subordinate_range(&subgid, name, gid).or_else(|| {
            // subgid entries are keyed by user, not group.
            subordinate_range(&subgid, name, uid)
        });
        let (Some(uids), Some(gids)) = (uids, gids) else {
            return Fakeroot::RootOnly {
                why: format!(
                    "{SUBUID} and {SUBGID} give {name} no subordinate ids; an administrator can add them with \
                     `usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {name}`"
                ),
            };
        };
        match (find_tool("newuidmap"), find_tool("newgidmap")) {
            (Some(newuidmap), Some(newgidmap)) => Fakeroot::Subordinate {
                uids,
                gids,
                newuidmap,
                newgidmap,
            },
            _ => Fakeroot::RootOnly {
                why: "newuidmap/newgidmap are not installed (Debian/Ubuntu package uidmap, shadow-utils elsewhere)"
                    .into(),
            },
        }
    }

    /// The mapping for the calling process's user, or `None` for real
    /// root, who needs none.
    pub fn unless_root() -> Option<Fakeroot> {
        (vessel_sys::process::getuid() != 0).then(Fakeroot::current)
    }

    /// The mapping for the calling process's user.
    pub fn current() -> Fakeroot {
        let uid = vessel_sys::process::getuid();
        let gid = vessel_sys::process::getgid();
        let name = vessel_sys::user::passwd_by_uid(uid)
            .map(|u| u.name)
            .unwrap_or_else(|| uid.to_string());
        Fakeroot::for_user(&name, uid, gid)
    }

    /// One line saying which mode is used and why, for the user.
    pub fn describe(&self) -> String {
        match self {
            Fakeroot::Subordinate { uids, gids, .. } => format!(
                "Fake root: root-mapped user namespace with your subordinate ids (uids {}-{}, gids {}-{} from {SUBUID} and {SUBGID})",
                uids.start,
                uids.start as u64 + uids.count as u64 - 1,
                gids.start,
                gids.start as u64 + gids.count as u64 - 1,
            ),
            Fakeroot::RootOnly { why } => format!(
                "Fake root: root-mapped user namespace with only your own id, because {why}; \
                 commands that switch users (apt-get, useradd, chown to other users) may fail"
            ),
        }
    }

    pub fn has_subordinate_ids(&self) -> bool {
        matches!(self, Fakeroot::Subordinate { .. })
    }

    /// Creates the namespaces of `ns` (which must include a user namespace)
    /// with this mapping. The process must be single-threaded.
    pub fn enter(&self, ns: Namespaces, uid: u32, gid: u32) -> Result<(), SysError> {
        match self {
            Fakeroot::RootOnly { .. } => {
                vessel_sys::ns::unshare(ns)?;
                vessel_sys::ns::write_id_maps(uid, gid, 0, 0)
            }
            Fakeroot::Subordinate {
                uids,
                gids,
                newuidmap,
                newgidmap,
            } => vessel_sys::ns::unshare_mapped_from_outside(ns, |pid| {
                let map = |tool: &Path, own: u32, sub: &SubIds| {
                    Command::new(tool)
                        .arg(pid.to_string())
                        .args(["0", &own.to_string(), "1"])
                        .args(["1", &sub.start.to_string(), &sub.count.to_string()])
                        .status()
                        .is_ok_and(|s| s.success())
                };
                map(newuidmap, uid, uids) && map(newgidmap, gid, gids)
            }),
        }
    }
}

/// Runs host program `command` (with this process's environment) as fake
/// root, in new user, mount and PID namespaces, and returns its exit
/// status. Real root runs it directly: exec does not return then. The
/// process must be single-threaded.
pub fn run_on_host(command: &[OsString]) -> Result<i32, SysError> {
    use vessel_sys::process as p;
    let env: Vec<_> = std::env::vars_os().collect();
    let uid = p::getuid();
    if uid == 0 {
        return Err(p::exec(command, &env));
    }
    let mode = Fakeroot::current();
    tracing::debug!("{}", mode.describe());
    let ns = Namespaces {
        user: true,
        mount: true,
        // A PID namespace of its own lets debootstrap mount /proc.
        pid: true,
        ..Namespaces::default()
    };
    mode.enter(ns, uid, p::getgid())?;
    vessel_sys::mount::make_private_recursive()?;
    p::run_to_end(command, &env)
}

/// The first range for `name` or `id` in a subuid/subgid file
/// (`USER:START:COUNT` lines).
pub(crate) fn subordinate_range(text: &str, name: &str, id: u32) -> Option<SubIds> {
    text.lines().find_map(|line| {
        let mut f = line.trim().split(':');
        let (who, start, count) = (f.next()?, f.next()?, f.next()?);
        if who != name && who != id.to_string() {
            return None;
        }
        let start: u32 = start.trim().parse().ok()?;
        let count: u32 = count.trim().parse().ok()?;
        // The range must not wrap and must leave room for root's own entry.
        (count > 0 && start.checked_add(count).is_some()).then_some(SubIds {
            start,
            count: count.min(u32::MAX - 1),
        })
    })
}

/// The setuid helper, from the system directories only (not `PATH`).
pub(crate) fn find_tool(name: &str) -> Option<PathBuf> {
    ["/usr/bin", "/usr/sbin", "/bin", "/sbin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_by_name_or_uid() {
        let text = "# comment\nalice:100000:65536\n1002:200000:1000\nbad:x:1\n";
        assert_eq!(
            subordinate_range(text, "alice", 1001),
            Some(SubIds {
                start: 100000,
                count: 65536
            })
        );
        assert_eq!(
            subordinate_range(text, "bob", 1002),
            Some(SubIds {
                start: 200000,
                count: 1000
            })
        );
        assert_eq!(subordinate_range(text, "bad", 7), None);
        assert_eq!(subordinate_range(text, "carol", 1003), None);
        assert_eq!(subordinate_range("x:4294967295:2\n", "x", 1), None);
    }

    #[test]
    fn root_only_says_why() {
        let f = Fakeroot::RootOnly {
            why: "no ids".into(),
        };
        assert!(f.describe().contains("because no ids"));
        assert!(!f.has_subordinate_ids());
    }
}
