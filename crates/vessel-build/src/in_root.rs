//! Where the build writes inside the root it is building: every container
//! path (`%files` and `%appfiles` destinations, the SCIF layout, the
//! `/.singularity.d` metadata) is resolved inside the root by the kernel,
//! with the resolver binds use (`openat2(RESOLVE_IN_ROOT)`), so neither `..`
//! nor a symlink of the image (an absolute one would name the host's file
//! on the host) ever leads a write outside it. Builds run as root too, so
//! an escape would write anywhere.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use vessel_sys::path::{ensure_in_root, fd_path, is_dir, open_dir, open_in_root};
use vessel_sys::SysError;

use crate::engine::BuildError;

/// A root file system being built, held open by descriptor.
pub(crate) struct BuildRoot {
    fd: OwnedFd,
    path: PathBuf,
}

/// Where a host path is to be copied to.
pub(crate) enum Target {
    /// An existing directory: the copy goes in it, under its own name.
    Into(PathBuf),
    /// The path to create (or to replace: never a symlink).
    At(PathBuf),
}

impl BuildRoot {
    pub(crate) fn open(rootfs: &Path) -> Result<Self, BuildError> {
        Ok(BuildRoot {
            fd: open_dir(rootfs).map_err(|e| sys(rootfs, e))?,
            path: rootfs.to_path_buf(),
        })
    }

    /// The host path of the directory `dir` (a container path), made inside
    /// the root where missing.
    pub(crate) fn dir(&self, dir: &str) -> Result<PathBuf, BuildError> {
        let fd = ensure_in_root(&self.fd, Path::new(dir), false).map_err(|e| self.err(dir, e))?;
        if !is_dir(&fd) {
            return Err(BuildError::NotADirectory {
                path: dir.to_string(),
            });
        }
        self.host_path(&fd, dir)
    }

    /// The host path at which to write the file `path` (a container path):
    /// its directory resolved (and made) inside the root; a symlink in its
    /// place is removed, so that writing replaces the link, not its target.
    pub(crate) fn file(&self, path: &str) -> Result<PathBuf, BuildError> {
        let (parent, name) = split(path).ok_or_else(|| BuildError::NotAFileName {
            path: path.to_string(),
        })?;
        let host = self.dir(&parent)?.join(name);
        if host.is_symlink() {
            std::fs::remove_file(&host).map_err(crate::engine::io(&host))?;
        }
        Ok(host)
    }

    /// Writes `text` to the file `path` (a container path) with `mode`.
    pub(crate) fn write(&self, path: &str, text: &str, mode: u32) -> Result<(), BuildError> {
        crate::engine::write_file(&self.file(path)?, text, mode)
    }

    /// Whether the container path `path` exists (resolved inside the root).
    pub(crate) fn exists(&self, path: &str) -> bool {
        open_in_root(&self.fd, Path::new(path)).is_ok()
    }

    /// Removes the container path `path` when it is an empty directory or
    /// an empty file, its directory resolved inside the root and nothing
    /// followed; whether it was removed.
    pub(crate) fn remove_if_empty(&self, path: &str) -> bool {
        let Some((parent, name)) = split(path) else {
            return false;
        };
        match open_in_root(&self.fd, Path::new(&parent)) {
            Ok(dir) => vessel_sys::tree::remove_if_empty_at(&dir, std::ffi::OsStr::new(&name)),
            Err(_) => false,
        }
    }

    /// The text of the file `path` (a container path), resolved inside the
    /// root; `None` when it is missing or unreadable.
    pub(crate) fn read(&self, path: &str) -> Option<String> {
        let fd = open_in_root(&self.fd, Path::new(path)).ok()?;
        std::fs::read_to_string(fd_path(&fd)).ok()
    }

    /// Where a copy of a host file or tree to `dest` (a container path)
    /// goes, as `cp` into the running container would place it: into an
    /// existing directory, onto what the path resolves to inside the root,
    /// or as a new entry in its resolved directory.
    pub(crate) fn copy_target(&self, dest: &str) -> Result<Target, BuildError> {
        if let Ok(fd) = open_in_root(&self.fd, Path::new(dest)) {
            let host = self.host_path(&fd, dest)?;
            return Ok(if is_dir(&fd) {
                Target::Into(host)
            } else {
                Target::At(host)
            });
        }
        match split(dest) {
            Some((parent, name)) => Ok(Target::At(self.dir(&parent)?.join(name))),
            None => Ok(Target::Into(self.dir(dest)?)),
        }
    }

    /// The host path of `fd`, which lies inside the root.
    fn host_path(&self, fd: &OwnedFd, what: &str) -> Result<PathBuf, BuildError> {
        let host = std::fs::read_link(fd_path(fd)).map_err(crate::engine::io(&self.path))?;
        let root = std::fs::canonicalize(&self.path).map_err(crate::engine::io(&self.path))?;
        if !host.starts_with(&root) {
            // The kernel's resolution cannot leave the root; a mount inside
            // it could, and is refused.
            return Err(BuildError::OutsideImage {
                path: what.to_string(),
            });
        }
        Ok(host)
    }

    fn err(&self, path: &str, source: SysError) -> BuildError {
        BuildError::InImage {
            path: path.to_string(),
            source,
        }
    }
}

/// `path`'s directory (`..` resolved lexically, never above `/`) and last
/// name; `None` when it names a directory (`/`, a trailing `..` or `.`).
fn split(path: &str) -> Option<(String, String)> {
    let mut parts: Vec<&str> = Vec::new();
    let mut last_is_name = false;
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
                last_is_name = false;
            }
            n => {
                parts.push(n);
                last_is_name = true;
            }
        }
    }
    if !last_is_name {
        return None;
    }
    let name = parts.pop()?.to_string();
    Some((format!("/{}", parts.join("/")), name))
}

fn sys(path: &Path, source: SysError) -> BuildError {
    BuildError::OpenRoot {
        root: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_stays_in_the_root() {
        assert_eq!(
            split("/../../../x/y"),
            Some(("/x".to_string(), "y".to_string()))
        );
        assert_eq!(split("/a/b/.."), None);
        assert_eq!(split("/"), None);
        assert_eq!(split("a"), Some(("/".to_string(), "a".to_string())));
    }

    #[test]
    fn writes_never_leave_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let rootfs = tmp.path().join("root");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(&rootfs).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        // An absolute link names the host's directory on the host.
        std::os::unix::fs::symlink(&outside, rootfs.join("abs")).unwrap();
        std::os::unix::fs::symlink(outside.join("file"), rootfs.join("link")).unwrap();
        let root = BuildRoot::open(&rootfs).unwrap();
        root.write("/../../../x/y", "a", 0o644).unwrap();
        assert!(rootfs.join("x/y").is_file());
        root.write("/abs/f", "b", 0o644).unwrap();
        assert!(rootfs
            .join(outside.strip_prefix("/").unwrap())
            .join("f")
            .is_file());
        root.write("/link", "c", 0o644).unwrap();
        assert!(!outside.join("file").exists());
        assert_eq!(std::fs::read_to_string(rootfs.join("link")).unwrap(), "c");
        assert!(std::fs::read_dir(&outside).unwrap().next().is_none());
        match root.copy_target("/../abs").unwrap() {
            Target::Into(p) => assert!(p.starts_with(rootfs.canonicalize().unwrap())),
            Target::At(p) => panic!("{}", p.display()),
        }
    }
}
