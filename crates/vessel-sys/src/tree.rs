//! Making a tree from untrusted input (an image being unpacked), one
//! entry at a time relative to its parent directory's descriptor: every
//! creation is exclusive and nothing is followed, so an entry the input
//! made earlier (a symbolic link named like a later directory) can never
//! redirect a later one. [`make_dir_at`](crate::path::make_dir_at) and
//! [`open_dir_at`](crate::path::open_dir_at) complete the set.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Timespec, Timestamps, CWD};

/// The kinds of special file [`make_node_at`] makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Node {
    Fifo,
    Socket,
    BlockDevice { major: u32, minor: u32 },
    CharDevice { major: u32, minor: u32 },
}

/// Makes the directory `path` (a path the user gave) unless it exists, and
/// opens it.
pub fn make_and_open_dir(path: &Path, mode: u32) -> io::Result<OwnedFd> {
    match rustix::fs::mkdirat(CWD, path, Mode::from_raw_mode(mode)) {
        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
        Err(e) => return Err(e.into()),
    }
    crate::path::open_dir_path(path)
}

/// Creates the regular file `name` in `dir` for writing, with `mode`; fails
/// when anything is already there, a link included.
pub fn create_file_at(dir: &impl AsFd, name: &OsStr, mode: u32) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(mode),
    )?)
}

/// Makes `name` in `dir` a symbolic link to `target` (never followed here).
pub fn symlink_at(target: &[u8], dir: &impl AsFd, name: &OsStr) -> io::Result<()> {
    Ok(rustix::fs::symlinkat(target, dir, name)?)
}

/// Makes the special file `name` in `dir`, with `mode`.
pub fn make_node_at(dir: &impl AsFd, name: &OsStr, node: Node, mode: u32) -> io::Result<()> {
    let (kind, dev) = match node {
        Node::Fifo => (FileType::Fifo, 0),
        Node::Socket => (FileType::Socket, 0),
        Node::BlockDevice { major, minor } => {
            (FileType::BlockDevice, rustix::fs::makedev(major, minor))
        }
        Node::CharDevice { major, minor } => {
            (FileType::CharacterDevice, rustix::fs::makedev(major, minor))
        }
    };
    Ok(rustix::fs::mknodat(
        dir,
        name,
        kind,
        Mode::from_raw_mode(mode),
        dev,
    )?)
}

/// Makes `name` in `dir` a hard link to `old` in `old_dir`, without
/// following `old` if it is a link.
pub fn hard_link_at(
    old_dir: &impl AsFd,
    old: &OsStr,
    dir: &impl AsFd,
    name: &OsStr,
) -> io::Result<()> {
    Ok(rustix::fs::linkat(
        old_dir,
        old,
        dir,
        name,
        AtFlags::empty(),
    )?)
}

/// Gives an open file an owner and group.
pub fn chown_fd(fd: &impl AsFd, uid: u32, gid: u32) -> io::Result<()> {
    Ok(rustix::fs::fchown(
        fd,
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
    )?)
}

/// Gives `name` in `dir` an owner and group, never following a link.
pub fn chown_at(dir: &impl AsFd, name: &OsStr, uid: u32, gid: u32) -> io::Result<()> {
    Ok(rustix::fs::chownat(
        dir,
        name,
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )?)
}

/// Sets the permission bits of `name` in `dir`. Linux cannot do this
/// without following a link: callers only name entries they just made
/// that are not links.
pub fn chmod_at(dir: &impl AsFd, name: &OsStr, mode: u32) -> io::Result<()> {
    Ok(rustix::fs::chmodat(
        dir,
        name,
        Mode::from_raw_mode(mode),
        AtFlags::empty(),
    )?)
}

/// Sets both the access and modification times of an open file to `time`
/// (seconds since the epoch).
pub fn set_times_fd(fd: &impl AsFd, time: i64) -> io::Result<()> {
    Ok(rustix::fs::futimens(fd, &both_times(time))?)
}

