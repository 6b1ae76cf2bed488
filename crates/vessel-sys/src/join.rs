//! Processes known by pid and start time (an instance's monitor and init),
//! held through pidfds, so that a recycled pid is never signalled or
//! joined; the namespaces of such a process joined with one `setns` on its
//! pidfd; and the few process-tree calls an instance's init needs
//! (subreaper, descendants, a new session).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use rustix::process::{Pid, PidfdFlags};
use rustix::thread::ThreadNameSpaceType;

use crate::{Context, Result, SysError};

/// A process held by a pidfd: it cannot be mistaken for a later process
/// that reuses its pid.
#[derive(Debug)]
pub struct Process {
    pid: Pid,
    fd: OwnedFd,
}

/// The namespaces to join, besides the mount namespace, which is always
/// joined.
#[derive(Clone, Copy, Debug, Default)]
pub struct JoinSet {
    pub user: bool,
    pub pid: bool,
    pub ipc: bool,
    pub uts: bool,
    pub net: bool,
}

impl Process {
    /// Opens `pid` and checks that it is the process that started at
    /// `start_time` (clock ticks after boot, `/proc/PID/stat`'s 22nd field)
    /// and runs as `uid` (real uid, on the host). The pidfd is opened first
    /// and the checks made after: if they pass, the process the descriptor
    /// holds is the one recorded (the pid cannot change hands while the
    /// descriptor pins it, and a process that started at another time is
    /// refused). Nothing is taken from a path another user could plant:
    /// `/proc/PID` is the kernel's.
    pub fn open_checked(pid: i32, start_time: u64, uid: u32) -> Result<Process> {
        let raw = Pid::from_raw(pid).ok_or_else(|| {
            SysError::new(format!("pid {pid}"), std::io::Error::other("not a pid"))
        })?;
        let fd = rustix::process::pidfd_open(raw, PidfdFlags::empty())
            .op(|| format!("pidfd_open({pid})"))?;
        let process = Process { pid: raw, fd };
        let gone = |why: &str| {
            SysError::new(
                format!("process {pid}"),
                std::io::Error::other(why.to_string()),
            )
        };
        match self::start_time(pid) {
            Some(t) if t == start_time => {}
            _ => return Err(gone("not the recorded process (it ended)")),
        }
        if real_uid(pid) != Some(uid) {
            return Err(gone("belongs to another user"));
        }
        if !process.alive() {
            return Err(gone("ended"));
        }
        Ok(process)
    }

    /// Opens `pid` if it is the process that started at `start_time`,
    /// whoever runs it (a process only watched, never signalled or joined:
    /// a batch job's step daemon).
    pub fn open_to_watch(pid: i32, start_time: u64) -> Result<Process> {
        let raw = Pid::from_raw(pid).ok_or_else(|| {
            SysError::new(format!("pid {pid}"), std::io::Error::other("not a pid"))
        })?;
        let fd = rustix::process::pidfd_open(raw, PidfdFlags::empty())
            .op(|| format!("pidfd_open({pid})"))?;
        if self::start_time(pid) != Some(start_time) {
            return Err(SysError::new(
                format!("process {pid}"),
                std::io::Error::other("not the recorded process (it ended)"),
            ));
        }
        Ok(Process { pid: raw, fd })
    }

    /// The pid (in this process's PID namespace).
    pub fn pid(&self) -> i32 {
        self.pid.as_raw_nonzero().get()
    }

