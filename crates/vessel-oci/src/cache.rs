//! The pull cache: content-addressed blobs, and SIFs keyed by the image's
//! manifest digest. Safe for many jobs at once: each entry is produced
//! under an exclusive lock by one process while the others wait, written to
//! a temporary name, synced and renamed, so a reader never sees a partial
//! entry and a killed pull leaves only a temporary file, cleaned up by the
//! next one.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use vessel_sys::path::{flock, Flock};

#[derive(Debug, thiserror::Error)]
#[error("cache {path}: {source}")]
pub struct CacheError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

fn err(path: &Path) -> impl FnOnce(io::Error) -> CacheError + '_ {
    move |source| CacheError {
        path: path.to_path_buf(),
        source,
    }
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

/// The cache rooted at `$APPTAINER_CACHEDIR/cache` (default
/// `~/.apptainer/cache`), with Vessel's entries under `vessel/`.
#[derive(Clone, Debug)]
pub struct Cache {
    root: PathBuf,
}

/// An entry in the cache.
#[derive(Clone, Debug)]
pub struct Entry {
    pub kind: Kind,
    pub path: PathBuf,
    pub size: u64,
    pub modified: SystemTime,
}

impl Cache {
    pub fn new(root: &Path) -> Result<Cache, CacheError> {
        let root = root.join("vessel");
        for k in [Kind::Blob, Kind::Sif] {
            let d = root.join(k.dir());
            fs::create_dir_all(&d).map_err(err(&d))?;
        }
        Ok(Cache { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the entry for `digest` (`sha256:…`) lives.
    pub fn path(&self, kind: Kind, digest: &str) -> PathBuf {
        let name = digest.replace(':', "-");
        match kind {
            Kind::Blob => self.root.join("blobs").join(name),
            Kind::Sif => self.root.join("sif").join(format!("{name}.sif")),
        }
    }

    /// Claims the entry for `digest`: ready, ours to produce (we hold its
    /// lock), or being produced by another process (`blocking` waits for it
    /// instead).
    pub fn claim(&self, kind: Kind, digest: &str, blocking: bool) -> Result<Claim, CacheError> {
        let path = self.path(kind, digest);
        if path.exists() {
            touch(&path);
            return Ok(Claim::Ready(path));
        }
        let lock = lock_file(&path)?;
        let op = if blocking {
            Flock::Exclusive
        } else {
            Flock::ExclusiveNonBlocking
        };
        if flock(&lock, op).is_err() {
            if blocking {
                return Err(CacheError {
                    path,
                    source: io::Error::other("could not lock the cache entry"),
                });
            }
            return Ok(Claim::Busy(Busy {
                kind,
                digest: digest.to_string(),
            }));
        }
        if path.exists() {
            return Ok(Claim::Ready(path));
        }
        remove_stale_temporaries(&path);
        let tmp = PathBuf::from(format!("{}.tmp-{}", path.display(), std::process::id()));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(err(&tmp))?;
        Ok(Claim::Mine(Producer {
            tmp,
            file: Some(file),
            path,
            _lock: lock,
        }))
    }

    /// The entry for `digest`, produced by `make` into a temporary file if
    /// it is not there yet. Concurrent callers wait for one producer.
    pub fn get_or_make<E: From<CacheError>>(
        &self,
        kind: Kind,
        digest: &str,
        make: impl FnOnce(&mut File, &Path) -> Result<(), E>,
    ) -> Result<PathBuf, E> {
        match self.claim(kind, digest, true)? {
            Claim::Ready(path) => Ok(path),
            Claim::Busy(_) => unreachable!("a blocking claim waits"),
            Claim::Mine(mut producer) => {
                let tmp = producer.tmp.clone();
                make(producer.file(), &tmp)?;
                Ok(producer.commit()?)
            }
        }
    }

    /// Every entry, for `cache list` and `cache clean`.
    pub fn entries(&self) -> Vec<Entry> {
        let mut out = Vec::new();
        for kind in [Kind::Blob, Kind::Sif] {
            for e in fs::read_dir(self.root.join(kind.dir()))
                .into_iter()
                .flatten()
                .flatten()
            {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.contains(".tmp-") || name.ends_with(".lock") {
                    continue;
                }
                if let Ok(m) = e.metadata() {
                    out.push(Entry {
                        kind,
                        path: e.path(),
                        size: m.len(),
                        modified: m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    });
                }
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out
    }

    /// Removes an entry unless another process is producing it.
    pub fn remove(&self, entry: &Entry) -> Result<bool, CacheError> {
        let lock = lock_file(&entry.path)?;
        if flock(&lock, Flock::ExclusiveNonBlocking).is_err() {
            return Ok(false);
        }
        fs::remove_file(&entry.path).map_err(err(&entry.path))?;
        let _ = fs::remove_file(lock_path(&entry.path));
        Ok(true)
    }
}

/// The state of a cache entry, from [`Cache::claim`].
pub enum Claim {
    Ready(PathBuf),
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

/// An entry this process produces: write to `file`, then [`Producer::commit`].
/// Dropped without committing, it removes its temporary file.
pub struct Producer {
    pub tmp: PathBuf,
    file: Option<File>,
    path: PathBuf,
    _lock: OwnedFd,
}

impl Producer {
    /// The temporary file to write the entry into.
    pub fn file(&mut self) -> &mut File {
        self.file.as_mut().expect("the file lives until commit")
    }

    /// Takes the file out, to hand it to a writer that consumes it.
    pub fn take_file(&mut self) -> File {
        self.file.take().expect("the file is taken once")
    }

    /// Syncs the entry and moves it into place.
    pub fn commit(mut self) -> Result<PathBuf, CacheError> {
        let file = match self.file.take() {
            Some(f) => f,
            None => File::open(&self.tmp).map_err(err(&self.tmp))?,
        };
        file.sync_all().map_err(err(&self.tmp))?;
        drop(file);
        fs::rename(&self.tmp, &self.path).map_err(err(&self.path))?;
        if let Some(dir) = self.path.parent() {
            let _ = File::open(dir).and_then(|d| d.sync_all());
        }
        Ok(self.path.clone())
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        // After a commit the temporary name is gone and this does nothing.
        let _ = fs::remove_file(&self.tmp);
    }
}

fn lock_path(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}.lock", path.display()))
}

fn lock_file(path: &Path) -> Result<OwnedFd, CacheError> {
    let p = lock_path(path);
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&p)
        .map_err(err(&p))?;
    Ok(f.into())
}

/// Temporaries of killed producers: removed by the next producer, which
/// holds the lock, so none of them is still being written.
fn remove_stale_temporaries(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let prefix = format!("{}.tmp-", name.to_string_lossy());
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = fs::remove_file(e.path());
        }
    }
}

fn touch(path: &Path) {
    let _ = File::options()
        .append(true)
        .open(path)
        .and_then(|f| f.set_modified(SystemTime::now()));
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

    #[test]
    fn made_once_and_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path()).unwrap();
        let p = cache
            .get_or_make::<CacheError>(Kind::Blob, "sha256:abc", |f, _| {
                use std::io::Write;
                f.write_all(b"data").map_err(err(Path::new("x")))
            })
            .unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"data");
        let again = cache
            .get_or_make::<CacheError>(Kind::Blob, "sha256:abc", |_, _| {
                panic!("must not be made twice")
            })
            .unwrap();
        assert_eq!(p, again);
        // A failed producer leaves nothing behind.
        let r = cache.get_or_make::<CacheError>(Kind::Blob, "sha256:def", |_, _| {
            Err(CacheError {
                path: "x".into(),
                source: io::Error::other("boom"),
            })
        });
        assert!(r.is_err());
        assert!(!cache.path(Kind::Blob, "sha256:def").exists());
        assert_eq!(cache.entries().len(), 1);
    }
}
