//! The root source: where the image's root file system comes from, picked
//! per run by the image drivers' policy (DESIGN decision 3), and mounted
//! under the session. A sandbox directory is used as it is; a SquashFS
//! image is mounted by the kernel through a loop device (real root only),
//! served by Vessel's FUSE server, or unpacked into the extract cache.
//!
//! The image's own descriptor is used throughout, never its path again:
//! execution control checked that very file.

use std::fs;
use std::path::{Path, PathBuf};

use vessel_image::Image;
use vessel_sif::Arch;
use vessel_sys::mount::{self as m, FsFlags};

use super::{kernel_hint, LaunchError};
use crate::extract::{ExtractCache, Extracted};
use crate::options::{Driver, Host, LaunchOptions};

/// Where the image's root file system comes from.
pub(super) enum RootSource {
    /// A directory: a sandbox, used as is.
    Dir { path: PathBuf },
    /// Unpacked in the node-local cache (unprivileged runs).
    Extracted(Extracted),
    /// Mounted by the kernel from a loop device (runs as real root).
    Kernel {
        file: fs::File,
        offset: u64,
        size: u64,
    },
    /// Served by Vessel's FUSE server, in a child process once mounted.
    Fuse {
        file: fs::File,
        offset: u64,
        size: u64,
    },
}

/// Picks the driver for `image` and prepares its source (the extract cache
/// unpacks here, before any namespace exists).
pub(super) fn root_source(
    image: Image,
    opts: &LaunchOptions,
    host: &Host,
) -> Result<RootSource, LaunchError> {
    let root = image.squashfs_root().map_err(LaunchError::RootFs)?;
    let Some(root) = root else {
        return Ok(RootSource::Dir {
            path: fs::canonicalize(image.path())?,
        });
    };
    let path = image.path().to_path_buf();
    if let Some(arch) = root.arch {
        check_arch(&path, arch)?;
    }
    let (offset, size) = (root.offset, root.size);
    // The image's own descriptor, never its path again: execution control
    // checked this file.
    let file = match image.file() {
        Some(f) => f.try_clone()?,
        None => {
            return Err(LaunchError::NoImageFile(path));
        }
    };
    if host.uid == 0 && opts.driver != Driver::Extract {
        tracing::debug!("image driver: kernel (squashfs on a loop device)");
        return Ok(RootSource::Kernel { file, offset, size });
    }
    if opts.driver == Driver::Fuse || (opts.driver == Driver::Auto && fuse_usable()) {
        tracing::debug!("image driver: fuse");
        return Ok(RootSource::Fuse { file, offset, size });
    }
    tracing::debug!("image driver: extract");
    let cache = ExtractCache::open(
        &opts.extract_dir,
        opts.extract_fallback.as_deref(),
        opts.extract_max_bytes,
    )?;
    Ok(RootSource::Extracted(
        cache.get(&file, &path, offset, size)?,
    ))
}

impl RootSource {
    /// Makes the root file system reachable in the session (in the
    /// container's namespaces) and returns where it is, with the FUSE
    /// server serving it, if any.
    pub(super) fn mount(
        &self,
        session: &Path,
        opts: &LaunchOptions,
        host: &Host,
    ) -> Result<(PathBuf, Option<crate::fuse::Server>), LaunchError> {
        Ok(match self {
            RootSource::Dir { path } => {
                tracing::debug!("image: the directory {}", path.display());
                (path.clone(), None)
            }
            RootSource::Extracted(e) => {
                tracing::debug!("image: extracted at {}", e.root.display());
                (e.root.clone(), None)
            }
            RootSource::Kernel { file, offset, size } => (
                mount_squashfs(file, *offset, *size, session, opts.allow_setuid)?,
                None,
            ),
            RootSource::Fuse { file, offset, size } => {
                let (target, server) = serve_fuse(file, *offset, *size, session, opts, host)?;
                (target, Some(server))
            }
        })
    }
}

/// Whether this user may open `/dev/fuse` (distributions make it 0666;
/// some sites do not): if not, `auto` extracts instead.
fn fuse_usable() -> bool {
    match vessel_sys::fuse::open_device() {
        Ok(_) => true,
        Err(e) => {
            tracing::debug!("not using the FUSE driver: {e}");
            false
        }
    }
}

/// Mounts the image through FUSE at `session/image`, served by a child.
fn serve_fuse(
    file: &fs::File,
    offset: u64,
    size: u64,
    session: &Path,
    opts: &LaunchOptions,
    host: &Host,
) -> Result<(PathBuf, crate::fuse::Server), LaunchError> {
    let target = session.join("image");
    fs::create_dir(&target)?;
    let (uid, gid) = if opts.fakeroot {
        (0, 0)
    } else {
        (host.uid, host.gid)
    };
    tracing::debug!(
        "mount: fuse (squashfs at offset {offset}, {size} bytes) on {}",
        target.display()
    );
    let server = crate::fuse::mount_and_serve(file, offset, size, &target, uid, gid).map_err(
        |e| match e {
            crate::fuse::ServeError::Image(problem) => LaunchError::FuseImage {
                image: opts.image.clone(),
                problem,
            },
            crate::fuse::ServeError::Mount(e) => {
                kernel_hint("could not mount the image with FUSE", e)
            }
            other => LaunchError::Fuse(other),
        },
    )?;
    Ok((target, server))
}

/// Mounts the SquashFS at `offset` in `file` read-only through a loop
/// device, under the session, `nosuid` unless `allow_setuid`; returns the
/// mount point.
fn mount_squashfs(
    file: &fs::File,
    offset: u64,
    size: u64,
    session: &Path,
    allow_setuid: bool,
) -> Result<PathBuf, LaunchError> {
    let dev = vessel_sys::loopdev::attach(file, offset, size)?;
    let target = session.join("image");
    fs::create_dir(&target)?;
    let flags = FsFlags {
        nosuid: !allow_setuid,
        nodev: true,
        readonly: true,
        ..FsFlags::default()
    };
    tracing::debug!(
        "mount: squashfs {} (offset {offset}) on {} ({})",
        dev.path.display(),
        target.display(),
        vessel_sys::syscall::flag_names(flags)
    );
    m::mount_source(&dev.path, &target, "squashfs", flags)?;
    Ok(target)
}

/// Refuses images for a CPU this machine cannot run (386 runs on amd64).
fn check_arch(path: &Path, arch: Arch) -> Result<(), LaunchError> {
    let host = Arch::host();
    if arch.is_unknown() || arch == host || (arch.go_name() == Some("386") && host == Arch::AMD64) {
        return Ok(());
    }
    Err(LaunchError::WrongArch {
        path: path.to_path_buf(),
        image: arch,
        host,
        hint: vessel_sys::Hint::new(format!("use an image for {host} (pull with --arch {host})")),
    })
}
