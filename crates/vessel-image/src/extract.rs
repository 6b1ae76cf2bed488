//! Unpacking a SquashFS archive (or chosen paths of it) into a directory:
//! the `unsquashfs` Vessel needs to run images without privilege, inspect
//! them and build from them. The archive is read with `vessel-squashfs`;
//! every file-system call goes through `vessel-sys` (`tree`, `path`).
//!
//! The archive is untrusted. Every entry is created relative to its parent
//! directory's descriptor with `O_EXCL`/`O_NOFOLLOW` semantics (`mkdirat`,
//! `openat(O_CREAT|O_EXCL|O_NOFOLLOW)`, `symlinkat`, `mknodat`, `linkat`
//! without following), so nothing the archive created earlier (a symbolic
//! link named like a later directory, say) is ever followed, and a name
//! that appears twice fails instead of replacing what was there. Names are
//! single path components (checked by the reader and again here). Memory is
//! bounded by the depth limit and the archive's own directory sizes.
//!
//! Regular files are created in the walk's order, then filled by a few
//! worker threads (decompression is the cost of an extraction, and the
//! archive's reader is shared across threads); everything else, and every
//! name, is made by the walk itself.
//!
//! Order of work: a file's contents, then its owner (only when running as
//! root, where `chown` is allowed), mode and times. Directories are made
//! `0700` while they are filled, and their owners, modes and times are set
//! at the very end, deepest first: a read-only directory can still be
//! filled, hard links can still be made into it, and no later creation
//! changes a directory's time after it was set. Device nodes are made only
//! by root and otherwise skipped (a container does not need them; the
//! runtime binds `/dev`); extended attributes are not restored.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Mutex;

use vessel_squashfs::{Archive, DirEntry, Error, Inode, InodeRef, Kind};
use vessel_sys::path::{make_dir_at, open_dir_at};
use vessel_sys::tree::{self, Node};

/// Deepest directory nesting extracted: one descriptor is held per level.
pub const MAX_DEPTH: usize = 512;

/// What to extract, and how.
#[derive(Clone, Debug, Default)]
pub struct ExtractOptions {
    /// Absolute paths inside the archive to extract, each with its whole
    /// subtree and the directories above it; empty means everything. A path
    /// that is not in the archive is skipped, as `unsquashfs` does.
    pub paths: Vec<PathBuf>,
    /// Whether to give everything the archive's owners; `None` means only
    /// when running as root (effective uid 0, a fake root included).
    pub owners: Option<bool>,
}

/// What an extraction made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExtractStats {
    pub dirs: u64,
    pub files: u64,
    pub symlinks: u64,
    /// Entries made as hard links to an earlier one.
    pub hard_links: u64,
    /// FIFOs and sockets.
    pub special: u64,
    pub devices: u64,
    /// Device nodes not made: not root, or refused (a user namespace).
    pub skipped_devices: u64,
    /// Entries whose owner could not be set (ids not mapped in a user
    /// namespace); they keep the extracting user's.
    pub owners_not_set: u64,
    /// Bytes of regular file contents.
    pub bytes: u64,
}

/// Why an extraction stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error("cannot use the destination {dest}: {source}")]
    Destination {
        dest: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path:?} cannot be extracted: {problem}")]
    BadPath {
        path: PathBuf,
        problem: &'static str,
    },
    #[error("reading {path} from the image")]
    Read {
        path: PathBuf,
        #[source]
        source: Error,
    },
    #[error("{op} {path}")]
    Write {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the image is corrupt or hostile at {path}: {problem}")]
    Hostile {
        path: PathBuf,
        problem: &'static str,
    },
}

type Result<T, E = ExtractError> = std::result::Result<T, E>;

/// Which part of a directory to extract: everything, or the named children
/// (each with what to take below it).
#[derive(Debug)]
enum Select {
    All,
    Some(HashMap<Vec<u8>, Select>),
}

impl Select {
    fn from_paths(paths: &[PathBuf]) -> Result<Select> {
        if paths.is_empty() {
            return Ok(Select::All);
        }
        let mut top = Select::Some(HashMap::new());
        for p in paths {
            let bad = |problem| ExtractError::BadPath {
                path: p.clone(),
                problem,
            };
            if !p.has_root() {
                return Err(bad("not an absolute path"));
            }
            let mut node = &mut top;
            for c in p.components() {
                match c {
                    Component::RootDir | Component::CurDir => {}
                    Component::Normal(n) => {
                        node = match node {
                            Select::All => break,
                            Select::Some(m) => m
                                .entry(n.as_bytes().to_vec())
                                .or_insert_with(|| Select::Some(HashMap::new())),
                        }
                    }
                    Component::ParentDir | Component::Prefix(_) => {
                        return Err(bad("`..` is not allowed"))
                    }
                }
            }
            *node = Select::All;
        }
        Ok(top)
    }

