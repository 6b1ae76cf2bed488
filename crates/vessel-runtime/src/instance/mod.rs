//! Instances: containers that run in the background under a name, and the
//! commands that list, stop and join them.
//!
//! There is no daemon. `instance start` forks the instance's monitor, which
//! leaves the terminal's session (`setsid`, stdio to the log files) and
//! carries out an ordinary launch ([`crate::launch`]), whose payload is the
//! instance's init ([`init`]): it runs the start script and stays, reaping,
//! until it is stopped. The monitor writes the record once the init runs,
//! relays `instance stop`'s signal to it, and removes the record when the
//! container ends; if the monitor is killed, the init kills every process
//! of the container (it is their subreaper, and gets `SIGTERM` when its
//! parent dies). A record whose monitor is gone is stale: cleaned, never
//! listed.
//!
//! Records and logs lie where Apptainer keeps them:
//! `~/.apptainer/instances/app/HOST/USER/NAME/NAME.json` and
//! `~/.apptainer/instances/logs/HOST/USER/NAME.{out,err}`.

pub mod init;
pub mod join;
pub mod sharens;
mod start;

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use vessel_sys::join::Process;
use vessel_sys::Hint;

pub use start::{start, StartRequest};

#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    #[error("{0:?} is not a valid instance name: use letters, digits, '.', '_' and '-'")]
    BadName(String),
    #[error("an instance named {name} is already running (pid {pid})")]
    InUse {
        name: String,
        pid: i32,
        #[source]
        hint: Hint,
    },
    #[error("no instance named {name} is running")]
    NotFound {
        name: String,
        #[source]
        hint: Hint,
    },
    #[error("instance {name}: {problem}")]
    Failed { name: String, problem: String },
    #[error("{path}: {source}")]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {problem}")]
    Record { path: PathBuf, problem: String },
    #[error(transparent)]
    Launch(#[from] crate::LaunchError),
    #[error(transparent)]
    Sys(#[from] vessel_sys::SysError),
}

/// Checks an instance name as Apptainer does: letters, digits, `.`, `_`
/// and `-`, and not `.` or `..` (it names a directory).
pub fn check_name(name: &str) -> Result<(), InstanceError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(InstanceError::BadName(name.to_string()))
    }
}

/// Where one user's instances are recorded on this host.
#[derive(Clone, Debug)]
pub struct Places {
    /// `~/.apptainer/instances/app/HOST/USER`.
    pub records: PathBuf,
    /// `~/.apptainer/instances/logs/HOST/USER`.
    pub logs: PathBuf,
}

impl Places {
    /// The places of the user `user`, whose home is `home`.
    pub fn new(home: &Path, user: &str) -> Places {
        let host = fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".into());
        let base = home.join(".apptainer/instances");
        Places {
            records: base.join("app").join(&host).join(user),
            logs: base.join("logs").join(&host).join(user),
        }
    }

    /// The places of the user running this process.
    pub fn current(host: &crate::Host) -> Places {
        // The account's home, not $HOME: `instance list` in another shell
        // (or a job) must find the same records.
        let home = host
            .user
            .as_ref()
            .map(|u| PathBuf::from(&u.home))
            .unwrap_or_else(|| host.home.clone());
        Places::new(&home, &host.user_name())
    }

    pub fn record(&self, name: &str) -> PathBuf {
        self.records.join(name).join(format!("{name}.json"))
    }

    pub fn log_out(&self, name: &str) -> PathBuf {
        self.logs.join(format!("{name}.out"))
    }

    pub fn log_err(&self, name: &str) -> PathBuf {
        self.logs.join(format!("{name}.err"))
    }
}

/// Creates `dir` and its missing parents, private to the user (0700).
fn private_dir(dir: &Path) -> Result<(), InstanceError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| InstanceError::File {
            path: dir.to_path_buf(),
            source,
        })
}

/// An instance's record, in Apptainer's fields (`pid` is the container's
/// first process, `ppid` its monitor), with Vessel's own under `vessel`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    pub pid: i32,
    pub ppid: i32,
    pub name: String,
    pub user: String,
    pub image: String,
    pub userns: bool,
    pub cgroup: bool,
    pub ip: String,
    #[serde(rename = "logErrPath")]
    pub log_err_path: String,
    #[serde(rename = "logOutPath")]
    pub log_out_path: String,
    pub checkpoint: String,
    #[serde(rename = "sharensMode")]
    pub sharens_mode: bool,
    pub vessel: VesselRecord,
}

