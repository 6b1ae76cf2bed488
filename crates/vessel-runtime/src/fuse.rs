//! The `fuse` image driver's server: a SIF's SquashFS partition served
//! read-only through FUSE by `vessel-squashfs`, with several worker threads
//! (each on its own cloned `/dev/fuse` descriptor) and long cache timeouts,
//! since the image never changes while it is mounted: the kernel keeps
//! pages, entries and attributes, and asks again only on a miss.
//!
//! Inode numbers are SquashFS's own (1..=inode_count) with the root's and
//! inode 1's swapped, because FUSE's root is always 1. The kernel checks
//! permissions (`default_permissions`) on the owners [`Owners`] shows: the
//! image's own where the container's namespace maps them, the user's
//! otherwise.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::ops::Deref;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, Generation, INodeNo, KernelConfig,
    LockOwner, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEntry,
    ReplyOpen, ReplyStatfs, ReplyXattr, Request,
};
use vessel_squashfs::{Archive, Inode, InodeRef, Kind};

pub use crate::image_owners::Owners;

/// The image cannot change under the mount: cache for as long as it lives.
pub(crate) const TTL: Duration = Duration::from_secs(365 * 24 * 3600);

/// The largest request: a read-ahead (the kernel's limit is 256 pages
/// unless the admin raises `fs.fuse.max_pages_limit`).
pub(crate) const MAX_REQUEST: usize = 1 << 20;

pub struct ImageFs {
    archive: Archive,
    root_number: u32,
    /// SquashFS inode number → where the inode is, filled by lookups and
    /// directory listings (the kernel only uses numbers it was given).
    refs: RwLock<HashMap<u32, InodeRef>>,
    inodes: RwLock<HashMap<u32, Arc<Inode>>>,
    /// Who the files are shown as.
    owners: Owners,
    /// Whether any inode has extended attributes (see [`Served::getxattr`]).
    xattrs: bool,
    /// Whether to offer FUSE over io_uring at FUSE_INIT, and whether the
    /// kernel took it (see [`crate::fuse_ring`]).
    want_uring: bool,
    uring: AtomicBool,
    /// Listings over io_uring give attributes of directories only, until
    /// an entry listed without them is looked up (see
    /// [`ImageFs::files_get_attributes`]).
    files_get_attributes: AtomicBool,
    /// The directories listed so, until then.
    listed_without: Mutex<HashSet<u64>>,
}

impl ImageFs {
    pub fn new(
        archive: Archive,
        owners: Owners,
        xattrs: bool,
    ) -> Result<ImageFs, vessel_squashfs::Error> {
        let root_ref = archive.root();
        let root = archive.inode(root_ref)?;
        let mut refs = HashMap::new();
        refs.insert(root.number, root_ref);
        Ok(ImageFs {
            archive,
            root_number: root.number,
            refs: RwLock::new(refs),
            inodes: RwLock::new(HashMap::new()),
            owners,
            xattrs,
            want_uring: false,
            uring: AtomicBool::new(false),
            files_get_attributes: AtomicBool::new(false),
            listed_without: Mutex::new(HashSet::new()),
        })
    }

    fn ino(&self, number: u32) -> INodeNo {
        INodeNo(self.swap(number) as u64)
    }

    fn number(&self, ino: INodeNo) -> u32 {
        self.swap(u32::try_from(ino.0).unwrap_or(0))
    }

    fn swap(&self, n: u32) -> u32 {
        if n == self.root_number {
            1
        } else if n == 1 {
            self.root_number
        } else {
            n
        }
    }

    /// The inode, parsed once: a file's inode holds its whole block list,
    /// which every read needs.
    pub(crate) fn inode(&self, ino: INodeNo) -> Result<Arc<Inode>, Errno> {
        let number = self.number(ino);
        if let Some(i) = self.inodes.read().map_err(|_| Errno::EIO)?.get(&number) {
            return Ok(i.clone());
        }
        let r = self
            .refs
            .read()
            .map_err(|_| Errno::EIO)?
            .get(&number)
            .copied()
            .ok_or(Errno::ENOENT)?;
        let inode = Arc::new(self.archive.inode(r).map_err(io_error)?);
        if let Ok(mut m) = self.inodes.write() {
            m.insert(number, inode.clone());
        }
        Ok(inode)
    }

