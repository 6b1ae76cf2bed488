//! Inodes: the 16-byte common header plus one of 14 type-specific layouts.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::metadata::{MetaReader, METADATA_SIZE};
use crate::Archive;

/// Where an inode lives: the metadata block's position relative to the inode
/// table (upper 48 bits) and the offset inside the decompressed block (low 16).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct InodeRef(pub u64);

impl InodeRef {
    pub fn block(self) -> u64 {
        self.0 >> 16
    }
    pub fn offset(self) -> usize {
        (self.0 & 0xffff) as usize
    }
}

/// File type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Dir,
    File,
    Symlink,
    BlockDev,
    CharDev,
    Fifo,
    Socket,
}

impl Kind {
    /// From an inode or directory-entry type (basic 1..=7 or extended 8..=14).
    pub(crate) fn from_type(t: u16) -> Result<Kind> {
        Ok(match t {
            1 | 8 => Kind::Dir,
            2 | 9 => Kind::File,
            3 | 10 => Kind::Symlink,
            4 | 11 => Kind::BlockDev,
            5 | 12 => Kind::CharDev,
            6 | 13 => Kind::Fifo,
            7 | 14 => Kind::Socket,
            _ => return Err(Error::Corrupt("unknown inode type")),
        })
    }

    /// The `S_IF*` bits of `st_mode`.
    pub fn mode_bits(self) -> u32 {
        match self {
            Kind::Dir => 0o040000,
            Kind::File => 0o100000,
            Kind::Symlink => 0o120000,
            Kind::BlockDev => 0o060000,
            Kind::CharDev => 0o020000,
            Kind::Fifo => 0o010000,
            Kind::Socket => 0o140000,
        }
    }
}

/// Inode number used by an "absent" fragment or xattr index.
pub(crate) const NONE_U32: u32 = u32::MAX;
/// Longest symlink target we accept (Linux allows PATH_MAX = 4096; leave slack).
const MAX_SYMLINK: u32 = 65535;

/// A decoded inode. Cheap to clone: a file's block list is shared.
#[derive(Clone, Debug)]
pub struct Inode {
    /// The inode_number field (1..=inode_count).
    pub number: u32,
    pub kind: Kind,
    /// Permission bits including setuid/setgid/sticky (the on-disk field).
    pub mode: u16,
    pub uid: u32,
    pub gid: u32,
    pub mtime: u32,
    pub nlink: u32,
    /// Regular file: file size. Symlink: target length. Directory: the
    /// on-disk file_size (listing size + 3), which the kernel reports as st_size.
    pub size: u64,
    /// Device number in the on-disk (Linux "new_encode_dev") encoding.
    pub rdev: u32,
    pub(crate) xattr: u32,
    pub(crate) detail: Detail,
}

#[derive(Clone, Debug)]
pub(crate) enum Detail {
    None,
    Dir(DirInfo),
    File(FileInfo),
    Symlink(Arc<[u8]>),
}

#[derive(Clone, Debug)]
pub(crate) struct DirInfo {
    pub(crate) start_block: u32,
    pub(crate) offset: u16,
    /// Bytes of directory listing (file_size minus the 3 for "." and "..").
    pub(crate) listing: u32,
    pub(crate) parent: u32,
    pub(crate) index_count: u32,
    /// Where the directory index (extended dirs) starts in the inode table.
    pub(crate) index_pos: (u64, usize),
}

#[derive(Clone, Debug)]
pub(crate) struct FileInfo {
    pub(crate) blocks_start: u64,
    pub(crate) fragment: u32,
    pub(crate) frag_offset: u32,
    pub(crate) blocks: Arc<Blocks>,
}

/// Full-block list of a regular file.
#[derive(Debug)]
pub(crate) struct Blocks {
    /// On-disk size words (bit 24 = stored uncompressed, 0 = sparse).
    pub(crate) sizes: Vec<u32>,
    /// Start of each block relative to `blocks_start` (prefix sums of sizes).
    pub(crate) offsets: Vec<u64>,
}

pub(crate) const BLOCK_UNCOMPRESSED: u32 = 1 << 24;
pub(crate) const BLOCK_SIZE_MASK: u32 = BLOCK_UNCOMPRESSED - 1;

impl Inode {
    /// The full `st_mode` (type bits | permission bits).
    pub fn st_mode(&self) -> u32 {
        self.kind.mode_bits() | u32::from(self.mode & 0o7777)
    }

    /// Parent directory's inode number (directories only). The root's parent
    /// is `inode_count + 1` by mksquashfs convention.
    pub fn parent_number(&self) -> Option<u32> {
        match &self.detail {
            Detail::Dir(d) => Some(d.parent),
            _ => None,
        }
    }

    /// (major, minor) of a device inode, decoding the on-disk `rdev`.
    pub fn rdev_major_minor(&self) -> (u32, u32) {
        let r = self.rdev;
        ((r >> 8) & 0xfff, (r & 0xff) | ((r >> 12) & 0xfff00))
    }

    /// Whether the inode carries extended attributes.
    pub fn has_xattrs(&self) -> bool {
        self.xattr != NONE_U32
    }
}

