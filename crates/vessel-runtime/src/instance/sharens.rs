//! `--sharens`: the ranks of a job step on a node share one container.
//!
//! Commands of the same user, in the same job step (an MPI launch, a Slurm
//! step, else the same parent process), with the same image, options and
//! working directory, are one container: one user and mount namespace (so
//! Open MPI's single-copy transport, CMA, works between ranks), one FUSE
//! server and page cache (so the image's libraries are in memory once),
//! one `/dev/shm` and, with `--pid`, one PID namespace.
//!
//! The container is an instance named after all that (`sharens-KEY`):
//! the first command starts it, with no command of its own, and every
//! command, the first included, joins it as a **member**, with its own
//! environment and arguments, made from the instance's
//! [`CommandBasis`](crate::plan::CommandBasis). Joining is by the instance's
//! private record and the init's pidfd, as `exec instance://` joins.
//!
//! A member connects to a socket in the instance's private record
//! directory; the container's **keeper** (a process of its monitor's)
//! holds it from then on by a pidfd, and the member, unless it must stay
//! as the parent of its command in a PID namespace, becomes that command
//! (an exec keeps the pid): no process of Vessel's stays beside a rank,
//! and signals and exit status are the rank's own. When the last member
//! has ended, however it ended, the keeper stops the container; when the
//! container ends otherwise (a job's end, `instance stop`), the keeper
//! ends its members. Either way it removes the container's socket, record
//! and lock. The lock file beside the records makes "find or start, then
//! join" and "the last has gone, stop" one step each, so that a command
//! never joins a container that is ending.

use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use vessel_image::Image;
use vessel_sys::join::Process;
use vessel_sys::path::Flock;

use super::{find, private_dir, remove_record, InstanceError, Places, Stop};
use crate::options::{Action, Host, LaunchOptions};

/// How long a started container waits for its first member, which is the
/// command that started it: longer only if that command died before
/// joining.
const FIRST_MEMBER_WAIT: Duration = Duration::from_secs(60);

/// The socket members connect to, in the instance's record directory.
const MEMBERS_SOCKET: &str = "members.sock";

/// A member's answer from the monitor: it counts.
const ACCEPTED: u8 = b'+';

/// Runs `opts`' action in the shared container of this job step, started
/// from `image` if it does not run yet; returns the command's status.
pub fn run(opts: &LaunchOptions, host: &Host, image: Image) -> Result<i32, InstanceError> {
    let action = opts.action.clone().ok_or_else(|| InstanceError::Failed {
        name: "sharens".into(),
        problem: "no command to run".into(),
    })?;
    let scope = scope(&host.env);
    let name = name(opts, host, &image, &scope);
    tracing::debug!("--sharens: container {name} for {scope}");
    let places = Places::current(host);
    private_dir(&places.records)?;
    let lock_path = lock_path(&places, &name);
    // Joining a running container takes the lock shared, so that the ranks
    // of a node join at once; starting, replacing and stopping one take it
    // alone.
    let shared = Lock::shared(&lock_path)?;
    let mut joined = try_join(&places, host.uid, &name).ok();
    drop(shared);
    if joined.is_none() {
        joined = join_or_start(opts, host, image, &places, &name, &lock_path)?;
    }
    let (found, member) = joined.ok_or_else(|| InstanceError::Failed {
        name: name.clone(),
        problem: "the shared container ended while this command was joining it".into(),
    })?;
    let Some(basis) = &found.record.vessel.basis else {
        return Err(InstanceError::Failed {
            name,
            problem: "its record does not say how to run commands in it".into(),
        });
    };
    let command = basis
        .command(opts, host, &action)
        .map_err(crate::LaunchError::from)?;
    for w in &command.warnings {
        tracing::warn!("{w}");
    }
    let cwd = found
        .record
        .vessel
        .cwd
        .clone()
        .map(PathBuf::from)
        .unwrap_or_else(|| host.cwd.clone());
    // Counted by its pid from here on: the socket is not needed.
    drop(member);
    let status = super::join::enter(
        &found,
        super::join::Entry {
            argv: command.argv,
            env: command.env,
            native: command.native,
            cwd,
            member: true,
        },
    )?;
    Ok(status)
}

