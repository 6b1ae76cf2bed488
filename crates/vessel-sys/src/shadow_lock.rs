//! The locks shadow-utils (`useradd`, `usermod --add-subuids`, `vipw`)
//! takes before it rewrites `/etc/passwd`, `/etc/subuid` and the like, so
//! that an edit of ours and one of theirs never interleave:
//!
//! 1. `lckpwdf(3)`: a POSIX write lock (`fcntl`) on `/etc/.pwd.lock`,
//!    waited for up to 15 seconds as glibc does;
//! 2. for each file, `FILE.lock`: a hard link to a temporary `FILE.PID`
//!    holding the owner's pid (shadow's `commonio_lock_nowait`). `link()`
//!    is atomic even on NFS, where `O_EXCL` was not; a lock whose pid no
//!    longer runs is stale and taken over, one held by a live process is
//!    refused at once.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long `lckpwdf` waits for `/etc/.pwd.lock`.
pub const PWD_LOCK_WAIT: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{path} is locked by another program editing the user database (useradd, usermod, vipw…) and stayed so for {}s", wait.as_secs())]
    PwdBusy { path: PathBuf, wait: Duration },
    #[error("{lock} is held by process {pid} (another useradd, usermod or config fakeroot editing {file})")]
    Held {
        lock: PathBuf,
        file: PathBuf,
        pid: u32,
    },
    #[error(
        "{lock} exists without a valid process id in it: remove it if no program is editing {file}"
    )]
    Invalid { lock: PathBuf, file: PathBuf },
    #[error("cannot lock {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LockError + '_ {
    move |source| LockError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// `lckpwdf`'s lock, released when dropped (closing the descriptor drops
/// the POSIX lock).
#[derive(Debug)]
pub struct PwdLock {
    _file: File,
}

/// Takes the user database's lock on `path` (`/etc/.pwd.lock`), waiting up
/// to `wait` for another holder to finish.
pub fn lock_pwd(path: &Path, wait: Duration) -> Result<PwdLock, LockError> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
        .map_err(io(path))?;
    let start = Instant::now();
    loop {
        match rustix::fs::fcntl_lock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(PwdLock { _file: file }),
            Err(e) if e == rustix::io::Errno::AGAIN || e == rustix::io::Errno::ACCESS => {
                if start.elapsed() >= wait {
                    return Err(LockError::PwdBusy {
                        path: path.to_path_buf(),
                        wait,
                    });
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(io(path)(e.into())),
        }
    }
}

/// `FILE.lock`, removed when dropped.
#[derive(Debug)]
pub struct FileLock {
    lock: PathBuf,
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.lock);
    }
}

/// Takes shadow-utils' lock of `file`, or says who holds it.
pub fn lock_file(file: &Path) -> Result<FileLock, LockError> {
    let lock = suffixed(file, ".lock");
    let pid = std::process::id();
    let tmp = suffixed(file, &format!(".{pid}"));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io(&tmp))?;
        // shadow writes the pid with its NUL.
        f.write_all(format!("{pid}\0").as_bytes())
            .and_then(|()| f.sync_data())
            .map_err(io(&tmp))?;
        drop(f);
        if try_link(&tmp, &lock)? {
            return Ok(());
        }
        let text = std::fs::read(&lock).map_err(io(&lock))?;
        let holder = std::str::from_utf8(&text)
            .ok()
            .and_then(|t| t.trim_end_matches(['\0', '\n']).trim().parse::<u32>().ok())
            .filter(|p| *p > 0);
        let Some(holder) = holder else {
            return Err(LockError::Invalid {
                lock: lock.clone(),
                file: file.to_path_buf(),
            });
        };
        let alive = i32::try_from(holder)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
            // EPERM: it runs, as another user.
            .is_some_and(|p| {
                !matches!(
                    rustix::process::test_kill_process(p),
                    Err(rustix::io::Errno::SRCH)
                )
            });
        if alive {
            return Err(LockError::Held {
                lock: lock.clone(),
                file: file.to_path_buf(),
                pid: holder,
            });
        }
        // Stale: its process is gone.
        std::fs::remove_file(&lock).map_err(io(&lock))?;
        if try_link(&tmp, &lock)? {
            return Ok(());
        }
        Err(LockError::Io {
            path: lock.clone(),
            source: std::io::Error::from(std::io::ErrorKind::AlreadyExists),
        })
    })();
    let _ = std::fs::remove_file(&tmp);
    result.map(|()| FileLock { lock })
}

/// Links `tmp` to `lock`: `false` when `lock` exists. The link count is
/// checked as shadow does, since NFS may report a failed link() that
/// succeeded, or the reverse.
fn try_link(tmp: &Path, lock: &Path) -> Result<bool, LockError> {
    match std::fs::hard_link(tmp, lock) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(io(lock)(e)),
    }
    let nlink = std::fs::metadata(tmp).map_err(io(tmp))?.nlink();
    Ok(nlink == 2)
}

fn suffixed(file: &Path, suffix: &str) -> PathBuf {
    let mut name = file.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_lock_is_exclusive_and_goes_away() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("subuid");
        std::fs::write(&file, "").unwrap();
        let held = lock_file(&file).unwrap();
        let text = std::fs::read(dir.path().join("subuid.lock")).unwrap();
        assert_eq!(text, format!("{}\0", std::process::id()).as_bytes());
        // Held by a live process (this one): refused by name.
        let err = lock_file(&file).unwrap_err().to_string();
        assert!(err.contains("subuid.lock is held by process"), "{err}");
        drop(held);
        assert!(!dir.path().join("subuid.lock").exists());
        // No temporary file is left.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_stale_lock_is_taken_over_and_a_bad_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("subgid");
        let lock = dir.path().join("subgid.lock");
        // A pid above the kernel's maximum runs nowhere.
        std::fs::write(&lock, "4194305\0").unwrap();
        drop(lock_file(&file).unwrap());
        assert!(!lock.exists());
        std::fs::write(&lock, "not a pid").unwrap();
        let err = lock_file(&file).unwrap_err().to_string();
        assert!(err.contains("without a valid process id"), "{err}");
    }

    #[test]
    fn the_pwd_lock_can_be_taken() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".pwd.lock");
        let lock = lock_pwd(&path, Duration::ZERO).unwrap();
        drop(lock);
        // POSIX locks do not conflict within one process; taking it again
        // after the drop works.
        lock_pwd(&path, Duration::ZERO).unwrap();
    }
}
