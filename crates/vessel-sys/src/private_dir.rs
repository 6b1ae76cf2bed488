//! Directories of the user's own in places other users share (`/var/tmp`,
//! `/tmp`, a group's cache): reached component by component through
//! descriptors, so that no other user can steer the walk, and accepted only
//! when nobody but the user (and root) can change what lies below.
//!
//! A directory on the way is *trusted* when its owner is root or the user
//! and no other user can replace its entries: not writable by group or
//! others, or sticky (as `/tmp` and `/var/tmp` are). The last directory is
//! the user's own: made here with mode 0700, or, when it exists, owned by
//! the user and not a link (its mode is then tightened to 0700).
//!
//! Because every directory above the result is trusted, its canonical path
//! names the same directory for as long as the user and root leave it
//! alone: that path is what tools given a path (the extraction target, an
//! overlay's `lowerdir`) receive, while the descriptor is kept open.

use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

/// Why a directory in a shared place was not used.
#[derive(Debug, thiserror::Error)]
pub enum UnsafeDir {
    #[error("{path} belongs to uid {owner}, not to you")]
    NotOwned { path: PathBuf, owner: u32 },
    #[error("{path} is writable by other users (mode {mode:o}, no sticky bit), so they could replace what is in it")]
    OthersCanWrite { path: PathBuf, mode: u32 },
    #[error("{path} is a symbolic link or not a directory")]
    NotADirectory { path: PathBuf },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl UnsafeDir {
    /// The directory the problem is with.
    pub fn path(&self) -> &Path {
        match self {
            UnsafeDir::NotOwned { path, .. }
            | UnsafeDir::OthersCanWrite { path, .. }
            | UnsafeDir::NotADirectory { path }
            | UnsafeDir::Io { path, .. } => path,
        }
    }
}

/// A directory only its user (and root) can change, with its descriptor.
#[derive(Debug)]
pub struct PrivateDir {
    pub fd: OwnedFd,
    /// The canonical path: every directory above it is trusted.
    pub path: PathBuf,
}

/// Opens (creating the missing parts of) the absolute `path`, whose last
/// component must be `uid`'s own, as the module doc describes. Symbolic
/// links on the way are followed only inside directories no other user can
/// write (a link there was made by root or the user).
pub fn open_private_dir(path: &Path, uid: u32) -> Result<PrivateDir, UnsafeDir> {
    let names: Vec<&OsStr> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n),
            _ => None,
        })
        .collect();
    if !path.is_absolute() || path.components().any(|c| c == Component::ParentDir) {
        return Err(UnsafeDir::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other("the path must be absolute, without '..'"),
        });
    }
    let mut here = PathBuf::from("/");
    let mut dir =
        open_dir_fd(None, OsStr::new("/"), &here, true).map_err(|f| f.into_error(&here))?;
    let mut dir_stat = stat(&dir, &here)?;
    for (i, name) in names.iter().enumerate() {
        let last = i + 1 == names.len();
        let next = here.join(name);
        let (fd, made) = match open_dir_fd(Some(&dir), name, &next, false) {
            Ok(fd) => (fd, false),
            Err(Found::Missing) => {
                match rustix::fs::mkdirat(&dir, *name, Mode::from_raw_mode(0o700)) {
                    // Another process of ours may have made it just now.
                    Ok(()) | Err(Errno::EXIST) => (
                        open_dir_fd(Some(&dir), name, &next, false)
                            .map_err(|f| f.into_error(&next))?,
                        true,
                    ),
                    Err(e) => return Err(io(&next, e)),
                }
            }
            Err(Found::Link) if !others_can_write(&dir_stat) => {
                let fd =
                    open_dir_fd(Some(&dir), name, &next, true).map_err(|f| f.into_error(&next))?;
                (fd, false)
            }
            Err(Found::Link) => return Err(UnsafeDir::NotADirectory { path: next }),
            Err(Found::Other(e)) => return Err(e),
        };
        let st = stat(&fd, &next)?;
        // Where the kernel really put us, for messages and for the result.
        here = canonical(&fd).unwrap_or(next);
        let owner = st.st_uid;
        if last {
            if owner != uid {
                return Err(UnsafeDir::NotOwned { path: here, owner });
            }
            if st.st_mode & 0o077 != 0 && !made {
                rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o700)).map_err(|e| io(&here, e))?;
            }
        } else {
            if owner != 0 && owner != uid {
                return Err(UnsafeDir::NotOwned { path: here, owner });
            }
            if others_can_write(&st) && st.st_mode & 0o1000 == 0 {
                return Err(UnsafeDir::OthersCanWrite {
                    path: here,
                    mode: st.st_mode & 0o7777,
                });
            }
        }
        dir = fd;
        dir_stat = st;
    }
    Ok(PrivateDir {
        fd: dir,
        path: here,
    })
}

