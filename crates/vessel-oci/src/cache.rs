//! The pull cache: content-addressed blobs, and SIFs keyed by the image's
//! manifest digest. Safe for many jobs at once: each entry is produced
//! under an exclusive lock by one process while the others wait, written to
//! a temporary file, synced and renamed, so a reader never sees a partial
//! entry and a killed pull leaves only a temporary file, cleaned up by the
//! next one.
//!
//! # A cache other users share
//!
//! Sites point `APPTAINER_CACHEDIR` at a group-writable directory so that
//! one pull serves a whole group. Anyone in the group can then create,
//! rename and replace names in it (without the sticky bit, even names made
//! by others), so nothing here trusts a *name*; every decision is made on
//! the descriptor of the object that is then used:
//!
//! - The cache directories (`cache/`, `vessel/`, `blobs/`, `sif/`) are
//!   opened one by one from their parent's descriptor without following
//!   links; a link in place of one is refused with an error naming it.
//!   Entries, locks and temporaries are reached from these descriptors with
//!   the `*at` calls, never following a link in the last component.
//! - **Blobs** are named by their sha256, so their content can be checked.
//!   A blob is used without hashing only when its name cannot have been
//!   changed by another user: the file is ours, nobody else can write it, it
//!   has one link, and its directory is closed to others (ours or root's and
//!   not writable by others, or sticky). A blob that is ours and writable by
//!   nobody else but sits in an open directory (another user could have
//!   renamed a different blob of ours to this name) is hashed through its
//!   descriptor, then that descriptor is used. A blob of another user (who
//!   can rewrite it at any moment, even after we hashed it) is copied
//!   through its descriptor into an unnamed file of our own while hashing,
//!   and the copy is used. A blob that does not match is never used: it is
//!   removed when it is ours, else left, and the blob is downloaded again.
//! - **SIFs** are keyed by the manifest digest, not by their own content, so
//!   no hash can vouch for them. Each user's SIFs therefore live in their
//!   own directory, `sif/<uid>/`, made by the user, owned by them and
//!   writable by nobody else (checked on its descriptor): no other user can
//!   add, rename or replace anything in it. A SIF is used only when that
//!   directory passes the check and the opened file is a regular file of the
//!   user's that nobody else can write. A SIF another user made is never
//!   used; the user converts the image again from the (verified) blobs, so
//!   the downloads are still shared, and only the conversion is per user.
//!   When `sif/<uid>/` is unusable (another user made it, or others can
//!   write to it), the SIF is made in an unnamed temporary file and not
//!   cached, with a warning that says what to fix.
//! - Temporary files get unpredictable names and are created with
//!   `O_EXCL` (a planted link makes the creation fail and another name is
//!   tried), or have no name at all (`O_TMPFILE`). Lock files are opened
//!   without following links and never truncated; when one cannot be used
//!   (a link, a FIFO, another user's that we cannot open), the entry is
//!   produced privately, without the shared lock and without caching it.
//! - What is handed on is the open file that was checked ([`Hit::file`]);
//!   callers that need a path use `/proc/self/fd/N` of it, which names that
//!   very object, never the cache entry's name.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use vessel_sys::path::{self as sys, flock, FileKind, FileStat, Flock};
use vessel_sys::Errno;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the cache directory {path} is a symbolic link or not a directory (another user may have put it there): remove it, or set APPTAINER_CACHEDIR to a directory of your own")]
    NotADirectory { path: PathBuf },
    #[error("{digest:?} is not a sha256 digest (sha256: and 64 hexadecimal digits): the cache keeps nothing else")]
    BadDigest { digest: String },
}

fn err(path: &Path) -> impl FnOnce(io::Error) -> CacheError + '_ {
    move |source| CacheError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn errno(e: &io::Error, n: Errno) -> bool {
    e.raw_os_error() == Some(n.raw_os_error())
}

/// What a cache entry holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Blob,
    Sif,
}

impl Kind {
    pub fn dir(self) -> &'static str {
        match self {
            Kind::Blob => "blobs",
            Kind::Sif => "sif",
        }
    }
}

/// A cache directory, open.
#[derive(Debug)]
struct Dir {
    fd: OwnedFd,
    /// Its path, for messages only: it is always reached through `fd`.
    path: PathBuf,
    stat: FileStat,
}

impl Dir {
    /// Opens a directory by a path the user gave, following links.
    fn at_path(path: &Path) -> Result<Dir, CacheError> {
        let fd = sys::open_dir_path(path).map_err(err(path))?;
        let stat = sys::stat_fd(&fd).map_err(err(path))?;
        Ok(Dir {
            fd,
            path: path.to_path_buf(),
            stat,
        })
    }

