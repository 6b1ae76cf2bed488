//! The seam under the executor: the calls it makes while it assembles a
//! container's root (open inside the root, create a mount point, bind,
//! remount, mount a file system, write a session file, make a link), as one
//! small trait.
//!
//! Why: the order of those calls is where the executor's rules live (a
//! read-only bind is a bind and then a remount; a mount point the image
//! refuses gets a tmpfs cover; the root is made read-only last), and it can
//! only be seen by the kernel as root. Against [`Recorder`], which records
//! each call as a [`Call`] and can be told to fail one with an errno, the
//! same code is unit-tested without privilege (youki's `syscall` module is
//! the model).
//!
//! The kernel side forwards each method to this crate's functions
//! ([`crate::mount`], [`crate::path`]); it lives beside the executor in
//! `vessel-runtime`, which also narrates each mount under `--debug`.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use crate::caps::Capability;
use crate::mount::FsFlags;
use crate::{Errno, Result, SysError};

/// What a directory entry is, as an underlay reproduces it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Entry {
    Dir,
    File,
    Symlink(PathBuf),
    /// A device, socket or pipe: not reproduced.
    Other,
}

/// The calls the executor makes while it assembles the root.
pub trait Syscall {
    /// An object opened for mounting on or resolving from: a descriptor
    /// for the kernel, a path for the fake.
    type Handle;

    /// Opens a host directory to resolve container paths from
    /// ([`crate::path::open_dir`]).
    fn open_dir(&self, path: &Path) -> Result<Self::Handle>;
    /// Opens a host path as the user named it ([`crate::path::open_host`]).
    fn open_host(&self, path: &Path) -> Result<Self::Handle>;
    /// Opens `path` inside `root`, never leaving it
    /// ([`crate::path::open_in_root`]).
    fn open_in_root(&self, root: &Self::Handle, path: &Path) -> Result<Self::Handle>;
    /// Opens `path` inside `root`, creating it (a directory, or an empty
    /// file when `file` is set) and its missing parents first
    /// ([`crate::path::ensure_in_root`]).
    fn ensure_in_root(&self, root: &Self::Handle, path: &Path, file: bool) -> Result<Self::Handle>;
    /// Whether `handle` is a directory.
    fn is_dir(&self, handle: &Self::Handle) -> bool;
    /// A path that names `handle` itself, for mounting on
    /// ([`crate::path::fd_path`]).
    fn mount_path(&self, handle: &Self::Handle) -> PathBuf;
    /// Where `handle` is on the host, by name.
    fn host_path(&self, handle: &Self::Handle) -> Result<PathBuf>;
    /// Whether the host directory `path` is empty (false when it cannot
    /// be read).
    fn is_empty_dir(&self, path: &Path) -> bool;
    /// The entries of the host directory `path`, for an underlay.
    fn entries(&self, path: &Path) -> Result<Vec<(std::ffi::OsString, Entry)>>;

    /// Binds `src` onto `dst` ([`crate::mount::bind`]).
    fn bind(&self, src: &Path, dst: &Path, recursive: bool) -> Result<()>;
    /// Remounts the bind mount at `dst` ([`crate::mount::remount_bind`]).
    fn remount_bind(&self, dst: &Path, readonly: bool, nosuid: bool) -> Result<()>;
    /// Mounts a new file system at `dst` ([`crate::mount::mount_fs`]).
    fn mount_fs(&self, fstype: &str, dst: &Path, flags: FsFlags, options: &str) -> Result<()>;
    /// Creates the host directory `path` (and its parents when `all`).
    fn create_dir(&self, path: &Path, all: bool) -> Result<()>;
    /// Writes the host file `path` with `content`.
    fn write_file(&self, path: &Path, content: &[u8]) -> Result<()>;
    /// Creates the symbolic link `link` to `target`.
    fn symlink(&self, target: &Path, link: &Path) -> Result<()>;

    /// Gives the calling process a mount namespace of its own whose
    /// mounts no longer propagate ([`crate::ns::unshare`],
    /// [`crate::mount::make_private_recursive`]).
    fn private_mount_namespace(&self) -> Result<()>;
    /// Makes `root` the process's root: `pivot_root` with the old root
    /// stacked under the new one and detached, then `/` as the working
    /// directory ([`crate::mount::pivot_root`]).
    fn pivot_into(&self, root: &Path) -> Result<()>;
    /// Sets `no_new_privs` ([`crate::process::set_no_new_privs`]).
    fn set_no_new_privs(&self) -> Result<()>;
    /// Limits every capability set to `keep` ([`crate::caps::limit_to`]).
    fn limit_capabilities(&self, keep: &[Capability]) -> Result<()>;
}