/// Finds the running container `name` and connects to it as a member.
fn try_join(
    places: &Places,
    uid: u32,
    name: &str,
) -> Result<(super::Found, UnixStream), InstanceError> {
    let found = find(places, uid, name)?;
    let member = connect(&found)?;
    Ok((found, member))
}

/// Under the lock, held alone: joins the container `name`, stopping one
/// that does not take members and starting it from `image` if none runs.
/// `None` when it ended meanwhile.
fn join_or_start(
    opts: &LaunchOptions,
    host: &Host,
    image: Image,
    places: &Places,
    name: &str,
    lock_path: &Path,
) -> Result<Option<(super::Found, UnixStream)>, InstanceError> {
    let lock = Lock::take(lock_path)?;
    let mut image = Some(image);
    // Twice at most: a container found ending is stopped, then started anew.
    for _ in 0..3 {
        let found = match find(places, host.uid, name) {
            Ok(found) => found,
            Err(InstanceError::NotFound { .. }) => {
                let Some(image) = image.take() else {
                    return Ok(None);
                };
                let container = LaunchOptions {
                    // The container's own command does nothing: its members
                    // bring theirs.
                    action: Some(Action::Exec(Vec::new())),
                    ..opts.clone()
                };
                let req = super::StartRequest {
                    name: name.to_string(),
                    pid_file: None,
                    sharens: true,
                    close_in_monitor: Some(lock._held.as_raw_fd()),
                };
                super::start(&container, host, image, &req)?;
                continue;
            }
            Err(e) => return Err(e),
        };
        match connect(&found) {
            Ok(member) => return Ok(Some((found, member))),
            Err(e) => {
                tracing::debug!("--sharens: {name} does not take members ({e}): replacing it");
                let stop = Stop {
                    signal: 15,
                    timeout: Duration::from_secs(5),
                    force: false,
                };
                super::stop(&found, stop)?;
            }
        }
    }
    Ok(None)
}

/// What makes commands one job step's ranks: Open MPI's or PMIx's job
/// (`mpirun` sets it for its ranks, Slurm's PMIx plugin for a step's
/// tasks), else the Slurm step, else the parent process (its pid and start
/// time, so that a recycled pid is another scope).
pub fn scope(env: &[(std::ffi::OsString, std::ffi::OsString)]) -> String {
    let get = |key: &str| {
        env.iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.to_string_lossy().into_owned())
            .filter(|v| !v.is_empty())
    };
    if let Some(ns) = get("PMIX_NAMESPACE").or_else(|| get("OMPI_MCA_ess_base_jobid")) {
        return format!("MPI job {ns}");
    }
    if let (Some(job), Some(step)) = (get("SLURM_JOB_ID"), get("SLURM_STEP_ID")) {
        return format!("Slurm step {job}.{step}");
    }
    let parent = vessel_sys::process::getppid();
    let started = vessel_sys::join::start_time(parent).unwrap_or(0);
    format!("parent process {parent} (started at {started})")
}

/// What makes this command a rank of a parallel launch of several ranks:
/// Open MPI's, a PMI launcher's (MPICH's Hydra, Slurm's PMI) or a Slurm
/// step's task count above one; `None` for a command run alone.
pub fn parallel_launch(env: &[(std::ffi::OsString, std::ffi::OsString)]) -> Option<String> {
    let count = |key: &str| {
        env.iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.to_str()?.parse::<u64>().ok())
            .filter(|&n| n > 1)
    };
    if let Some(n) = count("OMPI_COMM_WORLD_SIZE") {
        return Some(format!("an Open MPI launch of {n} ranks"));
    }
    if let Some(n) = count("PMI_SIZE").or_else(|| count("PMIX_SIZE")) {
        return Some(format!("an MPI launch of {n} ranks"));
    }
    count("SLURM_STEP_NUM_TASKS").map(|n| format!("a Slurm step of {n} tasks"))
}

