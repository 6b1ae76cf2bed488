//! Writable overlay images, as `overlay create` makes them: an ext3 file
//! system holding an overlay's `upper/` and `work/` directories (and any
//! `--create-dir` directories under `upper/`), either as a file of its own
//! or appended to a SIF as an overlay partition, laid out as Apptainer lays
//! them out.
//!
//! The file system is made unprivileged, by `mkfs.ext3 -d` from a private
//! staging directory. A new image is written under a temporary name beside
//! its destination, synced, and linked into place only when complete (never
//! over a file that appeared meanwhile), so that a failure, a full disk
//! included, leaves nothing behind. A partition is appended to a SIF only
//! once the file system is whole, under an exclusive lock on the SIF, and
//! the SIF is cut back to its old length if appending fails.

use std::ffi::OsString;
use std::fs::{DirBuilder, File, Permissions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use thiserror::Error;
use vessel_sif::{
    Arch, DataType, FsType, Metadata, ObjectInput, PartType, Partition, Sif, HEADER_LEN, MAGIC,
};
use vessel_sys::Hint;

use crate::OpenError;

/// The smallest overlay Apptainer makes, in MiB.
pub const MIN_SIZE_MIB: u64 = 64;

const MIB: u64 = 1 << 20;

/// Where the e2fsprogs tools are looked for after `PATH`: the system
/// directories of Apptainer's default `binary path`, which users' `PATH`
/// often lacks.
const SYSTEM_DIRS: &[&str] = &["/usr/local/sbin", "/usr/sbin", "/sbin"];

/// What to make.
#[derive(Clone, Debug)]
pub struct CreateOptions {
    /// The file system's size in MiB (at least [`MIN_SIZE_MIB`]).
    pub size_mib: u64,
    /// Leave a new image file sparse instead of allocating its blocks. A
    /// partition added to a SIF is always written out whole.
    pub sparse: bool,
    /// Directories to make under `upper/`, as paths in the container.
    pub create_dirs: Vec<String>,
    /// Lay the overlay out for `--fakeroot`: `upper/`, `work/` and the
    /// directories made under them owned by root (0:0), as Apptainer's
    /// fake root makes them, instead of by the calling user.
    pub fakeroot: bool,
    /// Where the directory layout is staged.
    pub tmp_dir: PathBuf,
    /// The `PATH` to look for `mkfs.ext3` and `debugfs` in, before the
    /// system directories.
    pub search_path: Option<OsString>,
    /// The command users type (`vessel`, `apptainer`), for hints.
    pub program: String,
}

/// What was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Created {
    /// A new ext3 image file.
    ImageFile,
    /// An overlay partition appended to a SIF, with this object ID.
    SifPartition { id: u32 },
}

/// Why no overlay was made. Each message names the file or flag and the
/// problem; the next step is in a [`Hint`].
#[derive(Debug, Error)]
pub enum OverlayError {
    #[error("--size {size} is too small: an overlay image holds at least {MIN_SIZE_MIB} MiB")]
    TooSmall {
        size: u64,
        #[source]
        hint: Hint,
    },
    #[error("--size {size} MiB is more than a file can hold")]
    TooLarge { size: u64 },
    #[error("--create-dir {dir:?} lies outside the overlay's upper directory")]
    CreateDirOutside {
        dir: String,
        #[source]
        hint: Hint,
    },
    #[error("--create-dir {dir:?} holds a control character, which directory names here may not")]
    CreateDirName { dir: String },
    #[error("{path} already exists: it is an ext3 overlay image")]
    Ext3Exists {
        path: PathBuf,
        #[source]
        hint: Hint,
    },
    #[error("{path} already exists and is not a SIF image: an overlay can only be added to a SIF")]
    NotSif {
        path: PathBuf,
        #[source]
        hint: Hint,
    },
    #[error("{path} appeared while the overlay image was being made, and was left alone")]
    AppearedMeanwhile { path: PathBuf },
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error(
        "{path} has no root file system (no primary system partition) for an overlay to go on"
    )]
    NoRootFs { path: PathBuf },
    #[error(
        "{path}: its root file system is encrypted, so no writable overlay can be added to it"
    )]
    Encrypted { path: PathBuf },
    #[error("{path} is signed: adding an overlay partition to it would break its signatures")]
    Signed {
        path: PathBuf,
        #[source]
        hint: Hint,
    },
    #[error("{path} already has a writable overlay partition (object {id})")]
    HasOverlay {
        path: PathBuf,
        id: u32,
        #[source]
        hint: Hint,
    },
    #[error("{path}: {cause}")]
    Sif {
        path: PathBuf,
        cause: vessel_sif::Error,
    },
    #[error("{program} was not found on PATH nor in /usr/local/sbin, /usr/sbin or /sbin")]
    ToolMissing {
        program: &'static str,
        #[source]
        hint: Hint,
    },
    #[error("not enough space in {dir} for a {size} MiB overlay")]
    NoSpace {
        dir: PathBuf,
        size: u64,
        #[source]
        hint: Hint,
    },
    #[error("mkfs.ext3 could not make the overlay's file system ({status}): {stderr}")]
    Mkfs {
        status: std::process::ExitStatus,
        stderr: String,
        #[source]
        hint: Option<Hint>,
    },
    #[error("debugfs could not give the overlay's directories to root: {stderr}")]
    Debugfs { stderr: String },
    #[error("could not create files in {dir}")]
    Dir {
        dir: PathBuf,
        #[source]
        hint: Hint,
    },
    #[error("{what} {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