    /// Opens the directory `name` in `parent` without following a link,
    /// making it when missing. A directory made here takes its parent's
    /// group and other write bits (and sticky bit), so that a cache made
    /// group-writable stays shared below.
    fn open(parent: &Dir, name: &str, uid: u32) -> Result<Dir, CacheError> {
        let path = parent.path.join(name);
        let name = OsStr::new(name);
        let mut made = false;
        let fd = match sys::open_dir_at(&parent.fd, name) {
            Ok(fd) => fd,
            Err(e) if errno(&e, Errno::NOENT) => {
                match sys::make_dir_at(&parent.fd, name, 0o777) {
                    Ok(()) => made = true,
                    Err(e) if errno(&e, Errno::EXIST) => {}
                    Err(e) => return Err(err(&path)(e)),
                }
                sys::open_dir_at(&parent.fd, name).map_err(|e| dir_error(&path, e))?
            }
            Err(e) => return Err(dir_error(&path, e)),
        };
        let mut stat = sys::stat_fd(&fd).map_err(err(&path))?;
        if made && stat.uid == uid {
            let mode = 0o755 | (parent.stat.perm & 0o3022);
            if stat.perm != mode && sys::chmod_fd(&fd, mode).is_ok() {
                stat.perm = mode;
            }
        }
        Ok(Dir { fd, path, stat })
    }

    /// Whether no other user (root aside) can add, rename or remove our
    /// files in it.
    fn closed(&self, uid: u32) -> bool {
        (self.stat.uid == uid || self.stat.uid == 0)
            && (!self.stat.others_can_write() || self.stat.perm & 0o1000 != 0)
    }

    /// A path naming this very directory (while `fd` is open).
    fn fd_path(&self) -> PathBuf {
        sys::fd_path(&self.fd)
    }

    fn try_clone(&self) -> io::Result<Dir> {
        Ok(Dir {
            fd: self.fd.try_clone()?,
            path: self.path.clone(),
            stat: self.stat,
        })
    }
}

fn dir_error(path: &Path, e: io::Error) -> CacheError {
    if errno(&e, Errno::LOOP) || errno(&e, Errno::NOTDIR) {
        CacheError::NotADirectory {
            path: path.to_path_buf(),
        }
    } else {
        err(path)(e)
    }
}

/// The cache rooted at `$APPTAINER_CACHEDIR/cache` (default
/// `~/.apptainer/cache`), with Vessel's entries under `vessel/`.
#[derive(Debug)]
pub struct Cache {
    root: PathBuf,
    blobs: Dir,
    sif: Dir,
    /// `sif/<uid>/`, when it is the user's own and closed to others.
    user_sif: Option<Dir>,
    uid: u32,
    /// Where private files go when the cache cannot take them.
    private: PathBuf,
}

/// An entry in the cache.
#[derive(Clone, Debug)]
pub struct Entry {
    pub kind: Kind,
    pub path: PathBuf,
    pub size: u64,
    pub modified: SystemTime,
    name: OsString,
    place: Place,
}

/// Which directory an entry is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    Blobs,
    /// `sif/` itself: the layout before SIFs were kept per user.
    SharedSif,
    UserSif,
}

/// A cache entry (or a private stand-in for one), checked and open: use
/// this file, not `path`, which only names the entry in messages.
#[derive(Debug)]
pub struct Hit {
    pub file: File,
    pub path: PathBuf,
    /// The private directory a private image is in, removed when dropped.
    temp_dir: Option<tempfile::TempDir>,
}

impl Hit {
    fn new(file: File, path: PathBuf) -> Hit {
        Hit {
            file,
            path,
            temp_dir: None,
        }
    }

    /// The file, and the private directory to keep as long as it is used
    /// by path (`None` for cache entries).
    pub fn into_parts(self) -> (File, Option<tempfile::TempDir>) {
        (self.file, self.temp_dir)
    }
}

impl Cache {
    /// Opens (making what is missing) the cache at `root`. The directories
    /// above `root` are the user's choice and followed as given; `root` and
    /// everything below it are opened without following links.
    pub fn new(root: &Path) -> Result<Cache, CacheError> {
        Cache::open_as(root, vessel_sys::process::getuid())
    }