/// Warnings for a rank of a parallel launch run without `--sharens` with
/// options that part it from the other ranks of its node, where MPI's
/// shared memory needs them together.
pub fn apart_warnings(opts: &LaunchOptions, launch: &str) -> Vec<String> {
    let advice = "add --sharens so that the ranks of a node share one container";
    let mut out = Vec::new();
    if opts.contain {
        out.push(format!(
            "--contain gives each rank of {launch} its own /dev/shm: MPI's shared-memory transport cannot work between the ranks on this node (Open MPI falls back to the network or fails); {advice}"
        ));
    }
    if opts.pid {
        out.push(format!(
            "--pid gives each rank of {launch} its own PID namespace: MPI's single-copy transports (CMA, XPMEM) cannot reach the other ranks on this node; {advice}"
        ));
    }
    if opts.ipc {
        out.push(format!(
            "--ipc gives each rank of {launch} its own System V IPC namespace: shared-memory segments of the other ranks on this node are out of reach; {advice}"
        ));
    }
    out
}

/// Open MPI's shared-memory transport settings for ranks in containers of
/// their own (each its own user namespace), where its default single-copy
/// mechanism (CMA) cannot work: the kernel refuses it between user
/// namespaces, and Open MPI 4.1 then hangs on large messages. Copying is
/// chosen instead, as if the user had exported it, unless the user has
/// chosen (in any of Apptainer's ways). Nothing for a command run alone.
pub fn apart_open_mpi_settings(
    env: &[(std::ffi::OsString, std::ffi::OsString)],
) -> Vec<(std::ffi::OsString, std::ffi::OsString)> {
    // Any launcher: under `srun --mpi=pmix` Open MPI's ranks learn their
    // count only once started; other MPIs ignore Open MPI's variables.
    if parallel_launch(env).is_none() {
        return Vec::new();
    }
    // Open MPI 4 calls its shared-memory transport vader, 5 calls it sm.
    [
        "OMPI_MCA_btl_vader_single_copy_mechanism",
        "OMPI_MCA_btl_sm_single_copy_mechanism",
    ]
    .into_iter()
    .filter(|name| {
        !env.iter().any(|(k, _)| {
            let k = k.to_string_lossy();
            k == *name
                || k.strip_prefix("APPTAINERENV_")
                    .or_else(|| k.strip_prefix("SINGULARITYENV_"))
                    == Some(name)
        })
    })
    .map(|name| (name.into(), "none".into()))
    .collect()
}

/// The instance's name: `sharens-` and a digest of the user, the scope, the
/// image (the opened file itself, by device and inode, and its path) and
/// every option but the command.
fn name(opts: &LaunchOptions, host: &Host, image: &Image, scope: &str) -> String {
    let identity = match image.file().map(fs::File::metadata) {
        Some(Ok(m)) => format!("{}:{}", m.dev(), m.ino()),
        _ => fs::metadata(image.path())
            .map(|m| format!("{}:{}", m.dev(), m.ino()))
            .unwrap_or_default(),
    };
    let options = LaunchOptions {
        action: None,
        ..opts.clone()
    };
    let mut digest = Sha256::new();
    digest.update(format!(
        "{}\n{scope}\n{identity} {}\n{}\n{options:?}",
        host.uid,
        image.path().display(),
        host.cwd.display()
    ));
    let hex: String = digest
        .finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sharens-{hex}")
}

fn lock_path(places: &Places, name: &str) -> PathBuf {
    places.records.join(format!(".{name}.lock"))
}

/// An exclusive `flock` on a lock file of the user's private records
/// directory, held until dropped.
struct Lock {
    _held: fs::File,
}