type Result<T, E = OverlayError> = std::result::Result<T, E>;

/// Makes an overlay at `path`: a new ext3 image file when nothing is there,
/// or an overlay partition appended to the SIF that is there.
pub fn create(path: &Path, opts: &CreateOptions) -> Result<Created> {
    let bytes = size_bytes(opts.size_mib)?;
    let dirs = opts
        .create_dirs
        .iter()
        .map(|d| upper_relative(d))
        .collect::<Result<Vec<_>>>()?;
    // A link to nothing is something there, not a name free to take.
    let target = match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        _ => Some(existing_sif(path, opts)?),
    };
    let dir = parent(path);
    // A new sparse image needs next to nothing; anything else, all of it.
    let needed = if target.is_none() && opts.sparse {
        0
    } else {
        bytes
    };
    if needed > 0 {
        if let Ok(free) = vessel_sys::path::free_bytes(dir) {
            if free < needed {
                return Err(no_space(dir, opts, None));
            }
        }
    }
    let mkfs = find_tool("mkfs.ext3", opts)?;
    let debugfs = if opts.fakeroot && !owned_as_wanted(opts) {
        Some(find_tool("debugfs", opts)?)
    } else {
        None
    };

    // The image, beside its destination (a SIF's is never renamed, but
    // its file system must be complete before it is appended).
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}.overlay-"))
        .permissions(Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .map_err(|e| dir_error(dir, false, e, opts))?;
    let file = tmp.as_file();
    // Blocks are allocated only for a new image file: a SIF's partition is
    // written out whole when it is appended.
    if opts.sparse || target.is_some() {
        file.set_len(bytes)
    } else {
        allocate(file, opts.size_mib)
    }
    .map_err(|e| io_error("could not write", tmp.path(), e, opts))?;

    let stage = tempfile::Builder::new()
        .prefix("overlay-")
        .tempdir_in(&opts.tmp_dir)
        .map_err(|e| dir_error(&opts.tmp_dir, true, e, opts))?;
    let (owner, made) = lay_out(stage.path(), &dirs, opts)?;
    make_fs(&mkfs, stage.path(), tmp.path(), owner, opts)?;
    if let Some(debugfs) = debugfs {
        give_to_root(&debugfs, tmp.path(), &made)?;
    }
    drop(stage);

    match target {
        None => {
            file.sync_all()
                .map_err(|e| io_error("could not write", tmp.path(), e, opts))?;
            tmp.persist_noclobber(path).map_err(|e| {
                if e.error.kind() == io::ErrorKind::AlreadyExists {
                    OverlayError::AppearedMeanwhile {
                        path: path.to_path_buf(),
                    }
                } else {
                    io_error("could not create", path, e.error, opts)
                }
            })?;
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| io_error("could not write", dir, e, opts))?;
            Ok(Created::ImageFile)
        }
        Some(sif) => {
            let mut data = tmp.as_file();
            data.seek(SeekFrom::Start(0))
                .map_err(|e| io_error("could not read", tmp.path(), e, opts))?;
            let id = append(path, sif, &mut data, opts)?;
            Ok(Created::SifPartition { id })
        }
    }
}

