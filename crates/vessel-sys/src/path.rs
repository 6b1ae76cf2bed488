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
    SharedNonBlocking,
    Exclusive,
    ExclusiveNonBlocking,
}

/// Takes (or converts) an advisory `flock` lock on `fd`.
pub fn flock(fd: &impl AsFd, op: Flock) -> Result<()> {
    use rustix::fs::FlockOperation as F;
    let operation = match op {
        Flock::Shared => F::LockShared,
        Flock::SharedNonBlocking => F::NonBlockingLockShared,
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

// ---------------------------------------------------------------------------
// Descriptor-relative file operations for directories other users share
// (the pull cache): a name is looked up once, in a directory already open,
// and a symbolic link in its place is never followed. The caller names the
// file in its error messages, so these return plain `io::Error`s.
// ---------------------------------------------------------------------------

/// What a file is, from `fstat`/`fstatat`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    File,
    Dir,
    Symlink,
    Other,
}

/// The parts of `stat` that trust decisions read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileStat {
    pub kind: FileKind,
    pub uid: u32,
    pub gid: u32,
    /// Permission bits with setuid, setgid and sticky (`st_mode & 0o7777`).
    pub perm: u32,
    pub nlink: u64,
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    /// Seconds since the epoch.
    pub mtime: i64,
}

impl FileStat {
    /// Whether users other than the owner may write it (group or other
    /// write bit).
    pub fn others_can_write(&self) -> bool {
        self.perm & 0o022 != 0
    }

    /// Whether it is the very same file as `other`.
    pub fn same_file(&self, other: &FileStat) -> bool {
        self.dev == other.dev && self.ino == other.ino
    }
}

#[allow(clippy::unnecessary_cast)] // the field types differ between architectures
fn file_stat(st: &rustix::fs::Stat) -> FileStat {
    use rustix::fs::FileType;
    let kind = match FileType::from_raw_mode(st.st_mode as _) {
        FileType::RegularFile => FileKind::File,
        FileType::Directory => FileKind::Dir,
        FileType::Symlink => FileKind::Symlink,
        _ => FileKind::Other,
    };
    FileStat {
        kind,
        uid: st.st_uid as u32,
        gid: st.st_gid as u32,
        perm: st.st_mode as u32 & 0o7777,
        nlink: st.st_nlink as u64,
        dev: st.st_dev as u64,
        ino: st.st_ino as u64,
        size: st.st_size.max(0) as u64,
        mtime: st.st_mtime as i64,
    }
}

/// `fstat` of an open file or directory.
pub fn stat_fd(fd: &impl AsFd) -> std::io::Result<FileStat> {
    Ok(file_stat(&rustix::fs::fstat(fd)?))
}

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`: a link is described, not followed.
pub fn stat_at(dir: &impl AsFd, name: &std::ffi::OsStr) -> std::io::Result<FileStat> {
    Ok(file_stat(&rustix::fs::statat(
        dir,
        name,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )?))
}

/// Opens the directory at `path` (following links: a path the user gave)
/// for reading and for the `*_at` calls below.
pub fn open_dir_path(path: &Path) -> std::io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Opens the directory `name` in `dir`; a symbolic link there fails with
/// `ELOOP` (or `ENOTDIR`), anything else than a directory with `ENOTDIR`.
pub fn open_dir_at(dir: &impl AsFd, name: &std::ffi::OsStr) -> std::io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// `mkdirat(dir, name, mode)` (the umask applies).
pub fn make_dir_at(dir: &impl AsFd, name: &std::ffi::OsStr, mode: u32) -> std::io::Result<()> {
    Ok(rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(mode))?)
}

/// Opens the file `name` in `dir` read-only, without following a link
/// (`ELOOP`) and without blocking on a FIFO: the caller checks with
/// [`stat_fd`] that it is the regular file it expects.
pub fn open_file_at(dir: &impl AsFd, name: &std::ffi::OsStr) -> std::io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Opens the file `name` in `dir` for reading and writing, creating it with
/// `mode` when missing; never truncates, never follows a link (`ELOOP`),
/// never blocks on a FIFO. For lock files: check with [`stat_fd`] that it is
/// a regular file.
pub fn open_or_create_at(
    dir: &impl AsFd,
    name: &std::ffi::OsStr,
    mode: u32,
) -> std::io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        dir,
        name,
        OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::from_raw_mode(mode),
    )?)
}

/// Renames `from` to `to`, both in `dir`; a link at `to` is replaced, not
/// followed.
pub fn rename_at(
    dir: &impl AsFd,
    from: &std::ffi::OsStr,
    to: &std::ffi::OsStr,
) -> std::io::Result<()> {
    Ok(rustix::fs::renameat(dir, from, dir, to)?)
}

/// Removes the file (or link) `name` from `dir`.
pub fn unlink_at(dir: &impl AsFd, name: &std::ffi::OsStr) -> std::io::Result<()> {
    Ok(rustix::fs::unlinkat(
        dir,
        name,
        rustix::fs::AtFlags::empty(),
    )?)
}

/// Sets the permission bits of an open file.
pub fn chmod_fd(fd: &impl AsFd, mode: u32) -> std::io::Result<()> {
    Ok(rustix::fs::fchmod(fd, Mode::from_raw_mode(mode))?)
}

/// The names in the directory `dir` (without `.` and `..`).
pub fn dir_names(dir: &impl AsFd) -> std::io::Result<Vec<std::ffi::OsString>> {
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(dir)? {
        let name = entry?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            names.push(std::ffi::OsStr::from_bytes(&name).to_os_string());
        }
    }
    Ok(names)
}