/// The flags of a mount, as `mount(8)` lists them: `nosuid,nodev`.
pub fn flag_names(flags: FsFlags) -> String {
    [
        (flags.readonly, "ro"),
        (flags.nosuid, "nosuid"),
        (flags.nodev, "nodev"),
        (flags.noexec, "noexec"),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .map(|(_, name)| *name)
    .collect::<Vec<_>>()
    .join(",")
}

/// One call the executor made, as [`Recorder`] saw it. Paths inside the
/// root are the root's path joined with the container path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    /// A mount point made (or found) at the container path `path`.
    EnsureInRoot {
        path: PathBuf,
        file: bool,
    },
    CreateDir {
        path: PathBuf,
        all: bool,
    },
    WriteFile {
        path: PathBuf,
        content: String,
    },
    Symlink {
        target: PathBuf,
        link: PathBuf,
    },
    Bind {
        src: PathBuf,
        dst: PathBuf,
        recursive: bool,
    },
    Remount {
        dst: PathBuf,
        readonly: bool,
        nosuid: bool,
    },
    /// `flags` as [`flag_names`] writes them.
    Mount {
        fstype: String,
        dst: PathBuf,
        flags: String,
        options: String,
    },
    PrivateMountNamespace,
    PivotInto {
        root: PathBuf,
    },
    NoNewPrivs,
    /// The capabilities kept, by name, in kernel order.
    Capabilities {
        keep: Vec<String>,
    },
}

impl Call {
    /// Whether this call mounts something (a bind, a remount, a file
    /// system).
    pub fn is_mount(&self) -> bool {
        matches!(
            self,
            Call::Bind { .. } | Call::Remount { .. } | Call::Mount { .. }
        )
    }
}

/// The recording fake, for unit tests: touches nothing, records every
/// call that would change something, and fails a call it was told to.
/// Every host path is an empty directory unless said otherwise.
#[derive(Debug, Default)]
pub struct Recorder {
    calls: RefCell<Vec<Call>>,
    failures: RefCell<Vec<(Call, Errno)>>,
    files: Vec<PathBuf>,
    non_empty: Vec<PathBuf>,
    entries: Vec<(PathBuf, Vec<(std::ffi::OsString, Entry)>)>,
}

impl Recorder {
    pub fn new() -> Recorder {
        Recorder::default()
    }

    /// Says that the host directory `dir` holds `entries`.
    pub fn with_entries(mut self, dir: impl Into<PathBuf>, entries: &[(&str, Entry)]) -> Recorder {
        let entries = entries
            .iter()
            .map(|(n, e)| (std::ffi::OsString::from(n), e.clone()))
            .collect();
        self.entries.push((dir.into(), entries));
        self
    }

    /// The host path `path` is a file, not a directory.
    pub fn with_file(mut self, path: impl Into<PathBuf>) -> Recorder {
        self.files.push(path.into());
        self
    }

    /// The host directory `path` has something in it.
    pub fn with_content(mut self, path: impl Into<PathBuf>) -> Recorder {
        self.non_empty.push(path.into());
        self
    }

    /// The next time `call` is made, it fails with `errno` (once; tell it
    /// again to fail it again).
    pub fn fail(&self, call: Call, errno: Errno) {
        self.failures.borrow_mut().push((call, errno));
    }

    /// Every call recorded, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.borrow().clone()
    }

    /// The mounts only ([`Call::is_mount`]), in order.
    pub fn mounts(&self) -> Vec<Call> {
        self.calls().into_iter().filter(Call::is_mount).collect()
    }

    fn record(&self, call: Call) -> Result<()> {
        let mut failures = self.failures.borrow_mut();
        let failing = failures.iter().position(|(c, _)| *c == call);
        self.calls.borrow_mut().push(call);
        match failing {
            Some(i) => {
                let (call, errno) = failures.remove(i);
                Err(SysError::new(format!("{call:?}"), errno))
            }
            None => Ok(()),
        }
    }
}