fn size_bytes(size_mib: u64) -> Result<u64> {
    if size_mib < MIN_SIZE_MIB {
        return Err(OverlayError::TooSmall {
            size: size_mib,
            hint: Hint::new(format!("give --size {MIN_SIZE_MIB} or more (MiB)")),
        });
    }
    size_mib
        .checked_mul(MIB)
        .filter(|b| i64::try_from(*b).is_ok())
        .ok_or(OverlayError::TooLarge { size: size_mib })
}

/// A `--create-dir` path as a path under `upper/`: absolute or relative
/// alike (Apptainer joins it to `upper/`), `..` resolved, never above.
fn upper_relative(dir: &str) -> Result<PathBuf> {
    if dir.chars().any(char::is_control) {
        return Err(OverlayError::CreateDirName {
            dir: dir.to_string(),
        });
    }
    let mut out = PathBuf::new();
    for c in Path::new(dir).components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => out.push(n),
            Component::ParentDir | Component::Prefix(_) => {
                if !out.pop() {
                    return Err(OverlayError::CreateDirOutside {
                        dir: dir.to_string(),
                        hint: Hint::new(
                            "give a path in the container, such as /opt/data, without leading '..'",
                        ),
                    });
                }
            }
        }
    }
    Ok(out)
}

/// Checks the existing file at `path` and opens it as the SIF the overlay
/// goes into, locked against other changes.
fn existing_sif(path: &Path, opts: &CreateOptions) -> Result<Sif<File>> {
    crate::check_regular_file(path)?;
    let mut head = Vec::with_capacity(2048);
    File::open(path)
        .and_then(|f| f.take(2048).read_to_end(&mut head))
        .map_err(|e| match e.kind() {
            io::ErrorKind::PermissionDenied => OpenError::NotReadable {
                path: path.to_path_buf(),
                hint: Hint::new("check its permissions"),
            }
            .into(),
            _ => io_error("could not read", path, e, opts),
        })?;
    let is_sif = head.len() >= HEADER_LEN && head[32..42] == MAGIC;
    if !is_sif {
        let is_ext = head.len() >= 1082 && head[1080..1082] == [0x53, 0xef];
        let program = &opts.program;
        let shown = path.display();
        return Err(if is_ext {
            OverlayError::Ext3Exists {
                path: path.to_path_buf(),
                hint: Hint::new(format!(
                    "use it as it is ({program} exec --overlay {shown} …), or give a new file name"
                )),
            }
        } else {
            OverlayError::NotSif {
                path: path.to_path_buf(),
                hint: Hint::new(
                    "give the name of a SIF image, or of a file that does not exist yet",
                ),
            }
        });
    }
    // Opened for writing (with its own clear refusal), locked, then loaded
    // again: what is checked is what is changed.
    let file = crate::open_sif_rw(path)?.into_inner();
    vessel_sys::path::flock(&file, vessel_sys::path::Flock::Exclusive)
        .map_err(|e| io_error("could not lock", path, e.errno, opts))?;
    let sif = Sif::load(file).map_err(|cause| OverlayError::Sif {
        path: path.to_path_buf(),
        cause,
    })?;
    check_sif(path, &sif, opts)?;
    Ok(sif)
}

/// Apptainer's refusals, in its order: no root file system, an encrypted
/// one, a signed image, a writable overlay already there.
fn check_sif(path: &Path, sif: &Sif<File>, opts: &CreateOptions) -> Result<()> {
    let root = sif
        .primary_partition()
        .and_then(|d| d.partition())
        .ok_or_else(|| OverlayError::NoRootFs {
            path: path.to_path_buf(),
        })?;
    if root.fs == FsType::ENCRYPTED_SQUASHFS {
        return Err(OverlayError::Encrypted {
            path: path.to_path_buf(),
        });
    }
    let program = &opts.program;
    let shown = path.display();
    if sif
        .descriptors()
        .any(|d| d.data_type == DataType::SIGNATURE)
    {
        return Err(OverlayError::Signed {
            path: path.to_path_buf(),
            hint: Hint::new(format!(
                "make a separate overlay image ({program} overlay create overlay.img) and use it with --overlay, or add the overlay to an unsigned copy"
            )),
        });
    }
    if let Some(d) = crate::open::writable_overlay(sif) {
        return Err(OverlayError::HasOverlay {
            path: path.to_path_buf(),
            id: d.id,
            hint: Hint::new(format!(
                "use it as it is, or delete it first with '{program} sif del {} {shown}'",
                d.id
            )),
        });
    }
    Ok(())
}