/// Opens the directory `path` (following links, as the user named it) and
/// checks that only `uid` can change it: owned by `uid`, not writable by
/// group or others. What lies in it is then the user's own doing.
pub fn open_own_dir(path: &Path, uid: u32) -> Result<OwnedFd, UnsafeDir> {
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| match e {
        Errno::NOTDIR => UnsafeDir::NotADirectory {
            path: path.to_path_buf(),
        },
        e => io(path, e),
    })?;
    check_own(&fd, path, uid)?;
    Ok(fd)
}

/// The directory `name` in `parent` (an [`open_own_dir`] result), made
/// when missing; never a link, and owned by `uid`.
pub fn own_subdir(
    parent: &impl AsFd,
    parent_path: &Path,
    name: &str,
    uid: u32,
) -> Result<OwnedFd, UnsafeDir> {
    match rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o755)) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(e) => return Err(io(&parent_path.join(name), e)),
    }
    existing_own_subdir(parent, parent_path, name, uid)?.ok_or_else(|| UnsafeDir::Io {
        path: parent_path.join(name),
        source: std::io::Error::from(std::io::ErrorKind::NotFound),
    })
}

/// The directory `name` in `parent` (an [`open_own_dir`] result) if there
/// is one; never a link, and owned by `uid`.
pub fn existing_own_subdir(
    parent: &impl AsFd,
    parent_path: &Path,
    name: &str,
    uid: u32,
) -> Result<Option<OwnedFd>, UnsafeDir> {
    let path = parent_path.join(name);
    let fd = match rustix::fs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(None),
        Err(Errno::LOOP | Errno::NOTDIR) => return Err(UnsafeDir::NotADirectory { path }),
        Err(e) => return Err(io(&path, e)),
    };
    check_own(&fd, &path, uid)?;
    Ok(Some(fd))
}

/// Opens the directory behind `fd` again by its path, as the current mount
/// namespace sees it, and checks that it is the same directory (device and
/// inode); anything else in its place is refused.
pub fn reopen_same(fd: &impl AsFd) -> Result<OwnedFd, UnsafeDir> {
    let path = canonical(fd).ok_or_else(|| UnsafeDir::Io {
        path: crate::path::fd_path(fd),
        source: std::io::Error::other("cannot tell the directory's path"),
    })?;
    let again = rustix::fs::open(
        &path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io(&path, e))?;
    let (was, is) = (stat(fd, &path)?, stat(&again, &path)?);
    if (was.st_dev, was.st_ino) != (is.st_dev, is.st_ino) {
        return Err(UnsafeDir::Io {
            path,
            source: std::io::Error::other("it was replaced while the container started"),
        });
    }
    Ok(again)
}

fn check_own(fd: &impl AsFd, path: &Path, uid: u32) -> Result<(), UnsafeDir> {
    let st = stat(fd, path)?;
    if st.st_uid != uid {
        return Err(UnsafeDir::NotOwned {
            path: path.to_path_buf(),
            owner: st.st_uid,
        });
    }
    if others_can_write(&st) {
        return Err(UnsafeDir::OthersCanWrite {
            path: path.to_path_buf(),
            mode: st.st_mode & 0o7777,
        });
    }
    Ok(())
}

enum Found {
    Missing,
    Link,
    Other(UnsafeDir),
}

impl Found {
    fn into_error(self, path: &Path) -> UnsafeDir {
        match self {
            Found::Other(e) => e,
            Found::Link => UnsafeDir::NotADirectory {
                path: path.to_path_buf(),
            },
            Found::Missing => io(path, Errno::NOENT),
        }
    }
}

