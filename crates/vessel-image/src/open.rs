//! Telling what a path holds before trusting it: a FIFO would block a read
//! forever and a directory is not a file, so both are rejected (or taken as a
//! sandbox) from their metadata, before anything is opened.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use thiserror::Error;
use vessel_sif::{Sif, HEADER_LEN, MAGIC};
use vessel_sys::Hint;

/// Why a path could not be opened as an image. Each message is
/// `PATH: problem`, with what to do where there is something to do.
#[derive(Debug, Error)]
pub enum OpenError {
    #[error("{path}: no such file or directory")]
    NotFound { path: PathBuf },
    #[error("{path}: not readable by the current user")]
    NotReadable {
        path: PathBuf,
        #[source]
        hint: Hint,
    },
    #[error("{path}: not writable by the current user (the change is made in the file itself)")]
    NotWritable {
        path: PathBuf,
        #[source]
        hint: Hint,
    },
    #[error("{path} has no primary system partition: it holds no container to run")]
    NoRootFs { path: PathBuf },
    #[error("{path}: {fs} root file systems are not supported yet")]
    UnsupportedRootFs { path: PathBuf, fs: String },
    #[error("{path}: is a directory, not a SIF file")]
    IsDirectory { path: PathBuf },
    #[error("{path}: is a {kind}, not an image file")]
    NotAFile { path: PathBuf, kind: &'static str },
    #[error("{path}: image format not recognized (not a SIF, SquashFS or sandbox directory)")]
    UnknownFormat { path: PathBuf },
    #[error("{path}: {kind} images are not supported yet")]
    Unsupported { path: PathBuf, kind: &'static str },
    // The cause is part of the message and deliberately not a `source`:
    // reports print the chain, and it would appear twice.
    #[error("{path}: {cause}")]
    Sif {
        path: PathBuf,
        cause: vessel_sif::Error,
    },
    #[error("{path}: {cause}")]
    Io { path: PathBuf, cause: io::Error },
}

/// An opened image of any supported kind.
#[derive(Debug)]
pub enum Image {
    Sif {
        path: PathBuf,
        sif: Sif<File>,
    },
    /// A bare SquashFS file: the root file system with no SIF around it,
    /// at `offset` (after the `#!… run-singularity` line of a Singularity
    /// 2.x `.simg` image, else 0).
    Squashfs {
        path: PathBuf,
        file: File,
        offset: u64,
    },
    /// A directory tree used as the root file system.
    Sandbox {
        path: PathBuf,
    },
}

impl Image {
    pub fn path(&self) -> &Path {
        match self {
            Image::Sif { path, .. } | Image::Squashfs { path, .. } | Image::Sandbox { path } => {
                path
            }
        }
    }

    /// The open image file (`None` for a sandbox directory): what was
    /// checked when the image was opened is what a reader of it gets.
    pub fn file(&self) -> Option<&File> {
        match self {
            Image::Sif { sif, .. } => Some(sif.get_ref()),
            Image::Squashfs { file, .. } => Some(file),
            Image::Sandbox { .. } => None,
        }
    }
}

/// A SIF's ext3 overlay partition, the one `--writable` writes to (what
/// `overlay create IMAGE.sif` adds).
pub fn writable_overlay<F>(sif: &Sif<F>) -> Option<&vessel_sif::Descriptor> {
    sif.descriptors().find(|d| {
        d.partition().is_some_and(|p| {
            p.part == vessel_sif::PartType::OVERLAY && p.fs == vessel_sif::FsType::EXT3
        })
    })
}

/// Where an image file's root file system lies: a SquashFS at `offset`,
/// `size` bytes long, for `arch` (`None` for a bare SquashFS file, which
/// does not say).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SquashfsRoot {
    pub offset: u64,
    pub size: u64,
    pub arch: Option<vessel_sif::Arch>,
}

impl Image {
    /// A SIF's ext3 overlay partition (`overlay create IMAGE.sif`), as
    /// its offset and size in the file.
    pub fn overlay_partition(&self) -> Option<(u64, u64)> {
        let Image::Sif { sif, .. } = self else {
            return None;
        };
        writable_overlay(sif).map(|d| (d.offset as u64, d.size as u64))
    }

