//! The `extract` image driver: a SquashFS partition unpacked once into a
//! node-local cache, keyed by the partition's SHA-256 digest, and shared by
//! every later run and job on the node.
//!
//! Concurrency: each entry has a lock file. Users of an entry hold a shared
//! lock for as long as their container runs; the first user of a new entry
//! takes the exclusive lock, unpacks into a temporary directory and renames
//! it into place, so 16 ranks starting at once extract once and none sees a
//! half-written tree. Eviction (least recently used, beyond the size bound)
//! only removes entries it can lock exclusively, so never one in use.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use vessel_sys::path::{flock, Flock};
use vessel_sys::private_dir::{open_private_dir, UnsafeDir};

fn unsafe_cache_hint() -> vessel_sys::Hint {
    vessel_sys::Hint::new("remove it, or set VESSEL_EXTRACT_DIR to a directory of your own")
}

#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error("extract cache {dir}: {source}")]
    Cache {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the extract cache {dir} is not safe to use: {cause}")]
    Unsafe {
        dir: PathBuf,
        cause: UnsafeDir,
        #[source]
        hint: vessel_sys::Hint,
    },
    #[error("{path} is not a readable SquashFS image: {cause}")]
    Open {
        path: PathBuf,
        cause: vessel_squashfs::Error,
    },
    #[error("unpacking {path} failed")]
    Unpack {
        path: PathBuf,
        #[source]
        source: vessel_image::ExtractError,
    },
}

/// A node-local cache of unpacked root file systems.
pub struct ExtractCache {
    /// Canonical, below directories only the user and root can change (see
    /// [`vessel_sys::private_dir`]), so the path names what was checked.
    dir: PathBuf,
    _dir_fd: OwnedFd,
    max_bytes: u64,
}

/// An unpacked root file system, kept from eviction while this lives.
pub struct Extracted {
    pub root: PathBuf,
    pub digest: String,
    _lock: OwnedFd,
}