    fn remember(&self, number: u32, r: InodeRef) {
        let known = self
            .refs
            .read()
            .map(|m| m.contains_key(&number))
            .unwrap_or(true);
        if !known {
            if let Ok(mut m) = self.refs.write() {
                m.insert(number, r);
            }
        }
    }

    pub(crate) fn attr(&self, inode: &Inode) -> FileAttr {
        let time = UNIX_EPOCH + Duration::from_secs(inode.mtime as u64);
        let (uid, gid, perm) = self.owners.show(
            inode.uid,
            inode.gid,
            inode.mode & 0o7777,
            matches!(inode.kind, Kind::Dir | Kind::Symlink),
        );
        FileAttr {
            ino: self.ino(inode.number),
            size: inode.size,
            blocks: inode.size.div_ceil(512),
            atime: time,
            mtime: time,
            ctime: time,
            crtime: time,
            kind: file_type(inode.kind),
            perm,
            nlink: inode.nlink.max(1),
            uid,
            gid,
            rdev: inode.rdev,
            blksize: self.archive.superblock().block_size,
            flags: 0,
        }
    }

    /// `.`, `..` and the entries, each with its listing offset (its index + 1).
    fn entries(&self, dir: &Inode) -> Result<Vec<Listed>, Errno> {
        let mut out = vec![
            (dir.number, Kind::Dir, b".".to_vec(), None),
            (
                if dir.number == self.root_number {
                    self.root_number
                } else {
                    self.archive.parent(dir)
                },
                Kind::Dir,
                b"..".to_vec(),
                None,
            ),
        ];
        for e in self.archive.read_dir(dir).map_err(io_error)? {
            out.push((e.number, e.kind, e.name, Some(e.inode)));
        }
        Ok(out)
    }

    /// Whether a listing gives the attributes of entries other than
    /// directories. Attributes make the kernel build an inode for each
    /// entry, which is most of a cold `find`'s cost (it stats nothing and
    /// opens directories only), and save a lookup for each entry stat'd
    /// later, which is most of `ls -l`'s. The kernel's "auto" mode decides
    /// per directory after its first page; this decides per mount: files
    /// go without until one listed so is looked up (listed, then stat'd),
    /// and with them from then on. Only the io_uring queues can leave an
    /// entry without (fuser gives the entry's inode number and the
    /// listing's from one field).
    pub(crate) fn files_get_attributes(&self) -> bool {
        self.files_get_attributes.load(Ordering::Relaxed)
    }

    /// Directory `dir` was listed with entries lacking attributes.
    pub(crate) fn listed_without_attributes(&self, dir: INodeNo) {
        if let Ok(mut set) = self.listed_without.lock() {
            set.insert(dir.0);
        }
    }

    /// A lookup found `found` in `parent`: where it is no directory and
    /// `parent` was listed without attributes, the workload stats what it
    /// lists, and listings give all attributes from now on.
    pub(crate) fn looked_up(&self, parent: INodeNo, found: &Inode) {
        if found.kind == Kind::Dir || self.files_get_attributes() {
            return;
        }
        if let Ok(mut set) = self.listed_without.lock() {
            if set.contains(&parent.0) {
                self.files_get_attributes.store(true, Ordering::Relaxed);
                *set = HashSet::new();
            }
        }
    }

    /// Blocks, inodes and block size for `statfs`: all used.
    pub(crate) fn statfs_numbers(&self) -> (u64, u64, u32) {
        let sb = self.archive.superblock();
        let bsize = sb.block_size;
        (
            sb.bytes_used.div_ceil(bsize as u64),
            sb.inode_count as u64,
            bsize,
        )
    }