impl Lock {
    fn take(path: &Path) -> Result<Lock, InstanceError> {
        Lock::take_as(path, Flock::Exclusive)?.ok_or_else(|| InstanceError::File {
            path: path.to_path_buf(),
            source: std::io::Error::other("the lock was not taken"),
        })
    }

    /// The lock, shared with other holders of it shared.
    fn shared(path: &Path) -> Result<Lock, InstanceError> {
        Lock::take_as(path, Flock::Shared)?.ok_or_else(|| InstanceError::File {
            path: path.to_path_buf(),
            source: std::io::Error::other("the lock was not taken"),
        })
    }

    /// The lock if no one holds it now, else `None`.
    fn try_take(path: &Path) -> Result<Option<Lock>, InstanceError> {
        Lock::take_as(path, Flock::ExclusiveNonBlocking)
    }

    fn take_as(path: &Path, how: Flock) -> Result<Option<Lock>, InstanceError> {
        let err = |source| InstanceError::File {
            path: path.to_path_buf(),
            source,
        };
        loop {
            let file = fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(path)
                .map_err(err)?;
            match vessel_sys::path::flock(&file, how) {
                Ok(()) => {}
                Err(e) if e.errno() == Some(vessel_sys::Errno::WOULDBLOCK) => return Ok(None),
                Err(e) => return Err(err(std::io::Error::other(e.to_string()))),
            }
            // Removed by the container's end while this waited: take the
            // file that is there now.
            let held = file.metadata().map_err(err)?;
            match fs::symlink_metadata(path) {
                Ok(now) if (now.dev(), now.ino()) == (held.dev(), held.ino()) => {
                    return Ok(Some(Lock { _held: file }))
                }
                _ => continue,
            }
        }
    }
}

/// Connects as a member to the instance's monitor: the monitor is the
/// process the record names (by the kernel's word on the socket), and it
/// answered that it counts this member.
fn connect(found: &super::Found) -> Result<UnixStream, InstanceError> {
    let dir = found.path.parent().unwrap_or(Path::new("."));
    let failed = |problem: String| InstanceError::Failed {
        name: found.record.name.clone(),
        problem,
    };
    let dir_fd = open_private_dir(dir, found.record.vessel.uid)?;
    let mut stream = UnixStream::connect(socket_in(&dir_fd))
        .map_err(|e| failed(format!("cannot reach its monitor: {e}")))?;
    let (pid, uid) = vessel_sys::join::peer_credentials(&stream)?;
    if uid != found.record.vessel.uid || pid != found.record.ppid {
        return Err(failed(format!(
            "its socket is held by process {pid} of uid {uid}, not by its monitor: refusing it"
        )));
    }
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut answer = [0u8; 1];
    match stream.read(&mut answer) {
        Ok(1) if answer[0] == ACCEPTED => {
            let _ = stream.set_read_timeout(None);
            Ok(stream)
        }
        _ => Err(failed("its monitor did not take this command".into())),
    }
}

/// Opens an instance's record directory, which must be the user's own and
/// writable by no one else; its socket is reached through the descriptor.
fn open_private_dir(dir: &Path, uid: u32) -> Result<fs::File, InstanceError> {
    let err = |source| InstanceError::File {
        path: dir.to_path_buf(),
        source,
    };
    let link = fs::symlink_metadata(dir).map_err(err)?;
    let file = fs::File::open(dir).map_err(err)?;
    let meta = file.metadata().map_err(err)?;
    if !meta.is_dir()
        || (meta.dev(), meta.ino()) != (link.dev(), link.ino())
        || meta.uid() != uid
        || meta.mode() & 0o022 != 0
    {
        return Err(InstanceError::Record {
            path: dir.to_path_buf(),
            problem: "not your own private directory: refusing to use it".into(),
        });
    }
    Ok(file)
}

/// The members' socket in the directory open as `dir` (a short path, which
/// a long home directory would not give: socket paths are limited to 107
/// bytes).
fn socket_in(dir: &fs::File) -> PathBuf {
    PathBuf::from(format!(
        "/proc/self/fd/{}/{MEMBERS_SOCKET}",
        dir.as_raw_fd()
    ))
}