impl ExtractCache {
    /// Opens the cache at `dir`, which must be the user's own: another
    /// user who made it (or a part of its path) first in a shared place
    /// such as `/var/tmp` could otherwise plant trees for us to run. When
    /// `dir` is taken that way and a `fallback` is given, the cache lives
    /// there instead, with a warning.
    pub fn open(dir: &Path, fallback: Option<&Path>, max_bytes: u64) -> Result<Self, ExtractError> {
        let uid = vessel_sys::process::getuid();
        let private = match (open_private_dir(dir, uid), fallback) {
            (Ok(d), _) => d,
            (
                Err(
                    e @ (UnsafeDir::NotOwned { .. }
                    | UnsafeDir::OthersCanWrite { .. }
                    | UnsafeDir::NotADirectory { .. }),
                ),
                Some(fallback),
            ) => {
                tracing::warn!(
                    "not using the extract cache {}: {e}; using {} instead (ask the administrator to remove {})",
                    dir.display(),
                    fallback.display(),
                    e.path().display()
                );
                open_private_dir(fallback, uid).map_err(|cause| ExtractError::Unsafe {
                    dir: fallback.to_path_buf(),
                    cause,
                    hint: unsafe_cache_hint(),
                })?
            }
            (Err(cause), _) => {
                return Err(ExtractError::Unsafe {
                    dir: dir.to_path_buf(),
                    cause,
                    hint: unsafe_cache_hint(),
                })
            }
        };
        let cache = ExtractCache {
            dir: private.path,
            _dir_fd: private.fd,
            max_bytes,
        };
        match fs::create_dir(cache.dir.join("digests")) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(cache.cache_err(e)),
            _ => {}
        }
        Ok(cache)
    }

    /// The unpacked root of the SquashFS at `offset`/`size` in the open
    /// image `file` (named `image` in messages). Everything is read through
    /// `file`, so the tree is the one of the file that was checked.
    pub fn get(
        &self,
        file: &File,
        image: &Path,
        offset: u64,
        size: u64,
    ) -> Result<Extracted, ExtractError> {
        let digest = self.partition_digest(file, image, offset, size)?;
        let entry = self.dir.join(&digest);
        let lock = self.lock_file(&digest)?;
        flock(&lock, Flock::Shared).map_err(|e| self.cache_err(e.errno))?;
        if entry.join("root").is_dir() {
            touch(&entry);
            return Ok(Extracted {
                root: entry.join("root"),
                digest,
                _lock: lock,
            });
        }
        // Upgrade to exclusive: the first process unpacks, the others wait
        // here and find the entry ready when they get the lock.
        flock(&lock, Flock::Exclusive).map_err(|e| self.cache_err(e.errno))?;
        if !entry.join("root").is_dir() {
            tracing::info!(
                "Extracting {} to the node-local cache (first use on this node)",
                image.display()
            );
            self.unpack(file, image, offset, size, &digest)?;
        }
        touch(&entry);
        flock(&lock, Flock::Shared).map_err(|e| self.cache_err(e.errno))?;
        self.evict(&digest);
        Ok(Extracted {
            root: entry.join("root"),
            digest,
            _lock: lock,
        })
    }

    fn cache_err(&self, source: io::Error) -> ExtractError {
        ExtractError::Cache {
            dir: self.dir.clone(),
            source,
        }
    }

    fn lock_file(&self, digest: &str) -> Result<OwnedFd, ExtractError> {
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(self.dir.join(format!("{digest}.lock")))
            .map_err(|e| self.cache_err(e))?;
        Ok(f.into())
    }

    /// The partition's SHA-256, remembered per file version (device, inode,
    /// size and change times) so that it is computed once, not per run.
    fn partition_digest(
        &self,
        file: &File,
        image: &Path,
        offset: u64,
        size: u64,
    ) -> Result<String, ExtractError> {
        let read_err = |source| ExtractError::Read {
            path: image.to_path_buf(),
            source,
        };
        let mut file = file.try_clone().map_err(read_err)?;
        let m = file.metadata().map_err(read_err)?;
        let key = hex(&Sha256::digest(format!(
            "{}:{}:{}:{}.{}:{}.{}:{offset}:{size}",
            m.dev(),
            m.ino(),
            m.size(),
            m.mtime(),
            m.mtime_nsec(),
            m.ctime(),
            m.ctime_nsec()
        )));
        let memo = self.dir.join("digests").join(&key);
        if let Ok(d) = fs::read_to_string(&memo) {
            if d.len() == 64 && d.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Ok(d);
            }
        }
        file.seek(SeekFrom::Start(offset)).map_err(read_err)?;
        let mut hasher = Sha256::new();
        let mut take = (&mut file).take(size);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = take.read(&mut buf).map_err(read_err)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        let digest = hex(&hasher.finalize());
        // A memo is only an optimisation: one that cannot be written is
        // computed again next time.
        let _ = vessel_sys::fs::write_atomic(&memo, digest.as_bytes(), 0o600);
        Ok(digest)
    }

    fn unpack(
        &self,
        file: &File,
        image: &Path,
        offset: u64,
        size: u64,
        digest: &str,
    ) -> Result<(), ExtractError> {
        // We hold the exclusive lock: any temporary tree of this digest is
        // the remains of a killed extraction.
        self.remove_stale_temporaries(digest);
        let tmp = self
            .dir
            .join(format!("{digest}.tmp-{}", std::process::id()));
        fs::create_dir(&tmp).map_err(|e| self.cache_err(e))?;
        // Read through the open image, so the tree is the one of the file
        // that was checked. Device nodes an unprivileged user cannot create
        // are skipped: a container does not need them.
        let source = file.try_clone().map_err(|e| ExtractError::Read {
            path: image.to_path_buf(),
            source: e,
        })?;
        let unpacked = vessel_squashfs::Archive::open(source, offset, size)
            .map_err(|cause| ExtractError::Open {
                path: image.to_path_buf(),
                cause,
            })
            .and_then(|arc| {
                vessel_image::extract(
                    &arc,
                    &tmp.join("root"),
                    &vessel_image::ExtractOptions::default(),
                )
                .map_err(|source| ExtractError::Unpack {
                    path: image.to_path_buf(),
                    source,
                })
            });
        if let Err(e) = unpacked {
            remove_tree(&tmp);
            return Err(e);
        }
        let bytes = disk_usage(&tmp.join("root"));
        let _ = fs::write(tmp.join("size"), bytes.to_string());
        fs::rename(&tmp, self.dir.join(digest)).map_err(|e| self.cache_err(e))?;
        if let Ok(d) = File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    fn remove_stale_temporaries(&self, digest: &str) {
        let prefix = format!("{digest}.tmp-");
        for entry in fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                remove_tree(&entry.path());
            }
        }
    }

    /// Removes least recently used entries until the cache fits its bound,
    /// skipping `keep` and any entry in use.
    fn evict(&self, keep: &str) {
        let mut entries: Vec<(std::time::SystemTime, u64, String)> = Vec::new();
        let mut total = 0u64;
        for e in fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.len() != 64 || !e.path().join("root").is_dir() {
                continue;
            }
            let size = fs::read_to_string(e.path().join("size"))
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0);
            let used = fs::metadata(e.path())
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            total += size;
            if name != keep {
                entries.push((used, size, name));
            }
        }
        entries.sort();
        for (_, size, name) in entries {
            if total <= self.max_bytes {
                break;
            }
            let Ok(lock) = self.lock_file(&name) else {
                continue;
            };
            if flock(&lock, Flock::ExclusiveNonBlocking).is_err() {
                continue;
            }
            let doomed = self
                .dir
                .join(format!("{name}.tmp-evict-{}", std::process::id()));
            if fs::rename(self.dir.join(&name), &doomed).is_ok() {
                tracing::debug!("Evicted {name} from the extract cache");
                remove_tree(&doomed);
                total = total.saturating_sub(size);
            }
        }
    }
}

/// Marks an entry as just used, for least-recently-used eviction.
fn touch(entry: &Path) {
    let stamp = entry.join("used");
    if let Ok(mut f) = File::create(&stamp) {
        let _ = f.write_all(b"");
    }
    let _ = File::open(entry).and_then(|d| d.set_modified(std::time::SystemTime::now()));
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes on disk below `root`, not following symlinks.
fn disk_usage(root: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(m) = fs::symlink_metadata(&p) else {
            continue;
        };
        total += m.blocks() * 512;
        if m.is_dir() {
            stack.extend(
                fs::read_dir(&p)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|e| e.path()),
            );
        }
    }
    total
}

/// Removes a tree even where unpacked directories lack write permission
/// (best effort: what remains is a stale temporary the next run removes).
fn remove_tree(path: &Path) {
    let _ = vessel_sys::fs::remove_tree(path);
}