    fn child(&self, name: &[u8]) -> Option<&Select> {
        match self {
            Select::All => Some(&Select::All),
            Select::Some(m) => m.get(name),
        }
    }
}

/// A directory being filled.
struct Frame<'s> {
    fd: OwnedFd,
    /// Relative to the destination, without a leading `/`.
    path: Vec<u8>,
    entries: std::vec::IntoIter<DirEntry>,
    select: &'s Select,
}

/// Attributes to set on a directory once everything is in place.
struct DirAttrs {
    path: Vec<u8>,
    inode: Inode,
}

struct Extractor<'a> {
    arc: &'a Archive,
    dest: PathBuf,
    root: OwnedFd,
    owners: bool,
    is_root: bool,
    stats: ExtractStats,
    /// Inode number → where it was first extracted, for hard links.
    links: HashMap<u32, Vec<u8>>,
    visited: HashSet<InodeRef>,
    dirs: Vec<DirAttrs>,
    /// Files created and waiting for their contents (a worker thread's
    /// job); `None` fills them in the walk itself.
    fill: Option<SyncSender<FileJob>>,
    buf: Vec<u8>,
}

/// A regular file created empty, to be filled and given its attributes.
struct FileJob {
    file: File,
    path: Vec<u8>,
    ino: Inode,
}

/// Most threads filling files: beyond a few, the disk or the page cache is
/// the limit, not decompression.
const MAX_FILL_THREADS: usize = 8;

/// Extracts the archive (or the paths `opts` names) into `dest`, which is
/// created when missing and otherwise must be a directory; its mode, times
/// (and owner) become those of the archive's root.
pub fn extract(archive: &Archive, dest: &Path, opts: &ExtractOptions) -> Result<ExtractStats> {
    {
        let arc = archive;
        let select = Select::from_paths(&opts.paths)?;
        let dest_err = |source: io::Error| ExtractError::Destination {
            dest: dest.to_path_buf(),
            source,
        };
        let root = tree::make_and_open_dir(dest, 0o700).map_err(dest_err)?;
        let is_root = vessel_sys::process::is_root();
        let owners = opts.owners.unwrap_or(is_root);
        let mut x = Extractor {
            arc,
            dest: dest.to_path_buf(),
            root,
            owners,
            is_root,
            stats: ExtractStats::default(),
            links: HashMap::new(),
            visited: HashSet::new(),
            dirs: Vec::new(),
            fill: None,
            buf: vec![0; block_size(arc)],
        };
        let threads = std::thread::available_parallelism()
            .map_or(1, usize::from)
            .min(MAX_FILL_THREADS);
        if threads < 2 {
            x.run(&select)?;
            x.finish_dirs()?;
            return Ok(x.stats);
        }
        let (send, receive) = sync_channel::<FileJob>(4 * threads);
        let receive = Mutex::new(receive);
        let walked = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|_| scope.spawn(|| fill_files(arc, &receive, owners)))
                .collect();
            x.fill = Some(send);
            let walked = x.run(&select);
            // Closing the channel lets the workers finish what is queued.
            x.fill = None;
            let mut filled = Ok(0);
            for w in workers {
                let r = w.join().unwrap_or_else(|_| {
                    Err(hostile(b"", "a thread filling files stopped unexpectedly"))
                });
                filled = match (filled, r) {
                    (Ok(a), Ok(b)) => Ok(a + b),
                    (Err(e), _) | (Ok(_), Err(e)) => Err(e),
                };
            }
            walked.and(filled)
        })?;
        x.stats.owners_not_set += walked;
        x.finish_dirs()?;
        Ok(x.stats)
    }
}

/// A worker: fills the files the walk queues until the queue closes; the
/// count of owners it could not set. After an error it keeps taking jobs
/// (dropping them) so that the walk never blocks on a full queue.
fn fill_files(arc: &Archive, jobs: &Mutex<Receiver<FileJob>>, owners: bool) -> Result<u64> {
    let mut buf = vec![0; block_size(arc)];
    let mut result = Ok(0);
    loop {
        let job = match jobs.lock() {
            Ok(r) => r.recv(),
            Err(_) => return Err(hostile(b"", "a thread filling files stopped unexpectedly")),
        };
        let Ok(job) = job else { return result };
        if let Ok(n) = result {
            result = fill_file(arc, &job, &mut buf, owners).map(|unset| n + u64::from(unset));
        }
    }
}

