//! Processes: fork, exec, wait, and the per-process security settings.

use std::ffi::{CString, OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

pub use rustix::process::Pid;
use rustix::process::{Signal, WaitOptions};

use crate::{Context, Result, SysError};

/// Which side of a fork this is.
pub enum Fork {
    Child,
    Parent(Pid),
}

/// The process's thread count. A worker that was just joined (extraction
/// uses a few) may still be leaving the kernel's task list: `join` returns
/// once the thread's id is released, a moment before its task is gone, so
/// look again for a little while before reporting more than one.
fn thread_count_settled() -> usize {
    let count = || {
        std::fs::read_dir("/proc/self/task")
            .map(|d| d.count())
            .unwrap_or(1)
    };
    let mut threads = count();
    for _ in 0..50 {
        if threads == 1 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
        threads = count();
    }
    threads
}

/// Forks the calling process.
///
/// Refuses to run when the process has more than one thread: after a fork
/// only the calling thread exists in the child, so a lock held by another
/// thread (in the allocator, say) would never be released there.
pub fn fork() -> Result<Fork> {
    let threads = thread_count_settled();
    if threads != 1 {
        return Err(SysError::new(
            format!("fork with {threads} threads running"),
            std::io::Error::other("the process must be single-threaded to fork"),
        ));
    }
    // SAFETY: the process is single-threaded (checked above), so the child
    // is a complete copy with no lock held by a thread that does not exist
    // in it.
    match unsafe { libc::fork() } {
        -1 => Err(SysError::new("fork", std::io::Error::last_os_error())),
        0 => Ok(Fork::Child),
        pid => Ok(Fork::Parent(
            Pid::from_raw(pid).expect("fork returns a positive pid"),
        )),
    }
}

/// Replaces the process image: `argv[0]` is looked up in `PATH` of `env`
/// when it has no slash. Returns only on failure.
pub fn exec(argv: &[OsString], env: &[(OsString, OsString)]) -> SysError {
    let Some(program) = argv.first() else {
        return SysError::new("exec", std::io::Error::other("no command given"));
    };
    let to_c = |s: &OsStr| CString::new(s.as_bytes()).map_err(std::io::Error::other);
    let prepared = (|| -> std::io::Result<(Vec<CString>, Vec<CString>)> {
        let args = argv
            .iter()
            .map(|a| to_c(a))
            .collect::<std::io::Result<Vec<_>>>()?;
        let envs = env
            .iter()
            .map(|(k, v)| {
                let mut kv = k.as_bytes().to_vec();
                kv.push(b'=');
                kv.extend_from_slice(v.as_bytes());
                CString::new(kv).map_err(std::io::Error::other)
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok((args, envs))
    })();
    let (args, envs) = match prepared {
        Ok(p) => p,
        Err(e) => return SysError::new("preparing exec arguments", e),
    };
    let path_var = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    let candidates: Vec<CString> = if program.as_bytes().contains(&b'/') {
        vec![args[0].clone()]
    } else {
        std::env::split_paths(&path_var)
            .filter_map(|dir| to_c(dir.join(program).as_os_str()).ok())
            .collect()
    };
    let mut argv_ptrs: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut env_ptrs: Vec<*const libc::c_char> = envs.iter().map(|e| e.as_ptr()).collect();
    env_ptrs.push(std::ptr::null());
    let mut last = std::io::Error::from_raw_os_error(libc::ENOENT);
    for path in &candidates {
        // SAFETY: every pointer comes from a CString alive for this call,
        // and both arrays end with a null pointer, as execve requires.
        unsafe { libc::execve(path.as_ptr(), argv_ptrs.as_ptr(), env_ptrs.as_ptr()) };
        let err = std::io::Error::last_os_error();
        // Keep the most telling error, as execvp does: a file found but not
        // executable beats not found.
        if err.raw_os_error() != Some(libc::ENOENT) || last.raw_os_error() == Some(libc::ENOENT) {
            last = err;
        }
    }
    SysError::new(format!("executing {}", program.to_string_lossy()), last)
}

/// How a child ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl Exit {
    /// The shell convention: the code, or 128 + the signal number.
    pub fn status(self) -> i32 {
        match self {
            Exit::Code(c) => c,
            Exit::Signal(s) => 128 + s,
        }
    }
}

/// Reaps one child if any has ended: `Some((pid, exit))`, or `None` when no
/// child has ended yet (or there are none).
pub fn reap_any() -> Result<Option<(Pid, Exit)>> {
    // `wait` is waitpid(-1): any child. (`waitpid(None)` is waitpid(0),
    // the children of this process group only: a child that moved to a
    // group of its own, as FUSE helpers and job-control shells do, would
    // never be reaped.)
    match rustix::process::wait(WaitOptions::NOHANG) {
        Ok(Some((pid, status))) => Ok(exit_of(status).map(|e| (pid, e))),
        Ok(None) => Ok(None),
        Err(rustix::io::Errno::CHILD) => Ok(None),
        Err(e) => Err(SysError::new("waitpid", e)),
    }
}

/// Runs `argv` (looked up as [`exec`] does) in a child that dies with this
/// process, waits for it, and returns its shell-style status (127 when it
/// could not be started, as a shell says).
pub fn run_to_end(argv: &[OsString], env: &[(OsString, OsString)]) -> Result<i32> {
    match fork()? {
        Fork::Child => {
            let _ = die_with_parent();
            let err = exec(argv, env);
            eprintln!("{err}");
            exit_now(127)
        }
        Fork::Parent(child) => Ok(wait_for(child)?.status()),
    }
}

/// Waits for child `pid` to end.
pub fn wait_for(pid: Pid) -> Result<Exit> {
    loop {
        match rustix::process::waitpid(Some(pid), WaitOptions::empty()) {
            Ok(Some((_, status))) => {
                if let Some(exit) = exit_of(status) {
                    return Ok(exit);
                }
            }
            Ok(None) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(SysError::new(format!("waitpid({pid:?})"), e)),
        }
    }
}

fn exit_of(status: rustix::process::WaitStatus) -> Option<Exit> {
    if let Some(code) = status.exit_status() {
        Some(Exit::Code(code))
    } else {
        status.terminating_signal().map(Exit::Signal)
    }
}

/// Sends signal number `sig` to `pid`; a process already gone is not an error.
pub fn kill(pid: Pid, sig: i32) -> Result<()> {
    // SAFETY: the number comes from a signal this process received or a
    // constant of libc, so it names a real signal.
    let signal = unsafe { Signal::from_raw_unchecked(sig) };
    match rustix::process::kill_process(pid, signal) {
        Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
        Err(e) => Err(SysError::new(format!("kill({pid:?}, {sig})"), e)),
    }
}

/// Sends `sig` to the calling process itself, with its default action: used
/// to die of the same signal as the payload did.
pub fn raise_default(sig: i32) {
    // SAFETY: restoring the default disposition and raising a signal have
    // no memory-safety preconditions.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
}

/// Forbids the process and its children from ever gaining privileges
/// (setuid bits, file capabilities).
pub fn set_no_new_privs() -> Result<()> {
    rustix::thread::set_no_new_privs(true).op(|| "prctl(PR_SET_NO_NEW_PRIVS)".into())
}

/// Has the kernel send `SIGKILL` to this process when its parent dies, so
/// a payload never outlives a killed monitor.
pub fn die_with_parent() -> Result<()> {
    rustix::process::set_parent_process_death_signal(Some(Signal::KILL))
        .op(|| "prctl(PR_SET_PDEATHSIG)".into())
}

/// Makes this process non-dumpable: its `/proc/PID` entries (`root`,
/// `cwd`, `exe`, `fd`, `mem`) then belong to root and need `CAP_SYS_PTRACE`
/// in the initial user namespace, so a container's processes, fake root
/// included, cannot reach the host through the monitor. Children inherit
/// it until they exec. Call it after the user namespace's id maps are
/// written: `newuidmap` and our own writes need `/proc/self` to be ours.
pub fn set_not_dumpable() -> Result<()> {
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .op(|| "prctl(PR_SET_DUMPABLE)".into())
}

/// Whether the process runs as real root (uid 0 of the initial namespace
/// or of the one it is in).
pub fn is_root() -> bool {
    getuid() == 0
}

pub fn getuid() -> u32 {
    rustix::process::getuid().as_raw()
}

pub fn getgid() -> u32 {
    rustix::process::getgid().as_raw()
}

/// A pipe, both ends close-on-exec: (read end, write end).
pub fn pipe() -> Result<(std::fs::File, std::fs::File)> {
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).op(|| "pipe".into())?;
    Ok((std::fs::File::from(r), std::fs::File::from(w)))
}

pub fn getppid() -> i32 {
    rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get())
}