    /// The SquashFS holding the root file system of a SIF (its primary
    /// partition) or bare SquashFS image; `None` for a sandbox directory.
    pub fn squashfs_root(&self) -> Result<Option<SquashfsRoot>, OpenError> {
        match self {
            Image::Sandbox { .. } => Ok(None),
            Image::Squashfs { path, file, offset } => Ok(Some(SquashfsRoot {
                offset: *offset,
                size: file
                    .metadata()
                    .map_err(|e| io_error(path, e))?
                    .len()
                    .saturating_sub(*offset),
                arch: None,
            })),
            Image::Sif { path, sif } => {
                let part = sif
                    .primary_partition()
                    .ok_or_else(|| OpenError::NoRootFs { path: path.clone() })?;
                let info = part
                    .partition()
                    .ok_or_else(|| OpenError::NoRootFs { path: path.clone() })?;
                if info.fs != vessel_sif::FsType::SQUASHFS {
                    return Err(OpenError::UnsupportedRootFs {
                        path: path.clone(),
                        fs: info.fs.to_string(),
                    });
                }
                Ok(Some(SquashfsRoot {
                    offset: part.offset as u64,
                    size: part.size as u64,
                    arch: Some(info.arch),
                }))
            }
        }
    }
}

/// Opens `path` as whatever image it holds. The file is opened once: what
/// it is (a directory, a regular file) is decided from the descriptor, and
/// the returned image reads through it.
pub fn open_image(path: &Path) -> Result<Image, OpenError> {
    // From the path first only so that a FIFO is never opened (it would
    // block); the descriptor decides below.
    regular_file_or_dir(path)?;
    let mut file = open_read(path)?;
    let ft = file
        .metadata()
        .map_err(|source| io_error(path, source))?
        .file_type();
    if ft.is_dir() {
        return Ok(Image::Sandbox {
            path: path.to_path_buf(),
        });
    }
    if !ft.is_file() {
        return Err(OpenError::NotAFile {
            path: path.to_path_buf(),
            kind: "special file",
        });
    }
    let mut head = Vec::with_capacity(2048);
    (&mut file)
        .take(2048)
        .read_to_end(&mut head)
        .map_err(|source| io_error(path, source))?;
    if head.len() >= HEADER_LEN && head[32..42] == MAGIC {
        let sif = load(path, file)?;
        return Ok(Image::Sif {
            path: path.to_path_buf(),
            sif,
        });
    }
    if let Some(offset) = squashfs_offset(&head) {
        return Ok(Image::Squashfs {
            path: path.to_path_buf(),
            file,
            offset,
        });
    }
    if head.len() >= 1082 && head[1080..1082] == [0x53, 0xef] {
        return Err(OpenError::Unsupported {
            path: path.to_path_buf(),
            kind: "ext3",
        });
    }
    Err(OpenError::UnknownFormat {
        path: path.to_path_buf(),
    })
}

/// Where a bare SquashFS image's file system starts: at 0, or (Singularity
/// 2.x `.simg`) right after a first line `#!/usr/bin/env run-singularity`.
fn squashfs_offset(head: &[u8]) -> Option<u64> {
    if head.starts_with(b"hsqs") {
        return Some(0);
    }
    if !head.starts_with(b"#!") {
        return None;
    }
    let end = head.iter().position(|&b| b == b'\n')?;
    let line = &head[..end];
    let names_launcher = line.windows(15).any(|w| w == b"run-singularity");
    (names_launcher && head[end + 1..].starts_with(b"hsqs")).then_some(end as u64 + 1)
}

/// Opens `path` as a SIF file for reading.
pub fn open_sif(path: &Path) -> Result<Sif<File>, OpenError> {
    if regular_file_or_dir(path)? {
        return Err(OpenError::IsDirectory {
            path: path.to_path_buf(),
        });
    }
    load(path, open_read(path)?)
}

/// Opens `path` as a SIF file for changing it in place.
pub fn open_sif_rw(path: &Path) -> Result<Sif<File>, OpenError> {
    if regular_file_or_dir(path)? {
        return Err(OpenError::IsDirectory {
            path: path.to_path_buf(),
        });
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| match e.kind() {
            io::ErrorKind::PermissionDenied => OpenError::NotWritable {
                path: path.to_path_buf(),
                hint: Hint::new("check its permissions, or work on a copy"),
            },
            _ => open_error(path, e),
        })?;
    load(path, file)
}

fn load(path: &Path, mut file: File) -> Result<Sif<File>, OpenError> {
    file.seek(SeekFrom::Start(0))
        .map_err(|source| io_error(path, source))?;
    Sif::load(file).map_err(|source| OpenError::Sif {
        path: path.to_path_buf(),
        cause: source,
    })
}

/// Checks that `path` is a regular file before it is opened, so that a FIFO
/// or a device never blocks or feeds a reader.
pub fn check_regular_file(path: &Path) -> Result<(), OpenError> {
    match regular_file_or_dir(path)? {
        true => Err(OpenError::NotAFile {
            path: path.to_path_buf(),
            kind: "directory",
        }),
        false => Ok(()),
    }
}

/// `Ok(true)` for a directory, `Ok(false)` for a regular file, an error for
/// anything else (following symlinks, as opening would).
fn regular_file_or_dir(path: &Path) -> Result<bool, OpenError> {
    let meta = std::fs::metadata(path).map_err(|e| open_error(path, e))?;
    let ft = meta.file_type();
    if ft.is_dir() {
        return Ok(true);
    }
    if ft.is_file() {
        return Ok(false);
    }
    let kind = if ft.is_fifo() {
        "FIFO (named pipe)"
    } else if ft.is_socket() {
        "socket"
    } else if ft.is_char_device() {
        "character device"
    } else if ft.is_block_device() {
        "block device"
    } else {
        "special file"
    };
    Err(OpenError::NotAFile {
        path: path.to_path_buf(),
        kind,
    })
}

fn open_read(path: &Path) -> Result<File, OpenError> {
    File::open(path).map_err(|e| open_error(path, e))
}

fn open_error(path: &Path, e: io::Error) -> OpenError {
    let path = path.to_path_buf();
    match e.kind() {
        io::ErrorKind::NotFound => OpenError::NotFound { path },
        io::ErrorKind::PermissionDenied => OpenError::NotReadable {
            path,
            hint: Hint::new("check its permissions"),
        },
        _ => OpenError::Io { path, cause: e },
    }
}

fn io_error(path: &Path, source: io::Error) -> OpenError {
    OpenError::Io {
        path: path.to_path_buf(),
        cause: source,
    }
}