    /// Whether the process still runs (a zombie counts as ended).
    pub fn alive(&self) -> bool {
        // A pidfd polls readable once the process has exited.
        let mut fds = [libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        // SAFETY: `fds` is a valid array of one initialised pollfd, whose
        // descriptor is open for the call; the timeout is zero.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 1, 0) };
        n == 0
    }

    /// Sends signal `sig` (0 checks only) through the pidfd.
    pub fn signal(&self, sig: i32) -> Result<()> {
        // SAFETY: pidfd_send_signal takes a pidfd we own, a signal number,
        // a null siginfo (the kernel fills one as kill(2) would) and no
        // flags; it touches no memory of ours.
        let r = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.fd.as_raw_fd(),
                sig,
                std::ptr::null::<libc::siginfo_t>(),
                0u32,
            )
        };
        if r == 0 {
            return Ok(());
        }
        Err(SysError::new(
            format!("signal {sig} to process {}", self.pid()),
            std::io::Error::last_os_error(),
        ))
    }

    /// Waits until the process has ended or `deadline` passes; returns
    /// whether it ended.
    pub fn wait_gone(&self, deadline: std::time::Instant) -> bool {
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let mut fds = [libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            }];
            let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX);
            // SAFETY: as in `alive`; the timeout bounds the wait.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), 1, ms) };
            if n > 0 {
                return true;
            }
            if n == 0 && left.is_zero() {
                return false;
            }
        }
    }

    /// Moves the calling process into the process's mount namespace, and
    /// those of `also` (its PID namespace is the one the
    /// caller's next child is born in). One `setns` on the pidfd joins
    /// them all at once, the user namespace first, as the kernel orders
    /// them. The kernel checks that the caller may (ptrace access to the
    /// process, and the capabilities in its user namespace that the caller
    /// gains by joining it, which only the namespace's owner has). The
    /// caller must be single-threaded: a multithreaded process cannot
    /// change its user namespace.
    pub fn join(&self, also: JoinSet) -> Result<()> {
        let mut set = ThreadNameSpaceType::MOUNT;
        for (wanted, flag) in [
            (also.user, ThreadNameSpaceType::USER),
            (also.pid, ThreadNameSpaceType::PROCESS_ID),
            (also.ipc, ThreadNameSpaceType::INTER_PROCESS_COMMUNICATION),
            (also.uts, ThreadNameSpaceType::HOST_NAME_AND_NIS_DOMAIN_NAME),
            (also.net, ThreadNameSpaceType::NETWORK),
        ] {
            if wanted {
                set |= flag;
            }
        }
        rustix::thread::move_into_thread_name_spaces(self.fd.as_fd(), set)
            .op(|| format!("setns into the namespaces of process {}", self.pid()))
    }

    /// The descriptor, to be inherited across an exec by a process that
    /// watches this one.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Opens the calling process itself, its descriptor kept open across
    /// exec (for a child that watches its parent with [`Process::from_fd`]).
    pub fn this_inherited() -> Result<Process> {
        let pid = rustix::process::getpid();
        let fd = rustix::process::pidfd_open(pid, PidfdFlags::empty())
            .op(|| "pidfd_open(self)".into())?;
        rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::empty())
            .op(|| "fcntl(F_SETFD)".into())?;
        Ok(Process { pid, fd })
    }

    /// A pidfd inherited at number `fd` (see [`Process::this_inherited`]);
    /// the pid is not known (it may lie outside this PID namespace, where
    /// it cannot be signalled, only watched).
    pub fn from_inherited(fd: i32) -> Result<Process> {
        // SAFETY: the caller was handed this number for this alone, and
        // nothing else in the process owns it; fcntl below fails on a number
        // that is not open. (Whether it is a pidfd of a running process is
        // what `alive` answers: any other file polls readable, as ended.)
        let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC)
            .op(|| "fcntl(F_SETFD) on the inherited pidfd".into())?;
        let p = Process {
            pid: rustix::process::getpid(),
            fd,
        };
        Ok(p)
    }
}

/// The start time of `pid` in clock ticks after boot, or `None` when there
/// is no such process.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: the
    // fields after it follow the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(19)?.parse().ok()
}

/// The nearest ancestor of the calling process whose command name is
/// `comm` (`slurmstepd`), with its start time.
pub fn ancestor_named(comm: &str) -> Option<(i32, u64)> {
    let mut pid = parent_of(std::process::id() as i32)?;
    while pid > 1 {
        let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        if name.trim_end() == comm {
            return Some((pid, start_time(pid)?));
        }
        pid = parent_of(pid)?;
    }
    None
}

/// Waits at most `timeout` for one of the signals a monitor forwards, or
/// `SIGCHLD`, which the caller has blocked ([`crate::signal::SignalMask`]);
/// `None` when the time passed first.
pub fn wait_forwarded(timeout: std::time::Duration) -> Result<Option<crate::signal::Received>> {
    let ts = libc::timespec {
        tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    loop {
        // SAFETY: the set is initialised by sigemptyset before use, `info`
        // is plain data that sigtimedwait fills, and `ts` lives across the
        // call.
        let (sig, info) = unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for &s in crate::signal::FORWARDED.iter().chain(&[libc::SIGCHLD]) {
                libc::sigaddset(&mut set, s);
            }
            let mut info: libc::siginfo_t = std::mem::zeroed();
            (libc::sigtimedwait(&set, &mut info, &ts), info)
        };
        if sig >= 0 {
            return Ok(Some(crate::signal::Received {
                signal: sig,
                from_kernel: info.si_code == libc::SI_KERNEL,
            }));
        }
        let err = std::io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EAGAIN) => return Ok(None),
            Some(libc::EINTR) => continue,
            _ => return Err(SysError::new("sigtimedwait", err)),
        }
    }
}

