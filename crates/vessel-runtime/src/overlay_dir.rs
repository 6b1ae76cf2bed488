//! `--overlay DIR`: the directories are checked once, by descriptor, before
//! anything is mounted, and the mounts then go through those descriptors.
//! A directory another user can change is refused: its owner could turn
//! `upper` or `work` into a link to the victim's files between a check and
//! the mount, and make them the container's writable layer.

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use vessel_sys::path::fd_path;
use vessel_sys::private_dir::{open_own_dir, own_subdir, UnsafeDir};

use crate::options::OverlaySpec;

#[derive(Debug, thiserror::Error)]
#[error("overlay {dir}: {cause}; use a directory of your own that only you can write to")]
pub struct OverlayDirError {
    pub dir: PathBuf,
    // Part of the message: launch errors are printed without their chain.
    pub cause: UnsafeDir,
}

/// Overlay directories held open for the run.
pub struct CheckedOverlays {
    /// The specs, each naming its opened directory (`/proc/self/fd/N`).
    pub specs: Vec<OverlaySpec>,
    _fds: Vec<OwnedFd>,
}

/// Opens and checks each of `overlays` for the user `uid`; a writable one
/// gets its `upper` and `work` directories made (or checked) too.
pub fn check(overlays: &[OverlaySpec], uid: u32) -> Result<CheckedOverlays, OverlayDirError> {
    let mut specs = Vec::new();
    let mut fds = Vec::new();
    for o in overlays {
        let err = |cause| OverlayDirError {
            dir: o.dir.clone(),
            cause,
        };
        let dir = open_own_dir(&o.dir, uid).map_err(err)?;
        if !o.readonly {
            for sub in ["upper", "work"] {
                fds.push(own_subdir(&dir, &o.dir, sub, uid).map_err(err)?);
            }
        }
        specs.push(OverlaySpec {
            dir: fd_path(&dir),
            readonly: o.readonly,
        });
        fds.push(dir);
    }
    Ok(CheckedOverlays { specs, _fds: fds })
}
