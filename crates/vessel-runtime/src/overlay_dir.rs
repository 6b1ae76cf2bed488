//! `--overlay DIR`: the directories are checked once, by descriptor, before
//! anything is mounted, and the mounts then go through those descriptors.
//! A directory another user can change is refused: its owner could turn
//! `upper` or `work` into a link to the victim's files between a check and
//! the mount, and make them the container's writable layer.

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use vessel_sys::path::fd_path;
use vessel_sys::private_dir::{open_own_dir, own_subdir, reopen_same, UnsafeDir};

use crate::options::OverlaySpec;

#[derive(Debug, thiserror::Error)]
#[error("overlay {dir}: {cause}")]
pub struct OverlayDirError {
    pub dir: PathBuf,
    pub cause: UnsafeDir,
    #[source]
    pub hint: vessel_sys::Hint,
}

fn own_dir_hint() -> vessel_sys::Hint {
    vessel_sys::Hint::new("use a directory of your own that only you can write to")
}

/// Overlay directories held open for the run.
pub struct CheckedOverlays {
    /// Each spec as given, with its checked directory.
    checked: Vec<(OverlaySpec, OwnedFd)>,
    /// The same directories opened in the container's mount namespace.
    reopened: Vec<OwnedFd>,
}

/// Opens and checks each of `overlays` for the user `uid`; a writable one
/// gets its `upper` and `work` directories made (or checked) too.
pub fn check(overlays: &[OverlaySpec], uid: u32) -> Result<CheckedOverlays, OverlayDirError> {
    let mut checked = Vec::new();
    for o in overlays {
        let err = |cause| OverlayDirError {
            dir: o.dir.clone(),
            cause,
            hint: own_dir_hint(),
        };
        let dir = open_own_dir(&o.dir, uid).map_err(err)?;
        if !o.readonly {
            for sub in ["upper", "work"] {
                own_subdir(&dir, &o.dir, sub, uid).map_err(err)?;
            }
        }
        checked.push((o.clone(), dir));
    }
    Ok(CheckedOverlays {
        checked,
        reopened: Vec::new(),
    })
}

impl CheckedOverlays {
    /// The specs for the plan, each naming its directory through a
    /// descriptor opened in the current (the container's) mount namespace:
    /// overlayfs refuses layers reached through a mount of another one. The
    /// directory is opened again by its path and must be the very one
    /// checked (same device and inode); only its owner can change what is
    /// in it, `upper` and `work` included.
    pub fn in_this_namespace(&mut self) -> Result<Vec<OverlaySpec>, OverlayDirError> {
        let mut specs = Vec::new();
        for (spec, checked) in &self.checked {
            let err = |cause| OverlayDirError {
                dir: spec.dir.clone(),
                cause,
                hint: own_dir_hint(),
            };
            let again = reopen_same(checked).map_err(err)?;
            specs.push(OverlaySpec {
                dir: fd_path(&again),
                readonly: spec.readonly,
            });
            self.reopened.push(again);
        }
        Ok(specs)
    }
}
