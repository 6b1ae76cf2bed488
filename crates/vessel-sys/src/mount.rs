//! Mounts, as the container's root file system is assembled.

use std::ffi::CString;
use std::path::Path;

use rustix::mount::{MountFlags, MountPropagationFlags, UnmountFlags};

use crate::{Context, Result};

/// Makes every mount below `/` private, so that nothing the container
/// mounts propagates back to the host.
pub fn make_private_recursive() -> Result<()> {
    rustix::mount::mount_change(
        "/",
        MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
    )
    .op(|| "making / private".into())
}

/// Binds `src` onto `dst` (recursively, with every mount below `src`).
pub fn bind(src: &Path, dst: &Path, recursive: bool) -> Result<()> {
    let r = if recursive {
        rustix::mount::mount_bind_recursive(src, dst)
    } else {
        rustix::mount::mount_bind(src, dst)
    };
    r.op(|| format!("binding {} to {}", src.display(), dst.display()))
}

/// Remounts the bind mount at `dst` with `readonly` and `nosuid` (left off
/// only for real root's `--allow-setuid`), keeping the flags the kernel
/// locks in a user namespace (nodev, noexec, …): dropping a locked flag
/// makes the remount fail.
pub fn remount_bind(dst: &Path, readonly: bool, nosuid: bool) -> Result<()> {
    let current = rustix::fs::statvfs(dst).op(|| format!("statvfs {}", dst.display()))?;
    let f = current.f_flag;
    let mut flags = MountFlags::BIND;
    if nosuid {
        flags |= MountFlags::NOSUID;
    }
    for (set, flag) in [
        (readonly, MountFlags::RDONLY),
        (
            f.contains(rustix::fs::StatVfsMountFlags::NODEV),
            MountFlags::NODEV,
        ),
        (
            f.contains(rustix::fs::StatVfsMountFlags::NOEXEC),
            MountFlags::NOEXEC,
        ),
        (
            f.contains(rustix::fs::StatVfsMountFlags::NOATIME),
            MountFlags::NOATIME,
        ),
        (
            f.contains(rustix::fs::StatVfsMountFlags::NODIRATIME),
            MountFlags::NODIRATIME,
        ),
        (
            f.contains(rustix::fs::StatVfsMountFlags::RELATIME),
            MountFlags::RELATIME,
        ),
    ] {
        if set {
            flags |= flag;
        }
    }
    rustix::mount::mount_remount(dst, flags, "").op(|| {
        format!(
            "remounting {} {}",
            dst.display(),
            if readonly { "read-only" } else { "read-write" }
        )
    })
}

/// Mounts a new file system of `fstype` at `dst` with `options`.
pub fn mount_fs(fstype: &str, dst: &Path, flags: FsFlags, options: &str) -> Result<()> {
    let data = CString::new(options).op(|| "mount options contain a NUL byte".into())?;
    let mut mf = MountFlags::empty();
    if flags.nosuid {
        mf |= MountFlags::NOSUID;
    }
    if flags.nodev {
        mf |= MountFlags::NODEV;
    }
    if flags.noexec {
        mf |= MountFlags::NOEXEC;
    }
    if flags.readonly {
        mf |= MountFlags::RDONLY;
    }
    rustix::mount::mount(fstype, dst, fstype, mf, data.as_c_str())
        .op(|| format!("mounting {fstype} at {} ({options})", dst.display()))
}

/// Mounts the file system on device `source` (a loop device) at `dst`.
pub fn mount_source(source: &Path, dst: &Path, fstype: &str, flags: FsFlags) -> Result<()> {
    let mut mf = MountFlags::empty();
    for (on, flag) in [
        (flags.nosuid, MountFlags::NOSUID),
        (flags.nodev, MountFlags::NODEV),
        (flags.noexec, MountFlags::NOEXEC),
        (flags.readonly, MountFlags::RDONLY),
    ] {
        if on {
            mf |= flag;
        }
    }
    rustix::mount::mount(source, dst, fstype, mf, None).op(|| {
        format!(
            "mounting {} ({fstype}) at {}",
            source.display(),
            dst.display()
        )
    })
}

/// Flags for [`mount_fs`].
#[derive(Clone, Copy, Debug, Default)]
pub struct FsFlags {
    pub nosuid: bool,
    pub nodev: bool,
    pub noexec: bool,
    pub readonly: bool,
}

/// Detaches the mount at `path` (lazily, as `umount -l`).
pub fn unmount_detach(path: &Path) -> Result<()> {
    rustix::mount::unmount(path, UnmountFlags::DETACH)
        .op(|| format!("unmounting {}", path.display()))
}

/// Makes `new_root` the root of the calling process's mount namespace; the
/// old root goes to `put_old`, which must lie below `new_root`.
pub fn pivot_root(new_root: &Path, put_old: &Path) -> Result<()> {
    rustix::process::pivot_root(new_root, put_old)
        .op(|| format!("pivot_root({}, {})", new_root.display(), put_old.display()))
}