/// `path` (a container path) below `root`.
fn below(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

impl Syscall for Recorder {
    type Handle = PathBuf;

    fn open_dir(&self, path: &Path) -> Result<PathBuf> {
        Ok(path.to_path_buf())
    }

    fn open_host(&self, path: &Path) -> Result<PathBuf> {
        Ok(path.to_path_buf())
    }

    fn open_in_root(&self, root: &PathBuf, path: &Path) -> Result<PathBuf> {
        Ok(below(root, path))
    }

    fn ensure_in_root(&self, root: &PathBuf, path: &Path, file: bool) -> Result<PathBuf> {
        self.record(Call::EnsureInRoot {
            path: path.to_path_buf(),
            file,
        })?;
        Ok(below(root, path))
    }

    fn is_dir(&self, handle: &PathBuf) -> bool {
        !self.files.contains(handle)
    }

    fn mount_path(&self, handle: &PathBuf) -> PathBuf {
        handle.clone()
    }

    fn host_path(&self, handle: &PathBuf) -> Result<PathBuf> {
        Ok(handle.clone())
    }

    fn is_empty_dir(&self, path: &Path) -> bool {
        !self.non_empty.iter().any(|p| p == path)
    }

    fn entries(&self, path: &Path) -> Result<Vec<(std::ffi::OsString, Entry)>> {
        Ok(self
            .entries
            .iter()
            .find(|(d, _)| d == path)
            .map(|(_, e)| e.clone())
            .unwrap_or_default())
    }

    fn bind(&self, src: &Path, dst: &Path, recursive: bool) -> Result<()> {
        self.record(Call::Bind {
            src: src.to_path_buf(),
            dst: dst.to_path_buf(),
            recursive,
        })
    }

    fn remount_bind(&self, dst: &Path, readonly: bool, nosuid: bool) -> Result<()> {
        self.record(Call::Remount {
            dst: dst.to_path_buf(),
            readonly,
            nosuid,
        })
    }

    fn mount_fs(&self, fstype: &str, dst: &Path, flags: FsFlags, options: &str) -> Result<()> {
        self.record(Call::Mount {
            fstype: fstype.to_string(),
            dst: dst.to_path_buf(),
            flags: flag_names(flags),
            options: options.to_string(),
        })
    }

    fn create_dir(&self, path: &Path, all: bool) -> Result<()> {
        self.record(Call::CreateDir {
            path: path.to_path_buf(),
            all,
        })
    }

    fn write_file(&self, path: &Path, content: &[u8]) -> Result<()> {
        self.record(Call::WriteFile {
            path: path.to_path_buf(),
            content: String::from_utf8_lossy(content).into_owned(),
        })
    }

    fn symlink(&self, target: &Path, link: &Path) -> Result<()> {
        self.record(Call::Symlink {
            target: target.to_path_buf(),
            link: link.to_path_buf(),
        })
    }

    fn private_mount_namespace(&self) -> Result<()> {
        self.record(Call::PrivateMountNamespace)
    }

    fn pivot_into(&self, root: &Path) -> Result<()> {
        self.record(Call::PivotInto {
            root: root.to_path_buf(),
        })
    }

    fn set_no_new_privs(&self) -> Result<()> {
        self.record(Call::NoNewPrivs)
    }

    fn limit_capabilities(&self, keep: &[Capability]) -> Result<()> {
        let mut keep = keep.to_vec();
        keep.sort_by_key(|c| c.index());
        self.record(Call::Capabilities {
            keep: keep.into_iter().map(crate::caps::name).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_calls_and_fails_the_one_it_was_told_to_once() {
        let fake = Recorder::new();
        let bind = Call::Bind {
            src: "/a".into(),
            dst: "/b".into(),
            recursive: false,
        };
        fake.fail(bind.clone(), Errno::INVAL);
        let e = fake
            .bind(Path::new("/a"), Path::new("/b"), false)
            .unwrap_err();
        assert_eq!(e.errno(), Some(Errno::INVAL));
        fake.bind(Path::new("/a"), Path::new("/b"), false).unwrap();
        fake.create_dir(Path::new("/s"), false).unwrap();
        assert_eq!(fake.calls().len(), 3);
        assert_eq!(fake.mounts(), vec![bind.clone(), bind]);
    }

    #[test]
    fn paths_inside_the_root_are_joined_below_it() {
        let fake = Recorder::new().with_file("/etc/hosts");
        let root = fake.open_dir(Path::new("/s/root")).unwrap();
        assert_eq!(
            fake.ensure_in_root(&root, Path::new("/etc/hosts"), true)
                .unwrap(),
            Path::new("/s/root/etc/hosts")
        );
        assert!(!fake.is_dir(&PathBuf::from("/etc/hosts")));
        assert!(fake.is_dir(&PathBuf::from("/etc")));
    }

    #[test]
    fn flags_are_named_as_mount_lists_them() {
        let flags = FsFlags {
            nosuid: true,
            nodev: true,
            ..FsFlags::default()
        };
        assert_eq!(flag_names(flags), "nosuid,nodev");
        assert_eq!(flag_names(FsFlags::default()), "");
    }
}