pub fn getpid() -> Pid {
    rustix::process::getpid()
}

/// Makes the calling process the leader of a new process group and, when
/// standard input is its terminal, that terminal's foreground group, so that
/// keyboard signals go to the payload alone.
pub fn own_foreground_group() {
    let _ = rustix::process::setpgid(None, None);
    let stdin = rustix::stdio::stdin();
    if rustix::termios::isatty(stdin) {
        // SAFETY: ignoring SIGTTOU is a plain disposition change; without it
        // a background process calling tcsetpgrp would be stopped.
        unsafe { libc::signal(libc::SIGTTOU, libc::SIG_IGN) };
        let _ = rustix::termios::tcsetpgrp(stdin, rustix::process::getpid());
        // SAFETY: as above, back to the default.
        unsafe { libc::signal(libc::SIGTTOU, libc::SIG_DFL) };
    }
}

/// Moves the calling process into a process group of its own, out of the
/// terminal's foreground group, so that keyboard signals do not reach it.
pub fn leave_foreground_group() {
    let _ = rustix::process::setpgid(None, None);
}

/// The CPUs this process may run on (its affinity mask): one system call,
/// where `std::thread::available_parallelism` also reads cgroup files, which
/// shows in a container's start-up time.
pub fn cpu_count() -> usize {
    rustix::thread::sched_getaffinity(None)
        .map(|set| set.count() as usize)
        .unwrap_or(1)
        .max(1)
}