    fn open_as(root: &Path, uid: u32) -> Result<Cache, CacheError> {
        let top = match (root.parent(), root.file_name()) {
            (Some(parent), Some(name)) => {
                let parent = if parent.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    parent
                };
                std::fs::create_dir_all(parent).map_err(err(parent))?;
                let parent = Dir::at_path(parent)?;
                match Dir::open(&parent, &name.to_string_lossy(), uid) {
                    // A link the user (or root) made, say to scratch space,
                    // is followed; one another user planted is not.
                    Err(CacheError::NotADirectory { .. })
                        if sys::stat_at(&parent.fd, name).is_ok_and(|st| {
                            st.kind == FileKind::Symlink && (st.uid == uid || st.uid == 0)
                        }) =>
                    {
                        Dir::at_path(root)?
                    }
                    other => other?,
                }
            }
            _ => Dir::at_path(root)?,
        };
        let vessel = Dir::open(&top, "vessel", uid)?;
        let blobs = Dir::open(&vessel, Kind::Blob.dir(), uid)?;
        let sif = Dir::open(&vessel, Kind::Sif.dir(), uid)?;
        let user_sif = match user_sif_dir(&sif, uid) {
            Ok(d) => Some(d),
            Err(why) => {
                tracing::warn!("Converted images will not be cached: {why}");
                None
            }
        };
        Ok(Cache {
            root: vessel.path.clone(),
            blobs,
            sif,
            user_sif,
            uid,
            private: std::env::temp_dir(),
        })
    }

    /// Where files go that the cache cannot take (the user's temporary
    /// directory); the system's temporary directory by default.
    pub fn with_private_dir(mut self, dir: &Path) -> Cache {
        self.private = dir.to_path_buf();
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory an entry of `kind` goes into, if the cache can take it.
    fn dir(&self, kind: Kind) -> Option<&Dir> {
        match kind {
            Kind::Blob => Some(&self.blobs),
            Kind::Sif => self.user_sif.as_ref(),
        }
    }

    /// Claims the entry for `digest`: ready (checked, open), ours to
    /// produce (we hold its lock, or it is produced privately), or being
    /// produced by another process (`blocking` waits for it instead).
    pub fn claim(&self, kind: Kind, digest: &str, blocking: bool) -> Result<Claim, CacheError> {
        let name = entry_name(kind, digest)?;
        let Some(dir) = self.dir(kind) else {
            return Ok(Claim::Mine(self.private_producer(kind, &name)?));
        };
        let shown = dir.path.join(&name);
        let rejected = match self.lookup(dir, kind, &name, digest, None)? {
            Lookup::Hit(hit) => return Ok(Claim::Ready(hit)),
            Lookup::Missing => None,
            Lookup::Bad(st) => Some(st),
        };
        let Some(lock) = self.lock(dir, &name) else {
            return Ok(Claim::Mine(self.private_producer(kind, &name)?));
        };
        let op = if blocking {
            Flock::Exclusive
        } else {
            Flock::ExclusiveNonBlocking
        };
        if let Err(e) = flock(&lock, op) {
            if blocking {
                return Err(CacheError::Io {
                    path: shown,
                    source: io::Error::other(format!("could not lock the cache entry: {e}")),
                });
            }
            return Ok(Claim::Busy(Busy {
                kind,
                digest: digest.to_string(),
            }));
        }
        // Another process may have made it while we waited for the lock.
        if let Lookup::Hit(hit) = self.lookup(dir, kind, &name, digest, rejected)? {
            return Ok(Claim::Ready(hit));
        }
        remove_stale_temporaries(dir, &name);
        match Producer::in_dir(dir, &name, lock) {
            Ok(p) => Ok(Claim::Mine(p)),
            Err(e) => {
                tracing::debug!(
                    "cannot write in {}: {e}; producing {name} privately",
                    dir.path.display()
                );
                Ok(Claim::Mine(self.private_producer(kind, &name)?))
            }
        }
    }

    /// The entry for `digest`, produced by `make` into a temporary file if
    /// it is not there yet. Concurrent callers wait for one producer.
    pub fn get_or_make<E: From<CacheError>>(
        &self,
        kind: Kind,
        digest: &str,
        make: impl FnOnce(&mut File) -> Result<(), E>,
    ) -> Result<Hit, E> {
        let mut producer = match self.claim(kind, digest, true)? {
            Claim::Ready(hit) => return Ok(hit),
            Claim::Busy(busy) => match busy.wait(self)? {
                Claim::Ready(hit) => return Ok(hit),
                Claim::Mine(p) => p,
                Claim::Busy(_) => {
                    return Err(CacheError::Io {
                        path: self.root.clone(),
                        source: io::Error::other("the cache entry stayed locked"),
                    }
                    .into())
                }
            },
            Claim::Mine(p) => p,
        };
        make(producer.file())?;
        Ok(producer.commit()?)
    }

    /// Finds and checks the entry `name` in `dir` (module doc). `rejected`
    /// is an entry already found bad, not checked again.
    fn lookup(
        &self,
        dir: &Dir,
        kind: Kind,
        name: &str,
        digest: &str,
        rejected: Option<FileStat>,
    ) -> Result<Lookup, CacheError> {
        let path = dir.path.join(name);
        let fd = match sys::open_file_at(&dir.fd, OsStr::new(name)) {
            Ok(fd) => fd,
            Err(e) if errno(&e, Errno::NOENT) => return Ok(Lookup::Missing),
            Err(e) => {
                tracing::debug!("not using the cache entry {}: {e}", path.display());
                return Ok(Lookup::Missing);
            }
        };
        let st = sys::stat_fd(&fd).map_err(err(&path))?;
        if st.kind != FileKind::File {
            tracing::debug!("not using {}: not a regular file", path.display());
            return Ok(Lookup::Bad(st));
        }
        if rejected.is_some_and(|r| r.same_file(&st)) {
            return Ok(Lookup::Bad(st));
        }
        let mut file = File::from(fd);
        let stable = st.uid == self.uid && !st.others_can_write();
        let hit = |file: File| {
            if st.uid == self.uid {
                // For `cache clean --days`: last used, not last made.
                let _ = file.set_modified(SystemTime::now());
            }
            Lookup::Hit(Hit::new(file, path.clone()))
        };
        match kind {
            // The user's own directory, closed to others: the name is
            // bound to the file; the file must be the user's, unchangeable
            // by others.
            Kind::Sif if stable => Ok(hit(file)),
            Kind::Sif => {
                tracing::warn!(
                    "Not using the cached image {}: it is not yours, or other users can change it; converting again",
                    path.display()
                );
                Ok(Lookup::Bad(st))
            }
            Kind::Blob if stable && st.nlink == 1 && dir.closed(self.uid) => Ok(hit(file)),
            Kind::Blob if stable => {
                let got = sha256_of(&mut file).map_err(err(&path))?;
                if got == digest {
                    file.rewind().map_err(err(&path))?;
                    return Ok(hit(file));
                }
                tracing::warn!(
                    "The cached blob {} does not match its digest (got {got}): removing it and downloading it again",
                    path.display()
                );
                remove_if_same(dir, name, &st);
                Ok(Lookup::Bad(st))
            }
            Kind::Blob => {
                let mut copy = self.anonymous_file(dir).map_err(err(&path))?;
                let got = copy_hashing(&mut file, &mut copy).map_err(err(&path))?;
                if got == digest {
                    copy.rewind().map_err(err(&path))?;
                    return Ok(Lookup::Hit(Hit::new(copy, path)));
                }
                tracing::warn!(
                    "The cached blob {} (owned by uid {}) does not match its digest (got {got}): not using it, downloading the blob again",
                    path.display(),
                    st.uid
                );
                Ok(Lookup::Bad(st))
            }
        }
    }

    /// The lock file for `name`, or `None` when it cannot be used safely.
    fn lock(&self, dir: &Dir, name: &str) -> Option<OwnedFd> {
        let lock_name = format!("{name}.lock");
        let path = dir.path.join(&lock_name);
        let opened = match sys::open_or_create_at(&dir.fd, OsStr::new(&lock_name), 0o644) {
            // Another user's lock we may not write: read-only does for flock.
            Err(e) if errno(&e, Errno::ACCESS) || errno(&e, Errno::PERM) => {
                sys::open_file_at(&dir.fd, OsStr::new(&lock_name))
            }
            other => other,
        };
        let fd = match opened {
            Ok(fd) => fd,
            Err(e) => {
                tracing::debug!(
                    "cannot use the lock file {} ({e}; a symbolic link there is never followed): producing the entry privately, without the shared lock",
                    path.display()
                );
                return None;
            }
        };
        match sys::stat_fd(&fd) {
            Ok(st) if st.kind == FileKind::File => Some(fd),
            _ => {
                tracing::debug!(
                    "the lock file {} is not a regular file: producing the entry privately, without the shared lock",
                    path.display()
                );
                None
            }
        }
    }

    /// A producer whose result is used but not cached: an unnamed file near
    /// the cache when we may write there, else in the private directory.
    fn private_producer(&self, kind: Kind, name: &str) -> Result<Producer, CacheError> {
        if kind == Kind::Sif {
            return Producer::private(&self.private).map_err(err(&self.private));
        }
        let dir = self.dir(kind).unwrap_or(&self.blobs);
        let file = self.anonymous_file(dir).map_err(err(&self.private))?;
        Ok(Producer {
            file,
            temp_dir: None,
            dir: dir.try_clone().ok(),
            target: None,
            shown: dir.path.join(name),
            _lock: None,
        })
    }

    /// An unnamed file of ours in `dir`, else in the private directory.
    fn anonymous_file(&self, dir: &Dir) -> io::Result<File> {
        tempfile::tempfile_in(dir.fd_path()).or_else(|_| tempfile::tempfile_in(&self.private))
    }

    /// Every entry the user may list and remove, for `cache list` and
    /// `cache clean`: the shared blobs and the user's own SIFs. Temporary
    /// files, locks and anything but regular files are left out.
    pub fn entries(&self) -> Vec<Entry> {
        let mut out = Vec::new();
        let mut from = |dir: &Dir, kind: Kind, place: Place| {
            for name in sys::dir_names(&dir.fd).unwrap_or_default() {
                let text = name.to_string_lossy();
                if text.contains(".tmp-") || text.ends_with(".lock") {
                    continue;
                }
                if place == Place::SharedSif && !text.ends_with(".sif") {
                    continue;
                }
                let Ok(st) = sys::stat_at(&dir.fd, &name) else {
                    continue;
                };
                if st.kind != FileKind::File || (place == Place::SharedSif && st.uid != self.uid) {
                    continue;
                }
                out.push(Entry {
                    kind,
                    path: dir.path.join(&name),
                    size: st.size,
                    modified: SystemTime::UNIX_EPOCH + Duration::from_secs(st.mtime.max(0) as u64),
                    name,
                    place,
                });
            }
        };
        from(&self.blobs, Kind::Blob, Place::Blobs);
        from(&self.sif, Kind::Sif, Place::SharedSif);
        if let Some(d) = &self.user_sif {
            from(d, Kind::Sif, Place::UserSif);
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out
    }

    /// Removes an entry unless another process is producing it. Links are
    /// removed, never followed.
    pub fn remove(&self, entry: &Entry) -> Result<bool, CacheError> {
        let dir = match entry.place {
            Place::Blobs => &self.blobs,
            Place::SharedSif => &self.sif,
            Place::UserSif => match &self.user_sif {
                Some(d) => d,
                None => return Ok(false),
            },
        };
        let name = entry.name.to_string_lossy();
        let lock = self.lock(dir, &name);
        if let Some(l) = &lock {
            if flock(l, Flock::ExclusiveNonBlocking).is_err() {
                return Ok(false);
            }
        }
        match sys::unlink_at(&dir.fd, &entry.name) {
            Ok(()) => {}
            Err(e) if errno(&e, Errno::NOENT) => {}
            Err(e) => return Err(err(&entry.path)(e)),
        }
        if lock.is_some() {
            let _ = sys::unlink_at(&dir.fd, OsStr::new(&format!("{name}.lock")));
        }
        Ok(true)
    }
}

/// What a look-up found.
enum Lookup {
    Hit(Hit),
    Missing,
    /// An entry that must not be used (its `fstat`).
    Bad(FileStat),
}

/// Opens (making it) `sif/<uid>/`, which must be the user's own and
/// writable by nobody else; the reason when it is not.
fn user_sif_dir(sif: &Dir, uid: u32) -> Result<Dir, String> {
    let name = uid.to_string();
    let path = sif.path.join(&name);
    match sys::make_dir_at(&sif.fd, OsStr::new(&name), 0o755) {
        Ok(()) => {}
        Err(e) if errno(&e, Errno::EXIST) => {}
        Err(e) => return Err(format!("cannot make {}: {e}", path.display())),
    }
    let fd = sys::open_dir_at(&sif.fd, OsStr::new(&name)).map_err(|e| {
        format!(
            "{} is not a directory of yours ({e}): remove it and pull again",
            path.display()
        )
    })?;
    let stat = sys::stat_fd(&fd).map_err(|e| format!("{}: {e}", path.display()))?;
    if stat.uid != uid {
        return Err(format!(
            "{} belongs to uid {}, not to you: remove it (or have it removed) and pull again",
            path.display(),
            stat.uid
        ));
    }
    if stat.others_can_write() {
        return Err(format!(
            "other users can write to {} (mode {:o}): run `chmod go-w {}`",
            path.display(),
            stat.perm,
            path.display()
        ));
    }
    Ok(Dir { fd, path, stat })
}

/// The file name of the entry for `digest`.
fn entry_name(kind: Kind, digest: &str) -> Result<String, CacheError> {
    let hex = digest
        .strip_prefix("sha256:")
        .filter(|h| {
            h.len() == 64
                && h.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
        .ok_or_else(|| CacheError::BadDigest {
            digest: digest.to_string(),
        })?;
    Ok(match kind {
        Kind::Blob => format!("sha256-{hex}"),
        Kind::Sif => format!("sha256-{hex}.sif"),
    })
}

/// `sha256:<hex>` of a file, read through its descriptor from the start.
fn sha256_of(file: &mut File) -> io::Result<String> {
    file.rewind()?;
    let mut h = Sha256::new();
    io::copy(file, &mut h)?;
    Ok(format!("sha256:{}", crate::registry::hex(&h.finalize())))
}

/// Copies `from` (from its start) into `to`, returning the sha256 of
/// exactly the bytes written.
fn copy_hashing(from: &mut File, to: &mut File) -> io::Result<String> {
    from.rewind()?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(&buf[..n]);
        to.write_all(&buf[..n])?;
    }
    Ok(format!("sha256:{}", crate::registry::hex(&h.finalize())))
}

/// Removes `name` from `dir` if it still is the file `st` describes and is
/// ours to remove.
fn remove_if_same(dir: &Dir, name: &str, st: &FileStat) {
    if sys::stat_at(&dir.fd, OsStr::new(name)).is_ok_and(|now| now.same_file(st)) {
        let _ = sys::unlink_at(&dir.fd, OsStr::new(name));
    }
}

/// The state of a cache entry, from [`Cache::claim`].
pub enum Claim {
    Ready(Hit),
    Mine(Producer),
    Busy(Busy),
}

/// An entry another process is producing.
pub struct Busy {
    kind: Kind,
    digest: String,
}

impl Busy {
    /// Waits for the other producer; if it failed, the entry is ours.
    pub fn wait(self, cache: &Cache) -> Result<Claim, CacheError> {
        cache.claim(self.kind, &self.digest, true)
    }
}

/// An entry this process produces: write to [`Producer::file`], then
/// [`Producer::commit`]. Dropped without committing, it removes its
/// temporary file.
pub struct Producer {
    file: File,
    /// The private directory a private image is made in.
    temp_dir: Option<tempfile::TempDir>,
    /// The directory it is made in (or near, for a private one).
    dir: Option<Dir>,
    /// The temporary name and the entry's name in `dir`; `None` for a
    /// private entry, used but not cached.
    target: Option<(OsString, OsString)>,
    shown: PathBuf,
    _lock: Option<OwnedFd>,
}

impl Producer {
    /// A temporary file with an unpredictable name, made with `O_EXCL` in
    /// `dir` (through its descriptor), to be renamed to `name`.
    fn in_dir(dir: &Dir, name: &str, lock: OwnedFd) -> io::Result<Producer> {
        let (file, tmp_path) = tempfile::Builder::new()
            .prefix(&format!("{name}.tmp-"))
            .tempfile_in(dir.fd_path())?
            .keep()
            .map_err(|e| e.error)?;
        let tmp = tmp_path
            .file_name()
            .map(OsStr::to_os_string)
            .ok_or_else(|| io::Error::other("a temporary file without a name"))?;
        Ok(Producer {
            file,
            temp_dir: None,
            dir: Some(dir.try_clone()?),
            target: Some((tmp, name.into())),
            shown: dir.path.join(name),
            _lock: Some(lock),
        })
    }

    /// A producer of an image that is used but not cached: `image.sif` in
    /// a new private (0700) directory in `dir` (the user's temporary
    /// directory), named so that tools given its path can resolve it, and
    /// removed with the directory when the result is dropped.
    pub fn private(dir: &Path) -> io::Result<Producer> {
        let temp = tempfile::Builder::new()
            .prefix("vessel-pull-")
            .tempdir_in(dir)?;
        let shown = temp.path().join("image.sif");
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&shown)?;
        Ok(Producer {
            file,
            temp_dir: Some(temp),
            dir: None,
            target: None,
            shown,
            _lock: None,
        })
    }

    /// The file to write the entry into.
    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }

    /// Where the entry will be, for messages.
    pub fn path(&self) -> &Path {
        &self.shown
    }

    /// An unnamed scratch file beside the entry (same file system), for
    /// intermediate results; gone when closed.
    pub fn scratch_file(&self, private: &Path) -> io::Result<File> {
        match &self.dir {
            Some(d) => tempfile::tempfile_in(d.fd_path()),
            None => Err(io::Error::from(io::ErrorKind::Unsupported)),
        }
        .or_else(|_| tempfile::tempfile_in(private))
    }

    /// Syncs the entry and moves it into place; returns the file written,
    /// at its start. When it cannot be put in place, it is still returned,
    /// only not cached.
    pub fn commit(mut self) -> Result<Hit, CacheError> {
        let mut file = self.file.try_clone().map_err(err(&self.shown))?;
        file.sync_all().map_err(err(&self.shown))?;
        if let (Some(dir), Some((tmp, name))) = (&self.dir, self.target.take()) {
            let _ = sys::chmod_fd(&file, 0o644);
            match sys::rename_at(&dir.fd, &tmp, &name) {
                Ok(()) => {
                    if let Ok(d) = dir.fd.try_clone() {
                        let _ = File::from(d).sync_all();
                    }
                }
                Err(e) => {
                    tracing::debug!(
                        "could not put {} in place ({e}): using it without caching it",
                        self.shown.display()
                    );
                    let _ = sys::unlink_at(&dir.fd, &tmp);
                }
            }
        }
        file.rewind().map_err(err(&self.shown))?;
        Ok(Hit {
            file,
            path: self.shown.clone(),
            temp_dir: self.temp_dir.take(),
        })
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        if let (Some(dir), Some((tmp, _))) = (&self.dir, &self.target) {
            let _ = sys::unlink_at(&dir.fd, tmp);
        }
    }
}

