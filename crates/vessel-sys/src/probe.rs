//! Questions about the node, for `vessel doctor`: what file system a
//! directory is on and how much room it has, whether the user may write
//! somewhere, whether a program carries file capabilities, and running a
//! step (making a namespace, mounting) in a throwaway child, so that the
//! answer comes from the kernel itself and the caller's own namespaces and
//! mounts stay as they were.

use std::io::{Read, Write};
use std::path::Path;

use crate::process::{die_with_parent, exit_now, fork, wait_for, Exit, Fork};
use crate::{Context, Result};

/// What `statfs` says of the file system holding a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FsUsage {
    /// The file system's magic number (`NFS_SUPER_MAGIC`, …), as `stat -f -c %t` prints it.
    pub magic: u32,
    /// Bytes an unprivileged user may still write.
    pub free: u64,
    pub total: u64,
}

/// The file system of `path` and its room.
#[allow(clippy::unnecessary_cast)] // the fields' types differ between architectures
pub fn statfs(path: &Path) -> Result<FsUsage> {
    let s = rustix::fs::statfs(path).op(|| format!("statfs {}", path.display()))?;
    let block = s.f_bsize as u64;
    Ok(FsUsage {
        // The kernel's magic numbers are 32-bit; a signed 64-bit field
        // sign-extends those with the top bit set (CIFS's 0xFF534D42).
        magic: s.f_type as u32,
        free: (s.f_bavail as u64).saturating_mul(block),
        total: (s.f_blocks as u64).saturating_mul(block),
    })
}

/// Whether the calling process (by its real ids, as `access(2)` checks)
/// may create entries in directory `dir`.
pub fn can_create_in(dir: &Path) -> bool {
    rustix::fs::access(
        dir,
        rustix::fs::Access::WRITE_OK | rustix::fs::Access::EXEC_OK,
    )
    .is_ok()
}

/// Whether `path` carries file capabilities (`security.capability`), the
/// alternative to the setuid bit some distributions give `newuidmap`.
pub fn has_file_capabilities(path: &Path) -> bool {
    rustix::fs::getxattr_query(path, "security.capability").is_ok_and(|n| n > 0)
}

/// Runs `step` in a child forked for it alone, which dies with the caller,
/// and returns what the step returned: `Err` with its message, or with how
/// the child ended when it did not say. Whatever the step changes about
/// its own process (namespaces, mounts, ids) ends with the child. The
/// process must be single-threaded (see [`fork`]).
pub fn in_throwaway_child(
    step: impl FnOnce() -> std::result::Result<(), String>,
) -> Result<std::result::Result<(), String>> {
    let (read, write) = rustix::pipe::pipe().op(|| "pipe".into())?;
    match fork()? {
        Fork::Child => {
            drop(read);
            let _ = die_with_parent();
            let code = match step() {
                Ok(()) => 0,
                Err(message) => {
                    let _ = std::fs::File::from(write).write_all(message.as_bytes());
                    1
                }
            };
            exit_now(code)
        }
        Fork::Parent(child) => {
            drop(write);
            let mut message = Vec::new();
            let _ = std::fs::File::from(read).read_to_end(&mut message);
            let exit = wait_for(child)?;
            let message = String::from_utf8_lossy(&message).trim().to_string();
            Ok(match exit {
                Exit::Code(0) => Ok(()),
                Exit::Code(_) if !message.is_empty() => Err(message),
                Exit::Code(c) => Err(format!("the probe ended with status {c}")),
                Exit::Signal(s) => Err(format!("the probe was killed by signal {s}")),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statfs_of_the_root_has_room() {
        let usage = statfs(Path::new("/")).unwrap();
        assert!(usage.total >= usage.free);
        assert_ne!(usage.magic, 0);
    }

    #[test]
    fn a_missing_file_has_no_capabilities() {
        assert!(!has_file_capabilities(Path::new("/nonexistent/newuidmap")));
    }
}