/// Writes `size_mib` MiB of zeros, so that the image's blocks are
/// allocated (as Apptainer's `dd` does) and a full disk shows now.
fn allocate(mut file: &File, size_mib: u64) -> io::Result<()> {
    let zeros = vec![0u8; MIB as usize];
    for _ in 0..size_mib {
        file.write_all(&zeros)?;
    }
    file.flush()
}

/// The owner the layout's directories get: the caller, or root for fake
/// root.
fn wanted_owner(opts: &CreateOptions) -> (u32, u32) {
    if opts.fakeroot {
        (0, 0)
    } else {
        (vessel_sys::process::getuid(), vessel_sys::process::getgid())
    }
}

/// Whether the directories the caller makes already have the owner
/// wanted (root making a fake-root layout).
fn owned_as_wanted(opts: &CreateOptions) -> bool {
    wanted_owner(opts) == (vessel_sys::process::getuid(), vessel_sys::process::getgid())
}

/// Makes `upper/`, `work/` and `upper/DIR` for each of `dirs` in `stage`;
/// returns the owner the file system's directories must have and every
/// directory made, relative to `stage`.
fn lay_out(
    stage: &Path,
    dirs: &[PathBuf],
    opts: &CreateOptions,
) -> Result<((u32, u32), Vec<PathBuf>)> {
    let owner = wanted_owner(opts);
    // Apptainer opens the layout to everyone when the ids do not fit in 16
    // bits, as some ext3 readers and id maps cannot show them.
    let mode = if owner.0 > 65535 || owner.1 > 65535 {
        0o777
    } else {
        0o755
    };
    let mut made: Vec<PathBuf> = Vec::new();
    let mut wanted: Vec<PathBuf> = vec!["upper".into(), "work".into()];
    for d in dirs {
        let mut p = PathBuf::from("upper");
        for c in d.components() {
            p.push(c);
            wanted.push(p.clone());
        }
    }
    let mut builder = DirBuilder::new();
    builder.mode(mode);
    for rel in wanted {
        if made.contains(&rel) {
            continue;
        }
        let full = stage.join(&rel);
        builder
            .create(&full)
            .and_then(|()| std::fs::set_permissions(&full, Permissions::from_mode(mode)))
            .map_err(|e| io_error("could not make", &full, e, opts))?;
        made.push(rel);
    }
    Ok((owner, made))
}

/// `mkfs.ext3` over `image`, filled from `stage`: its root directory owned
/// by `owner`, its blocks left as they are (no discard, which would punch
/// holes in an allocated file).
fn make_fs(
    mkfs: &Path,
    stage: &Path,
    image: &Path,
    owner: (u32, u32),
    opts: &CreateOptions,
) -> Result<()> {
    let mut cmd = Command::new(mkfs);
    cmd.args(["-q", "-F", "-d"])
        .arg(stage)
        .arg("-E")
        .arg(format!("root_owner={}:{},nodiscard", owner.0, owner.1))
        .arg(image);
    tracing::debug!("running {cmd:?}");
    let out = quiet_output(&mut cmd).map_err(|e| io_error("could not run", mkfs, e, opts))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = one_line(&out.stderr);
    if stderr.contains("No space left") || stderr.contains("quota exceeded") {
        return Err(no_space(parent(image), opts, Some(stderr)));
    }
    let hint = stderr.contains("invalid option").then(|| {
        Hint::new("overlay images need mkfs.ext3 from e2fsprogs 1.43 or later, which has -d")
    });
    Err(OverlayError::Mkfs {
        status: out.status,
        stderr,
        hint,
    })
}