/// The CPUs this thread may run on.
pub fn allowed_cpus() -> Vec<usize> {
    match rustix::thread::sched_getaffinity(None) {
        Ok(set) => (0..rustix::thread::CpuSet::MAX_CPU)
            .filter(|&c| set.is_set(c))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Binds the calling thread to CPU `cpu`.
pub fn pin_to_cpu(cpu: usize) -> Result<()> {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    rustix::thread::sched_setaffinity(None, &set).op(|| format!("binding a thread to CPU {cpu}"))
}

/// Changes the working directory.
pub fn chdir(path: &Path) -> Result<()> {
    rustix::process::chdir(path).op(|| format!("chdir {}", path.display()))
}

/// Sets the file mode creation mask, returning the old one.
pub fn umask(mask: u32) -> u32 {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(mask)).as_raw_mode()
}

/// Ends the process at once, without running exit handlers or flushing
/// buffers it shares with the parent it was forked from.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit has no preconditions; it never returns.
    unsafe { libc::_exit(code) }
}

/// Leaves behind a small process that removes the empty directory `dir`
/// once this process and every child of it that shares the returned
/// [`Sweeper`] are gone, however they end: `SIGKILL` included, which no
/// exit handler of this process would survive. It waits on a socket whose
/// other end only this process (and its forks) hold, in a session of its
/// own so that a terminal's Ctrl-C does not reach it, and removes nothing
/// but `dir` (`rmdir`: only an empty directory, and a mount point of
/// another mount namespace is detached there).
///
/// Once told the container's user namespace ([`Sweeper::watch_namespace`]),
/// it first kills what is left running in it, of processes it may signal
/// (the user's own): a payload's children that a killed monitor would
/// leave behind. It holds that namespace open meanwhile, so that its
/// identity cannot pass to another container's. (The user namespace, not
/// the mount namespace: the payload pivots in a mount namespace of its
/// own, and joiners of an instance enter the same user namespace.)
///
/// Call it before any thread starts (it forks). Keep the returned
/// [`Sweeper`] for the rest of the process's life.
pub fn sweep_after_exit(dir: &Path) -> Result<Sweeper> {
    use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};
    let (ours, theirs) = socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .op(|| "socketpair".into())?;
    match fork()? {
        Fork::Child => {
            drop(ours);
            let _ = rustix::process::setsid();
            // A job's end signals every process of the step, this one too:
            // it must outlive them to clean up after them.
            let _mask = crate::signal::SignalMask::block_forwarded();
            let end = wait_for_end(&theirs);
            if let (Some(ns), false) = (&end.namespace, end.all_clear) {
                kill_left_in(ns);
            }
            let _ = rustix::fs::rmdir(dir);
            exit_now(0)
        }
        Fork::Parent(pid) => Ok(Sweeper { socket: ours, pid }),
    }
}

