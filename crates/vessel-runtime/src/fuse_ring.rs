//! The image's FUSE requests answered from io_uring queues, one thread per
//! CPU (see [`vessel_sys::fuse_ring`]), where the kernel offers FUSE over
//! io_uring (Linux 6.14+ with the `fuse` module's `enable_uring` set by the
//! admin). The answers are the same as fuser's session gives from
//! [`ImageFs`]; only the encoding (the kernel's `fuse_entry_out`,
//! `fuse_attr`, `fuse_dirent`… in include/uapi/linux/fuse.h) is written
//! here, as fuser's encoders are private to its `/dev/fuse` loop.

use std::sync::Arc;
use std::time::UNIX_EPOCH;

use fuser::{Errno, FileAttr, INodeNo};
use vessel_squashfs::Kind;
use vessel_sys::fuse_ring::{Request, Ring};

use crate::fuse::{ImageFs, MAX_REQUEST, TTL};

const LOOKUP: u32 = 1;
const GETATTR: u32 = 3;
const READLINK: u32 = 5;
const OPEN: u32 = 14;
const READ: u32 = 15;
const STATFS: u32 = 17;
const RELEASE: u32 = 18;
const GETXATTR: u32 = 22;
const LISTXATTR: u32 = 23;
const OPENDIR: u32 = 27;
const READDIR: u32 = 28;
const RELEASEDIR: u32 = 29;
const DESTROY: u32 = 38;
const READDIRPLUS: u32 = 44;

/// Entries per queue of a CPU the server may run on: one answered while
/// the kernel fills the other.
const DEPTH: usize = 2;

/// Whether to offer FUSE over io_uring: where the kernel does and an
/// io_uring can be made, unless `VESSEL_FUSE_URING=0`.
pub fn wanted() -> bool {
    let var = vessel_config::own_var(vessel_config::vessel_vars::FUSE_URING);
    if matches!(var.as_deref(), Some("0" | "no" | "false")) {
        return false;
    }
    let enabled = std::fs::read_to_string("/sys/module/fuse/parameters/enable_uring")
        .map(|v| v.trim() == "Y")
        .unwrap_or(false);
    enabled && vessel_sys::fuse_ring::available()
}

/// Starts the queues' threads on connection `dev`: one per CPU this
/// process may run on, bound to it and serving its queue. The kernel uses
/// the rings only once every possible CPU's queue has an entry, so the
/// first thread also takes the queues of the CPUs it may not run on (a
/// job's CPU binding), which see requests only from processes bound
/// elsewhere. Where this fails, `/dev/fuse` keeps serving.
pub fn start(fs: &Arc<ImageFs>, dev: std::os::fd::OwnedFd) {
    let possible = match vessel_sys::fuse_ring::possible_cpus() {
        Ok(n) => n,
        Err(e) => return tracing::debug!("no FUSE over io_uring: {e}"),
    };
    let allowed: Vec<usize> = vessel_sys::process::allowed_cpus()
        .into_iter()
        .filter(|&c| c < possible && c <= u16::MAX as usize)
        .collect();
    for (k, &cpu) in allowed.iter().enumerate() {
        let mut queues = vec![(cpu as u16, DEPTH)];
        if k == 0 {
            queues.extend(
                (0..possible.min(u16::MAX as usize + 1))
                    .filter(|q| !allowed.contains(q))
                    .map(|q| (q as u16, 1)),
            );
        }
        let (fs, dev) = match dev.try_clone() {
            Ok(d) => (fs.clone(), d),
            Err(e) => return tracing::debug!("no FUSE over io_uring: {e}"),
        };
        let spawned = std::thread::Builder::new()
            .name(format!("fuse-ring-{cpu}"))
            .spawn(move || {
                let _ = vessel_sys::process::pin_to_cpu(cpu);
                let served = Ring::register(dev, &queues, MAX_REQUEST)
                    .and_then(|mut ring| ring.serve(|req, out| answer(&fs, req, out)));
                if let Err(e) = served {
                    tracing::debug!("FUSE queue of CPU {cpu}: {e}");
                }
            });
        if let Err(e) = spawned {
            return tracing::debug!("no FUSE over io_uring: {e}");
        }
    }
}

