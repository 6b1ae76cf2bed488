//! Namespaces and identity mappings.

use std::path::Path;

use rustix::thread::UnshareFlags;

use crate::{Context, Result};

/// The namespaces a container can get, beyond the user and mount namespaces
/// it always has.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Namespaces {
    pub user: bool,
    pub mount: bool,
    pub pid: bool,
    pub ipc: bool,
    pub uts: bool,
    pub net: bool,
}

/// Moves the calling process into new namespaces.
pub fn unshare(ns: Namespaces) -> Result<()> {
    let mut flags = UnshareFlags::empty();
    for (on, flag) in [
        (ns.user, UnshareFlags::NEWUSER),
        (ns.mount, UnshareFlags::NEWNS),
        (ns.pid, UnshareFlags::NEWPID),
        (ns.ipc, UnshareFlags::NEWIPC),
        (ns.uts, UnshareFlags::NEWUTS),
        (ns.net, UnshareFlags::NEWNET),
    ] {
        if on {
            flags |= flag;
        }
    }
    // SAFETY: the flags never include CLONE_FILES, the one that could leave
    // other threads holding descriptors from a table this thread no longer
    // shares; namespace flags only affect the calling process.
    unsafe { rustix::thread::unshare_unsafe(flags) }.op(|| format!("unshare({ns:?})"))
}

/// Creates the namespaces of `ns` (a user namespace among them) and has
/// `map` write the new user namespace's id maps from outside it. Only the
/// setuid `newuidmap`/`newgidmap` may map a user's subordinate ids, and a
/// process inside the namespace cannot run them with their privilege; so a
/// helper child, forked before the unshare and therefore left in the
/// original namespaces, waits until the namespace exists and runs
/// `map(pid of the caller)`, which returns whether the maps were written.
pub fn unshare_mapped_from_outside(ns: Namespaces, map: impl FnOnce(i32) -> bool) -> Result<()> {
    use crate::process::{fork, wait_for, Exit, Fork};
    let me = rustix::process::getpid().as_raw_nonzero().get();
    let (go_read, go_write) = rustix::pipe::pipe().op(|| "pipe".into())?;
    match fork()? {
        Fork::Child => {
            drop(go_write);
            let mut byte = [0u8; 1];
            // EOF instead of the byte: the caller failed to unshare.
            let ready = matches!(rustix::io::read(&go_read, &mut byte), Ok(1));
            crate::process::exit_now(if ready && map(me) { 0 } else { 1 })
        }
        Fork::Parent(helper) => {
            drop(go_read);
            let unshared = unshare(ns);
            if unshared.is_ok() {
                rustix::io::write(&go_write, b"1").op(|| "waking the id-map helper".into())?;
            }
            drop(go_write);
            let exit = wait_for(helper)?;
            unshared?;
            if exit != Exit::Code(0) {
                return Err(crate::SysError::new(
                    "writing the user namespace's id maps with newuidmap/newgidmap",
                    std::io::Error::other(format!("the helper ended with {exit:?}")),
                ));
            }
            Ok(())
        }
    }
}

/// Maps `uid`/`gid` outside to `inside_uid`/`inside_gid` in the user
/// namespace just created, the one mapping an unprivileged process may write
/// for itself. `setgroups` must be denied first for the gid map to be allowed.
pub fn write_id_maps(uid: u32, gid: u32, inside_uid: u32, inside_gid: u32) -> Result<()> {
    write_proc("/proc/self/setgroups", "deny")?;
    write_proc("/proc/self/uid_map", &format!("{inside_uid} {uid} 1\n"))?;
    write_proc("/proc/self/gid_map", &format!("{inside_gid} {gid} 1\n"))
}

fn write_proc(path: &str, text: &str) -> Result<()> {
    std::fs::write(Path::new(path), text).op(|| format!("writing {path}"))
}

/// Sets the host name in a new UTS namespace.
pub fn set_hostname(name: &str) -> Result<()> {
    rustix::system::sethostname(name.as_bytes()).op(|| format!("sethostname({name})"))
}

/// Brings the loopback interface up in a new network namespace (the only
/// network `--net` gives for now), as `ip link set lo up` would.
pub fn loopback_up() -> Result<()> {
    use std::os::fd::AsRawFd;
    let sock = rustix::net::socket(
        rustix::net::AddressFamily::INET,
        rustix::net::SocketType::DGRAM,
        None,
    )
    .op(|| "socket for interface configuration".into())?;
    // SAFETY: ifreq is plain data; the name is a NUL-terminated "lo" within
    // its 16 bytes; both ioctls read and write only that struct, which lives
    // across the calls, on a socket descriptor we own.
    unsafe {
        let mut req: libc::ifreq = std::mem::zeroed();
        for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
            *dst = *src as libc::c_char;
        }
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) != 0 {
            return Err(crate::SysError::new(
                "SIOCGIFFLAGS lo",
                std::io::Error::last_os_error(),
            ));
        }
        req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) != 0 {
            return Err(crate::SysError::new(
                "SIOCSIFFLAGS lo",
                std::io::Error::last_os_error(),
            ));
        }
    }
    Ok(())
}