/// Tells the members' keeper the container's init (pid and start time)
/// once it runs: counting starts.
pub(crate) struct MembersStart(fs::File);

impl MembersStart {
    pub(crate) fn start(mut self, init: i32, started: u64) {
        let _ = writeln!(self.0, "{init} {started}");
    }
}

/// The monitor's side, before its launch: the members' socket, bound in the
/// instance's record directory.
pub(crate) struct Members {
    listener: UnixListener,
    dir: PathBuf,
    record: PathBuf,
    lock: PathBuf,
    uid: u32,
}

impl Members {
    pub(crate) fn listen(places: &Places, name: &str, uid: u32) -> Result<Members, InstanceError> {
        let dir = places.records.join(name);
        let dir_fd = open_private_dir(&dir, uid)?;
        let path = socket_in(&dir_fd);
        let _ = fs::remove_file(&path);
        let listener = UnixListener::bind(&path).map_err(|source| InstanceError::File {
            path: dir.join(MEMBERS_SOCKET),
            source,
        })?;
        Ok(Members {
            listener,
            dir,
            record: places.record(name),
            lock: lock_path(places, name),
            uid,
        })
    }

    /// Counts the members in a process of its own (the **keeper**), which
    /// stops the container (signals its init) once the last member has
    /// gone, or when none came. Forked before the launch, from the
    /// single-threaded monitor, in the host's namespaces; it dies with the
    /// monitor.
    pub(crate) fn spawn(self) -> Result<MembersStart, InstanceError> {
        let (reader, writer) = vessel_sys::process::pipe()?;
        let monitor = vessel_sys::process::getpid().as_raw_nonzero().get();
        match vessel_sys::process::fork()? {
            vessel_sys::process::Fork::Child => {
                drop(writer);
                // A job's end signals every process of the step: the keeper
                // outlives the container to clean up after it, and ends
                // when its init has (or the launch failed).
                let _mask = vessel_sys::signal::SignalMask::block_forwarded();
                // Told the init once it runs; nothing when the launch failed.
                let mut line = String::new();
                let _ =
                    std::io::BufRead::read_line(&mut std::io::BufReader::new(reader), &mut line);
                let mut words = line.split_whitespace().map(str::parse::<u64>);
                if let (Some(Ok(pid)), Some(Ok(started))) = (words.next(), words.next()) {
                    let init = i32::try_from(pid)
                        .ok()
                        .and_then(|pid| Process::open_checked(pid, started, self.uid).ok());
                    if let Some(init) = init {
                        self.count(&init, monitor);
                    }
                }
                vessel_sys::process::exit_now(0)
            }
            // The monitor keeps no end of the socket: only the keeper answers.
            vessel_sys::process::Fork::Parent(_) => Ok(MembersStart(writer)),
        }
    }

    /// Counts the members until the last has gone (then stops the
    /// container) or the container has ended otherwise (a job's end, an
    /// `instance stop`); cleans up after it either way.
    fn count(self, init: &Process, monitor: i32) {
        let started = Instant::now();
        let mut members: Vec<Process> = Vec::new();
        let mut had_one = false;
        let _ = self.listener.set_nonblocking(true);
        loop {
            let timeout = (!had_one).then(|| FIRST_MEMBER_WAIT.saturating_sub(started.elapsed()));
            // The init's pidfd is readable once it has ended.
            let mut fds = vec![self.listener.as_fd(), init.as_fd()];
            fds.extend(members.iter().map(|m| m.as_fd()));
            let Ok(ready) = vessel_sys::join::wait_readable(&fds, timeout) else {
                return;
            };
            if ready[1] {
                tracing::debug!("--sharens: the container has ended, and its members with it");
                // Members became their commands: nothing else ends them.
                for member in &members {
                    let _ = member.signal(9);
                }
                if let Some(_lock) = self.lock(&mut members, false) {
                    self.clean_up(monitor);
                }
                return;
            }
            if ready[0] {
                had_one |= self.accept(&mut members, true);
            }
            let mut index = 1;
            members.retain(|_| {
                index += 1;
                !ready.get(index).copied().unwrap_or(false)
            });
            // A member's pidfd is readable once it has ended.
            let waited_out = !had_one && started.elapsed() >= FIRST_MEMBER_WAIT;
            if members.is_empty() && (had_one || waited_out) {
                let Some(_lock) = self.lock(&mut members, true) else {
                    continue;
                };
                tracing::debug!("--sharens: the last member has gone, stopping the container");
                self.clean_up(monitor);
                let _ = init.signal(15);
                return;
            }
        }
    }