/// What Vessel needs to check, stop and join an instance.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct VesselRecord {
    /// The monitor's start time (`ppid`'s), so that a recycled pid is
    /// never taken for it. Before the monitor writes the record, `ppid` is
    /// the starting command's pid and this its start time.
    pub monitor_start: u64,
    /// The init's start time (`pid`'s); 0 while starting.
    pub init_start: u64,
    /// The namespaces the instance has besides user and mount.
    pub pid_ns: bool,
    pub ipc_ns: bool,
    pub uts_ns: bool,
    pub net_ns: bool,
    /// The shell code that sets the container's environment, then runs
    /// `"$@"` (the instance's own, reused by `exec instance://`).
    pub script: String,
    /// The environment the script starts with.
    pub env: Vec<(String, String)>,
    pub uid: u32,
    /// The command's privileges, which joining commands get too: real
    /// root's capabilities limited to these (by name), `no_new_privs`.
    pub capabilities: Option<Vec<String>>,
    pub no_new_privs: bool,
    /// What a member of a shared container (`--sharens`) makes its own
    /// command from.
    #[serde(default)]
    pub basis: Option<crate::plan::CommandBasis>,
    /// The container's working directory, members' too.
    #[serde(default)]
    pub cwd: Option<String>,
}

impl Record {
    /// Writes the record at `path` atomically (a new file renamed over
    /// it), readable by the user alone.
    pub fn write(&self, path: &Path) -> Result<(), InstanceError> {
        let err = |source| InstanceError::File {
            path: path.to_path_buf(),
            source,
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut tmp = tempfile::Builder::new()
            .prefix(".record-")
            .tempfile_in(dir)
            .map_err(err)?;
        let text = serde_json::to_string_pretty(self).map_err(|e| err(e.into()))?;
        tmp.write_all(text.as_bytes()).map_err(err)?;
        tmp.persist(path).map_err(|e| err(e.error))?;
        Ok(())
    }

    /// Reads the record at `path`, which must be the user's own file in a
    /// directory no one else may write to (anything else is refused: a
    /// record names processes to signal and namespaces to join).
    pub fn read(path: &Path, uid: u32) -> Result<Record, InstanceError> {
        let problem = |p: &str| InstanceError::Record {
            path: path.to_path_buf(),
            problem: p.to_string(),
        };
        let link = fs::symlink_metadata(path).map_err(|source| InstanceError::File {
            path: path.to_path_buf(),
            source,
        })?;
        if !link.is_file() {
            return Err(problem("not a plain file: refusing to use it"));
        }
        let file = fs::File::open(path).map_err(|source| InstanceError::File {
            path: path.to_path_buf(),
            source,
        })?;
        let meta = file.metadata().map_err(|source| InstanceError::File {
            path: path.to_path_buf(),
            source,
        })?;
        if (meta.dev(), meta.ino()) != (link.dev(), link.ino()) {
            return Err(problem("replaced while being read"));
        }
        if meta.uid() != uid || meta.mode() & 0o022 != 0 {
            return Err(problem("not your own private file: refusing to use it"));
        }
        if let Some(dir) = path.parent() {
            let d = fs::metadata(dir).map_err(|source| InstanceError::File {
                path: dir.to_path_buf(),
                source,
            })?;
            if d.uid() != uid || d.mode() & 0o022 != 0 {
                return Err(problem(
                    "its directory is not yours alone: refusing to use it",
                ));
            }
        }
        // Read whole, then parsed: serde_json reads a bare `File` a byte
        // per system call, a quarter of the CPU each rank of a --sharens
        // job spent joining (issue 19).
        let mut text = Vec::with_capacity(meta.len().min(1 << 20) as usize);
        (&file)
            .read_to_end(&mut text)
            .map_err(|source| InstanceError::File {
                path: path.to_path_buf(),
                source,
            })?;
        let record: Record =
            serde_json::from_slice(&text).map_err(|e| problem(&format!("unreadable ({e})")))?;
        Ok(record)
    }

    /// The monitor, if it still runs.
    pub fn monitor(&self) -> Option<Process> {
        Process::open_checked(self.ppid, self.vessel.monitor_start, self.vessel.uid).ok()
    }

    /// The init, if it still runs.
    pub fn init(&self) -> Option<Process> {
        if self.vessel.init_start == 0 {
            return None;
        }
        Process::open_checked(self.pid, self.vessel.init_start, self.vessel.uid).ok()
    }
}

/// An instance found by [`list`]: its record and where it lies.
#[derive(Clone, Debug)]
pub struct Found {
    pub record: Record,
    pub path: PathBuf,
}

/// A shell-style pattern (`*`, `?`) matched against a whole name.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some(('*', rest)) => (0..=n.len()).any(|i| go(rest, &n[i..])),
            Some(('?', rest)) => !n.is_empty() && go(rest, &n[1..]),
            Some((c, rest)) => n.first() == Some(c) && go(rest, &n[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    go(&p, &n)
}

/// The running instances whose names match `pattern` (all with `None`),
/// by name. Records of instances whose monitor is gone are removed on the
/// way, with their directory.
pub fn list(places: &Places, uid: u32, pattern: Option<&str>) -> Vec<Found> {
    let mut out = Vec::new();
    let Ok(dir) = fs::read_dir(&places.records) else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if check_name(&name).is_err() || pattern.is_some_and(|p| !glob_match(p, &name)) {
            continue;
        }
        let path = places.record(&name);
        let Ok(record) = Record::read(&path, uid) else {
            continue;
        };
        if record.monitor().is_none() {
            tracing::debug!("instance {name}: its monitor is gone, removing the stale record");
            remove_record(&path);
            continue;
        }
        out.push(Found { record, path });
    }
    out.sort_by(|a, b| a.record.name.cmp(&b.record.name));
    out
}

/// Removes a record file and its (then empty) directory.
pub fn remove_record(path: &Path) {
    let _ = fs::remove_file(path);
    if let Some(dir) = path.parent() {
        let _ = fs::remove_dir(dir);
    }
}

/// The one running instance named `name`.
pub fn find(places: &Places, uid: u32, name: &str) -> Result<Found, InstanceError> {
    check_name(name)?;
    list(places, uid, None)
        .into_iter()
        .find(|f| f.record.name == name)
        .ok_or_else(|| InstanceError::NotFound {
            name: name.to_string(),
            hint: Hint::new("see the running ones with: instance list"),
        })
}

/// How to stop an instance.
#[derive(Clone, Copy, Debug)]
pub struct Stop {
    /// The signal sent first (`SIGTERM` by default).
    pub signal: i32,
    /// How long to wait for the instance to end before `SIGKILL`.
    pub timeout: Duration,
    /// `SIGKILL` at once.
    pub force: bool,
}

/// Stops one instance: its signal to the monitor (which relays it to the
/// container), a wait of at most `timeout`, then `SIGKILL` to the monitor
/// (whose init then kills every process of the container). Returns once
/// the monitor and the init are gone, and the record with them.
pub fn stop(found: &Found, how: Stop) -> Result<(), InstanceError> {
    let r = &found.record;
    let failed = |problem: String| InstanceError::Failed {
        name: r.name.clone(),
        problem,
    };
    let init = r.init();
    let Some(monitor) = r.monitor() else {
        remove_record(&found.path);
        return Ok(());
    };
    let first = if how.force { 9 } else { how.signal };
    monitor
        .signal(first)
        .map_err(|e| failed(format!("could not signal it: {e}")))?;
    let deadline = Instant::now() + how.timeout;
    if !monitor.wait_gone(deadline) {
        tracing::debug!(
            "instance {}: still running after {:?}, killing it",
            r.name,
            how.timeout
        );
        let _ = monitor.signal(9);
        monitor.wait_gone(Instant::now() + Duration::from_secs(30));
    }
    if let Some(init) = init {
        if !init.wait_gone(Instant::now() + Duration::from_secs(30)) {
            let _ = init.signal(9);
            init.wait_gone(Instant::now() + Duration::from_secs(10));
        }
    }
    remove_record(&found.path);
    Ok(())
}

/// A signal named as `kill` takes it: `TERM`, `SIGTERM`, `term` or `15`.
pub fn signal_number(name: &str) -> Option<i32> {
    if let Ok(n) = name.parse::<i32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    let n = match bare {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "KILL" => 9,
        "USR1" => 10,
        "USR2" => 12,
        "ALRM" => 14,
        "TERM" => 15,
        "CONT" => 18,
        "STOP" => 19,
        "WINCH" => 28,
        "PWR" => 30,
        _ => return None,
    };
    Some(n)
}

/// Resource use of an instance's processes, from `/proc`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Stats {
    pub name: String,
    pub pids: usize,
    /// User and system CPU time, in seconds.
    pub cpu_seconds: f64,
    /// Resident memory, in bytes.
    pub memory_bytes: u64,
}