/// A file's contents, then its owner, mode and times; whether the owner
/// could not be set.
fn fill_file(arc: &Archive, job: &FileJob, buf: &mut [u8], owners: bool) -> Result<bool> {
    let FileJob { file, path, ino } = job;
    let mut at = 0u64;
    while at < ino.size {
        let n = arc
            .read(ino, at, buf)
            .map_err(|source| ExtractError::Read {
                path: shown(path),
                source,
            })?;
        if n == 0 {
            return Err(hostile(path, "file data ends before its size"));
        }
        let chunk = &buf[..n];
        // Blocks of zeros (sparse ones included) stay holes.
        if chunk.iter().any(|&b| b != 0) {
            file.write_all_at(chunk, at)
                .map_err(|e| write_err("writing", path, e))?;
        }
        at += n as u64;
    }
    file.set_len(ino.size)
        .map_err(|e| write_err("writing", path, e))?;
    set_attrs_fd(file, path, ino, owners)
}

/// Owner (when asked), mode and times of an open file or directory;
/// whether the owner could not be set (an id not mapped here).
fn set_attrs_fd(fd: &impl AsFd, path: &[u8], ino: &Inode, owners: bool) -> Result<bool> {
    let mut unset = false;
    if owners {
        unset = owner_not_set(tree::chown_fd(fd, ino.uid, ino.gid), path)?;
    }
    vessel_sys::path::chmod_fd(fd, u32::from(ino.mode & 0o7777))
        .map_err(|e| write_err("setting the mode of", path, e))?;
    tree::set_times_fd(fd, i64::from(ino.mtime))
        .map_err(|e| write_err("setting the times of", path, e))?;
    Ok(unset)
}

/// Whether a `chown` failed only because the id is not mapped in this
/// user namespace (the entry then keeps the extracting user's).
fn owner_not_set(r: io::Result<()>, path: &[u8]) -> Result<bool> {
    match r {
        Ok(()) => Ok(false),
        Err(e) if matches!(e.raw_os_error(), Some(EINVAL | EPERM)) => Ok(true),
        Err(e) => Err(write_err("setting the owner of", path, e)),
    }
}

// The kernel's errno values (the same on every Linux architecture).
const EPERM: i32 = 1;
const EACCES: i32 = 13;
const EINVAL: i32 = 22;

fn block_size(arc: &Archive) -> usize {
    arc.superblock().block_size as usize
}