    /// Takes the lock: then no command is between finding the container and
    /// being counted, and none joins it after this. The holder may be a
    /// command waiting to be counted: while the lock is awaited, arriving
    /// commands are counted (`None`: the container has members again) or,
    /// with `count` false (the container has ended), sent away.
    fn lock(&self, members: &mut Vec<Process>, count: bool) -> Option<Lock> {
        loop {
            match Lock::try_take(&self.lock) {
                Ok(Some(lock)) if count && self.accept(members, true) => {
                    drop(lock);
                    return None;
                }
                Ok(Some(lock)) => return Some(lock),
                Ok(None) if self.accept(members, count) && count => return None,
                Ok(None) => std::thread::sleep(Duration::from_millis(2)),
                Err(_) => return None,
            }
        }
    }

    /// Removes the container's socket, record and lock file, under the
    /// lock, if the record is still its own (`monitor`'s): a record whose
    /// monitor has gone may have been cleaned as stale, and the name taken
    /// by a new container, whose files these are then.
    fn clean_up(&self, monitor: i32) {
        match super::Record::read(&self.record, self.uid) {
            Ok(r) if r.ppid != monitor => return,
            _ => {}
        }
        let _ = fs::remove_file(self.dir.join(MEMBERS_SOCKET));
        remove_record(&self.record);
        let _ = fs::remove_dir(&self.dir);
        let _ = fs::remove_file(&self.lock);
    }