/// The parent pid of `pid`, from `/proc/PID/stat`.
pub fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(1)?.parse().ok()
}

/// The real uid of `pid` on the host (`Uid:` of `/proc/PID/status`).
pub fn real_uid(pid: i32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Every descendant of `pid` now, found by parent links in `/proc` (the
/// kernel's `children` files are not always built in).
pub fn descendants(pid: i32) -> Vec<i32> {
    let mut parents = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(p) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i32>().ok())
            else {
                continue;
            };
            if let Some(pp) = parent_of(p) {
                parents.push((p, pp));
            }
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(cur) = frontier.pop() {
        for &(p, pp) in &parents {
            if pp == cur && !out.contains(&p) {
                out.push(p);
                frontier.push(p);
            }
        }
    }
    out
}

/// Makes the calling process the reaper of its orphaned descendants.
pub fn become_subreaper() -> Result<()> {
    rustix::process::set_child_subreaper(Some(rustix::process::getpid()))
        .op(|| "prctl(PR_SET_CHILD_SUBREAPER)".into())
}

/// Has the kernel send `SIGTERM` (not `SIGKILL`) to this process when its
/// parent dies, for a process that must clean up after its parent.
pub fn term_with_parent() -> Result<()> {
    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::TERM))
        .op(|| "prctl(PR_SET_PDEATHSIG)".into())
}

/// A new session, without a controlling terminal.
pub fn new_session() -> Result<()> {
    rustix::process::setsid().map(|_| ()).op(|| "setsid".into())
}

/// The calling process in a process group of its own.
pub fn own_process_group() -> Result<()> {
    rustix::process::setpgid(None, None).op(|| "setpgid".into())
}

/// Sends `sig` to the process group `pgid`; a group already gone is not an error.
pub fn kill_group(pgid: i32, sig: i32) -> Result<()> {
    // SAFETY: kill(2) with a negative pid and a signal number has no
    // memory-safety preconditions.
    if unsafe { libc::kill(-pgid, sig) } == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::ESRCH) {
        return Ok(());
    }
    Err(SysError::new(format!("kill(-{pgid}, {sig})"), e))
}

/// Standard input from `/dev/null`, standard output and error to `out`
/// and `err`: a detached process's stdio.
pub fn redirect_stdio(out: &impl AsFd, err: &impl AsFd) -> Result<()> {
    let null =
        std::fs::File::open("/dev/null").map_err(|e| SysError::new("opening /dev/null", e))?;
    rustix::stdio::dup2_stdin(&null).op(|| "dup2 stdin".into())?;
    rustix::stdio::dup2_stdout(out).op(|| "dup2 stdout".into())?;
    rustix::stdio::dup2_stderr(err).op(|| "dup2 stderr".into())
}

/// A descriptor kept open across exec, as its number.
pub fn inherit(fd: &impl AsFd) -> Result<i32> {
    rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty()).op(|| "fcntl(F_SETFD)".into())?;
    Ok(fd.as_fd().as_raw_fd())
}

/// Marks descriptor `fd` close-on-exec.
pub fn close_on_exec(fd: i32) -> Result<()> {
    // SAFETY: fcntl(F_SETFD) on a number changes only that descriptor's
    // flag; an unopened number gives EBADF.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } == 0 {
        return Ok(());
    }
    Err(SysError::new(
        format!("fcntl({fd}, F_SETFD)"),
        std::io::Error::last_os_error(),
    ))
}

/// Closes descriptor `fd`, one this process was handed by number and no
/// one else in it holds.
pub fn close_inherited(fd: i32) {
    // SAFETY: the caller owns the number (it was passed across an exec for
    // it alone); closing it invalidates no Rust object.
    unsafe { libc::close(fd) };
}

/// Writes one byte to descriptor `fd` (the write end of a pipe this
/// process was handed by number), then closes it: "ready" to whoever
/// reads the other end.
pub fn notify_inherited(fd: i32) {
    // SAFETY: the caller owns the number (it was passed across an exec for
    // it alone) and it stays open for the duration of the borrow.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let _ = rustix::io::write(borrowed, b"r");
    close_inherited(fd);
}

/// Unblocks every signal (a child about to exec, whose parent blocked the
/// ones it waits for).
pub fn unblock_all_signals() -> Result<()> {
    // SAFETY: an empty, initialised signal set given to sigprocmask, which
    // only reads it.
    let r = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut())
    };
    if r == 0 {
        return Ok(());
    }
    Err(SysError::new(
        "sigprocmask",
        std::io::Error::last_os_error(),
    ))
}

