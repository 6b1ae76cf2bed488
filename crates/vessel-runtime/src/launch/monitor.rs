//! The monitor: `vessel` itself, the parent of the container. It creates
//! the namespaces and the private session tmpfs the root is assembled in,
//! and, once the payload is forked, stays as its parent: it relays the
//! forwarded signals (TERM, INT, HUP, QUIT, USR1, USR2, CONT, WINCH),
//! reaps, and returns the payload's status (128 + N for a signal). The
//! container's init (`--pid`) runs the same relay loop.

use vessel_sys::mount::{self as m, FsFlags};
use vessel_sys::process::{self as p, Exit};
use vessel_sys::signal::{SignalMask, SIGCHLD};
use vessel_sys::syscall::Syscall;

use super::kernel::Kernel;
use super::{kernel_hint, LaunchError};
use crate::fakeroot::Fakeroot;
use crate::options::Host;
use crate::plan::SessionPlan;

/// The directory the session tmpfs is mounted on, removed when dropped,
/// and by a sweeper process if this one is killed first.
pub(super) struct Session {
    dir: tempfile::TempDir,
    // Dropped after `dir`: the sweeper wakes once the directory is gone.
    sweeper: p::Sweeper,
}

impl Session {
    pub(super) fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Once the payload and the container's servers are gone: when no
    /// other child is left (this process is the subreaper of everything
    /// the payload started), tells the sweeper that nothing is left
    /// running, which spares it a walk of `/proc`.
    pub(super) fn nothing_left(&self) {
        let sweeper = self.sweeper.pid().as_raw_nonzero().get();
        if p::children().is_some_and(|c| c.iter().all(|&pid| pid == sweeper)) {
            if let Err(e) = self.sweeper.all_clear() {
                tracing::debug!("{e}");
            }
        }
    }
}

/// Creates the namespaces and the private session tmpfs, returned as the
/// temporary directory it is mounted on. `defer_pid` leaves the PID
/// namespace for later (the FUSE server is forked first).
pub(super) fn enter_namespaces(
    plan: &SessionPlan,
    host: &Host,
    defer_pid: bool,
) -> Result<Session, LaunchError> {
    let dir = tempfile::Builder::new()
        .prefix("vessel-session-")
        .tempdir_in(&host.tmpdir)
        .map_err(|source| LaunchError::SessionDir {
            dir: host.tmpdir.clone(),
            source,
        })?;
    // Forked while still in the host's namespaces: a monitor killed with
    // SIGKILL leaves no directory behind in the user's TMPDIR.
    let sweeper = p::sweep_after_exit(dir.path())?;
    let session = Session { dir, sweeper };
    // The payload's orphans become this process's children, so that the
    // end of a run can tell whether anything of it is still running.
    if let Err(e) = vessel_sys::join::become_subreaper() {
        tracing::debug!("{e}");
    }
    let mut ns = plan.namespaces;
    ns.pid &= !defer_pid;
    if ns.user && plan.fakeroot {
        let mode = if plan.ignore_subuid {
            Fakeroot::RootOnly {
                why: "--ignore-subuid was given".into(),
            }
        } else {
            Fakeroot::for_user(&host.user_name(), host.uid, host.gid)
        };
        tracing::debug!("{}", mode.describe());
        mode.enter(ns, host.uid, host.gid)
            .map_err(|e| kernel_hint("could not create the fake-root namespace", e))?;
    } else {
        vessel_sys::ns::unshare(ns)
            .map_err(|e| kernel_hint("could not create the container's namespaces", e))?;
        if ns.user {
            vessel_sys::ns::write_id_maps(host.uid, host.gid, host.uid, host.gid)
                .map_err(|e| kernel_hint("could not map your user into the container", e))?;
        }
    }
    // What the payload leaves running in the container's user namespace
    // is killed once this process is gone, however it ends.
    if ns.user {
        if let Err(e) = session.sweeper.watch_namespace() {
            tracing::debug!("{e}");
        }
    }
    // Once the id maps are written: from here on the container's processes
    // (fake root too) cannot open the monitor's or the FUSE server's
    // `/proc/PID/root`, which leads to the host's `/`.
    p::set_not_dumpable()?;
    m::make_private_recursive()?;
    if let Some(h) = &plan.hostname {
        vessel_sys::ns::set_hostname(h)?;
    }
    if plan.loopback {
        if let Err(e) = vessel_sys::ns::loopback_up() {
            tracing::warn!("could not bring up the loopback interface: {e}");
        }
    }
    // A ramfs takes no size: the site chose it knowing that (Cray CLE).
    let (fs, options) = if plan.ramfs {
        ("ramfs", "mode=0700".to_string())
    } else {
        ("tmpfs", format!("size={}m,mode=0700", plan.session_mib))
    };
    Kernel.mount_fs(
        fs,
        session.path(),
        FsFlags {
            nosuid: true,
            nodev: true,
            ..FsFlags::default()
        },
        &options,
    )?;
    Ok(session)
}

/// Relays signals to `child` until it ends, reaping any other child on the
/// way; returns the shell-style status.
pub(crate) fn relay(child: p::Pid, mask: &SignalMask) -> Result<i32, LaunchError> {
    loop {
        let received = mask.wait()?;
        if received.signal == SIGCHLD {
            while let Some((pid, exit)) = p::reap_any()? {
                if pid == child {
                    // Reap whatever else is left before leaving.
                    while let Ok(Some(_)) = p::reap_any() {}
                    return Ok(match exit {
                        Exit::Code(c) => c,
                        Exit::Signal(_) => exit.status(),
                    });
                }
            }
            continue;
        }
        // A terminal's Ctrl-C already reached the payload, which shares our
        // process group: sending it again would deliver it twice.
        if !received.from_kernel {
            p::kill(child, received.signal)?;
        }
    }
}
