//! `/dev/fuse`: opening a connection and mounting it, as a process with
//! CAP_SYS_ADMIN in the mount namespace's user namespace may (Linux 4.18+
//! allows FUSE mounts in user namespaces), without `fusermount`.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use rustix::fs::{Mode, OFlags};
use rustix::mount::MountFlags;

use crate::{Context, Result};

/// Opens a new FUSE connection.
pub fn open_device() -> Result<OwnedFd> {
    rustix::fs::open("/dev/fuse", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
        .op(|| "opening /dev/fuse".into())
}

/// Mounts connection `fd` read-only at `target`, owned by `uid`/`gid` of
/// the current user namespace. `default_permissions` makes the kernel check
/// modes and owners itself; `allow_other` lets every id of the container's
/// namespace in (the server serves one container only).
pub fn mount(fd: &OwnedFd, target: &Path, name: &str, uid: u32, gid: u32) -> Result<()> {
    let options = format!(
        "fd={},rootmode=40000,user_id={uid},group_id={gid},default_permissions,allow_other",
        fd.as_raw_fd()
    );
    let data = CString::new(options.as_str()).op(|| "FUSE mount options".into())?;
    rustix::mount::mount(
        name,
        target,
        "fuse.vessel",
        MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV,
        data.as_c_str(),
    )
    .op(|| format!("mounting FUSE at {} ({options})", target.display()))
}