    /// Accepts the waiting members (the user's own processes only), and
    /// tells each that it counts (with `count`; else each is sent away
    /// unanswered); returns whether one was counted.
    fn accept(&self, members: &mut Vec<Process>, count: bool) -> bool {
        let mut any = false;
        while let Ok((mut stream, _)) = self.listener.accept() {
            if !count {
                // Closed unanswered: the command finds the container gone.
                continue;
            }
            // The member is the connecting process, held by a pidfd: it may
            // close the socket and become its command (an exec keeps the
            // pid), and it counts until that process ends.
            let member = match vessel_sys::join::peer_credentials(&stream) {
                Ok((pid, uid)) if uid == self.uid => vessel_sys::join::start_time(pid)
                    .and_then(|t| Process::open_checked(pid, t, uid).ok()),
                _ => None,
            };
            let Some(member) = member else { continue };
            if stream.write_all(&[ACCEPTED]).is_ok() {
                members.push(member);
                any = true;
            }
        }
        any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    fn env(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect()
    }

    #[test]
    fn the_scope_is_the_mpi_job_then_the_slurm_step_then_the_parent() {
        let slurm = [("SLURM_JOB_ID", "7"), ("SLURM_STEP_ID", "0")];
        assert_eq!(scope(&env(&slurm)), "Slurm step 7.0");
        let both = [("PMIX_NAMESPACE", "slurm.pmix.7.0"), ("SLURM_JOB_ID", "7")];
        assert_eq!(scope(&env(&both)), "MPI job slurm.pmix.7.0");
        // A batch script's own step is still a step; no step: the parent.
        assert!(scope(&env(&[("SLURM_JOB_ID", "7")])).starts_with("parent process "));
        assert!(scope(&[]).starts_with("parent process "));
    }

    #[test]
    fn ranks_of_parallel_launches_are_told_from_commands_run_alone() {
        let ompi = env(&[("OMPI_COMM_WORLD_SIZE", "4")]);
        assert_eq!(
            parallel_launch(&ompi).unwrap(),
            "an Open MPI launch of 4 ranks"
        );
        let srun = env(&[("SLURM_STEP_NUM_TASKS", "2"), ("SLURM_NTASKS", "2")]);
        assert_eq!(parallel_launch(&srun).unwrap(), "a Slurm step of 2 tasks");
        // One rank, or a batch script (no step task count), is alone.
        assert!(parallel_launch(&env(&[("OMPI_COMM_WORLD_SIZE", "1")])).is_none());
        assert!(parallel_launch(&env(&[("SLURM_NTASKS", "8")])).is_none());
        let apart = LaunchOptions {
            contain: true,
            pid: true,
            ..LaunchOptions::default()
        };
        let w = apart_warnings(&apart, "a Slurm step of 2 tasks");
        assert_eq!(w.len(), 2);
        assert!(w[0].starts_with("--contain") && w[1].starts_with("--pid"));
        assert!(w.iter().all(|w| w.ends_with("share one container")));
        assert!(apart_warnings(&LaunchOptions::default(), "x").is_empty());
    }

    #[test]
    fn ranks_apart_copy_instead_of_cma_unless_the_user_chose() {
        let names = |v: Vec<(OsString, OsString)>| -> Vec<String> {
            v.into_iter()
                .map(|(k, v)| format!("{}={}", k.to_string_lossy(), v.to_string_lossy()))
                .collect()
        };
        let ompi = env(&[("OMPI_COMM_WORLD_SIZE", "2")]);
        assert_eq!(
            names(apart_open_mpi_settings(&ompi)),
            [
                "OMPI_MCA_btl_vader_single_copy_mechanism=none",
                "OMPI_MCA_btl_sm_single_copy_mechanism=none"
            ]
        );
        let chosen = env(&[
            ("OMPI_COMM_WORLD_SIZE", "2"),
            (
                "APPTAINERENV_OMPI_MCA_btl_vader_single_copy_mechanism",
                "cma",
            ),
            ("OMPI_MCA_btl_sm_single_copy_mechanism", "cma"),
        ]);
        assert!(apart_open_mpi_settings(&chosen).is_empty());
        assert!(apart_open_mpi_settings(&env(&[("OMPI_COMM_WORLD_SIZE", "1")])).is_empty());
        let srun = env(&[("SLURM_STEP_NUM_TASKS", "4")]);
        assert_eq!(apart_open_mpi_settings(&srun).len(), 2);
        assert!(apart_open_mpi_settings(&env(&[("SLURM_NTASKS", "4")])).is_empty());
    }

    #[test]
    fn names_differ_by_scope_options_and_directory_but_not_by_command() {
        let dir = tempfile::tempdir().unwrap();
        let image = Image::Sandbox {
            path: dir.path().to_path_buf(),
        };
        let host = Host::for_tests();
        let opts = LaunchOptions {
            image: dir.path().to_path_buf(),
            action: Some(Action::Exec(vec!["a".into()])),
            ..LaunchOptions::default()
        };
        let base = name(&opts, &host, &image, "s");
        assert!(base.starts_with("sharens-") && base.len() == "sharens-".len() + 16);
        super::super::check_name(&base).unwrap();
        let other_command = LaunchOptions {
            action: Some(Action::Exec(vec!["b".into()])),
            ..opts.clone()
        };
        assert_eq!(name(&other_command, &host, &image, "s"), base);
        assert_ne!(name(&opts, &host, &image, "t"), base);
        let contained = LaunchOptions {
            contain: true,
            ..opts.clone()
        };
        assert_ne!(name(&contained, &host, &image, "s"), base);
        let elsewhere = Host {
            cwd: "/elsewhere".into(),
            ..Host::for_tests()
        };
        assert_ne!(name(&opts, &elsewhere, &image, "s"), base);
    }
}