/// Temporaries of killed producers: removed by the next producer, which
/// holds the lock, so none of them is still being written. Names are
/// removed, never followed.
fn remove_stale_temporaries(dir: &Dir, name: &str) {
    let prefix = format!("{name}.tmp-");
    for n in sys::dir_names(&dir.fd).unwrap_or_default() {
        if n.to_string_lossy().starts_with(&prefix) {
            let _ = sys::unlink_at(&dir.fd, &n);
        }
    }
}

/// Whether an entry is older than `days`, for `cache clean --days`.
pub fn older_than(entry: &Entry, days: u64) -> bool {
    SystemTime::now()
        .duration_since(entry.modified)
        .is_ok_and(|age| age > Duration::from_secs(days * 86_400))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn digest_of(data: &[u8]) -> String {
        format!("sha256:{}", crate::registry::hex(&Sha256::digest(data)))
    }

    fn read_all(mut f: &File) -> Vec<u8> {
        let mut v = Vec::new();
        f.read_to_end(&mut v).unwrap();
        v
    }

    fn make(cache: &Cache, kind: Kind, digest: &str, data: &'static [u8]) -> Hit {
        cache
            .get_or_make::<CacheError>(kind, digest, |f| {
                f.write_all(data).map_err(err(Path::new("x")))
            })
            .unwrap()
    }

    fn blob_path(dir: &Path, digest: &str) -> PathBuf {
        dir.join("cache/vessel/blobs")
            .join(entry_name(Kind::Blob, digest).unwrap())
    }

    #[test]
    fn made_once_and_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(&dir.path().join("cache")).unwrap();
        let d = digest_of(b"data");
        let hit = make(&cache, Kind::Blob, &d, b"data");
        assert_eq!(read_all(&hit.file), b"data");
        assert_eq!(std::fs::read(blob_path(dir.path(), &d)).unwrap(), b"data");
        let again = make_never(&cache, Kind::Blob, &d);
        assert_eq!(read_all(&again.file), b"data");
        // A failed producer leaves nothing behind.
        let other = digest_of(b"other");
        let r = cache.get_or_make::<CacheError>(Kind::Blob, &other, |_| {
            Err(CacheError::BadDigest {
                digest: "boom".into(),
            })
        });
        assert!(r.is_err());
        assert!(!blob_path(dir.path(), &other).exists());
        assert_eq!(cache.entries().len(), 1);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("cache/vessel/blobs"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        // A SIF goes into the user's own directory.
        let key = digest_of(b"manifest");
        make(&cache, Kind::Sif, &key, b"sif");
        let uid = vessel_sys::process::getuid();
        assert!(dir
            .path()
            .join(format!("cache/vessel/sif/{uid}"))
            .join(entry_name(Kind::Sif, &key).unwrap())
            .is_file());
        assert_eq!(cache.entries().len(), 2);
        for e in cache.entries() {
            assert!(cache.remove(&e).unwrap());
        }
        assert!(cache.entries().is_empty());
    }

    #[test]
    fn a_link_in_place_of_a_cache_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir_all(dir.path().join("cache/vessel")).unwrap();
        std::fs::create_dir(&elsewhere).unwrap();
        symlink(&elsewhere, dir.path().join("cache/vessel/blobs")).unwrap();
        let e = Cache::new(&dir.path().join("cache")).unwrap_err();
        assert!(matches!(e, CacheError::NotADirectory { .. }), "{e}");
        let text = e.to_string();
        assert!(text.contains("cache/vessel/blobs") && text.contains("remove it"));
        assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    }

    #[test]
    fn a_link_the_user_made_at_the_cache_root_is_followed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("scratch")).unwrap();
        symlink(dir.path().join("scratch"), dir.path().join("cache")).unwrap();
        let cache = Cache::new(&dir.path().join("cache")).unwrap();
        make(&cache, Kind::Blob, &digest_of(b"x"), b"x");
        assert!(dir.path().join("scratch/vessel/blobs").is_dir());
    }

    /// A fresh cache, and a file of the user's that links planted in the
    /// cache point at.
    fn with_victim_file() -> (tempfile::TempDir, Cache, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(&dir.path().join("cache")).unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        (dir, cache, victim)
    }

    #[test]
    fn a_link_at_the_lock_name_is_not_followed() {
        let (dir, cache, victim) = with_victim_file();
        let d = digest_of(b"blob");
        let lock = PathBuf::from(format!("{}.lock", blob_path(dir.path(), &d).display()));
        symlink(&victim, &lock).unwrap();
        // A dangling link too: nothing may be created at its target.
        let missing = dir.path().join("created");
        let d2 = digest_of(b"blob2");
        symlink(
            &missing,
            format!("{}.lock", blob_path(dir.path(), &d2).display()),
        )
        .unwrap();
        let hit = make(&cache, Kind::Blob, &d, b"blob");
        assert_eq!(read_all(&hit.file), b"blob");
        make(&cache, Kind::Blob, &d2, b"blob2");
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert!(!missing.exists());
        // Produced privately: used, not cached.
        assert!(!blob_path(dir.path(), &d).exists());
        assert!(std::fs::symlink_metadata(&lock).unwrap().is_symlink());
    }

    #[test]
    fn links_at_temporary_names_are_not_followed() {
        let (dir, cache, victim) = with_victim_file();
        let d = digest_of(b"blob");
        let entry = blob_path(dir.path(), &d);
        // The old predictable names, and a stale-looking one.
        for suffix in [".tmp-1", ".tmp-12345", ".tmp-AAAAAA"] {
            symlink(&victim, format!("{}{suffix}", entry.display())).unwrap();
        }
        let hit = make(&cache, Kind::Blob, &d, b"blob");
        assert_eq!(read_all(&hit.file), b"blob");
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert_eq!(std::fs::read(&entry).unwrap(), b"blob");
    }

    #[test]
    fn a_tampered_blob_is_detected_and_made_again() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("cache");
        let cache = Cache::new(&root).unwrap();
        let d = digest_of(b"good");
        make(&cache, Kind::Blob, &d, b"good");
        let entry = blob_path(dir.path(), &d);
        // Changed in place, and the blobs directory opened to others (as a
        // shared cache is), so the name alone is not trusted.
        std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::write(&entry, b"evil").unwrap();
        std::fs::set_permissions(
            entry.parent().unwrap(),
            std::fs::Permissions::from_mode(0o777),
        )
        .unwrap();
        let cache = Cache::new(&root).unwrap();
        let mut made = false;
        let hit = cache
            .get_or_make::<CacheError>(Kind::Blob, &d, |f| {
                made = true;
                f.write_all(b"good").map_err(err(Path::new("x")))
            })
            .unwrap();
        assert!(made, "the tampered blob must not be used");
        assert_eq!(read_all(&hit.file), b"good");
        assert_eq!(std::fs::read(&entry).unwrap(), b"good");
        // A group-writable blob is hashed, and a good one used as is.
        std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o666)).unwrap();
        let hit = make_never(&cache, Kind::Blob, &d);
        assert_eq!(read_all(&hit.file), b"good");
        std::fs::write(&entry, b"bad!").unwrap();
        let hit = make(&cache, Kind::Blob, &d, b"good");
        assert_eq!(read_all(&hit.file), b"good");
    }

    /// The entry, which must be found, not made.
    fn make_never(cache: &Cache, kind: Kind, digest: &str) -> Hit {
        cache
            .get_or_make::<CacheError>(kind, digest, |_| {
                Err(CacheError::BadDigest {
                    digest: "must not be made".into(),
                })
            })
            .unwrap()
    }

    #[test]
    fn a_blob_renamed_over_another_is_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("cache");
        let cache = Cache::new(&root).unwrap();
        let (a, b) = (digest_of(b"aaaa"), digest_of(b"bbbb"));
        make(&cache, Kind::Blob, &a, b"aaaa");
        make(&cache, Kind::Blob, &b, b"bbbb");
        std::fs::set_permissions(
            blob_path(dir.path(), &a).parent().unwrap(),
            std::fs::Permissions::from_mode(0o777),
        )
        .unwrap();
        std::fs::rename(blob_path(dir.path(), &b), blob_path(dir.path(), &a)).unwrap();
        let cache = Cache::new(&root).unwrap();
        let hit = make(&cache, Kind::Blob, &a, b"aaaa");
        assert_eq!(read_all(&hit.file), b"aaaa");
    }

    #[test]
    fn a_sif_that_is_not_the_users_own_is_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("cache");
        let uid = vessel_sys::process::getuid();
        let key = digest_of(b"manifest");
        // Another user's directory in place of ours: nothing cached in it
        // is used, and nothing is written to it.
        let sif = root.join("vessel/sif");
        std::fs::create_dir_all(sif.join("theirs")).unwrap();
        let planted = sif
            .join("theirs")
            .join(entry_name(Kind::Sif, &key).unwrap());
        std::fs::write(&planted, b"pwned").unwrap();
        symlink(sif.join("theirs"), sif.join(uid.to_string())).unwrap();
        let cache = Cache::new(&root).unwrap();
        let hit = make(&cache, Kind::Sif, &key, b"mine");
        assert_eq!(read_all(&hit.file), b"mine");
        assert_eq!(std::fs::read(&planted).unwrap(), b"pwned");
        assert_eq!(std::fs::read_dir(sif.join("theirs")).unwrap().count(), 1);
        // Our own directory, but others may write into it.
        std::fs::remove_file(sif.join(uid.to_string())).unwrap();
        let ours = sif.join(uid.to_string());
        std::fs::create_dir(&ours).unwrap();
        std::fs::write(ours.join(entry_name(Kind::Sif, &key).unwrap()), b"pwned").unwrap();
        std::fs::set_permissions(&ours, std::fs::Permissions::from_mode(0o777)).unwrap();
        let cache = Cache::new(&root).unwrap();
        assert_eq!(
            read_all(&make(&cache, Kind::Sif, &key, b"mine").file),
            b"mine"
        );
        // A SIF others can write is not used either.
        std::fs::set_permissions(&ours, std::fs::Permissions::from_mode(0o755)).unwrap();
        let entry = ours.join(entry_name(Kind::Sif, &key).unwrap());
        std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o666)).unwrap();
        let cache = Cache::new(&root).unwrap();
        assert_eq!(
            read_all(&make(&cache, Kind::Sif, &key, b"mine").file),
            b"mine"
        );
        // Replaced by then, it is ours and used from now on.
        let hit = make_never(&cache, Kind::Sif, &key);
        assert_eq!(read_all(&hit.file), b"mine");
    }

    /// Entries another user owns (only testable as root, who can give
    /// files away): a SIF is never used, a blob is used through a private
    /// copy when it matches, and never when it does not.
    #[test]
    fn entries_of_another_user() {
        if vessel_sys::process::getuid() != 0 {
            eprintln!("skipping: giving files to another user needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("cache");
        let cache = Cache::open_as(&root, 0).unwrap();
        let key = digest_of(b"manifest");
        make(&cache, Kind::Sif, &key, b"theirs");
        let sif = root
            .join("vessel/sif/0")
            .join(entry_name(Kind::Sif, &key).unwrap());
        std::os::unix::fs::chown(&sif, Some(65534), None).unwrap();
        assert_eq!(
            read_all(&make(&cache, Kind::Sif, &key, b"mine").file),
            b"mine"
        );

        let d = digest_of(b"blob");
        make(&cache, Kind::Blob, &d, b"blob");
        let blob = blob_path(dir.path(), &d);
        std::os::unix::fs::chown(&blob, Some(65534), None).unwrap();
        let hit = make_never(&cache, Kind::Blob, &d);
        assert_eq!(read_all(&hit.file), b"blob");
        // The copy, not the entry: a later change cannot reach it.
        std::fs::write(&blob, b"evil").unwrap();
        let mut again = hit.file;
        again.rewind().unwrap();
        assert_eq!(read_all(&again), b"blob");
        let hit = make(&cache, Kind::Blob, &d, b"blob");
        assert_eq!(read_all(&hit.file), b"blob");
    }

    #[test]
    fn digests_must_be_plain_sha256() {
        for bad in ["sha256:abc", "sha256:../../x", "md5:00", ""] {
            assert!(entry_name(Kind::Blob, bad).is_err(), "{bad}");
        }
    }
}
