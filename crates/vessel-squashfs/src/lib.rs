//! A read-only, random-access reader for SquashFS 4.0 archives, built to
//! back a FUSE server that serves a container image straight out of a SIF
//! file (the archive sits at a byte offset inside a larger file).
//!
//! # The format in brief
//!
//! A 96-byte [`Superblock`] names the compressor, the block size and where
//! each table starts. Inodes, directory listings and the id / fragment /
//! export / xattr lookup tables are stored in *metadata blocks*: up to 8 KiB
//! each, individually compressed, read as one byte stream in which records may
//! cross block boundaries. An [`InodeRef`] addresses an inode by (metadata
//! block position, offset). Directories list `(name, inode ref, number,
//! type)` entries sorted by name, with an optional index for large
//! directories. File data is a list of compressed blocks of `block_size`
//! bytes; a file's final partial block may instead be packed together with
//! other files' tails into a shared *fragment* block.
//!
//! # Thread safety and caching
//!
//! [`Archive`] is `Send + Sync`; every method takes `&self`. Reads use
//! positioned I/O (`pread`), so there is no shared file cursor and no lock on
//! the read path. Decompressed metadata blocks and data/fragment blocks are
//! kept in two bounded, sharded caches (`quick_cache`) weighted by bytes and
//! sized through [`OpenOptions`]; concurrent misses on one block decompress it
//! once. Blocks stored uncompressed are read directly into the caller's
//! buffer and left to the OS page cache.
//!
//! # Robustness
//!
//! Input is untrusted: every position is checked against the archive size,
//! every length against a format limit or the archive size before anything
//! is allocated, and decompression output is capped at one block. Corrupt
//! input yields an [`Error`]. Every call does a bounded amount of work; a
//! caller walking the tree recursively should remember visited directories,
//! since a corrupt archive can make a directory contain its own ancestor.

#![forbid(unsafe_code)]

mod cache;
mod compress;
mod data;
mod dir;
mod error;
mod inode;
mod lzo;
mod metadata;
mod source;
mod superblock;
mod table;
mod xattr;

use std::fs::File;

pub use cache::OpenOptions;
pub use compress::Compressor;
pub use dir::DirEntry;
pub use error::{Error, Result};
pub use inode::{Inode, InodeRef, Kind};
pub use superblock::{flags, Superblock};

use cache::Caches;
use inode::Detail;
use source::Source;
use superblock::{ABSENT, SUPERBLOCK_LEN};
use table::LookupTable;
use xattr::XattrTable;

/// An open SquashFS archive.
pub struct Archive {
    src: Source,
    sb: Superblock,
    ids: Vec<u32>,
    fragments: Option<LookupTable>,
    export: Option<LookupTable>,
    xattr: Option<XattrTable>,
    caches: Caches,
}

impl std::fmt::Debug for Archive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Archive")
            .field("superblock", &self.sb)
            .finish_non_exhaustive()
    }
}

// The FUSE server shares one Archive between worker threads.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Archive>();
};

impl Archive {
    /// Opens the archive stored in `size` bytes at `offset` of `file`, with
    /// default cache sizes.
    pub fn open(file: File, offset: u64, size: u64) -> Result<Archive> {
        Self::open_with(file, offset, size, &OpenOptions::default())
    }

    /// Like [`Archive::open`], with explicit cache sizes.
    pub fn open_with(file: File, offset: u64, size: u64, opts: &OpenOptions) -> Result<Archive> {
        // For regular files, refuse a region the file cannot hold up front;
        // other files (block devices) report no length and are checked per read.
        let meta = file.metadata()?;
        if meta.is_file() && offset.checked_add(size).is_none_or(|end| end > meta.len()) {
            return Err(Error::Corrupt(
                "archive region extends past the end of the file",
            ));
        }
        let mut src = Source::new(file, offset, size);
        let mut raw = [0u8; SUPERBLOCK_LEN];
        src.read_at(0, &mut raw)?;
        let sb = Superblock::parse(&raw, size)?;
        // Everything the archive references lies within bytes_used.
        src.set_len(sb.bytes_used);

        let fragments = if sb.fragment_count > 0 {
            Some(LookupTable::load(
                &src,
                sb.fragment_table_start,
                u64::from(sb.fragment_count),
                16,
            )?)
        } else {
            None
        };
        let export = if sb.export_table_start != ABSENT {
            Some(LookupTable::load(
                &src,
                sb.export_table_start,
                u64::from(sb.inode_count),
                8,
            )?)
        } else {
            None
        };
        let xattr = if sb.xattr_id_table_start != ABSENT {
            Some(XattrTable::load(&src, sb.xattr_id_table_start)?)
        } else {
            None
        };
        let id_table = LookupTable::load(&src, sb.id_table_start, u64::from(sb.id_count), 4)?;
        let caches = Caches::new(opts, sb.block_size);
        let mut arc = Archive {
            src,
            sb,
            ids: Vec::new(),
            fragments,
            export,
            xattr,
            caches,
        };
        // At most 65535 ids: load them once so inode decoding needs no lookups.
        let mut ids = Vec::with_capacity(usize::from(arc.sb.id_count));
        for i in 0..id_table.count() {
            let mut e = [0u8; 4];
            id_table.entry(&arc, i, &mut e)?;
            ids.push(u32::from_le_bytes(e));
        }
        arc.ids = ids;
        Ok(arc)
    }