    /// The entry `name` of directory `parent`.
    pub(crate) fn lookup_entry(&self, parent: INodeNo, name: &[u8]) -> Result<Arc<Inode>, Errno> {
        let dir = self.inode(parent)?;
        if dir.kind != Kind::Dir {
            return Err(Errno::ENOTDIR);
        }
        let entry = self
            .archive
            .lookup(&dir, name)
            .map_err(io_error)?
            .ok_or(Errno::ENOENT)?;
        self.remember(entry.number, entry.inode);
        self.inode(self.ino(entry.number))
    }

    /// Reads file `inode` at `offset` into `buf` (no further than its
    /// end); returns the bytes read.
    pub(crate) fn read_into(
        &self,
        inode: &Inode,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize, Errno> {
        let want = (buf.len() as u64).min(inode.size.saturating_sub(offset)) as usize;
        let mut done = 0;
        while done < want {
            let n = self
                .archive
                .read(inode, offset + done as u64, &mut buf[done..want])
                .map_err(io_error)?;
            if n == 0 {
                break;
            }
            done += n;
        }
        Ok(done)
    }

    pub(crate) fn link_target(&self, ino: INodeNo) -> Result<Vec<u8>, Errno> {
        self.inode(ino)
            .and_then(|i| self.archive.read_link(&i).map_err(io_error))
    }

    /// Lists directory `ino` from listing offset `offset` on, calling `add`
    /// with each entry's inode number, the offset after it, its type, its
    /// name and (where `with_inode` says so for its type) its inode, until
    /// `add` says the reply is full. An entry whose inode is wanted but
    /// cannot be read is left out.
    pub(crate) fn list(
        &self,
        ino: INodeNo,
        offset: u64,
        with_inode: impl Fn(Kind) -> bool,
        mut add: impl FnMut(INodeNo, u64, Kind, &[u8], Option<&Inode>) -> bool,
    ) -> Result<(), Errno> {
        let entries = self.inode(ino).and_then(|d| self.entries(&d))?;
        for (i, (number, kind, name, r)) in entries.into_iter().enumerate().skip(offset as usize) {
            if let Some(r) = r {
                self.remember(number, r);
            }
            let inode = if with_inode(kind) {
                match self.inode(self.ino(number)) {
                    Ok(inode) => Some(inode),
                    Err(_) => continue,
                }
            } else {
                None
            };
            if add(
                self.ino(number),
                i as u64 + 1,
                kind,
                &name,
                inode.as_deref(),
            ) {
                break;
            }
        }
        Ok(())
    }

    /// Extended attribute `name` of `ino`, or the names of all (each
    /// followed by a NUL) when `name` is `None`. "Not implemented" in an
    /// image without any (see [`Served::getxattr`]).
    pub(crate) fn xattr(&self, ino: INodeNo, name: Option<&[u8]>) -> Result<Vec<u8>, Errno> {
        if !self.xattrs {
            return Err(Errno::ENOSYS);
        }
        let all = self
            .inode(ino)
            .and_then(|i| self.archive.xattrs(&i).map_err(io_error))?;
        match name {
            Some(name) => all
                .into_iter()
                .find(|(k, _)| k.as_slice() == name)
                .map(|(_, v)| v)
                .ok_or(Errno::NO_XATTR),
            None => {
                let mut out = Vec::new();
                for (k, _) in all {
                    out.extend_from_slice(&k);
                    out.push(0);
                }
                Ok(out)
            }
        }
    }
}

/// The file system as fuser's session serves it, sharing [`ImageFs`] with
/// the io_uring queues' threads.
pub struct Served(pub Arc<ImageFs>);

impl Deref for Served {
    type Target = ImageFs;
    fn deref(&self) -> &ImageFs {
        &self.0
    }
}

/// One listing entry: inode number, type, name, and where the inode is
/// (none for `.` and `..`).
type Listed = (u32, Kind, Vec<u8>, Option<InodeRef>);

fn file_type(kind: Kind) -> FileType {
    match kind {
        Kind::Dir => FileType::Directory,
        Kind::File => FileType::RegularFile,
        Kind::Symlink => FileType::Symlink,
        Kind::BlockDev => FileType::BlockDevice,
        Kind::CharDev => FileType::CharDevice,
        Kind::Fifo => FileType::NamedPipe,
        Kind::Socket => FileType::Socket,
    }
}

fn io_error(e: vessel_squashfs::Error) -> Errno {
    tracing::debug!("image read error: {e}");
    Errno::EIO
}

impl Filesystem for Served {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // Listings with attributes save one lookup per entry; symlinks and
        // directory pages may be cached like file pages. Plain listings
        // would make a cold `find` (which stats nothing) use a fifth less
        // CPU, and `ls -lR` (which stats everything) take twice as long
        // (Debian image, issue 20): "auto" keeps attributes for the first
        // page of each directory. An entry cannot go without attributes
        // alone, as fuser gives the entry's and the listing's inode
        // number from one field. The end of a listing always costs a
        // second, empty reply: the kernel learns the end no other way.
        for cap in [
            fuser::InitFlags::FUSE_DO_READDIRPLUS,
            fuser::InitFlags::FUSE_READDIRPLUS_AUTO,
            fuser::InitFlags::FUSE_PARALLEL_DIROPS,
            fuser::InitFlags::FUSE_CACHE_SYMLINKS,
        ] {
            let _ = config.add_capabilities(cap);
        }
        let _ = config.set_max_readahead(MAX_REQUEST as u32);
        // Nothing is written; the largest request then is a read-ahead,
        // which sizes each io_uring entry's buffer.
        let _ = config.set_max_write(MAX_REQUEST as u32);
        if self.want_uring
            && config
                .add_capabilities(fuser::InitFlags::FUSE_OVER_IO_URING)
                .is_ok()
        {
            self.uring.store(true, Ordering::Release);
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.lookup_entry(parent, name.as_bytes()) {
            Ok(inode) => reply.entry(&TTL, &self.attr(&inode), Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.inode(ino) {
            Ok(inode) => reply.attr(&TTL, &self.attr(&inode)),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.link_target(ino) {
            Ok(target) => reply.data(&target),
            Err(e) => reply.error(e),
        }
    }

    /// "Not implemented" tells the kernel (Linux 3.x+ for files, 5.1+ for
    /// directories) to stop sending OPEN/RELEASE and OPENDIR/RELEASEDIR at
    /// all and to keep page and directory caches across opens: an open of a
    /// cached file then costs no round trip. The mount is read-only, so the
    /// kernel refuses writes before they get here.
    fn open(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        reply.error(Errno::ENOSYS);
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        // A buffer for what the file has, not for what was asked: the
        // kernel asks a whole read-ahead window of small files too.
        let result = self.inode(ino).and_then(|inode| {
            let want = (size as u64).min(inode.size.saturating_sub(offset)) as usize;
            let mut buf = vec![0u8; want];
            let n = self.read_into(&inode, offset, &mut buf)?;
            buf.truncate(n);
            Ok(buf)
        });
        match result {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(e),
        }
    }

    fn opendir(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        reply.error(Errno::ENOSYS);
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let listed = self.list(
            ino,
            offset,
            |_| false,
            |ino, next, kind, name, _| {
                reply.add(ino, next, file_type(kind), OsStr::from_bytes(name))
            },
        );
        match listed {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let listed = self.list(
            ino,
            offset,
            |_| true,
            |ino, next, _kind, name, inode| {
                let Some(inode) = inode else { return false };
                reply.add(
                    ino,
                    next,
                    OsStr::from_bytes(name),
                    &TTL,
                    &self.attr(inode),
                    Generation(0),
                )
            },
        );
        match listed {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let (blocks, files, bsize) = self.statfs_numbers();
        reply.statfs(blocks, 0, 0, files, 0, bsize, 256, bsize);
    }

    /// In an image without any extended attributes, "not implemented":
    /// the kernel then stops asking (and answers "not supported" itself,
    /// which `cp -a`, tar and overlayfs's copy-up take as "none"). It asks
    /// on every lookup through the container's overlay and on every
    /// `execve` (for file capabilities): one round trip each, a third of
    /// the requests of a cold `find` in a container.
    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        match self.xattr(ino, Some(name.as_bytes())) {
            Ok(v) => xattr_reply(reply, size, &v),
            Err(e) => reply.error(e),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        match self.xattr(ino, None) {
            Ok(v) => xattr_reply(reply, size, &v),
            Err(e) => reply.error(e),
        }
    }
}

fn xattr_reply(reply: ReplyXattr, size: u32, value: &[u8]) {
    if size == 0 {
        reply.size(value.len() as u32);
    } else if value.len() > size as usize {
        reply.error(Errno::ERANGE);
    } else {
        reply.data(value);
    }
}

/// Serves `archive` on the FUSE connection `fd` (already mounted) with
/// `threads` workers until the file system is unmounted or the process
/// ends; `xattrs` says whether any inode has extended attributes. Returns
/// when the session ends. Where the kernel offers FUSE over io_uring, one
/// thread per CPU answers from its queue instead, and a single worker
/// keeps `/dev/fuse` for what still comes there (forgets, interrupts, the
/// requests before the queues are up).
pub fn serve(
    archive: Archive,
    fd: OwnedFd,
    threads: usize,
    owners: Owners,
    xattrs: bool,
) -> std::io::Result<()> {
    let mut fs = ImageFs::new(archive, owners, xattrs).map_err(std::io::Error::other)?;
    let ring_dev = if crate::fuse_ring::wanted() {
        fd.try_clone().ok()
    } else {
        None
    };
    fs.want_uring = ring_dev.is_some();
    let fs = Arc::new(fs);
    let mut config = fuser::Config::default();
    config.n_threads = Some(if ring_dev.is_some() {
        1
    } else {
        threads.max(1)
    });
    config.clone_fd = true;
    let session = fuser::Session::from_fd(Served(fs.clone()), fd, fuser::SessionACL::All, config)?;
    if let Some(dev) = ring_dev {
        if fs.uring.load(Ordering::Acquire) {
            crate::fuse_ring::start(&fs, dev);
        } else {
            tracing::debug!("the kernel did not take FUSE over io_uring; serving /dev/fuse");
        }
    }
    session.run()
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The SquashFS cannot be read.
    #[error("{0}")]
    Image(String),
    #[error("the FUSE driver needs /dev/fuse readable and writable by users (mode 0666)")]
    Device(#[source] vessel_sys::Hint),
    #[error("{0}")]
    Mount(vessel_sys::SysError),
    #[error(transparent)]
    Sys(#[from] vessel_sys::SysError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Whether any inode of the SquashFS at `offset` in `file` has extended
/// attributes: the count in the xattr id table's header (after the start of
/// the key/value table, a little-endian u64), when there is a table. When
/// the header cannot be read, yes: each inode is then asked.
fn has_xattrs(file: &std::fs::File, offset: u64, archive: &Archive) -> bool {
    use std::os::unix::fs::FileExt;
    let start = archive.superblock().xattr_id_table_start;
    if start == u64::MAX {
        return false;
    }
    let mut head = [0u8; 12];
    match file.read_exact_at(&mut head, offset.saturating_add(start)) {
        Ok(()) => head[8..12] != [0; 4],
        Err(_) => true,
    }
}

/// Worker threads: `VESSEL_FUSE_THREADS`, else one per CPU up to 16. On
/// 2 CPUs (issue 20), one thread lists as fast but reads a cold tree a
/// fifth slower (its decompression no longer overlaps the kernel's
/// read-ahead), and 4 list a fifth slower (each request wakes another
/// thread, often on the other CPU).
fn threads() -> usize {
    vessel_config::own_var(vessel_config::vessel_vars::FUSE_THREADS)
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| vessel_sys::process::cpu_count().min(16))
}

/// Mounts the SquashFS at `offset` in `file` read-only at `target` (owned
/// by `uid`/`gid` of the current user namespace, the container's user) and
/// forks the server that
/// answers for it; returns the server's pid. The server is a child process,
/// not threads of the caller, because the caller still has to fork the
/// payload, and a process must be single-threaded to fork safely. It leaves
/// the terminal's process group (a Ctrl-C is for the payload) and dies with
/// its parent.
///
/// Owners the namespace cannot map are shown as `uid`/`gid` (see
/// [`Owners`]), so that writable layers can change every image file.
pub fn mount_and_serve(
    file: &std::fs::File,
    offset: u64,
    size: u64,
    target: &std::path::Path,
    uid: u32,
    gid: u32,
) -> Result<Server, ServeError> {
    use vessel_sys::process::{self as p, Fork};
    // The kernel's page cache keeps what was read; these caches only need
    // to hold the blocks several requests share (fragments, metadata).
    let cache = vessel_squashfs::OpenOptions {
        metadata_cache_bytes: 8 << 20,
        data_cache_bytes: 16 << 20,
    };
    let archive = Archive::open_with(file.try_clone()?, offset, size, &cache)
        .map_err(|e| ServeError::Image(e.to_string()))?;
    let xattrs = has_xattrs(file, offset, &archive);
    let fd = vessel_sys::fuse::open_device().map_err(|e| {
        ServeError::Device(vessel_sys::Hint::with_cause(
            "set VESSEL_IMAGE_DRIVER=extract (or use --unsquash) to unpack images instead",
            e,
        ))
    })?;
    let owners = Owners::of_this_namespace((uid, gid))?;
    vessel_sys::fuse::mount(&fd, target, "vessel", uid, gid).map_err(ServeError::Mount)?;
    let threads = threads();
    match p::fork()? {
        Fork::Child => {
            p::leave_foreground_group();
            let _ = p::die_with_parent();
            let code = match serve(archive, fd, threads, owners, xattrs) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("FATAL:   the image's FUSE server stopped: {e}");
                    255
                }
            };
            p::exit_now(code)
        }
        Fork::Parent(pid) => Ok(Server(pid)),
    }
}

/// The server process of a mounted image: stopped (and reaped) when
/// dropped, once the container no longer needs the mount.
#[derive(Debug)]
pub struct Server(vessel_sys::process::Pid);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = vessel_sys::process::kill(self.0, 9);
        let _ = vessel_sys::process::wait_for(self.0);
    }
}

/// `vessel __mount-image IMAGE DIR CMD…`: the image's SquashFS served at
/// `dir` in new user and mount namespaces (the user mapped to itself), and
/// host program `command` run there; returns its exit status. For the
/// correctness tests and the benchmarks, which read the tree as served
/// without a container around it.
pub fn run_mounted(
    file: &std::fs::File,
    offset: u64,
    size: u64,
    dir: &std::path::Path,
    command: &[std::ffi::OsString],
) -> Result<i32, ServeError> {
    use vessel_sys::process as p;
    let (uid, gid) = (p::getuid(), p::getgid());
    let ns = vessel_sys::ns::Namespaces {
        user: uid != 0,
        mount: true,
        ..Default::default()
    };
    vessel_sys::ns::unshare(ns)?;
    if ns.user {
        vessel_sys::ns::write_id_maps(uid, gid, uid, gid)?;
    }
    vessel_sys::mount::make_private_recursive()?;
    let server = mount_and_serve(file, offset, size, dir, uid, gid)?;
    let env: Vec<_> = std::env::vars_os().collect();
    let status = p::run_to_end(command, &env)?;
    let _ = vessel_sys::mount::unmount_detach(dir);
    drop(server);
    Ok(status)
}