/// The instance's init and its descendants, summed.
pub fn stats(found: &Found) -> Stats {
    let r = &found.record;
    let mut pids = vec![r.pid];
    pids.extend(vessel_sys::join::descendants(r.pid));
    let tick = 100.0;
    let page = 4096u64;
    let mut s = Stats {
        name: r.name.clone(),
        ..Stats::default()
    };
    for pid in pids {
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(end) = stat.rfind(')') else { continue };
        let f: Vec<&str> = stat[end + 2..].split(' ').collect();
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        s.pids += 1;
        s.cpu_seconds += (num(11) + num(12)) as f64 / tick;
        s.memory_bytes += num(21) * page;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_as_apptainer_checks_them() {
        for good in ["web", "my-db_1", "a.b"] {
            check_name(good).unwrap();
        }
        for bad in ["", ".", "..", "a/b", "a b", "x;y", "é"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn patterns_match_whole_names() {
        assert!(glob_match("web*", "web1"));
        assert!(glob_match("*", "x"));
        assert!(glob_match("w?b", "web"));
        assert!(!glob_match("web", "web1"));
        assert!(!glob_match("w?b", "wb"));
    }

    #[test]
    fn signals_are_named_as_kill_names_them() {
        assert_eq!(signal_number("TERM"), Some(15));
        assert_eq!(signal_number("SIGINT"), Some(2));
        assert_eq!(signal_number("kill"), Some(9));
        assert_eq!(signal_number("10"), Some(10));
        assert_eq!(signal_number("NOPE"), None);
        assert_eq!(signal_number("0"), None);
    }

    #[test]
    fn a_record_is_read_back_only_from_a_private_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let inst = dir.path().join("web");
        fs::DirBuilder::new().mode(0o700).create(&inst).unwrap();
        let path = inst.join("web.json");
        let uid = vessel_sys::process::getuid();
        let record = Record {
            pid: 2,
            ppid: 1,
            name: "web".into(),
            user: "u".into(),
            image: "/i.sif".into(),
            userns: true,
            cgroup: false,
            ip: String::new(),
            log_err_path: "/l.err".into(),
            log_out_path: "/l.out".into(),
            checkpoint: String::new(),
            sharens_mode: false,
            vessel: VesselRecord {
                uid,
                ..VesselRecord::default()
            },
        };
        record.write(&path).unwrap();
        let back = Record::read(&path, uid).unwrap();
        assert_eq!((back.pid, back.ppid, back.name.as_str()), (2, 1, "web"));
        // Apptainer's field names.
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"logErrPath\"") && text.contains("\"sharensMode\""));
        // Another user's record, or one others may write, is refused.
        assert!(Record::read(&path, uid + 1).is_err());
        fs::set_permissions(&path, fs::Permissions::from_mode(0o620)).unwrap();
        assert!(Record::read(&path, uid).is_err());
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        fs::set_permissions(&inst, fs::Permissions::from_mode(0o777)).unwrap();
        assert!(Record::read(&path, uid).is_err());
        // A link is never followed.
        fs::set_permissions(&inst, fs::Permissions::from_mode(0o700)).unwrap();
        let link = inst.join("other.json");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(Record::read(&link, uid).is_err());
    }

    #[test]
    fn places_follow_apptainers_layout() {
        let p = Places::new(Path::new("/h"), "u");
        let r = p.record("web");
        assert!(r.starts_with("/h/.apptainer/instances/app/"));
        assert!(r.ends_with("u/web/web.json"));
        assert!(p.log_err("web").ends_with("u/web.err"));
        assert!(p
            .log_out("web")
            .starts_with("/h/.apptainer/instances/logs/"));
    }
}