    pub fn superblock(&self) -> &Superblock {
        &self.sb
    }

    /// Reference of the root directory's inode.
    pub fn root(&self) -> InodeRef {
        self.sb.root_inode
    }

    /// Decodes the inode at `r`.
    pub fn inode(&self, r: InodeRef) -> Result<Inode> {
        self.parse_inode(r)
    }

    /// The inode number of a directory's parent (for ".."); for the root this
    /// is `inode_count + 1` by mksquashfs convention. 0 for non-directories.
    pub fn parent(&self, dir: &Inode) -> u32 {
        dir.parent_number().unwrap_or(0)
    }

    /// Maps an inode number to its reference through the export table (present
    /// when the archive was built exportable, mksquashfs's default). `None`
    /// when the archive has no export table.
    pub fn inode_ref_by_number(&self, number: u32) -> Result<Option<InodeRef>> {
        let Some(t) = &self.export else {
            return Ok(None);
        };
        if number == 0 {
            return Err(Error::Corrupt("inode number 0"));
        }
        let mut e = [0u8; 8];
        t.entry(self, u64::from(number) - 1, &mut e)?;
        Ok(Some(InodeRef(u64::from_le_bytes(e))))
    }

    /// One entry by exact name, using the directory index for large directories.
    pub fn lookup(&self, dir: &Inode, name: &[u8]) -> Result<Option<DirEntry>> {
        self.lookup_impl(dir, name)
    }

    /// All entries in on-disk (sorted) order, without "." and "..".
    pub fn read_dir(&self, dir: &Inode) -> Result<Vec<DirEntry>> {
        self.read_dir_impl(dir)
    }

    /// Reads file data at `offset` into `buf`; returns the bytes read (0 at or
    /// after EOF). Sparse blocks read as zeros; tail ends come from fragments.
    pub fn read(&self, file: &Inode, offset: u64, buf: &mut [u8]) -> Result<usize> {
        self.read_impl(file, offset, buf)
    }

    /// The target of a symbolic link.
    pub fn read_link(&self, link: &Inode) -> Result<Vec<u8>> {
        match &link.detail {
            Detail::Symlink(t) => Ok(t.to_vec()),
            _ => Err(Error::NotASymlink),
        }
    }

    /// Extended attributes as full names ("user.x", "security.capability")
    /// and values; empty when the inode has none.
    pub fn xattrs(&self, inode: &Inode) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.xattrs_impl(inode)
    }
}

/// Everything a reader does with an untrusted archive, with small limits:
/// walks the whole tree (remembering visited directories, since a corrupt
/// archive may loop), looks every entry up again by name, reads links,
/// xattrs and up to 256 KiB of each file. Shared by the fuzz target and the
/// corruption tests. Returns whether the archive opened.
#[doc(hidden)]
pub fn exercise_untrusted(file: File, offset: u64, size: u64) -> bool {
    let opts = OpenOptions {
        metadata_cache_bytes: 1 << 20,
        data_cache_bytes: 4 << 20,
    };
    let Ok(arc) = Archive::open_with(file, offset, size, &opts) else {
        return false;
    };
    let mut visited = std::collections::HashSet::new();
    let mut stack = vec![arc.root()];
    let mut budget = 20_000u32;
    let mut buf = vec![0u8; 64 << 10];
    while let Some(r) = stack.pop() {
        if !visited.insert(r) {
            continue;
        }
        let Ok(dir) = arc.inode(r) else { continue };
        let _ = arc.xattrs(&dir);
        let _ = arc.inode_ref_by_number(dir.number);
        let Ok(entries) = arc.read_dir(&dir) else {
            continue;
        };
        for e in entries {
            budget = budget.saturating_sub(1);
            if budget == 0 {
                return true;
            }
            let _ = arc.lookup(&dir, &e.name);
            let Ok(ino) = arc.inode(e.inode) else {
                continue;
            };
            let _ = arc.xattrs(&ino);
            match ino.kind {
                Kind::Dir => stack.push(e.inode),
                Kind::Symlink => {
                    let _ = arc.read_link(&ino);
                }
                Kind::File => {
                    let mut off = 0u64;
                    while off < (256 << 10) {
                        match arc.read(&ino, off, &mut buf) {
                            Ok(n) if n > 0 => off += n as u64,
                            _ => break,
                        }
                    }
                    let _ = arc.read(&ino, ino.size.saturating_sub(3), &mut buf[..10]);
                }
                _ => {}
            }
        }
    }
    true
}
