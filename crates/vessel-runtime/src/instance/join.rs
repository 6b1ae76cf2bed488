//! `exec|run|shell|test instance://NAME`: a command in a running instance.
//!
//! The instance's init is opened by pidfd and checked (the recorded pid
//! with the recorded start time, run by this user: a recycled pid is never
//! joined), then one `setns` on that pidfd moves this process into the
//! instance's user and mount namespaces and, where the instance has them,
//! its PID, IPC, UTS and network namespaces. The mount namespace's root is
//! the container's root, writable layers included. A child is forked (the
//! PID namespace takes only children) and runs the action through the
//! instance's own environment script, with its command's privileges; this process
//! relays signals to it and returns its status.

use std::ffi::OsString;

use vessel_sys::join::JoinSet;
use vessel_sys::process::{self as p, Fork};
use vessel_sys::signal::SignalMask;

use super::{Found, InstanceError};
use crate::options::{Action, Host};

/// Runs `action` in the instance and returns its exit status.
pub fn join(
    found: &Found,
    action: &Action,
    host: &Host,
    product: &str,
) -> Result<i32, InstanceError> {
    let r = &found.record;
    let gone = || InstanceError::Failed {
        name: r.name.clone(),
        problem: "it is not running any more".into(),
    };
    if r.monitor().is_none() {
        return Err(gone());
    }
    if r.vessel.script.is_empty() {
        return Err(InstanceError::Failed {
            name: r.name.clone(),
            problem: "its container has no /bin/sh to run commands with".into(),
        });
    }
    let mut argv: Vec<OsString> = vec![
        "/bin/sh".into(),
        "-c".into(),
        r.vessel.script.clone().into(),
        "/.singularity.d/actions/exec".into(),
    ];
    match action {
        Action::Exec(args) => argv.extend(args.iter().cloned()),
        other => {
            argv.push("/bin/sh".into());
            argv.push("-c".into());
            argv.push(crate::env::action_script(other, "", product).into());
            argv.extend(crate::env::script_args(other));
        }
    }
    let env: Vec<(OsString, OsString)> = r
        .vessel
        .env
        .iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    enter(
        found,
        Entry {
            argv,
            env,
            native: None,
            cwd: host.cwd.clone(),
            member: false,
        },
    )
}

/// A command to run in a running instance.
pub struct Entry {
    pub argv: Vec<OsString>,
    pub env: Vec<(OsString, OsString)>,
    /// The same made without the image's shell, when that gives the same.
    pub native: Option<crate::env_native::NativeEnv>,
    /// Its working directory ("/" if the container has none there).
    pub cwd: std::path::PathBuf,
    /// A member of a shared container: the joining process becomes the
    /// command where it can (without a PID namespace), else the command is
    /// killed when the joining process dies (`SIGKILL` included), as a
    /// launched container's payload is.
    pub member: bool,
}

/// Enters the instance's namespaces and runs `entry` there with the
/// instance's command's privileges; returns its exit status.
pub fn enter(found: &Found, entry: Entry) -> Result<i32, InstanceError> {
    let r = &found.record;
    let gone = || InstanceError::Failed {
        name: r.name.clone(),
        problem: "it is not running any more".into(),
    };
    let init = r.init().ok_or_else(gone)?;
    tracing::debug!(
        "joining instance {} (init {}, monitor {})",
        r.name,
        r.pid,
        r.ppid
    );
    let mask = SignalMask::block_forwarded()?;
    init.join(JoinSet {
        user: r.userns,
        pid: r.vessel.pid_ns,
        ipc: r.vessel.ipc_ns,
        uts: r.vessel.uts_ns,
        net: r.vessel.net_ns,
    })?;
    drop(init);
    // Without a PID namespace to enter (which only children do), a member
    // of a shared container becomes its command: no process of Vessel's
    // stays beside it, and signals and its status are its own.
    if entry.member && !r.vessel.pid_ns {
        become_command(r, &entry, &mask);
    }
    match p::fork()? {
        Fork::Child => {
            if entry.member {
                if let Err(e) = p::die_with_parent() {
                    eprintln!("FATAL:   {e}");
                    p::exit_now(255);
                }
            }
            become_command(r, &entry, &mask)
        }
        Fork::Parent(child) => Ok(crate::launch::monitor::relay(child, &mask)?),
    }
}

/// In the instance's namespaces: the working directory, the instance's
/// command's privileges, then the exec. Never returns.
fn become_command(r: &super::Record, entry: &Entry, mask: &SignalMask) -> ! {
    // setns left us at the container's root: the working directory if the
    // container has it, as a launch does.
    if p::chdir(&entry.cwd).is_err() {
        let _ = p::chdir(std::path::Path::new("/"));
    }
    if r.vessel.no_new_privs {
        if let Err(e) = p::set_no_new_privs() {
            eprintln!("FATAL:   {e}");
            p::exit_now(255);
        }
    }
    if let Some(names) = &r.vessel.capabilities {
        let keep: Vec<_> = names
            .iter()
            .filter_map(|n| vessel_sys::caps::by_name(n))
            .collect();
        if let Err(e) = vessel_sys::caps::limit_to(&keep) {
            eprintln!("FATAL:   {e}");
            p::exit_now(255);
        }
    }
    let _ = mask.restore();
    if let Some(native) = &entry.native {
        native.exec();
    }
    let err = p::exec(&entry.argv, &entry.env);
    eprintln!("FATAL:   could not run the command in the instance: {err}");
    p::exit_now(255)
}