/// Answers one request into `out`: the answer's length, or an errno.
fn answer(fs: &ImageFs, req: &Request, out: &mut [u8]) -> Result<usize, i32> {
    let ino = INodeNo(req.nodeid);
    let read_in = || (u64_at(req.fixed, 8), u32_at(req.fixed, 16) as usize);
    let result = match req.opcode {
        LOOKUP => fs.lookup_entry(ino, name(req.payload)).map(|inode| {
            fs.looked_up(ino, &inode);
            put_entry(out, 0, &fs.attr(&inode), inode.kind)
        }),
        GETATTR => fs.inode(ino).map(|inode| {
            // fuse_attr_out: attr_valid, its nanoseconds, a dummy, the attributes.
            out[..16].fill(0);
            out[..8].copy_from_slice(&TTL.as_secs().to_ne_bytes());
            put_attr(&mut out[16..], &fs.attr(&inode), inode.kind);
            16 + ATTR
        }),
        READLINK => fs.link_target(ino).and_then(|t| put_bytes(out, &t)),
        READ => {
            let (offset, size) = read_in();
            let size = size.min(out.len());
            fs.inode(ino)
                .and_then(|inode| fs.read_into(&inode, offset, &mut out[..size]))
        }
        READDIR | READDIRPLUS => {
            let (offset, size) = read_in();
            let limit = size.min(out.len());
            let out = &mut out[..limit];
            let plus = req.opcode == READDIRPLUS;
            let all = fs.files_get_attributes();
            let with_attrs = |kind| plus && (all || kind == Kind::Dir);
            let (mut at, mut bare) = (0, false);
            let listed = fs.list(ino, offset, with_attrs, |ino, next, kind, name, inode| {
                let entry = plus.then(|| inode.map(|i| fs.attr(i)));
                bare |= plus && inode.is_none();
                match put_dirent(out, at, ino, next, kind, name, entry) {
                    Some(end) => {
                        at = end;
                        false
                    }
                    None => true,
                }
            });
            if bare {
                fs.listed_without_attributes(ino);
            }
            listed.map(|()| at)
        }
        GETXATTR => fs
            .xattr(ino, Some(name(req.payload)))
            .and_then(|v| put_xattr(out, u32_at(req.fixed, 0), &v)),
        LISTXATTR => fs
            .xattr(ino, None)
            .and_then(|v| put_xattr(out, u32_at(req.fixed, 0), &v)),
        STATFS => {
            // fuse_kstatfs: blocks, bfree, bavail, files, ffree, bsize,
            // namelen, frsize, padding, spare[6].
            let (blocks, files, bsize) = fs.statfs_numbers();
            out[..80].fill(0);
            out[..8].copy_from_slice(&blocks.to_ne_bytes());
            out[24..32].copy_from_slice(&files.to_ne_bytes());
            out[40..44].copy_from_slice(&bsize.to_ne_bytes());
            out[44..48].copy_from_slice(&256u32.to_ne_bytes());
            out[48..52].copy_from_slice(&bsize.to_ne_bytes());
            Ok(80)
        }
        // As on /dev/fuse (see `Served::open`): no opens, so no handles.
        OPEN | OPENDIR => Err(Errno::ENOSYS),
        RELEASE | RELEASEDIR | DESTROY => Ok(0),
        _ => Err(Errno::ENOSYS),
    };
    result.map_err(|e| e.code())
}

/// A name argument: the bytes before its NUL.
fn name(payload: &[u8]) -> &[u8] {
    let end = payload
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(payload.len());
    &payload[..end]
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map(|x| u32::from_ne_bytes([x[0], x[1], x[2], x[3]]))
        .unwrap_or(0)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .map(|x| {
            let mut v = [0u8; 8];
            v.copy_from_slice(x);
            u64::from_ne_bytes(v)
        })
        .unwrap_or(0)
}

fn put_bytes(out: &mut [u8], data: &[u8]) -> Result<usize, Errno> {
    let dst = out.get_mut(..data.len()).ok_or(Errno::ERANGE)?;
    dst.copy_from_slice(data);
    Ok(data.len())
}

/// GETXATTR and LISTXATTR: with size 0 the value's size
/// (`fuse_getxattr_out`), else the value if it fits.
fn put_xattr(out: &mut [u8], size: u32, value: &[u8]) -> Result<usize, Errno> {
    if size == 0 {
        out[..8].fill(0);
        out[..4].copy_from_slice(&(value.len() as u32).to_ne_bytes());
        Ok(8)
    } else if value.len() > size as usize {
        Err(Errno::ERANGE)
    } else {
        put_bytes(out, value)
    }
}

/// Size of `fuse_attr`.
const ATTR: usize = 88;
/// Size of `fuse_entry_out`: nodeid, generation, entry_valid, attr_valid,
/// their nanoseconds, the attributes.
const ENTRY: usize = 40 + ATTR;

/// Writes `fuse_attr` for `a`, of type `kind`, at the start of `out` (at
/// least [`ATTR`] bytes).
fn put_attr(out: &mut [u8], a: &FileAttr, kind: Kind) {
    let secs = |t: std::time::SystemTime| {
        t.duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    };
    let o = &mut out[..ATTR];
    o.fill(0);
    for (i, v) in [
        a.ino.0,
        a.size,
        a.blocks,
        secs(a.atime),
        secs(a.mtime),
        secs(a.ctime),
    ]
    .into_iter()
    .enumerate()
    {
        o[i * 8..i * 8 + 8].copy_from_slice(&v.to_ne_bytes());
    }
    // atimensec, mtimensec, ctimensec stay 0 (images keep whole seconds).
    for (i, v) in [
        kind.mode_bits() | u32::from(a.perm),
        a.nlink,
        a.uid,
        a.gid,
        a.rdev,
        a.blksize,
    ]
    .into_iter()
    .enumerate()
    {
        let at = 60 + i * 4;
        o[at..at + 4].copy_from_slice(&v.to_ne_bytes());
    }
}

