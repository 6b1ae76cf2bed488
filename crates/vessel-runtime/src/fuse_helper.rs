//! The FUSE programs a run may need beside Vessel's own image server:
//! `fuse2fs` for ext3 overlay images without privilege, and
//! `fuse-overlayfs` where the kernel's overlayfs cannot be used (an upper
//! layer on FUSE, a kernel without overlayfs in user namespaces, or the
//! site's `enable overlay = driver`). Each runs in the container's
//! namespaces for as long as the container, and is asked to unmount (and
//! so to write its file system back) when the run ends or its monitor dies.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A FUSE helper serving a mount of the container.
pub struct Helper {
    child: Child,
    target: PathBuf,
    name: &'static str,
}

/// Why a helper could not mount.
#[derive(Debug)]
pub struct HelperError {
    pub problem: String,
    pub hint: Option<&'static str>,
}

/// Where a program is installed, looked up in the usual system places
/// only: the container's helpers never come from the user's `PATH`.
pub fn find(program: &str) -> Option<PathBuf> {
    crate::gpu::driver::PROGRAM_DIRS
        .iter()
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
}

/// Mounts the ext3 file system at `offset` in `file` at `target` with
/// `fuse2fs`, read-write when `writable`. Its messages go to a log in the
/// session, shown when it fails.
pub fn fuse2fs(
    file: &File,
    offset: u64,
    writable: bool,
    target: &Path,
    session: &Path,
) -> Result<Helper, HelperError> {
    let program = find("fuse2fs").ok_or(HelperError {
        problem: "fuse2fs is not installed".into(),
        hint: Some(
            "install fuse2fs (Debian/Ubuntu package fuse2fs, e2fsprogs elsewhere), or use an overlay directory",
        ),
    })?;
    // `fakeroot`: fuse2fs checks no permissions of its own (the kernel
    // does, on the owners it shows), so that overlayfs's work directory
    // is usable, as Apptainer mounts its ext3 overlays.
    let mut options = String::from("fakeroot,allow_other");
    if !writable {
        options.push_str(",ro");
    }
    if offset > 0 {
        options.push_str(&format!(",offset={offset}"));
    }
    let fd = file.as_raw_fd();
    let mut cmd = Command::new(program);
    cmd.arg("-f")
        .arg("-o")
        .arg(&options)
        .arg(format!("/proc/self/fd/{fd}"))
        .arg(target);
    start(cmd, &[fd], target, session, "fuse2fs")
}

/// Mounts an overlay of `options` (`lowerdir=…,upperdir=…,workdir=…`) at
/// `target` with `fuse-overlayfs`.
pub fn fuse_overlayfs(options: &str, target: &Path, session: &Path) -> Result<Helper, HelperError> {
    let program = find("fuse-overlayfs").ok_or(HelperError {
        problem: "fuse-overlayfs is not installed".into(),
        hint: Some("install fuse-overlayfs (the package of that name), or ask the administrator for a kernel with overlayfs in user namespaces (Linux 5.11 or newer)"),
    })?;
    // The kernel's `userxattr` has no meaning to fuse-overlayfs; `noacl`
    // because a tmpfs upper layer takes no ACLs, as Apptainer passes it.
    let options = options.replace(",userxattr", "") + ",noacl";
    let mut cmd = Command::new(program);
    cmd.arg("-f").arg("-o").arg(options).arg(target);
    start(cmd, &[], target, session, "fuse-overlayfs")
}

/// Starts `cmd` and waits until its file system is mounted at `target`.
fn start(
    mut cmd: Command,
    keep: &[i32],
    target: &Path,
    session: &Path,
    name: &'static str,
) -> Result<Helper, HelperError> {
    let log_path = session.join(format!("{name}-{}.log", std::process::id()));
    let log = File::create(&log_path).map_err(|e| HelperError {
        problem: format!("could not make its log: {e}"),
        hint: None,
    })?;
    let log2 = log.try_clone().map_err(|e| HelperError {
        problem: e.to_string(),
        hint: None,
    })?;
    cmd.stdin(Stdio::null()).stdout(log).stderr(log2);
    tracing::debug!("mount: {name} on {} ({cmd:?})", target.display());
    let before = device_of(target);
    let mut child = vessel_sys::process::spawn_helper(&mut cmd, keep).map_err(|e| HelperError {
        problem: format!("could not start it: {e}"),
        hint: None,
    })?;
    let said = || {
        std::fs::read_to_string(&log_path)
            .unwrap_or_default()
            .trim()
            .replace('\n', "; ")
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(HelperError {
                problem: format!("it ended ({status}): {}", said()),
                hint: None,
            });
        }
        if device_of(target) != before {
            return Ok(Helper {
                child,
                target: target.to_path_buf(),
                name,
            });
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(HelperError {
                problem: format!("it did not mount within 20 s: {}", said()),
                hint: None,
            });
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The device of `path`, which changes once a file system is mounted on it.
fn device_of(path: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| m.dev())
}

impl Helper {
    /// Unmounts its file system and waits for it to write everything
    /// back and end (killed after 30 s).
    pub fn stop(mut self) {
        let _ = vessel_sys::mount::unmount_detach(&self.target);
        if let Some(pid) = vessel_sys::process::Pid::from_raw(self.child.id() as i32) {
            let _ = vessel_sys::process::kill(pid, vessel_sys::signal::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) if Instant::now() > deadline => {
                    tracing::warn!("{} did not end: killing it", self.name);
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }
}
