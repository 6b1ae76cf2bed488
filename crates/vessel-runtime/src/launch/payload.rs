//! The payload: the child the monitor forks once the root is assembled. It
//! takes a mount namespace of its own, mounts a new `/proc` when it has a
//! PID namespace, pivots into the root, sets `no_new_privs` (and, for real
//! root, limits its capabilities as the plan says) and execs the command, or, as PID 1 of a new PID namespace, becomes the tiny init
//! that starts the command and reaps orphans.
//!
//! It never returns: after the fork only this process's own steps run, and
//! any failure is one `FATAL:` line and exit status 255.

use std::fs;
use std::path::{Path, PathBuf};

use vessel_sys::mount::{self as m, FsFlags};
use vessel_sys::process::{self as p, Fork};
use vessel_sys::signal::SignalMask;
use vessel_sys::syscall::Syscall;

use super::kernel::Kernel;
use super::monitor;
use crate::plan::LaunchPlan;

/// The payload side of the fork. Never returns: it execs or exits.
pub(super) fn payload(plan: &LaunchPlan, root: &Path, mask: &SignalMask) -> ! {
    let fail = |what: &str, e: &dyn std::fmt::Display| -> ! {
        eprintln!("FATAL:   {what}: {e}");
        p::exit_now(255)
    };
    if let Err(e) = p::die_with_parent() {
        fail("setting up the container process", &e);
    }
    // A mount namespace of its own, so that pivoting does not move the
    // monitor's root too.
    let own_ns = vessel_sys::ns::Namespaces {
        mount: true,
        ..Default::default()
    };
    if let Err(e) = vessel_sys::ns::unshare(own_ns).and_then(|()| m::make_private_recursive()) {
        fail("setting up the container's mounts", &e);
    }
    if plan.new_proc {
        let proc_dir = root.join("proc");
        let _ = fs::create_dir_all(&proc_dir);
        let flags = FsFlags {
            nosuid: true,
            nodev: true,
            noexec: true,
            ..FsFlags::default()
        };
        if let Err(e) = Kernel.mount_fs("proc", &proc_dir, flags, "") {
            fail("mounting /proc", &e);
        }
    }
    tracing::debug!("pivot_root: into {}", root.display());
    if let Err(e) = p::chdir(root)
        .and_then(|()| m::pivot_root(Path::new("."), Path::new(".")))
        .and_then(|()| m::unmount_detach(Path::new(".")))
        .and_then(|()| p::chdir(Path::new("/")))
    {
        fail("entering the container", &e);
    }
    if p::chdir(&plan.cwd).is_err() {
        let fallback = if p::chdir(&plan.home).is_ok() {
            plan.home.clone()
        } else {
            PathBuf::from("/")
        };
        let _ = p::chdir(&fallback);
        eprintln!(
            "WARNING: the working directory {} does not exist in the container, using {}",
            plan.cwd.display(),
            fallback.display()
        );
    }
    if let Err(e) = privileges(&Kernel, plan) {
        fail("setting the container's privileges", &e);
    }
    if plan.shim_init {
        init(plan, mask)
    }
    if let Err(e) = mask.restore() {
        fail("restoring the signal mask", &e);
    }
    exec(plan)
}

/// The command's privileges, set last, once nothing privileged is left to
/// do (the init, if any, gets the same): `no_new_privs`, and real root's
/// capabilities limited to the plan's.
fn privileges<S: Syscall>(sys: &S, plan: &LaunchPlan) -> vessel_sys::Result<()> {
    if plan.no_new_privs {
        sys.set_no_new_privs()?;
    }
    if let Some(keep) = &plan.capabilities {
        sys.limit_capabilities(keep)?;
    }
    Ok(())
}

