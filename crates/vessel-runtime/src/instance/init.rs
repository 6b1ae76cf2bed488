//! An instance's init: the payload of an instance's launch, which runs the
//! start script (or runscript) in a process group of its own and stays
//! after it, reaping every orphan, until it is stopped.
//!
//! It is `vessel` re-executed (`__instance-init`) by the payload, before
//! the payload enters the container. The reason is `exec instance://`: a
//! joining command enters the instance's namespaces through the init (with
//! `setns` on its pidfd), and the kernel allows that only when the init is
//! dumpable or lives in a user namespace the joiner owns. The monitor is
//! neither, on purpose (it makes itself non-dumpable once the id maps are
//! written, so that no container process can reach the host's `/` through
//! its `/proc/PID/root`), and a forked payload inherits both properties. A
//! fresh exec inside the container's user namespace gives a process that is
//! both, and that holds nothing of the monitor:
//! - no memory (the host environment, paths): its plan comes on a file,
//!   read and closed;
//! - no descriptor leading out: every one of the launch is close-on-exec;
//!   through the monitor's pidfd it keeps, a container process could at
//!   most signal the monitor (as its user can anyway), never join it or
//!   take its descriptors (the monitor is not dumpable, so the kernel
//!   refuses `setns` and `pidfd_getfd` through it);
//! - no way out through `/proc/PID/root` or `cwd`: it enters the root
//!   before the command exists;
//! - no capability worth taking: those of the container's user namespace
//!   are kept across the exec as ambient ones for its steps into the root,
//!   then cleared, and it keeps only `CAP_KILL` of its own (to end the
//!   container's processes), its bounding set, and so the command's, as
//!   the plan left it.
//!
//! A container process may take it over (it is dumpable and runs as the
//! same user) and gains nothing it did not have.
//!
//! The init holds a pidfd of the monitor. The kernel sends it `SIGTERM`
//! when the monitor dies; on any signal it checks the pidfd, and when the
//! monitor is gone (killed with `SIGKILL`) it kills every process of the
//! container and exits, so that nothing outlives the instance. Without a
//! PID namespace, that is every descendant: it is their subreaper, so
//! orphans (daemons that left their parents) come back to it. In a batch
//! job it also watches the job step's daemon, and ends the container with
//! the step.