impl Archive {
    pub(crate) fn parse_inode(&self, r: InodeRef) -> Result<Inode> {
        let sb = &self.sb;
        let pos = sb
            .inode_table_start
            .checked_add(r.block())
            .filter(|&p| p < sb.directory_table_start)
            .ok_or(Error::Corrupt("inode reference outside the inode table"))?;
        if r.offset() >= METADATA_SIZE {
            return Err(Error::Corrupt("inode offset beyond block size"));
        }
        let mut m = MetaReader::new(self, pos, r.offset())?;
        let itype = m.u16()?;
        let kind = Kind::from_type(itype)?;
        let mode = m.u16()?;
        let uid = self.id(m.u16()?)?;
        let gid = self.id(m.u16()?)?;
        let mtime = m.u32()?;
        let number = m.u32()?;
        if number == 0 || number > sb.inode_count {
            return Err(Error::Corrupt("inode number out of range"));
        }
        let mut ino = Inode {
            number,
            kind,
            mode,
            uid,
            gid,
            mtime,
            nlink: 1,
            size: 0,
            rdev: 0,
            xattr: NONE_U32,
            detail: Detail::None,
        };
        let extended = itype >= 8;
        match kind {
            Kind::Dir => {
                let (start_block, file_size, offset, parent, index_count);
                if extended {
                    ino.nlink = m.u32()?;
                    file_size = m.u32()?;
                    start_block = m.u32()?;
                    parent = m.u32()?;
                    index_count = u32::from(m.u16()?);
                    offset = m.u16()?;
                    ino.xattr = m.u32()?;
                } else {
                    start_block = m.u32()?;
                    ino.nlink = m.u32()?;
                    file_size = u32::from(m.u16()?);
                    offset = m.u16()?;
                    parent = m.u32()?;
                    index_count = 0;
                }
                if usize::from(offset) >= METADATA_SIZE {
                    return Err(Error::Corrupt("directory offset beyond block size"));
                }
                ino.size = u64::from(file_size);
                ino.detail = Detail::Dir(DirInfo {
                    start_block,
                    offset,
                    listing: file_size.saturating_sub(3),
                    parent,
                    index_count,
                    index_pos: m.position(),
                });
            }
            Kind::File => {
                let (blocks_start, size, fragment, frag_offset);
                if extended {
                    blocks_start = m.u64()?;
                    size = m.u64()?;
                    let _sparse = m.u64()?; // bytes saved by sparseness; informational
                    ino.nlink = m.u32()?;
                    fragment = m.u32()?;
                    frag_offset = m.u32()?;
                    ino.xattr = m.u32()?;
                } else {
                    blocks_start = u64::from(m.u32()?);
                    fragment = m.u32()?;
                    frag_offset = m.u32()?;
                    size = u64::from(m.u32()?);
                }
                ino.size = size;
                let blocks = self.parse_blocks(&mut m, blocks_start, size, fragment)?;
                ino.detail = Detail::File(FileInfo {
                    blocks_start,
                    fragment,
                    frag_offset,
                    blocks: Arc::new(blocks),
                });
            }
            Kind::Symlink => {
                ino.nlink = m.u32()?;
                let len = m.u32()?;
                if len > MAX_SYMLINK {
                    return Err(Error::Corrupt("symlink target too long"));
                }
                let target = m.bytes(len as usize)?;
                if extended {
                    ino.xattr = m.u32()?;
                }
                ino.size = u64::from(len);
                ino.detail = Detail::Symlink(target.into());
            }
            Kind::BlockDev | Kind::CharDev => {
                ino.nlink = m.u32()?;
                ino.rdev = m.u32()?;
                if extended {
                    ino.xattr = m.u32()?;
                }
            }
            Kind::Fifo | Kind::Socket => {
                ino.nlink = m.u32()?;
                if extended {
                    ino.xattr = m.u32()?;
                }
            }
        }
        Ok(ino)
    }

    fn parse_blocks(
        &self,
        m: &mut MetaReader<'_>,
        blocks_start: u64,
        size: u64,
        fragment: u32,
    ) -> Result<Blocks> {
        let bs = u64::from(self.sb.block_size);
        // A file whose tail lives in a fragment has only full blocks here.
        let count = if fragment == NONE_U32 {
            size.div_ceil(bs)
        } else {
            size / bs
        };
        // Each block needs a 4-byte size word inside the archive: this bounds
        // the allocation by the archive size, whatever `size` claims.
        if count.saturating_mul(4) > self.src.len() {
            return Err(Error::Corrupt("file block list larger than the archive"));
        }
        let count = count as usize;
        let mut sizes = Vec::with_capacity(count);
        let mut offsets = Vec::with_capacity(count);
        let mut at = 0u64;
        for _ in 0..count {
            let word = m.u32()?;
            let disk = word & BLOCK_SIZE_MASK;
            if word & !(BLOCK_UNCOMPRESSED | BLOCK_SIZE_MASK) != 0 || u64::from(disk) > bs {
                return Err(Error::Corrupt("data block size out of range"));
            }
            sizes.push(word);
            offsets.push(at);
            at += u64::from(disk);
        }
        let end = blocks_start
            .checked_add(at)
            .ok_or(Error::Corrupt("file data beyond the archive"))?;
        if at > 0 && end > self.src.len() {
            return Err(Error::Corrupt("file data beyond the archive"));
        }
        Ok(Blocks { sizes, offsets })
    }

    /// Resolves a uid/gid index through the id table.
    fn id(&self, idx: u16) -> Result<u32> {
        self.ids
            .get(usize::from(idx))
            .copied()
            .ok_or(Error::Corrupt("uid/gid index beyond the id table"))
    }
}