impl Extractor<'_> {
    fn run(&mut self, select: &Select) -> Result<()> {
        let root_ref = self.arc.root();
        let root_ino = self.read_inode(root_ref, b"")?;
        if root_ino.kind != Kind::Dir {
            return Err(hostile(b"", "the root is not a directory"));
        }
        let root_fd = self.dup_root()?;
        self.visited.insert(root_ref);
        let mut stack = vec![self.frame(root_fd, Vec::new(), &root_ino, select)?];
        self.dirs.push(DirAttrs {
            path: Vec::new(),
            inode: root_ino,
        });
        loop {
            let depth = stack.len();
            let Some(top) = stack.last_mut() else { break };
            let Some(entry) = top.entries.next() else {
                stack.pop();
                continue;
            };
            let Some(sel) = top.select.child(&entry.name) else {
                continue;
            };
            let path = join(&top.path, &entry.name);
            if !valid_name(&entry.name) {
                return Err(hostile(&path, "a name that is not a single path component"));
            }
            let ino = self.read_inode(entry.inode, &path)?;
            if ino.kind != entry.kind {
                return Err(hostile(&path, "entry and inode disagree on the file type"));
            }
            let parent = &top.fd;
            let name = OsStr::from_bytes(&entry.name);
            if ino.kind == Kind::Dir {
                if !self.visited.insert(entry.inode) {
                    return Err(hostile(&path, "a directory that contains itself"));
                }
                if depth >= MAX_DEPTH {
                    return Err(hostile(&path, "directories nested too deeply"));
                }
                make_dir_at(parent, name, 0o700)
                    .map_err(|e| write_err("creating the directory", &path, e))?;
                let fd = open_dir_at(parent, name)
                    .map_err(|e| write_err("opening the directory", &path, e))?;
                self.stats.dirs += 1;
                let frame = self.frame(fd, path.clone(), &ino, sel)?;
                self.dirs.push(DirAttrs { path, inode: ino });
                stack.push(frame);
                continue;
            }
            self.leaf(parent, name, &path, &ino)?;
        }
        Ok(())
    }

    fn frame<'s>(
        &self,
        fd: OwnedFd,
        path: Vec<u8>,
        dir: &Inode,
        select: &'s Select,
    ) -> Result<Frame<'s>> {
        let entries = self
            .arc
            .read_dir(dir)
            .map_err(|source| ExtractError::Read {
                path: shown(&path),
                source,
            })?;
        Ok(Frame {
            fd,
            path,
            entries: entries.into_iter(),
            select,
        })
    }

    fn read_inode(&self, r: InodeRef, path: &[u8]) -> Result<Inode> {
        self.arc.inode(r).map_err(|source| ExtractError::Read {
            path: shown(path),
            source,
        })
    }

    fn dup_root(&self) -> Result<OwnedFd> {
        self.root
            .try_clone()
            .map_err(|source| ExtractError::Destination {
                dest: self.dest.clone(),
                source,
            })
    }

    /// Everything but a directory.
    fn leaf(&mut self, parent: &OwnedFd, name: &OsStr, path: &[u8], ino: &Inode) -> Result<()> {
        if ino.nlink > 1 {
            if let Some(first) = self.links.get(&ino.number) {
                let (dir, first_name) = self.open_parent(first)?;
                tree::hard_link_at(&dir, first_name, parent, name)
                    .map_err(|e| write_err("creating the hard link", path, e))?;
                self.stats.hard_links += 1;
                return Ok(());
            }
        }
        match ino.kind {
            Kind::File => self.file(parent, name, path, ino)?,
            Kind::Symlink => {
                let target = self
                    .arc
                    .read_link(ino)
                    .map_err(|source| ExtractError::Read {
                        path: shown(path),
                        source,
                    })?;
                if target.is_empty() || target.contains(&0) {
                    return Err(hostile(path, "an invalid symbolic link target"));
                }
                tree::symlink_at(&target, parent, name)
                    .map_err(|e| write_err("creating the symbolic link", path, e))?;
                self.stats.symlinks += 1;
                self.attrs_at(parent, name, path, ino, false)?;
            }
            Kind::Fifo | Kind::Socket => {
                let node = if ino.kind == Kind::Fifo {
                    Node::Fifo
                } else {
                    Node::Socket
                };
                tree::make_node_at(parent, name, node, 0o600)
                    .map_err(|e| write_err("creating", path, e))?;
                self.stats.special += 1;
                self.attrs_at(parent, name, path, ino, true)?;
            }
            Kind::BlockDev | Kind::CharDev => {
                if !self.is_root {
                    self.stats.skipped_devices += 1;
                    return Ok(());
                }
                let (major, minor) = ino.rdev_major_minor();
                let node = if ino.kind == Kind::BlockDev {
                    Node::BlockDevice { major, minor }
                } else {
                    Node::CharDevice { major, minor }
                };
                match tree::make_node_at(parent, name, node, 0o600) {
                    Ok(()) => {}
                    // Root of a user namespace, or a nodev mount.
                    Err(e) if matches!(e.raw_os_error(), Some(EPERM | EACCES)) => {
                        self.stats.skipped_devices += 1;
                        return Ok(());
                    }
                    Err(e) => return Err(write_err("creating the device", path, e)),
                }
                self.stats.devices += 1;
                self.attrs_at(parent, name, path, ino, true)?;
            }
            Kind::Dir => return Err(hostile(path, "a directory where a file was expected")),
        }
        if ino.nlink > 1 {
            self.links.insert(ino.number, path.to_vec());
        }
        Ok(())
    }

    fn file(&mut self, parent: &OwnedFd, name: &OsStr, path: &[u8], ino: &Inode) -> Result<()> {
        let fd = tree::create_file_at(parent, name, 0o600)
            .map_err(|e| write_err("creating", path, e))?;
        self.stats.files += 1;
        self.stats.bytes += ino.size;
        let job = FileJob {
            file: File::from(fd),
            path: path.to_vec(),
            ino: ino.clone(),
        };
        match &self.fill {
            Some(queue) => queue
                .send(job)
                .map_err(|_| hostile(path, "the threads filling files stopped (an earlier error)")),
            None => {
                let unset = fill_file(self.arc, &job, &mut self.buf, self.owners)?;
                self.stats.owners_not_set += u64::from(unset);
                Ok(())
            }
        }
    }

    /// Owner, mode and times of an open file or directory.
    fn attrs_fd(&mut self, fd: &impl AsFd, path: &[u8], ino: &Inode) -> Result<()> {
        let unset = set_attrs_fd(fd, path, ino, self.owners)?;
        self.stats.owners_not_set += u64::from(unset);
        Ok(())
    }

    /// Owner, (mode) and times of `name` in `dir`, never following it.
    fn attrs_at(
        &mut self,
        dir: &OwnedFd,
        name: &OsStr,
        path: &[u8],
        ino: &Inode,
        mode: bool,
    ) -> Result<()> {
        if self.owners {
            let r = tree::chown_at(dir, name, ino.uid, ino.gid);
            self.owner_result(r, path)?;
        }
        if mode {
            // Only for entries this extraction just made that are not
            // links (FIFOs, sockets, devices), and names are never reused.
            tree::chmod_at(dir, name, u32::from(ino.mode & 0o7777))
                .map_err(|e| write_err("setting the mode of", path, e))?;
        }
        tree::set_times_at(dir, name, i64::from(ino.mtime))
            .map_err(|e| write_err("setting the times of", path, e))?;
        Ok(())
    }

    fn owner_result(&mut self, r: io::Result<()>, path: &[u8]) -> Result<()> {
        let unset = owner_not_set(r, path)?;
        self.stats.owners_not_set += u64::from(unset);
        Ok(())
    }

    /// The directory holding an entry extracted earlier, opened from the
    /// destination without following any link, and the entry's name.
    fn open_parent<'p>(&self, path: &'p [u8]) -> Result<(OwnedFd, &'p OsStr)> {
        let (dir, name) = match path.iter().rposition(|&b| b == b'/') {
            Some(i) => (&path[..i], &path[i + 1..]),
            None => (&b""[..], path),
        };
        let fd = if dir.is_empty() {
            self.dup_root()?
        } else {
            self.open_beneath(dir, false)?
        };
        Ok((fd, OsStr::from_bytes(name)))
    }

    fn open_beneath(&self, dir: &[u8], for_reading: bool) -> Result<OwnedFd> {
        tree::open_dir_beneath(&self.root, OsStr::from_bytes(dir), for_reading)
            .map_err(|e| write_err("opening the directory", dir, e))
    }

    /// Directories' owners, modes and times, deepest (last made) first.
    fn finish_dirs(&mut self) -> Result<()> {
        let dirs = std::mem::take(&mut self.dirs);
        for d in dirs.iter().rev() {
            let fd = if d.path.is_empty() {
                self.dup_root()?
            } else {
                self.open_beneath(&d.path, true)?
            };
            self.attrs_fd(&fd, &d.path, &d.inode)?;
        }
        Ok(())
    }
}