/// Keeps this process's capabilities across its next exec, as ambient
/// ones: a process that execs a program as a user other than root (in its
/// user namespace) loses them otherwise. Undo with
/// [`clear_ambient_capabilities`] before any other exec.
pub fn keep_capabilities_across_exec() -> Result<()> {
    let fail = |what: &str, e: caps::errors::CapsError| {
        SysError::new(what.to_string(), std::io::Error::other(e.to_string()))
    };
    let permitted = caps::read(None, caps::CapSet::Permitted)
        .map_err(|e| fail("reading the permitted capabilities", e))?;
    caps::set(None, caps::CapSet::Inheritable, &permitted)
        .map_err(|e| fail("setting the inheritable capabilities", e))?;
    caps::set(None, caps::CapSet::Ambient, &permitted)
        .map_err(|e| fail("setting the ambient capabilities", e))
}

/// Clears the ambient and inheritable capabilities, so that programs this
/// process starts get none of its own.
pub fn clear_ambient_capabilities() -> Result<()> {
    let fail = |what: &str, e: caps::errors::CapsError| {
        SysError::new(what.to_string(), std::io::Error::other(e.to_string()))
    };
    caps::clear(None, caps::CapSet::Ambient)
        .map_err(|e| fail("clearing the ambient capabilities", e))?;
    caps::clear(None, caps::CapSet::Inheritable)
        .map_err(|e| fail("clearing the inheritable capabilities", e))
}

/// Keeps only `keep` of this process's own capabilities (effective and
/// permitted), leaving its bounding set, and so what the programs it
/// starts may get, as it is.
pub fn keep_only_own_capabilities(keep: &[caps::Capability]) -> Result<()> {
    let fail = |what: &str, e: caps::errors::CapsError| {
        SysError::new(what.to_string(), std::io::Error::other(e.to_string()))
    };
    let set: caps::CapsHashSet = keep.iter().copied().collect();
    caps::set(None, caps::CapSet::Effective, &set)
        .map_err(|e| fail("setting the effective capabilities", e))?;
    caps::set(None, caps::CapSet::Permitted, &set)
        .map_err(|e| fail("setting the permitted capabilities", e))
}

/// The process and user at the other end of a connected Unix socket, as
/// the kernel recorded them when it connected (`SO_PEERCRED`): who a
/// shared container's monitor and its members really are.
pub fn peer_credentials(socket: &impl AsFd) -> Result<(i32, u32)> {
    let cred = rustix::net::sockopt::socket_peercred(socket)
        .op(|| "reading the peer's credentials (SO_PEERCRED)".into())?;
    Ok((cred.pid.as_raw_nonzero().get(), cred.uid.as_raw()))
}

/// Waits until one of `fds` is readable (or hung up), or `timeout` passes;
/// returns which are. An interrupted wait returns none.
pub fn wait_readable(
    fds: &[BorrowedFd<'_>],
    timeout: Option<std::time::Duration>,
) -> Result<Vec<bool>> {
    use rustix::event::{PollFd, PollFlags, Timespec};
    let mut polled: Vec<PollFd<'_>> = fds
        .iter()
        .map(|fd| PollFd::new(fd, PollFlags::IN))
        .collect();
    let timeout = timeout.map(|t| Timespec {
        tv_sec: t.as_secs().try_into().unwrap_or(i64::MAX),
        tv_nsec: t.subsec_nanos().into(),
    });
    match rustix::event::poll(&mut polled, timeout.as_ref()) {
        Ok(_) => {}
        Err(rustix::io::Errno::INTR) => return Ok(vec![false; fds.len()]),
        Err(e) => return Err(e).op(|| "poll".into()),
    }
    Ok(polled
        .iter()
        .map(|p| {
            p.revents()
                .intersects(PollFlags::IN | PollFlags::HUP | PollFlags::ERR)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_found_by_its_start_time() {
        let me = std::process::id() as i32;
        let t = start_time(me).unwrap();
        let uid = crate::process::getuid();
        let p = Process::open_checked(me, t, uid).unwrap();
        assert!(p.alive());
        p.signal(0).unwrap();
        assert!(Process::open_checked(me, t + 1, uid).is_err());
        assert!(Process::open_checked(me, t, uid + 1).is_err());
    }

    #[test]
    fn a_child_is_a_descendant() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let me = std::process::id() as i32;
        assert!(descendants(me).contains(&(child.id() as i32)));
        let _ = child.kill();
        let _ = child.wait();
    }
}
