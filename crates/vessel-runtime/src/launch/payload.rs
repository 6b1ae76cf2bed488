//! The payload: the child the monitor forks once the root is assembled. It
//! takes a mount namespace of its own, mounts a new `/proc` when it has a
//! PID namespace, pivots into the root, sets `no_new_privs` (and, for real
//! root, limits its capabilities as the plan says) and execs the command, or, as PID 1 of a new PID namespace, becomes the tiny init
//! that starts the command and reaps orphans.
//!
//! It never returns: after the fork only this process's own steps run, and
//! any failure is one `FATAL:` line and exit status 255.

use std::path::{Path, PathBuf};

use vessel_sys::mount::FsFlags;
use vessel_sys::process::{self as p, Fork};
use vessel_sys::signal::SignalMask;
use vessel_sys::syscall::Syscall;

use super::kernel::Kernel;
use super::monitor;
use crate::plan::LaunchPlan;

/// The payload side of the fork. Never returns: it execs or exits.
pub(super) fn payload(plan: &LaunchPlan, root: &Path, mask: &SignalMask) -> ! {
    setup(plan, root);
    if plan.shim_init {
        init(plan, mask)
    }
    if let Err(e) = mask.restore() {
        fail("restoring the signal mask", &e);
    }
    exec(plan)
}

/// One `FATAL:` line and exit status 255: after the fork only this
/// process's own steps run.
fn fail(what: &str, e: &dyn std::fmt::Display) -> ! {
    eprintln!("FATAL:   {what}: {e}");
    p::exit_now(255)
}

/// The process side of a plan, with no mounts: all that an instance's
/// re-executed init needs of it (the monitor assembled the root already).
pub(crate) struct ProcessPlan {
    pub user_namespace: bool,
    pub new_proc: bool,
    pub cwd: PathBuf,
    pub home: PathBuf,
    pub no_new_privs: bool,
    pub capabilities: Option<Vec<vessel_sys::caps::Capability>>,
    pub umask: Option<u32>,
    pub argv: Vec<std::ffi::OsString>,
    pub env: Vec<(std::ffi::OsString, std::ffi::OsString)>,
}

impl From<ProcessPlan> for LaunchPlan {
    fn from(p: ProcessPlan) -> LaunchPlan {
        LaunchPlan {
            lower: PathBuf::new(),
            read_only_layers: Vec::new(),
            root_mode: crate::plan::RootMode::ReadOnly,
            layering: Default::default(),
            user_namespace: p.user_namespace,
            new_proc: p.new_proc,
            shim_init: false,
            umask: p.umask,
            no_new_privs: p.no_new_privs,
            capabilities: p.capabilities,
            allow_setuid: false,
            mounts: Vec::new(),
            nvccli: None,
            cwd: p.cwd,
            home: p.home,
            argv: p.argv,
            env: p.env,
            native: None,
            basis: Default::default(),
            warnings: Vec::new(),
        }
    }
}

/// The payload's steps up to the command: dies with its parent, enters
/// the root, changes to the working directory, and sets the command's
/// privileges. An instance's init (re-executed) takes the same steps.
pub(crate) fn setup(plan: &LaunchPlan, root: &Path) {
    if let Err(e) = p::die_with_parent() {
        fail("setting up the container process", &e);
    }
    if let Err((what, e)) = enter(&Kernel, plan, root) {
        fail(what, &e);
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
}

/// Into the root: a mount namespace of its own (so that pivoting does not
/// move the monitor's root too), a new /proc for a new PID namespace, then
/// the pivot. Says which step failed.
fn enter<S: Syscall>(
    sys: &S,
    plan: &LaunchPlan,
    root: &Path,
) -> Result<(), (&'static str, vessel_sys::SysError)> {
    sys.private_mount_namespace()
        .map_err(|e| ("setting up the container's mounts", e))?;
    if plan.new_proc {
        let proc_dir = root.join("proc");
        let flags = FsFlags {
            nosuid: true,
            nodev: true,
            noexec: true,
            ..FsFlags::default()
        };
        sys.create_dir(&proc_dir, true)
            .and_then(|()| sys.mount_fs("proc", &proc_dir, flags, ""))
            .map_err(|e| ("mounting /proc", e))?;
    }
    sys.pivot_into(root)
        .map_err(|e| ("entering the container", e))
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
pub(crate) fn exec(plan: &LaunchPlan) -> ! {
    if let Some(mask) = plan.umask {
        p::umask(mask);
    }
    if let Some(native) = &plan.native {
        native.exec();
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
    use super::{enter, not_found, privileges};
    use crate::plan::{LaunchPlan, RootMode};
    use std::path::Path;
    use vessel_sys::caps::Capability;
    use vessel_sys::syscall::{Call, Recorder};
    use vessel_sys::Errno;

    fn plan(no_new_privs: bool, capabilities: Option<Vec<Capability>>) -> LaunchPlan {
        LaunchPlan {
            lower: "/image".into(),
            read_only_layers: Vec::new(),
            user_namespace: false,
            layering: crate::plan::Layering::Kernel,
            root_mode: RootMode::ReadOnly,
            new_proc: false,
            shim_init: false,
            umask: None,
            no_new_privs,
            capabilities,
            allow_setuid: false,
            mounts: Vec::new(),
            nvccli: None,
            cwd: "/".into(),
            home: "/root".into(),
            argv: vec!["true".into()],
            env: Vec::new(),
            native: None,
            basis: Default::default(),
            warnings: Vec::new(),
        }
    }

    #[test]
    fn entering_is_a_private_namespace_then_proc_then_the_pivot() {
        let sys = Recorder::new();
        enter(&sys, &plan(true, None), Path::new("/s/root")).unwrap();
        assert_eq!(
            sys.calls(),
            [
                Call::PrivateMountNamespace,
                Call::PivotInto {
                    root: "/s/root".into()
                }
            ]
        );
        let sys = Recorder::new();
        let mut with_proc = plan(true, None);
        with_proc.new_proc = true;
        enter(&sys, &with_proc, Path::new("/s/root")).unwrap();
        let calls = sys.calls();
        assert!(matches!(&calls[2], Call::Mount { fstype, dst, .. }
            if fstype == "proc" && dst == Path::new("/s/root/proc")));
        assert!(matches!(calls.last(), Some(Call::PivotInto { .. })));
        // A refused pivot is named as the step that failed.
        let sys = Recorder::new();
        sys.fail(
            Call::PivotInto {
                root: "/s/root".into(),
            },
            Errno::PERM,
        );
        let (what, _) = enter(&sys, &plan(true, None), Path::new("/s/root")).unwrap_err();
        assert_eq!(what, "entering the container");
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