/// Execs the command; on failure says so as Apptainer does (a missing
/// program is `"X": executable file not found in $PATH`, which workflow
/// tools match on) and exits 255. The search uses the container's `PATH`,
/// from inside the container. Through `/bin/sh` the action script makes
/// the same check with the `PATH` the environment scripts left; this is
/// for images without a shell, whose command is run directly.
fn exec(plan: &LaunchPlan) -> ! {
    if let Some(mask) = plan.umask {
        p::umask(mask);
    }
    let err = p::exec(&plan.argv, &plan.env);
    let program = plan.argv.first().map(|a| a.to_string_lossy());
    match program {
        Some(program) if err.errno() == Some(vessel_sys::Errno::NOENT) => {
            eprintln!("FATAL:   {}", not_found(&program));
        }
        _ => eprintln!("FATAL:   could not run the command: {err}"),
    }
    p::exit_now(255)
}

/// Apptainer's words for a program that is not there.
fn not_found(program: &str) -> String {
    if program.contains('/') {
        format!("{program:?}: stat {program}: no such file or directory")
    } else {
        format!("{program:?}: executable file not found in $PATH")
    }
}

/// PID 1 of a new PID namespace: starts the payload, relays signals to it,
/// reaps every orphan, and exits with the payload's status.
fn init(plan: &LaunchPlan, mask: &SignalMask) -> ! {
    let child = match p::fork() {
        Ok(Fork::Child) => {
            let _ = mask.restore();
            exec(plan)
        }
        Ok(Fork::Parent(pid)) => pid,
        Err(e) => {
            eprintln!("FATAL:   starting the container's init: {e}");
            p::exit_now(255)
        }
    };
    match monitor::relay(child, mask) {
        Ok(status) => p::exit_now(status),
        Err(_) => p::exit_now(255),
    }
}

#[cfg(test)]
mod tests {
    use super::{not_found, privileges};
    use crate::plan::{LaunchPlan, RootMode};
    use vessel_sys::caps::Capability;
    use vessel_sys::syscall::{Call, Recorder};

    fn plan(no_new_privs: bool, capabilities: Option<Vec<Capability>>) -> LaunchPlan {
        LaunchPlan {
            lower: "/image".into(),
            read_only_layers: Vec::new(),
            root_mode: RootMode::ReadOnly,
            new_proc: false,
            shim_init: false,
            umask: None,
            no_new_privs,
            capabilities,
            allow_setuid: false,
            mounts: Vec::new(),
            cwd: "/".into(),
            home: "/root".into(),
            argv: vec!["true".into()],
            env: Vec::new(),
            warnings: Vec::new(),
        }
    }

    #[test]
    fn privileges_are_no_new_privs_then_roots_capabilities() {
        // An unprivileged user's container: no_new_privs only.
        let sys = Recorder::new();
        privileges(&sys, &plan(true, None)).unwrap();
        assert_eq!(sys.calls(), [Call::NoNewPrivs]);
        // Root with --drop-caps: the rest kept, setuid programs work.
        let sys = Recorder::new();
        let keep = vec![Capability::CAP_SYS_ADMIN, Capability::CAP_CHOWN];
        privileges(&sys, &plan(false, Some(keep))).unwrap();
        assert_eq!(
            sys.calls(),
            [Call::Capabilities {
                keep: vec!["CAP_CHOWN".into(), "CAP_SYS_ADMIN".into()]
            }]
        );
        // Root with --no-privs: nothing, and no way back.
        let sys = Recorder::new();
        privileges(&sys, &plan(true, Some(vec![]))).unwrap();
        assert_eq!(
            sys.calls(),
            [Call::NoNewPrivs, Call::Capabilities { keep: vec![] }]
        );
    }

    #[test]
    fn a_missing_program_is_named_as_apptainer_names_it() {
        assert_eq!(
            not_found("nosuchcmd"),
            "\"nosuchcmd\": executable file not found in $PATH"
        );
        assert_eq!(
            not_found("/no/such"),
            "\"/no/such\": stat /no/such: no such file or directory"
        );
    }
}