/// Opens `name` in `parent` (or the absolute `name` without one) as a
/// directory, following a final symbolic link only when `follow` is set.
fn open_dir_fd(
    parent: Option<&OwnedFd>,
    name: &OsStr,
    path: &Path,
    follow: bool,
) -> Result<OwnedFd, Found> {
    let mut flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    if !follow {
        flags |= OFlags::NOFOLLOW;
    }
    let r = match parent {
        Some(p) => rustix::fs::openat(p, name, flags, Mode::empty()),
        None => rustix::fs::open(name, flags, Mode::empty()),
    };
    r.map_err(|e| match e {
        Errno::NOENT => Found::Missing,
        // O_NOFOLLOW on a link gives ELOOP; O_DIRECTORY on a link ENOTDIR.
        Errno::LOOP | Errno::NOTDIR if !follow => match parent
            .map(|p| rustix::fs::statat(p, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW))
        {
            Some(Ok(st))
                if rustix::fs::FileType::from_raw_mode(st.st_mode)
                    == rustix::fs::FileType::Symlink =>
            {
                Found::Link
            }
            _ => Found::Other(UnsafeDir::NotADirectory {
                path: path.to_path_buf(),
            }),
        },
        Errno::NOTDIR => Found::Other(UnsafeDir::NotADirectory {
            path: path.to_path_buf(),
        }),
        e => Found::Other(io(path, e)),
    })
}

fn stat(fd: &impl AsFd, path: &Path) -> Result<rustix::fs::Stat, UnsafeDir> {
    rustix::fs::fstat(fd).map_err(|e| io(path, e))
}

fn others_can_write(st: &rustix::fs::Stat) -> bool {
    st.st_mode & 0o022 != 0
}

fn canonical(fd: &impl AsFd) -> Option<PathBuf> {
    std::fs::read_link(crate::path::fd_path(fd)).ok()
}

fn io(path: &Path, e: Errno) -> UnsafeDir {
    UnsafeDir::Io {
        path: path.to_path_buf(),
        source: e.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};

    fn me() -> u32 {
        crate::process::getuid()
    }

    #[test]
    fn made_private_and_reused() {
        let tmp = tempfile::tempdir().unwrap();
        let want = tmp.path().join("a/b");
        let d = open_private_dir(&want, me()).unwrap();
        assert_eq!(d.path, want.canonicalize().unwrap());
        let m = std::fs::metadata(&want).unwrap();
        assert_eq!(m.mode() & 0o777, 0o700);
        std::fs::set_permissions(&want, std::fs::Permissions::from_mode(0o755)).unwrap();
        open_private_dir(&want, me()).unwrap();
        assert_eq!(std::fs::metadata(&want).unwrap().mode() & 0o777, 0o700);
    }

    #[test]
    fn a_link_in_place_of_the_directory_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let shared = tmp.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let elsewhere = tmp.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        symlink(&elsewhere, shared.join("mine")).unwrap();
        let err = open_private_dir(&shared.join("mine"), me()).unwrap_err();
        assert!(matches!(err, UnsafeDir::NotADirectory { .. }), "{err}");
    }

    #[test]
    fn a_link_in_a_private_parent_is_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real");
        std::fs::create_dir(&real).unwrap();
        symlink(&real, tmp.path().join("link")).unwrap();
        let d = open_private_dir(&tmp.path().join("link/x"), me()).unwrap();
        assert_eq!(d.path, real.canonicalize().unwrap().join("x"));
    }

    #[test]
    fn own_directories_and_their_subdirectories() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = open_own_dir(tmp.path(), me()).unwrap();
        own_subdir(&dir, tmp.path(), "upper", me()).unwrap();
        assert!(tmp.path().join("upper").is_dir());
        symlink(tmp.path(), tmp.path().join("work")).unwrap();
        let err = own_subdir(&dir, tmp.path(), "work", me()).unwrap_err();
        assert!(matches!(err, UnsafeDir::NotADirectory { .. }), "{err}");
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = open_own_dir(tmp.path(), me()).unwrap_err();
        assert!(matches!(err, UnsafeDir::OthersCanWrite { .. }), "{err}");
        let err = open_own_dir(tmp.path(), me() + 1).unwrap_err();
        assert!(matches!(err, UnsafeDir::NotOwned { .. }), "{err}");
    }

    #[test]
    fn a_parent_others_can_write_without_sticky_bit_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let open = tmp.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = open_private_dir(&open.join("mine"), me()).unwrap_err();
        assert!(matches!(err, UnsafeDir::OthersCanWrite { .. }), "{err}");
        assert_eq!(err.path(), open.canonicalize().unwrap());
    }
}