fn valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.iter().any(|&c| c == b'/' || c == 0)
}

fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(dir.len() + 1 + name.len());
    if !dir.is_empty() {
        p.extend_from_slice(dir);
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

/// The in-image path for messages: `/` and the relative path.
fn shown(path: &[u8]) -> PathBuf {
    Path::new("/").join(OsStr::from_bytes(path))
}

fn hostile(path: &[u8], problem: &'static str) -> ExtractError {
    ExtractError::Hostile {
        path: shown(path),
        problem,
    }
}

fn write_err(op: &'static str, path: &[u8], source: io::Error) -> ExtractError {
    ExtractError::Write {
        op,
        path: shown(path),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selections() {
        let s = Select::from_paths(&[
            PathBuf::from("/.singularity.d"),
            PathBuf::from("/scif/apps/"),
            PathBuf::from("/scif/apps/x"),
        ])
        .unwrap();
        assert!(matches!(s.child(b".singularity.d"), Some(Select::All)));
        let scif = s.child(b"scif").unwrap();
        assert!(matches!(scif, Select::Some(_)));
        assert!(matches!(scif.child(b"apps"), Some(Select::All)));
        assert!(scif.child(b"data").is_none());
        assert!(s.child(b"etc").is_none());
        assert!(matches!(Select::from_paths(&[]).unwrap(), Select::All));
        assert!(matches!(
            Select::from_paths(&[PathBuf::from("/a/../b")]),
            Err(ExtractError::BadPath { .. })
        ));
        assert!(matches!(
            Select::from_paths(&[PathBuf::from("a")]),
            Err(ExtractError::BadPath { .. })
        ));
    }

    #[test]
    fn names() {
        for bad in [&b""[..], b".", b"..", b"a/b", b"a\0"] {
            assert!(!valid_name(bad), "{bad:?}");
        }
        for good in [&b"a"[..], b"...", b".a", b"a b"] {
            assert!(valid_name(good));
        }
        assert_eq!(join(b"", b"a"), b"a");
        assert_eq!(join(b"a", b"b"), b"a/b");
    }
}