use std::ffi::OsString;
use std::io::{Read, Seek, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use vessel_sys::join::{self as j, Process};
use vessel_sys::process::{self as p, Exit, Fork};
use vessel_sys::signal::{SignalMask, SIGCHLD};

use crate::launch::payload::ProcessPlan;
use crate::plan::LaunchPlan;

/// What the re-executed init needs of the plan: its process, not its
/// mounts (the monitor assembled the root already).
#[derive(Serialize, Deserialize)]
struct Spec {
    root: Vec<u8>,
    new_proc: bool,
    user_namespace: bool,
    cwd: Vec<u8>,
    home: Vec<u8>,
    no_new_privs: bool,
    capabilities: Option<Vec<String>>,
    umask: Option<u32>,
    argv: Vec<Vec<u8>>,
    env: Vec<(Vec<u8>, Vec<u8>)>,
    /// The monitor's pidfd, inherited at this number.
    monitor_fd: i32,
    /// The batch job step's pidfd, inherited at this number.
    job_fd: Option<i32>,
    /// A pipe written once the init is in the container: only then may a
    /// command join it (its mount namespace is the container's).
    #[serde(default)]
    ready_fd: Option<i32>,
}

/// The batch job step the instance ends with (its `slurmstepd`), set by the
/// monitor before its launch, whose payload hands it on to the init.
static JOB: std::sync::OnceLock<Process> = std::sync::OnceLock::new();

/// Has the instance end with `step`: a job's processes are those of its
/// step daemon's process tree (Slurm's `proctrack/linuxproc`), which a
/// detached monitor has left, so the init watches the daemon itself.
pub(crate) fn end_with_job(step: Process) {
    let _ = JOB.set(step);
}

/// In the forked payload: re-executes `vessel` as the init, with the plan's
/// process on a memory file. Never returns.
pub(crate) fn exec_init(
    plan: &LaunchPlan,
    root: &Path,
    monitor: &Process,
    ready: &impl std::os::fd::AsFd,
) -> ! {
    let fail = |what: &str, e: &dyn std::fmt::Display| -> ! {
        eprintln!("FATAL:   starting the instance's init: {what}: {e}");
        p::exit_now(255)
    };
    let monitor_fd = match j::inherit(&monitor.as_fd()) {
        Ok(fd) => fd,
        Err(e) => fail("keeping the monitor's pidfd", &e),
    };
    let job_fd = match JOB.get().map(|job| j::inherit(&job.as_fd())) {
        None => None,
        Some(Ok(fd)) => Some(fd),
        Some(Err(e)) => fail("keeping the job's pidfd", &e),
    };
    let ready_fd = match j::inherit(ready) {
        Ok(fd) => fd,
        Err(e) => fail("keeping its readiness pipe", &e),
    };
    let bytes = |p: &Path| p.as_os_str().as_bytes().to_vec();
    let spec = Spec {
        root: bytes(root),
        new_proc: plan.new_proc,
        user_namespace: plan.user_namespace,
        cwd: bytes(&plan.cwd),
        home: bytes(&plan.home),
        no_new_privs: plan.no_new_privs,
        capabilities: plan
            .capabilities
            .as_ref()
            .map(|c| c.iter().map(|c| vessel_sys::caps::name(*c)).collect()),
        umask: plan.umask,
        argv: plan.argv.iter().map(|a| a.as_bytes().to_vec()).collect(),
        env: plan
            .env
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect(),
        monitor_fd,
        job_fd,
        ready_fd: Some(ready_fd),
    };
    let mut file = match tempfile::tempfile() {
        Ok(f) => f,
        Err(e) => fail("a file for its plan", &e),
    };
    let json = serde_json::to_vec(&spec).unwrap_or_default();
    if let Err(e) = file.write_all(&json).and_then(|()| file.rewind()) {
        fail("writing its plan", &e);
    }
    let fd = match j::inherit(&file) {
        Ok(fd) => fd,
        Err(e) => fail("passing its plan", &e),
    };
    let argv: Vec<OsString> = vec![
        "/proc/self/exe".into(),
        "__instance-init".into(),
        fd.to_string().into(),
    ];
    // The init enters the container itself, which takes the capabilities
    // this process has in the container's user namespace: an exec as a
    // user other than root would drop them.
    if let Err(e) = j::keep_capabilities_across_exec() {
        fail("keeping its capabilities", &e);
    }
    let err = p::exec(&argv, &[]);
    fail("exec", &err)
}

/// `vessel __instance-init FD`: the init, with its spec on descriptor `fd`.
pub fn main(fd: i32) -> ! {
    let fail = |what: &str, e: &dyn std::fmt::Display| -> ! {
        eprintln!("FATAL:   instance init: {what}: {e}");
        p::exit_now(255)
    };
    let mut json = Vec::new();
    let read = std::fs::File::open(format!("/proc/self/fd/{fd}"))
        .and_then(|mut f| f.read_to_end(&mut json));
    if let Err(e) = read {
        fail("reading its plan", &e);
    }
    let spec: Spec = match serde_json::from_slice(&json) {
        Ok(s) => s,
        Err(e) => fail("reading its plan", &e),
    };
    // Read: nothing of the host stays open in the container's init.
    j::close_inherited(fd);
    let monitor = match Process::from_inherited(spec.monitor_fd) {
        Ok(m) => m,
        Err(e) => fail("the monitor", &e),
    };
    let job = match spec.job_fd.map(Process::from_inherited) {
        None => None,
        Some(Ok(job)) => Some(job),
        Some(Err(e)) => fail("the batch job", &e),
    };
    let path = |b: Vec<u8>| PathBuf::from(OsString::from_vec(b));
    let root = path(spec.root);
    let plan: LaunchPlan = ProcessPlan {
        user_namespace: spec.user_namespace,
        new_proc: spec.new_proc,
        cwd: path(spec.cwd),
        home: path(spec.home),
        no_new_privs: spec.no_new_privs,
        capabilities: spec.capabilities.map(|names| {
            names
                .iter()
                .filter_map(|n| vessel_sys::caps::by_name(n))
                .collect()
        }),
        umask: spec.umask,
        argv: spec.argv.into_iter().map(OsString::from_vec).collect(),
        env: spec
            .env
            .into_iter()
            .map(|(k, v)| (OsString::from_vec(k), OsString::from_vec(v)))
            .collect(),
    }
    .into();
    let mask = match SignalMask::block_forwarded() {
        Ok(m) => m,
        Err(e) => fail("blocking signals", &e),
    };
    crate::launch::payload::setup(&plan, &root);
    if let Some(fd) = spec.ready_fd {
        j::notify_inherited(fd);
    }
    // The command, and every later exec, gets no capability of the init's.
    if let Err(e) = j::clear_ambient_capabilities() {
        fail("clearing its capabilities", &e);
    }
    // The init itself keeps only what it needs to end the container's
    // processes, whatever user they run as: it is dumpable, so a process of
    // the container can take it over, and must gain nothing by that.
    if let Err(e) = j::keep_only_own_capabilities(&[vessel_sys::caps::Capability::CAP_KILL]) {
        fail("dropping its capabilities", &e);
    }
    // SIGTERM, not SIGKILL, when the monitor dies: the init must outlive
    // it long enough to kill the container's processes. Checked once set:
    // the monitor may have died before.
    if let Err(e) = j::term_with_parent() {
        fail("watching the monitor", &e);
    }
    if !monitor.alive() {
        p::exit_now(255);
    }
    if let Err(e) = j::become_subreaper() {
        fail("becoming the container's reaper", &e);
    }
    serve(&plan, &mask, &monitor, job.as_ref())
}

/// Starts the command and watches the container until it is stopped.
fn serve(plan: &LaunchPlan, mask: &SignalMask, monitor: &Process, job: Option<&Process>) -> ! {
    let me = p::getpid().as_raw_nonzero().get();
    // A shared container's init (`--sharens`, in an image without a shell)
    // has no command: its members bring theirs.
    let command = if plan.argv.is_empty() {
        None
    } else {
        Some(start_command(plan))
    };
    let group = command.map(|c| c.as_raw_nonzero().get());
    let mut stopping: Option<i32> = None;
    loop {
        // In a batch job, a look at the job every second: nothing tells a
        // process that another, not its parent, has ended.
        let received = match job {
            None => mask.wait().map(Some),
            Some(_) => j::wait_forwarded(std::time::Duration::from_secs(1)),
        };
        if !monitor.alive() {
            eprintln!("INFO:    the instance's monitor is gone: stopping every process");
            end(me, 137);
        }
        if job.is_some_and(|job| !job.alive()) {
            eprintln!("INFO:    the batch job step the instance was started in has ended: stopping every process");
            end(me, 143);
        }
        let received = match received {
            Ok(Some(r)) => r,
            Ok(None) => continue,
            Err(_) => end(me, 255),
        };
        if received.signal == SIGCHLD {
            while let Ok(Some((pid, exit))) = vessel_sys::process::reap_any() {
                if Some(pid) != command || stopping.is_some() {
                    continue;
                }
                match exit {
                    Exit::Code(0) => {
                        tracing::debug!("the start script ended; the instance stays");
                    }
                    other => {
                        let status = match other {
                            Exit::Code(c) => c,
                            Exit::Signal(_) => other.status(),
                        };
                        eprintln!(
                            "FATAL:   the instance's command ended with status {status}: stopping the instance"
                        );
                        end(me, status);
                    }
                }
            }
            if let Some(sig) = stopping {
                if j::descendants(me).is_empty() {
                    p::exit_now(128 + sig);
                }
            }
            continue;
        }
        // A signal the monitor relayed (`instance stop`): to the command's
        // process group, as Apptainer sends it, and to every orphan that
        // came back to this init, which left that group.
        let sig = received.signal;
        if let Some(group) = group {
            let _ = j::kill_group(group, sig);
        }
        for pid in j::descendants(me) {
            if j::parent_of(pid) == Some(me) {
                if let Some(pid) = p::Pid::from_raw(pid) {
                    let _ = p::kill(pid, sig);
                }
            }
        }
        if terminates(sig) {
            stopping = Some(sig);
            if j::descendants(me).is_empty() {
                p::exit_now(128 + sig);
            }
        }
    }
}

/// Forks the command, in a process group of its own.
fn start_command(plan: &LaunchPlan) -> p::Pid {
    match p::fork() {
        Ok(Fork::Child) => {
            let _ = j::own_process_group();
            let _ = j::unblock_all_signals();
            crate::launch::payload::exec(plan)
        }
        Ok(Fork::Parent(pid)) => pid,
        Err(e) => {
            eprintln!("FATAL:   instance init: starting the command: {e}");
            p::exit_now(255)
        }
    }
}

/// Whether a signal's default action ends a process.
fn terminates(sig: i32) -> bool {
    !matches!(sig, 17..=20 | 23 | 28)
}

/// Kills every descendant (the container's processes), reaps them, and
/// exits with `status`.
fn end(me: i32, status: i32) -> ! {
    for _ in 0..1000 {
        let left = j::descendants(me);
        if left.is_empty() {
            break;
        }
        for pid in left {
            if let Some(pid) = p::Pid::from_raw(pid) {
                let _ = p::kill(pid, vessel_sys::signal::SIGKILL);
            }
        }
        while let Ok(Some(_)) = vessel_sys::process::reap_any() {}
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    while let Ok(Some(_)) = vessel_sys::process::reap_any() {}
    p::exit_now(status)
}