/// Gives the layout's directories (paths relative to the file system's
/// root) to root (0:0) with `debugfs`, as a fake-root `mkfs` would have
/// made them, without any privilege.
fn give_to_root(debugfs: &Path, image: &Path, dirs: &[PathBuf]) -> Result<()> {
    let mut script = String::new();
    for d in dirs {
        // debugfs reads one command a line; in a quoted word, "" is a quote.
        let quoted = format!("\"/{}\"", d.to_string_lossy().replace('"', "\"\""));
        script.push_str(&format!(
            "set_inode_field {quoted} uid 0\nset_inode_field {quoted} gid 0\n"
        ));
    }
    let mut child = Command::new(debugfs)
        .args(["-w", "-f", "-"])
        .arg(image)
        .env("LC_ALL", "C")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| OverlayError::Debugfs {
            stderr: e.to_string(),
        })?;
    let written = child
        .stdin
        .take()
        .map(|mut stdin| stdin.write_all(script.as_bytes()));
    let out = child
        .wait_with_output()
        .map_err(|e| OverlayError::Debugfs {
            stderr: e.to_string(),
        })?;
    // debugfs exits 0 even when a command fails: anything on its standard
    // error but its banner is a failure.
    let stderr: Vec<String> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("debugfs "))
        .map(String::from)
        .collect();
    if let Some(Err(e)) = written {
        return Err(OverlayError::Debugfs {
            stderr: e.to_string(),
        });
    }
    if !out.status.success() || !stderr.is_empty() {
        return Err(OverlayError::Debugfs {
            stderr: stderr.join("; "),
        });
    }
    Ok(())
}

/// Appends the file system in `data` to `sif` at `path` as its overlay
/// partition; on failure the file is cut back to its old length (its
/// header, written last, still describes the old content).
fn append(
    path: &Path,
    mut sif: Sif<File>,
    data: &mut dyn Read,
    opts: &CreateOptions,
) -> Result<u32> {
    let arch = match sif.header().arch {
        a if a.is_unknown() => Arch::host(),
        a => a,
    };
    let mut input = ObjectInput::new(DataType::PARTITION);
    input.metadata = Metadata::Partition(Partition {
        fs: FsType::EXT3,
        part: PartType::OVERLAY,
        arch,
    });
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let old_len = sif.file_len();
    let added = sif
        .add_object(&input, data, now)
        .map_err(|cause| match cause {
            vessel_sif::Error::Io(e) => io_error("could not write", path, e, opts),
            cause => OverlayError::Sif {
                path: path.to_path_buf(),
                cause,
            },
        });
    let file = sif.into_inner();
    let done = added.and_then(|id| {
        file.sync_all()
            .map(|()| id)
            .map_err(|e| io_error("could not write", path, e, opts))
    });
    if done.is_err() && file.metadata().map_or(true, |m| m.len() > old_len) {
        let _ = file.set_len(old_len);
        let _ = file.sync_all();
    }
    done
}

/// `program` on `PATH`, else in the system directories.
fn find_tool(program: &'static str, opts: &CreateOptions) -> Result<PathBuf> {
    let path_dirs = opts
        .search_path
        .as_deref()
        .map(|p| std::env::split_paths(p).collect::<Vec<_>>())
        .unwrap_or_default();
    path_dirs
        .into_iter()
        .chain(SYSTEM_DIRS.iter().map(PathBuf::from))
        .filter(|d| d.is_absolute())
        .map(|d| d.join(program))
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0))
        .ok_or_else(|| OverlayError::ToolMissing {
            program,
            hint: Hint::new("install e2fsprogs (Debian, Ubuntu, Fedora, RHEL: package e2fsprogs)"),
        })
}

/// Runs `cmd` in the C locale, its output captured.
fn quiet_output(cmd: &mut Command) -> io::Result<std::process::Output> {
    cmd.env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
}

/// A tool's error output as one line.
fn one_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

fn no_space(dir: &Path, opts: &CreateOptions, cause: Option<String>) -> OverlayError {
    let text = if opts.sparse {
        "free some space there, or give a smaller --size"
    } else {
        "free some space there, give a smaller --size, or (for a new image file) use --sparse, whose blocks are allocated as the overlay fills"
    };
    OverlayError::NoSpace {
        dir: std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf()),
        size: opts.size_mib,
        hint: match cause {
            Some(c) => Hint::with_cause(text, c),
            None => Hint::new(text),
        },
    }
}

