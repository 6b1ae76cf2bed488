//! `--overlay`: every layer is opened and checked once, by descriptor,
//! before anything is mounted, and then mounted through that descriptor in
//! the container's namespaces, where it becomes a directory of the root's
//! overlay:
//!
//! - a directory, as Apptainer lays it out: a writable one holds `upper`
//!   and `work`; a read-only one is its `upper` when it has one (what an
//!   earlier writable run saved), else the directory itself. A directory
//!   another user can change is refused: its owner could turn `upper` or
//!   `work` into a link to the victim's files between a check and the
//!   mount, and make them the container's writable layer;
//! - an ext3 image (`vessel overlay create`), or a SIF's overlay
//!   partition: through the kernel on a loop device as real root, else
//!   through `fuse2fs` (the overlay is then `fuse-overlayfs`'s: the kernel
//!   takes no FUSE upper layer). One run at a time may write to it: ext3
//!   cannot be shared, so a lock on the file refuses a second writer;
//! - a SquashFS image: read-only, served by Vessel's own FUSE server.

use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use vessel_sys::path::{fd_path, Flock};
use vessel_sys::private_dir::{
    existing_own_subdir, open_own_dir, own_subdir, reopen_same, UnsafeDir,
};
use vessel_sys::Hint;

use crate::options::OverlaySpec;

#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    #[error("overlay {dir}: {cause}")]
    UnsafeDir {
        dir: PathBuf,
        cause: UnsafeDir,
        #[source]
        hint: Hint,
    },
    #[error("overlay {path}: {problem}")]
    Image {
        path: PathBuf,
        problem: String,
        #[source]
        hint: Hint,
    },
    #[error("overlay {path} is in use by another container, which writes to it")]
    InUse {
        path: PathBuf,
        #[source]
        hint: Hint,
    },
    #[error("overlay {path}: {tool} could not mount it: {problem}")]
    Mount {
        path: PathBuf,
        tool: &'static str,
        problem: String,
        #[source]
        hint: Hint,
    },
}

fn own_dir_hint() -> Hint {
    Hint::new("use a directory of your own that only you can write to")
}

/// What kind of file system an overlay image file holds, and where.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageFs {
    Ext3 { offset: u64, size: u64 },
    Squashfs { offset: u64, size: u64 },
}

enum Checked {
    Dir {
        spec: OverlaySpec,
        /// The layer: the directory holding `upper` and `work` (writable),
        /// or the directory of files itself (read-only).
        fd: OwnedFd,
    },
    Image {
        spec: OverlaySpec,
        file: File,
        fs: ImageFs,
    },
}

/// Overlay layers held open (and locked) for the run.
pub struct CheckedOverlays {
    checked: Vec<Checked>,
    /// What keeps the layers mounted: directories reopened in the
    /// container's namespace, FUSE servers and helpers, loop devices.
    held: Vec<Held>,
    needs_fuse_overlayfs: bool,
}