/// Writes `fuse_entry_out` for `a`, of type `kind`, at `at`; returns where
/// it ends.
fn put_entry(out: &mut [u8], at: usize, a: &FileAttr, kind: Kind) -> usize {
    let o = &mut out[at..at + ENTRY];
    o[..40].fill(0);
    o[..8].copy_from_slice(&a.ino.0.to_ne_bytes());
    o[16..24].copy_from_slice(&TTL.as_secs().to_ne_bytes());
    o[24..32].copy_from_slice(&TTL.as_secs().to_ne_bytes());
    put_attr(&mut o[40..], a, kind);
    at + ENTRY
}

/// Writes one listing entry at `at`: `fuse_direntplus` when `entry` is
/// given (its `fuse_entry_out` all zeros where there are no attributes,
/// which the kernel takes as "no inode for this one"), else `fuse_dirent`
/// (inode, next offset, name length, type, name, padded to 8 bytes).
/// Returns where it ends, or `None` when it does not fit.
fn put_dirent(
    out: &mut [u8],
    at: usize,
    ino: INodeNo,
    next: u64,
    kind: Kind,
    name: &[u8],
    entry: Option<Option<FileAttr>>,
) -> Option<usize> {
    let head = if entry.is_some() { ENTRY } else { 0 };
    let len = head + 24 + name.len();
    let end = at + len.div_ceil(8) * 8;
    if end > out.len() {
        return None;
    }
    match &entry {
        Some(Some(a)) => {
            put_entry(out, at, a, kind);
        }
        Some(None) => out[at..at + ENTRY].fill(0),
        None => {}
    }
    let d = &mut out[at + head..end];
    d.fill(0);
    d[..8].copy_from_slice(&ino.0.to_ne_bytes());
    d[8..16].copy_from_slice(&next.to_ne_bytes());
    d[16..20].copy_from_slice(&(name.len() as u32).to_ne_bytes());
    // A listing's type (`DT_DIR`…) is the mode's type bits shifted down.
    d[20..24].copy_from_slice(&(kind.mode_bits() >> 12).to_ne_bytes());
    d[24..24 + name.len()].copy_from_slice(name);
    Some(end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fuser::FileType;
    use std::time::Duration;

    fn attr() -> FileAttr {
        let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        FileAttr {
            ino: INodeNo(7),
            size: 4096,
            blocks: 8,
            atime: t,
            mtime: t,
            ctime: t,
            crtime: t,
            kind: FileType::Directory,
            perm: 0o755,
            nlink: 2,
            uid: 1000,
            gid: 100,
            rdev: 0,
            blksize: 131072,
            flags: 0,
        }
    }

    #[test]
    fn attr_follows_the_kernel_layout() {
        let mut out = [0xffu8; ATTR];
        put_attr(&mut out, &attr(), Kind::Dir);
        assert_eq!(u64_at(&out, 0), 7);
        assert_eq!(u64_at(&out, 8), 4096);
        assert_eq!(u64_at(&out, 32), 1_700_000_000);
        assert_eq!(u32_at(&out, 60), 0o040755);
        assert_eq!(u32_at(&out, 64), 2);
        assert_eq!(u32_at(&out, 68), 1000);
        assert_eq!(u32_at(&out, 72), 100);
        assert_eq!(u32_at(&out, 80), 131072);
        assert_eq!(u32_at(&out, 84), 0);
    }

    #[test]
    fn dirents_are_padded_and_stop_when_full() {
        let mut out = [0u8; 64];
        let end = put_dirent(&mut out, 0, INodeNo(5), 3, Kind::Symlink, b"abc", None);
        assert_eq!(end, Some(32));
        assert_eq!(u32_at(&out, 16), 3);
        assert_eq!(u32_at(&out, 20), 10);
        assert_eq!(&out[24..27], b"abc");
        assert_eq!(
            put_dirent(&mut out, 32, INodeNo(6), 4, Kind::File, b"0123456789", None),
            None
        );
        let mut big = [0u8; 256];
        let end = put_dirent(
            &mut big,
            0,
            INodeNo(7),
            1,
            Kind::Dir,
            b"d",
            Some(Some(attr())),
        );
        assert_eq!(end, Some(ENTRY + 32));
        assert_eq!(u64_at(&big, 0), 7);
        assert_eq!(u64_at(&big, ENTRY), 7);
        big.fill(0xff);
        let end = put_dirent(&mut big, 0, INodeNo(8), 2, Kind::File, b"f", Some(None));
        assert_eq!(end, Some(ENTRY + 32));
        assert!(
            big[..ENTRY].iter().all(|&b| b == 0),
            "no inode for the kernel"
        );
        assert_eq!(u64_at(&big, ENTRY), 8);
    }

    #[test]
    fn names_end_at_their_nul() {
        assert_eq!(name(b"bin\0"), b"bin");
        assert_eq!(name(b"bin"), b"bin");
    }
}
