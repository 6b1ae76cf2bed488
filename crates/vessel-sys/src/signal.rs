//! Signals the monitor forwards to the payload, received synchronously.

use crate::{Result, SysError};

/// The signals a monitor relays to its payload, and SIGCHLD, which tells
/// it the payload ended.
pub const FORWARDED: &[i32] = &[
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGCONT,
    libc::SIGWINCH,
    libc::SIGALRM,
    libc::SIGPWR,
];

/// A set of blocked signals, received with [`SignalMask::wait`]. Dropping
/// it does not unblock them: call [`SignalMask::restore`] (in a child, before
/// exec) to give the payload the mask the monitor started with.
pub struct SignalMask {
    set: libc::sigset_t,
    old: libc::sigset_t,
}

impl SignalMask {
    /// Blocks the forwarded signals and SIGCHLD.
    pub fn block_forwarded() -> Result<SignalMask> {
        // SAFETY: sigset_t is plain data, fully initialised by sigemptyset
        // before use; sigprocmask only reads `set` and writes `old`.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for &s in FORWARDED.iter().chain(&[libc::SIGCHLD]) {
                libc::sigaddset(&mut set, s);
            }
            if libc::sigprocmask(libc::SIG_BLOCK, &set, &mut old) != 0 {
                return Err(SysError::new(
                    "sigprocmask",
                    std::io::Error::last_os_error(),
                ));
            }
            Ok(SignalMask { set, old })
        }
    }

    /// Waits for one of the blocked signals and returns it.
    pub fn wait(&self) -> Result<Received> {
        loop {
            // SAFETY: `self.set` is an initialised signal set and `info` is
            // plain data that sigwaitinfo fills.
            let (sig, info) = unsafe {
                let mut info: libc::siginfo_t = std::mem::zeroed();
                (libc::sigwaitinfo(&self.set, &mut info), info)
            };
            if sig >= 0 {
                return Ok(Received {
                    signal: sig,
                    from_kernel: info.si_code == libc::SI_KERNEL,
                });
            }
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EINTR) {
                return Err(SysError::new("sigwaitinfo", err));
            }
        }
    }

    /// Puts back the mask from before [`SignalMask::block_forwarded`].
    pub fn restore(&self) -> Result<()> {
        // SAFETY: `self.old` was filled by sigprocmask.
        if unsafe { libc::sigprocmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut()) } != 0 {
            return Err(SysError::new(
                "sigprocmask",
                std::io::Error::last_os_error(),
            ));
        }
        Ok(())
    }
}

/// A signal taken by [`SignalMask::wait`].
#[derive(Clone, Copy, Debug)]
pub struct Received {
    pub signal: i32,
    /// Sent by the kernel (a terminal's Ctrl-C, say) rather than by a
    /// process: the terminal already delivered it to the whole foreground
    /// process group, payload included.
    pub from_kernel: bool,
}

pub const SIGCHLD: i32 = libc::SIGCHLD;
pub const SIGKILL: i32 = libc::SIGKILL;
pub const SIGTERM: i32 = libc::SIGTERM;
