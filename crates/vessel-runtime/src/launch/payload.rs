//! The payload: the child the monitor forks once the root is assembled. It
//! takes a mount namespace of its own, mounts a new `/proc` when it has a
//! PID namespace, pivots into the root, sets `no_new_privs` and execs the
//! command, or, as PID 1 of a new PID namespace, becomes the tiny init
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
    if let Err(e) = p::set_no_new_privs() {
        fail("setting no_new_privs", &e);
    }
    if plan.new_proc {
        init(plan, mask)
    }
    if let Err(e) = mask.restore() {
        fail("restoring the signal mask", &e);
    }
    let err = p::exec(&plan.argv, &plan.env);
    fail("could not run the command", &err)
}

/// PID 1 of a new PID namespace: starts the payload, relays signals to it,
/// reaps every orphan, and exits with the payload's status.
fn init(plan: &LaunchPlan, mask: &SignalMask) -> ! {
    let child = match p::fork() {
        Ok(Fork::Child) => {
            let _ = mask.restore();
            let err = p::exec(&plan.argv, &plan.env);
            eprintln!("FATAL:   could not run the command: {err}");
            p::exit_now(255)
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