/// Sets both times of `name` in `dir` to `time`, never following a link.
pub fn set_times_at(dir: &impl AsFd, name: &OsStr, time: i64) -> io::Result<()> {
    Ok(rustix::fs::utimensat(
        dir,
        name,
        &both_times(time),
        AtFlags::SYMLINK_NOFOLLOW,
    )?)
}

fn both_times(time: i64) -> Timestamps {
    let t = Timespec {
        tv_sec: time,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

/// Opens the directory `path` (relative) below `root` without leaving it
/// and without following any link on the way: for entries a tree made
/// earlier. `for_reading` opens it to read and change; otherwise it is an
/// `O_PATH` descriptor, enough for the `*_at` calls.
pub fn open_dir_beneath(root: &impl AsFd, path: &OsStr, for_reading: bool) -> io::Result<OwnedFd> {
    let access = if for_reading {
        OFlags::RDONLY
    } else {
        OFlags::PATH
    };
    Ok(rustix::fs::openat2(
        root,
        path,
        access | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    )?)
}

/// Removes `name` in `dir` when it is an empty directory or an empty
/// regular file (never following a link); whether it was removed.
pub fn remove_if_empty_at(dir: &impl AsFd, name: &OsStr) -> bool {
    let Ok(stat) = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) else {
        return false;
    };
    match FileType::from_raw_mode(stat.st_mode) {
        // rmdir itself refuses a directory that is not empty.
        FileType::Directory => rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR).is_ok(),
        FileType::RegularFile if stat.st_size == 0 => {
            rustix::fs::unlinkat(dir, name, AtFlags::empty()).is_ok()
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn a_tree_is_made_without_following_anything() {
        let tmp = tempfile::tempdir().unwrap();
        let root = make_and_open_dir(&tmp.path().join("t"), 0o700).unwrap();
        crate::path::make_dir_at(&root, OsStr::new("d"), 0o700).unwrap();
        let d = crate::path::open_dir_at(&root, OsStr::new("d")).unwrap();
        let f = create_file_at(&d, OsStr::new("f"), 0o600).unwrap();
        set_times_fd(&f, 1_000_000).unwrap();
        symlink_at(b"/etc", &root, OsStr::new("l")).unwrap();
        // An earlier link is never followed, and never replaced.
        assert!(create_file_at(&root, OsStr::new("l"), 0o600).is_err());
        assert!(open_dir_beneath(&root, OsStr::new("l"), false).is_err());
        make_node_at(&root, OsStr::new("p"), Node::Fifo, 0o600).unwrap();
        hard_link_at(&d, OsStr::new("f"), &root, OsStr::new("h")).unwrap();
        set_times_at(&root, OsStr::new("l"), 2_000_000).unwrap();
        chmod_at(&root, OsStr::new("p"), 0o640).unwrap();
        let sub = open_dir_beneath(&root, OsStr::new("d"), true).unwrap();
        assert!(crate::path::is_dir(&sub));
        let meta = std::fs::metadata(tmp.path().join("t/h")).unwrap();
        assert_eq!((meta.nlink(), meta.mtime()), (2, 1_000_000));
        let link = std::fs::symlink_metadata(tmp.path().join("t/l")).unwrap();
        assert_eq!(link.mtime(), 2_000_000);
        let fifo = std::fs::metadata(tmp.path().join("t/p")).unwrap();
        assert_eq!(fifo.mode() & 0o7777, 0o640);
        // Only what is empty goes, and a link is never followed.
        create_file_at(&root, OsStr::new("empty"), 0o600).unwrap();
        crate::path::make_dir_at(&root, OsStr::new("hollow"), 0o700).unwrap();
        assert!(remove_if_empty_at(&root, OsStr::new("empty")));
        assert!(remove_if_empty_at(&root, OsStr::new("hollow")));
        assert!(!remove_if_empty_at(&root, OsStr::new("d")));
        assert!(!remove_if_empty_at(&root, OsStr::new("l")));
        assert!(!remove_if_empty_at(&root, OsStr::new("missing")));
    }
}