/// An I/O error on `path`; a full disk or quota is told as such.
fn io_error(what: &'static str, path: &Path, e: io::Error, opts: &CreateOptions) -> OverlayError {
    if disk_full(&e) {
        let dir = if path.is_dir() { path } else { parent(path) };
        return no_space(dir, opts, Some(e.to_string()));
    }
    OverlayError::Io {
        what,
        path: path.to_path_buf(),
        source: e,
    }
}

/// Whether `e` is a full disk or quota.
fn disk_full(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
}

/// A directory the overlay (or, `staging`, its layout) could not be made
/// in. The error is tempfile's, whose message names the temporary file:
/// only its kind is kept.
fn dir_error(dir: &Path, staging: bool, e: io::Error, opts: &CreateOptions) -> OverlayError {
    let kind = e.kind();
    let cause = match kind {
        io::ErrorKind::NotFound => "no such directory".to_string(),
        io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        io::ErrorKind::ReadOnlyFilesystem => "read-only file system".to_string(),
        _ => io::Error::from(kind).to_string(),
    };
    let e = io::Error::new(kind, cause);
    if disk_full(&e) {
        return no_space(dir, opts, Some(e.to_string()));
    }
    let text = if staging {
        "give --tmpdir (or APPTAINER_TMPDIR) a directory you can write to"
    } else {
        "make the overlay in a directory that exists and that you can write to"
    };
    OverlayError::Dir {
        dir: dir.to_path_buf(),
        hint: Hint::with_cause(text, e),
    }
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_dirs_land_under_upper() {
        let ok = |d: &str| upper_relative(d).unwrap();
        assert_eq!(ok("/opt/data"), PathBuf::from("opt/data"));
        assert_eq!(ok("opt/./data/"), PathBuf::from("opt/data"));
        assert_eq!(ok("/a/../b"), PathBuf::from("b"));
        assert_eq!(ok("/"), PathBuf::new());
        for bad in ["..", "/../etc", "a/../../b"] {
            assert!(
                matches!(
                    upper_relative(bad),
                    Err(OverlayError::CreateDirOutside { .. })
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            upper_relative("a\nb"),
            Err(OverlayError::CreateDirName { .. })
        ));
    }

    #[test]
    fn sizes() {
        assert!(matches!(
            size_bytes(63),
            Err(OverlayError::TooSmall { size: 63, .. })
        ));
        assert_eq!(size_bytes(64).unwrap(), 64 << 20);
        assert!(matches!(
            size_bytes(u64::MAX / 2),
            Err(OverlayError::TooLarge { .. })
        ));
    }

    #[test]
    fn no_overlay_partition_in_a_plain_sif() {
        let mut f = tempfile::tempfile().unwrap();
        let mut sif = Sif::create(&mut f, &vessel_sif::CreateOptions::deterministic()).unwrap();
        let mut input = ObjectInput::new(DataType::PARTITION);
        input.metadata = Metadata::Partition(Partition {
            fs: FsType::SQUASHFS,
            part: PartType::PRIMARY_SYSTEM,
            arch: Arch::AMD64,
        });
        sif.add_object(&input, &mut &[1u8; 10][..], 0).unwrap();
        assert!(crate::open::writable_overlay(&Sif::load(&mut f).unwrap()).is_none());

        let mut sif = Sif::load(&mut f).unwrap();
        input.metadata = Metadata::Partition(Partition {
            fs: FsType::SQUASHFS,
            part: PartType::OVERLAY,
            arch: Arch::AMD64,
        });
        sif.add_object(&input, &mut &[2u8; 5][..], 0).unwrap();
        input.metadata = Metadata::Partition(Partition {
            fs: FsType::EXT3,
            part: PartType::OVERLAY,
            arch: Arch::AMD64,
        });
        sif.add_object(&input, &mut &[3u8; 7][..], 0).unwrap();
        let sif = Sif::load(&mut f).unwrap();
        let d = crate::open::writable_overlay(&sif).unwrap();
        assert_eq!(d.size, 7);
        assert_eq!(d.offset % 4096, 0);
    }
}