/// The monitor's end of the sweeper's socket.
pub struct Sweeper {
    socket: std::os::fd::OwnedFd,
    pid: Pid,
}

impl Sweeper {
    /// The sweeper process, a child of the caller.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// Tells the sweeper that nothing is left running in the container,
    /// so that it skips its walk of `/proc` (one `stat` per process of the
    /// node, for every run that ends normally). Only the caller can know:
    /// see [`children`].
    pub fn all_clear(&self) -> Result<()> {
        rustix::net::send(&self.socket, b"c", rustix::net::SendFlags::empty())
            .op(|| "telling the sweeper that nothing is left".into())?;
        Ok(())
    }

    /// Tells the sweeper the calling process's user namespace, the
    /// container's (a new one: the sweeper ignores its own): what is still
    /// in it when the monitor is gone is killed.
    pub fn watch_namespace(&self) -> Result<()> {
        use rustix::net::{sendmsg, SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
        use std::os::fd::AsFd;
        let ns = std::fs::File::open("/proc/self/ns/user")
            .map_err(|e| SysError::new("opening /proc/self/ns/user", e))?;
        let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        let fds = [ns.as_fd()];
        control.push(SendAncillaryMessage::ScmRights(&fds));
        sendmsg(
            &self.socket,
            &[std::io::IoSlice::new(b"n")],
            &mut control,
            SendFlags::empty(),
        )
        .op(|| "telling the sweeper the container's namespace".into())?;
        Ok(())
    }
}

/// What the sweeper was told before the monitor's end of its socket
/// closed.
struct End {
    /// The container's user namespace ([`Sweeper::watch_namespace`]).
    namespace: Option<std::os::fd::OwnedFd>,
    /// Nothing is left running in it ([`Sweeper::all_clear`]).
    all_clear: bool,
}

/// Reads the socket to its end (every holder of the other end gone).
fn wait_for_end(socket: &std::os::fd::OwnedFd) -> End {
    use rustix::net::{recvmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    let mut end = End {
        namespace: None,
        all_clear: false,
    };
    loop {
        let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let mut byte = [0u8; 1];
        match recvmsg(
            socket,
            &mut [std::io::IoSliceMut::new(&mut byte)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        ) {
            Err(rustix::io::Errno::INTR) => continue,
            Ok(r) if r.bytes > 0 => {
                end.all_clear = byte == *b"c";
                for message in control.drain() {
                    if let RecvAncillaryMessage::ScmRights(fds) = message {
                        for fd in fds {
                            end.namespace = Some(fd);
                        }
                    }
                }
            }
            _ => return end,
        }
    }
}

/// The children of the calling thread (`/proc/thread-self/children`), or
/// `None` where the kernel does not list them (`CONFIG_PROC_CHILDREN`).
/// Together with [`crate::join::become_subreaper`], every live descendant
/// has an ancestor in this list: an orphan is reparented to the nearest
/// subreaper.
pub fn children() -> Option<Vec<i32>> {
    let text = std::fs::read_to_string("/proc/thread-self/children").ok()?;
    text.split_whitespace().map(|p| p.parse().ok()).collect()
}

/// Kills, until none is left, the processes in the user namespace `ns`
/// that this process may signal; nothing when `ns` is its own.
fn kill_left_in(ns: &std::os::fd::OwnedFd) {
    let Ok(held) = rustix::fs::fstat(ns) else {
        return;
    };
    match rustix::fs::stat("/proc/self/ns/user") {
        Ok(own) if (own.st_dev, own.st_ino) != (held.st_dev, held.st_ino) => {}
        _ => return,
    }
    let me = rustix::process::getpid().as_raw_nonzero().get();
    for _ in 0..100 {
        let mut found = false;
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return;
        };
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i32>().ok())
            else {
                continue;
            };
            if pid == me {
                continue;
            }
            let Ok(st) = rustix::fs::stat(format!("/proc/{pid}/ns/user")) else {
                continue;
            };
            if (st.st_dev, st.st_ino) != (held.st_dev, held.st_ino) {
                continue;
            }
            if let Some(pid) = Pid::from_raw(pid) {
                if rustix::process::kill_process(pid, Signal::KILL).is_ok() {
                    found = true;
                }
            }
        }
        if !found {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Starts `cmd`, a FUSE helper of the container (`fuse2fs`,
/// `fuse-overlayfs`) that serves a mount while the container runs: in a
/// process group of its own, so that a terminal's Ctrl-C reaches the
/// payload and not the file system under it, and sent `SIGTERM` when this
/// process dies however it ends, `SIGKILL` included, so that it unmounts
/// and writes its file system back rather than being left running or cut
/// off mid-write. The descriptors in `keep` stay open in it, at the same
/// numbers (it is given them as `/proc/self/fd/N`).
///
/// It keeps, across its exec, `CAP_SYS_ADMIN` (to mount) and
/// `CAP_DAC_OVERRIDE` (to use overlayfs's work directory) of the
/// container's user namespace, when this process has them: a user other
/// than the namespace's root loses every capability at exec otherwise, as
/// Apptainer hands its FUSE programs the same two. They reach nothing
/// outside the container's namespaces.
pub fn spawn_helper(
    cmd: &mut std::process::Command,
    keep: &[std::os::fd::RawFd],
) -> std::io::Result<std::process::Child> {
    use std::os::unix::process::CommandExt;
    let keep = keep.to_vec();
    let parent = rustix::process::getpid();
    // SAFETY: the closure runs in the forked child before exec and makes
    // only async-signal-safe system calls (prctl, setpgid, fcntl); it
    // allocates nothing (`keep` was copied before the fork).
    unsafe {
        cmd.pre_exec(move || {
            rustix::process::set_parent_process_death_signal(Some(Signal::TERM))?;
            // The parent may have died before the line above took effect.
            if rustix::process::getppid() != Some(parent) {
                return Err(std::io::Error::other("the container's monitor is gone"));
            }
            rustix::process::setpgid(None, None)?;
            keep_mount_capabilities();
            for &fd in &keep {
                let fd = std::os::fd::BorrowedFd::borrow_raw(fd);
                rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty())?;
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// Carries `CAP_SYS_ADMIN` and `CAP_DAC_OVERRIDE` across the next exec
/// (inheritable, then ambient), where they are permitted; nothing
/// otherwise. Async-signal-safe: two system calls per capability.
fn keep_mount_capabilities() {
    use rustix::thread::{self as t, CapabilitySet as C};
    let wanted = C::SYS_ADMIN | C::DAC_OVERRIDE;
    let Ok(mut sets) = t::capabilities(None) else {
        return;
    };
    let wanted = wanted & sets.permitted;
    sets.inheritable |= wanted;
    if t::set_capabilities(None, sets).is_err() {
        return;
    }
    for cap in [C::SYS_ADMIN, C::DAC_OVERRIDE] {
        if wanted.contains(cap) {
            let _ = t::configure_capability_in_ambient_set(cap, true);
        }
    }
}
