//! The kernel side of the [`Syscall`] seam: each call forwards to the
//! `vessel-sys` function it names, and each mount is narrated under
//! `--debug` as it is made (`mount: bind /home/me on …/root/home/me`), as
//! Charliecloud's `ch-run -vv` tells its story. Descriptor paths
//! (`/proc/self/fd/N`) are shown as the host paths they stand for.

use std::fs;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use vessel_sys::caps::Capability;
use vessel_sys::mount::{self as m, FsFlags};
use vessel_sys::path;
use vessel_sys::syscall::{flag_names, Entry, Syscall};
use vessel_sys::{Result, SysError};

/// The real implementation: the kernel, through `vessel-sys`.
pub(super) struct Kernel;

/// `p` for a reader: a descriptor's path becomes what it points to.
fn shown(p: &Path) -> PathBuf {
    if p.starts_with("/proc/self/fd") {
        fs::read_link(p).unwrap_or_else(|_| p.to_path_buf())
    } else {
        p.to_path_buf()
    }
}

impl Syscall for Kernel {
    type Handle = OwnedFd;

    fn open_dir(&self, p: &Path) -> Result<OwnedFd> {
        path::open_dir(p)
    }

    fn open_host(&self, p: &Path) -> Result<OwnedFd> {
        path::open_host(p)
    }

    fn open_in_root(&self, root: &OwnedFd, p: &Path) -> Result<OwnedFd> {
        path::open_in_root(root, p)
    }

    fn ensure_in_root(&self, root: &OwnedFd, p: &Path, file: bool) -> Result<OwnedFd> {
        path::ensure_in_root(root, p, file)
    }

    fn is_dir(&self, handle: &OwnedFd) -> bool {
        path::is_dir(handle)
    }

    fn mount_path(&self, handle: &OwnedFd) -> PathBuf {
        path::fd_path(handle)
    }

    fn host_path(&self, handle: &OwnedFd) -> Result<PathBuf> {
        let p = path::fd_path(handle);
        fs::read_link(&p).map_err(|e| SysError::new(format!("reading {}", p.display()), e))
    }

    fn is_empty_dir(&self, p: &Path) -> bool {
        fs::read_dir(p)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false)
    }

    fn entries(&self, p: &Path) -> Result<Vec<(std::ffi::OsString, Entry)>> {
        let read = |e: std::io::Error| SysError::new(format!("reading {}", shown(p).display()), e);
        let mut out = Vec::new();
        for entry in fs::read_dir(p).map_err(read)? {
            let entry = entry.map_err(read)?;
            let kind = entry.file_type().map_err(read)?;
            let what = if kind.is_dir() {
                Entry::Dir
            } else if kind.is_file() {
                Entry::File
            } else if kind.is_symlink() {
                Entry::Symlink(fs::read_link(entry.path()).map_err(read)?)
            } else {
                Entry::Other
            };
            out.push((entry.file_name(), what));
        }
        out.sort();
        Ok(out)
    }

    fn bind(&self, src: &Path, dst: &Path, recursive: bool) -> Result<()> {
        tracing::debug!(
            "mount: bind {} on {}{}",
            shown(src).display(),
            shown(dst).display(),
            if recursive {
                " (with the mounts below it)"
            } else {
                ""
            }
        );
        m::bind(src, dst, recursive)
    }

    fn remount_bind(&self, dst: &Path, readonly: bool, nosuid: bool) -> Result<()> {
        tracing::debug!(
            "mount: remount {} {}",
            shown(dst).display(),
            if readonly { "read-only" } else { "read-write" }
        );
        m::remount_bind(dst, readonly, nosuid)
    }

    fn mount_fs(&self, fstype: &str, dst: &Path, flags: FsFlags, options: &str) -> Result<()> {
        tracing::debug!(
            "mount: {fstype} on {} ({})",
            shown(dst).display(),
            [flag_names(flags).as_str(), options]
                .iter()
                .filter(|s| !s.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join(",")
        );
        m::mount_fs(fstype, dst, flags, options)
    }

    fn create_dir(&self, p: &Path, all: bool) -> Result<()> {
        let r = if all {
            fs::create_dir_all(p)
        } else {
            fs::create_dir(p)
        };
        r.map_err(|e| SysError::new(format!("creating {}", p.display()), e))
    }

    fn write_file(&self, p: &Path, content: &[u8]) -> Result<()> {
        fs::write(p, content).map_err(|e| SysError::new(format!("writing {}", p.display()), e))
    }

    fn symlink(&self, target: &Path, link: &Path) -> Result<()> {
        tracing::debug!("symlink: {} -> {}", shown(link).display(), target.display());
        std::os::unix::fs::symlink(target, link)
            .map_err(|e| SysError::new(format!("linking {}", link.display()), e))
    }

    fn private_mount_namespace(&self) -> Result<()> {
        let own = vessel_sys::ns::Namespaces {
            mount: true,
            ..Default::default()
        };
        vessel_sys::ns::unshare(own)?;
        m::make_private_recursive()
    }

    fn pivot_into(&self, root: &Path) -> Result<()> {
        tracing::debug!("pivot_root: into {}", root.display());
        vessel_sys::process::chdir(root)?;
        m::pivot_root(Path::new("."), Path::new("."))?;
        m::unmount_detach(Path::new("."))?;
        vessel_sys::process::chdir(Path::new("/"))
    }

    fn set_no_new_privs(&self) -> Result<()> {
        vessel_sys::process::set_no_new_privs()
    }

    fn limit_capabilities(&self, keep: &[Capability]) -> Result<()> {
        let names: Vec<String> = keep.iter().map(|c| vessel_sys::caps::name(*c)).collect();
        tracing::debug!(
            "capabilities: keeping only {}",
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(",")
            }
        );
        vessel_sys::caps::limit_to(keep)
    }
}
