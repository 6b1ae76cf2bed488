//! Resolving paths inside a container root without ever leaving it.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};

use crate::{Context, Result};

/// Opens `path` relative to the directory `root` as if `root` were `/`:
/// symlinks (absolute or relative) and `..` are resolved inside it by the
/// kernel (`openat2` with `RESOLVE_IN_ROOT`), so a hostile image cannot
/// steer the result outside. Returns an `O_PATH` descriptor.
pub fn open_in_root(root: &impl AsFd, path: &Path) -> Result<OwnedFd> {
    openat2_in_root(root, path, OFlags::PATH)
        .op(|| format!("resolving {} inside the container", path.display()))
}

/// `openat2` of `path` below `root` with `RESOLVE_IN_ROOT`; `/` and the
/// empty path name `root` itself.
fn openat2_in_root(root: &impl AsFd, path: &Path, flags: OFlags) -> rustix::io::Result<OwnedFd> {
    let rel = path.strip_prefix("/").unwrap_or(path);
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    rustix::fs::openat2(
        root,
        rel,
        flags | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
}

/// Opens a directory to use as a root for [`open_in_root`].
pub fn open_dir(path: &Path) -> Result<OwnedFd> {
    rustix::fs::open(
        path,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .op(|| format!("opening {}", path.display()))
}

/// A path naming the object behind `fd`, usable as a mount source or
/// target: the kernel follows it to that exact object, not by name.
pub fn fd_path(fd: &impl AsFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd()))
}

/// Opens `path` inside `root` for mounting onto, creating it (and its
/// missing parents) first when absent: a directory, or an empty file when
/// `file` is set. Symlinks on the way, dangling ones included, are followed
/// inside `root`, as the container will see them; nothing is ever created
/// outside it.
pub fn ensure_in_root(root: &impl AsFd, path: &Path, file: bool) -> Result<OwnedFd> {
    use std::collections::VecDeque;
    use std::ffi::OsString;
    use std::path::Component;

    let components = |p: &Path| -> Vec<OsString> {
        p.components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n.to_os_string()),
                Component::ParentDir => Some("..".into()),
                _ => None,
            })
            .collect()
    };
    let mut todo: VecDeque<OsString> = components(path).into();
    // Every component of `current` is a real directory: symlinks are
    // expanded into `todo` as they are met.
    let mut current = PathBuf::from("/");
    let mut links = 0;
    while let Some(name) = todo.pop_front() {
        if name == ".." {
            current.pop();
            continue;
        }
        let parent = open_in_root_dir(root, &current)?;
        let last = todo.is_empty();
        match rustix::fs::statat(
            &parent,
            name.as_os_str(),
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        ) {
            Ok(st) => {
                let kind = rustix::fs::FileType::from_raw_mode(st.st_mode);
                if kind == rustix::fs::FileType::Symlink {
                    links += 1;
                    if links > 40 {
                        return Err(crate::SysError::new(
                            format!("resolving {} inside the container", path.display()),
                            std::io::Error::from_raw_os_error(
                                rustix::io::Errno::LOOP.raw_os_error(),
                            ),
                        ));
                    }
                    let target = rustix::fs::readlinkat(&parent, name.as_os_str(), Vec::new())
                        .op(|| format!("reading the link {}", current.join(&name).display()))?;
                    let target = PathBuf::from(std::ffi::OsStr::from_bytes(target.as_bytes()));
                    if target.is_absolute() {
                        current = PathBuf::from("/");
                    }
                    for c in components(&target).into_iter().rev() {
                        todo.push_front(c);
                    }
                    continue;
                }
                current.push(&name);
            }
            Err(rustix::io::Errno::NOENT) => {
                let created = if last && file {
                    rustix::fs::openat(
                        &parent,
                        name.as_os_str(),
                        OFlags::CREATE
                            | OFlags::EXCL
                            | OFlags::WRONLY
                            | OFlags::CLOEXEC
                            | OFlags::NOFOLLOW,
                        Mode::from_raw_mode(0o644),
                    )
                    .map(drop)
                } else {
                    rustix::fs::mkdirat(&parent, name.as_os_str(), Mode::from_raw_mode(0o755))
                };
                match created {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => current.push(&name),
                    Err(e) => {
                        return Err(crate::SysError::new(
                            format!(
                                "creating {} inside the container",
                                current.join(&name).display()
                            ),
                            e,
                        ))
                    }
                }
            }
            Err(e) => {
                return Err(crate::SysError::new(
                    format!(
                        "resolving {} inside the container",
                        current.join(&name).display()
                    ),
                    e,
                ))
            }
        }
    }
    open_in_root(root, &current)
}

/// Like [`open_in_root`], but a real directory descriptor (not `O_PATH`),
/// usable with the `*at` calls that create entries.
fn open_in_root_dir(root: &impl AsFd, path: &Path) -> Result<OwnedFd> {
    openat2_in_root(root, path, OFlags::RDONLY | OFlags::DIRECTORY)
        .op(|| format!("opening {} inside the container", path.display()))
}

/// Whether `fd` (from [`open_in_root`]) is a directory.
pub fn is_dir(fd: &impl AsFd) -> bool {
    rustix::fs::fstat(fd).is_ok_and(|st| {
        rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory
    })
}

/// Advisory lock operations on a lock file.
#[derive(Clone, Copy, Debug)]
pub enum Flock {
    Shared,
    Exclusive,
    ExclusiveNonBlocking,
}

/// Takes (or converts) an advisory `flock` lock on `fd`.
pub fn flock(fd: &impl AsFd, op: Flock) -> Result<()> {
    use rustix::fs::FlockOperation as F;
    let operation = match op {
        Flock::Shared => F::LockShared,
        Flock::Exclusive => F::LockExclusive,
        Flock::ExclusiveNonBlocking => F::NonBlockingLockExclusive,
    };
    loop {
        match rustix::fs::flock(fd, operation) {
            Err(rustix::io::Errno::INTR) => continue,
            r => return r.op(|| format!("flock({op:?})")),
        }
    }
}

/// Opens a host path (following symlinks, as the user named it) as an
/// `O_PATH` descriptor: works for anything the user can reach, even
/// without read permission on it (an execute-only directory, a device).
pub fn open_host(path: &Path) -> Result<OwnedFd> {
    rustix::fs::open(path, OFlags::PATH | OFlags::CLOEXEC, Mode::empty())
        .op(|| format!("opening {}", path.display()))
}

/// Bytes available to unprivileged users on the file system holding `path`.
pub fn free_bytes(path: &Path) -> Result<u64> {
    let st = rustix::fs::statvfs(path).op(|| format!("statvfs {}", path.display()))?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}