enum Held {
    Dir(#[allow(dead_code)] OwnedFd),
    Server(#[allow(dead_code)] crate::fuse::Server),
    Helper(crate::fuse_helper::Helper),
    Loop(#[allow(dead_code)] vessel_sys::loopdev::LoopDevice),
}

/// Opens and checks each of `overlays` for the user `uid`: a directory
/// must be the user's own (a writable one gets its `upper` and `work`
/// made), an image file must hold ext3 or SquashFS and not be written by
/// another run.
pub fn check(overlays: &[OverlaySpec], uid: u32) -> Result<CheckedOverlays, OverlayError> {
    let mut checked = Vec::new();
    for o in overlays {
        if o.path.is_dir() {
            checked.push(check_dir(o, uid)?);
        } else {
            let file = open_image(o, false)?;
            let fs = image_fs(&file).map_err(|problem| OverlayError::Image {
                path: o.path.clone(),
                problem,
                hint: Hint::new(
                    "give a directory, an ext3 image made by `vessel overlay create`, a SquashFS image, or a SIF with an overlay partition",
                ),
            })?;
            // Written to only as ext3: a SquashFS is read-only whatever
            // is asked, as in Apptainer.
            let file = match fs {
                ImageFs::Ext3 { .. } if !o.readonly => open_image(
                    &OverlaySpec {
                        path: fd_path(&file),
                        ..o.clone()
                    },
                    true,
                )
                .map_err(|e| match e {
                    OverlayError::Image { problem, hint, .. } => OverlayError::Image {
                        path: o.path.clone(),
                        problem,
                        hint,
                    },
                    other => other,
                })?,
                _ => file,
            };
            checked.push(check_image(o.clone(), file, fs)?);
        }
    }
    Ok(CheckedOverlays {
        checked,
        held: Vec::new(),
        needs_fuse_overlayfs: false,
    })
}

/// The overlay partition of the image being run (`overlay create
/// IMAGE.sif`): written with `--writable`, a read-only layer otherwise.
pub fn sif_partition(
    image: &vessel_image::Image,
    writable: bool,
) -> Result<Option<CheckedOverlays>, OverlayError> {
    let (Some((offset, size)), Some(file)) = (image.overlay_partition(), image.file()) else {
        return Ok(None);
    };
    let path = image.path().to_path_buf();
    let io = |e: std::io::Error| OverlayError::Image {
        path: path.clone(),
        problem: e.to_string(),
        hint: Hint::new("check that you may read (and, with --writable, write) the image"),
    };
    // The very file opened and checked: reopened through its descriptor
    // to write to it.
    let file = if writable {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(fd_path(file))
            .map_err(io)?
    } else {
        file.try_clone().map_err(io)?
    };
    let spec = OverlaySpec {
        path,
        readonly: !writable,
    };
    Ok(Some(CheckedOverlays {
        checked: vec![check_image(spec, file, ImageFs::Ext3 { offset, size })?],
        held: Vec::new(),
        needs_fuse_overlayfs: false,
    }))
}

fn check_dir(o: &OverlaySpec, uid: u32) -> Result<Checked, OverlayError> {
    let err = |cause| OverlayError::UnsafeDir {
        dir: o.path.clone(),
        cause,
        hint: own_dir_hint(),
    };
    let dir = open_own_dir(&o.path, uid).map_err(err)?;
    let fd = if o.readonly {
        // What a writable run saved is in `upper`, as in Apptainer.
        existing_own_subdir(&dir, &o.path, "upper", uid)
            .map_err(err)?
            .unwrap_or(dir)
    } else {
        for sub in ["upper", "work"] {
            own_subdir(&dir, &o.path, sub, uid).map_err(err)?;
        }
        dir
    };
    Ok(Checked::Dir {
        spec: o.clone(),
        fd,
    })
}

fn open_image(o: &OverlaySpec, write: bool) -> Result<File, OverlayError> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(write)
        .open(&o.path)
        .map_err(|e| OverlayError::Image {
            path: o.path.clone(),
            problem: e.to_string(),
            hint: Hint::new(if write {
                "check that you may write to it, or add :ro to use it read-only"
            } else {
                "check that you may read it"
            }),
        })
}

/// Locks the image for the run (a writer alone, or readers together) and
/// refuses a writable SquashFS.
fn check_image(spec: OverlaySpec, file: File, fs: ImageFs) -> Result<Checked, OverlayError> {
    let writes = !spec.readonly && matches!(fs, ImageFs::Ext3 { .. });
    let op = if writes {
        Flock::ExclusiveNonBlocking
    } else {
        Flock::SharedNonBlocking
    };
    vessel_sys::path::flock(&file, op).map_err(|_| OverlayError::InUse {
        path: spec.path.clone(),
        hint: Hint::new(
            "an ext3 overlay has one writer at a time: wait for the other run to end, or add :ro to read it",
        ),
    })?;
    let spec = OverlaySpec {
        readonly: !writes,
        ..spec
    };
    Ok(Checked::Image { spec, file, fs })
}

/// Tells the file system of an overlay image file from its magic numbers.
fn image_fs(file: &File) -> Result<ImageFs, String> {
    let size = file.metadata().map_err(|e| e.to_string())?.len();
    let mut head = [0u8; 4];
    let _ = (&*file).read(&mut head);
    if &head == b"hsqs" {
        return Ok(ImageFs::Squashfs { offset: 0, size });
    }
    let mut magic = [0u8; 2];
    // The ext2/3/4 superblock starts at 1024; its magic is at 56 in it.
    if file.read_exact_at(&mut magic, 1024 + 56).is_ok() && magic == [0x53, 0xef] {
        return Ok(ImageFs::Ext3 { offset: 0, size });
    }
    if let Ok(image) = vessel_image::open_image(&fd_path(file)) {
        if let Some((offset, size)) = image.overlay_partition() {
            return Ok(ImageFs::Ext3 { offset, size });
        }
        if matches!(image, vessel_image::Image::Sif { .. }) {
            return Err("this SIF has no overlay partition".into());
        }
    }
    Err("not an overlay image (neither ext3 nor SquashFS)".into())
}

impl CheckedOverlays {
    /// Adds the layers of `other` below these.
    pub fn extend(&mut self, mut other: CheckedOverlays) {
        self.checked.append(&mut other.checked);
    }

    pub fn is_empty(&self) -> bool {
        self.checked.is_empty()
    }

    /// The overlays as checked: a SquashFS image is read-only whatever
    /// was asked.
    pub fn specs(&self) -> Vec<OverlaySpec> {
        self.checked
            .iter()
            .map(|c| match c {
                Checked::Dir { spec, .. } | Checked::Image { spec, .. } => spec.clone(),
            })
            .collect()
    }

    /// Whether a layer is an ext3 image through `fuse2fs`: the kernel's
    /// overlayfs takes no FUSE upper layer, and the whiteouts
    /// `fuse-overlayfs` writes there (`.wh.` files, since it may not make
    /// devices in a user namespace) are only read back by `fuse-overlayfs`.
    pub fn needs_fuse_overlayfs(&self) -> bool {
        self.needs_fuse_overlayfs
    }

    /// Mounts every layer under `session/layers` in the current (the
    /// container's) namespaces and returns them as directories for the
    /// plan, in the order given. `owner` is the container's user (root
    /// under fake root); `real_root` mounts ext3 through the kernel.
    pub fn mount(
        &mut self,
        session: &Path,
        owner: (u32, u32),
        real_root: bool,
    ) -> Result<Vec<OverlaySpec>, OverlayError> {
        let layers = session.join("layers");
        let mut specs = Vec::new();
        for (index, checked) in self.checked.iter().enumerate() {
            match checked {
                Checked::Dir { spec, fd } => {
                    // overlayfs refuses layers reached through a mount of
                    // another namespace: the directory is opened again by
                    // its path and must be the very one checked.
                    let again = reopen_same(fd).map_err(|cause| OverlayError::UnsafeDir {
                        dir: spec.path.clone(),
                        cause,
                        hint: own_dir_hint(),
                    })?;
                    specs.push(OverlaySpec {
                        path: fd_path(&again),
                        readonly: spec.readonly,
                    });
                    self.held.push(Held::Dir(again));
                }
                Checked::Image { spec, file, fs } => {
                    let target = layers.join(index.to_string());
                    let mount_err =
                        |tool, problem: String, hint: &'static str| OverlayError::Mount {
                            path: spec.path.clone(),
                            tool,
                            problem,
                            hint: Hint::new(hint),
                        };
                    std::fs::create_dir_all(&target).map_err(|e| {
                        mount_err("vessel", e.to_string(), "check the session directory")
                    })?;
                    match *fs {
                        ImageFs::Squashfs { offset, size } => {
                            let server = crate::fuse::mount_and_serve(
                                file, offset, size, &target, owner.0, owner.1,
                            )
                            .map_err(|e| {
                                mount_err(
                                    "Vessel's FUSE driver",
                                    e.to_string(),
                                    "check the image with `unsquashfs -s`",
                                )
                            })?;
                            self.held.push(Held::Server(server));
                            specs.push(OverlaySpec {
                                path: target,
                                readonly: true,
                            });
                        }
                        ImageFs::Ext3 { offset, size } => {
                            if real_root {
                                let attach = if spec.readonly {
                                    vessel_sys::loopdev::attach
                                } else {
                                    vessel_sys::loopdev::attach_writable
                                };
                                let dev = attach(file, offset, size).map_err(|e| {
                                    mount_err(
                                        "the kernel",
                                        e.to_string(),
                                        "check the image with `fsck.ext3 -n`",
                                    )
                                })?;
                                let flags = vessel_sys::mount::FsFlags {
                                    nosuid: true,
                                    nodev: true,
                                    readonly: spec.readonly,
                                    ..Default::default()
                                };
                                vessel_sys::mount::mount_source(&dev.path, &target, "ext3", flags)
                                    .map_err(|e| {
                                        mount_err(
                                            "the kernel",
                                            e.to_string(),
                                            "check the image with `fsck.ext3 -n`",
                                        )
                                    })?;
                                self.held.push(Held::Loop(dev));
                            } else {
                                let helper = crate::fuse_helper::fuse2fs(
                                    file,
                                    offset,
                                    !spec.readonly,
                                    &target,
                                    session,
                                )
                                .map_err(|e| {
                                    mount_err(
                                        "fuse2fs",
                                        e.problem,
                                        e.hint.unwrap_or("check the image with `fsck.ext3 -n`"),
                                    )
                                })?;
                                self.held.push(Held::Helper(helper));
                                self.needs_fuse_overlayfs = true;
                            }
                            // Apptainer's layout, readable: else the image
                            // is not one of `overlay create`'s, or damaged.
                            for sub in ["upper", "work"] {
                                if let Err(e) = std::fs::read_dir(target.join(sub)) {
                                    return Err(OverlayError::Image {
                                        path: spec.path.clone(),
                                        problem: format!("its {sub} directory cannot be read ({e})"),
                                        hint: Hint::new("check it with `fsck.ext3 -n`, or make a new one with `vessel overlay create`"),
                                    });
                                }
                            }
                            // A writable layer holds `upper` and `work`; a
                            // read-only one is its `upper`.
                            let path = if spec.readonly {
                                target.join("upper")
                            } else {
                                target
                            };
                            specs.push(OverlaySpec {
                                path,
                                readonly: spec.readonly,
                            });
                        }
                    }
                }
            }
        }
        Ok(specs)
    }

    /// Unmounts the layers the helpers serve, topmost last mounted first,
    /// so that each writes its file system back before it ends.
    pub fn release(&mut self) {
        while let Some(held) = self.held.pop() {
            if let Held::Helper(h) = held {
                h.stop();
            }
        }
    }
}

impl Drop for CheckedOverlays {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_kinds_are_told_by_their_magic() {
        let dir = tempfile::tempdir().unwrap();
        let sq = dir.path().join("x.sqfs");
        std::fs::write(&sq, b"hsqs and more").unwrap();
        assert!(matches!(
            image_fs(&File::open(&sq).unwrap()),
            Ok(ImageFs::Squashfs { offset: 0, .. })
        ));
        let mut ext = vec![0u8; 2048];
        ext[1024 + 56] = 0x53;
        ext[1024 + 57] = 0xef;
        let e = dir.path().join("x.img");
        std::fs::write(&e, &ext).unwrap();
        assert_eq!(
            image_fs(&File::open(&e).unwrap()),
            Ok(ImageFs::Ext3 {
                offset: 0,
                size: 2048
            })
        );
        let other = dir.path().join("x.txt");
        std::fs::write(&other, b"hello").unwrap();
        assert!(image_fs(&File::open(&other).unwrap()).is_err());
    }

    #[test]
    fn a_second_writer_of_an_ext3_image_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let e = dir.path().join("x.img");
        std::fs::write(&e, [0u8; 16]).unwrap();
        let spec = |readonly| OverlaySpec {
            path: e.clone(),
            readonly,
        };
        let fs = ImageFs::Ext3 {
            offset: 0,
            size: 16,
        };
        let open = |readonly| open_image(&spec(readonly), !readonly).unwrap();
        let first = check_image(spec(false), open(false), fs).unwrap();
        let again = check_image(spec(false), open(false), fs);
        assert!(matches!(again, Err(OverlayError::InUse { .. })));
        let reader = check_image(spec(true), open(true), fs);
        assert!(matches!(reader, Err(OverlayError::InUse { .. })));
        drop(first);
        assert!(check_image(spec(true), open(true), fs).is_ok());
    }
}
