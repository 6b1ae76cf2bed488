//! The 96-byte superblock at the start of the archive.

use crate::compress::Compressor;
use crate::error::{Error, Result};
use crate::inode::InodeRef;

pub(crate) const SUPERBLOCK_LEN: usize = 96;
const MAGIC: u32 = 0x7371_7368; // "hsqs" little-endian
/// Table positions use all-ones for "this table is absent".
pub(crate) const ABSENT: u64 = u64::MAX;

/// Superblock flag bits.
pub mod flags {
    pub const UNCOMPRESSED_INODES: u16 = 0x0001;
    pub const UNCOMPRESSED_DATA: u16 = 0x0002;
    pub const CHECK: u16 = 0x0004;
    pub const UNCOMPRESSED_FRAGMENTS: u16 = 0x0008;
    pub const NO_FRAGMENTS: u16 = 0x0010;
    pub const ALWAYS_FRAGMENTS: u16 = 0x0020;
    pub const DUPLICATES: u16 = 0x0040;
    pub const EXPORTABLE: u16 = 0x0080;
    pub const UNCOMPRESSED_XATTRS: u16 = 0x0100;
    pub const NO_XATTRS: u16 = 0x0200;
    pub const COMPRESSOR_OPTIONS: u16 = 0x0400;
    pub const UNCOMPRESSED_IDS: u16 = 0x0800;
}

/// The parsed, validated superblock.
#[derive(Clone, Debug)]
pub struct Superblock {
    pub inode_count: u32,
    pub mod_time: u32,
    pub block_size: u32,
    pub block_log: u16,
    pub fragment_count: u32,
    pub compressor: Compressor,
    pub flags: u16,
    pub id_count: u16,
    pub bytes_used: u64,
    pub root_inode: InodeRef,
    pub id_table_start: u64,
    /// `u64::MAX` when there are no extended attributes.
    pub xattr_id_table_start: u64,
    pub inode_table_start: u64,
    pub directory_table_start: u64,
    /// `u64::MAX` (or unused) when there are no fragments.
    pub fragment_table_start: u64,
    /// `u64::MAX` when the archive is not exportable.
    pub export_table_start: u64,
}

fn u16_at(b: &[u8; SUPERBLOCK_LEN], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn u32_at(b: &[u8; SUPERBLOCK_LEN], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn u64_at(b: &[u8; SUPERBLOCK_LEN], at: usize) -> u64 {
    let mut a = [0; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

impl Superblock {
    /// Parses and validates; `region` is the size of the region the caller
    /// says holds the archive.
    pub(crate) fn parse(b: &[u8; SUPERBLOCK_LEN], region: u64) -> Result<Self> {
        if u32_at(b, 0) != MAGIC {
            return Err(Error::BadMagic);
        }
        let (major, minor) = (u16_at(b, 28), u16_at(b, 30));
        if (major, minor) != (4, 0) {
            return Err(Error::UnsupportedVersion { major, minor });
        }
        let sb = Superblock {
            inode_count: u32_at(b, 4),
            mod_time: u32_at(b, 8),
            block_size: u32_at(b, 12),
            fragment_count: u32_at(b, 16),
            compressor: Compressor::from_id(u16_at(b, 20))?,
            block_log: u16_at(b, 22),
            flags: u16_at(b, 24),
            id_count: u16_at(b, 26),
            root_inode: InodeRef(u64_at(b, 32)),
            bytes_used: u64_at(b, 40),
            id_table_start: u64_at(b, 48),
            xattr_id_table_start: u64_at(b, 56),
            inode_table_start: u64_at(b, 64),
            directory_table_start: u64_at(b, 72),
            fragment_table_start: u64_at(b, 80),
            export_table_start: u64_at(b, 88),
        };
        // Block sizes are powers of two from 4 KiB to 1 MiB, and block_log
        // must agree; everything sized by blocks relies on this.
        if !(12..=20).contains(&sb.block_log) || sb.block_size != 1 << sb.block_log {
            return Err(Error::Corrupt(
                "block size and block_log disagree or out of range",
            ));
        }
        if sb.bytes_used > region || sb.bytes_used < SUPERBLOCK_LEN as u64 {
            return Err(Error::Corrupt("bytes_used larger than the archive region"));
        }
        if sb.id_count == 0 {
            return Err(Error::Corrupt("empty id table"));
        }
        if sb.inode_count == 0 {
            return Err(Error::Corrupt("no inodes"));
        }
        let inside = |p: u64| p >= SUPERBLOCK_LEN as u64 && p < sb.bytes_used;
        if !inside(sb.inode_table_start)
            || !inside(sb.directory_table_start)
            || !inside(sb.id_table_start)
            || sb.inode_table_start >= sb.directory_table_start
        {
            return Err(Error::Corrupt("table start outside the archive"));
        }
        if sb.fragment_count > 0 && !inside(sb.fragment_table_start) {
            return Err(Error::Corrupt("fragment table outside the archive"));
        }
        if sb.xattr_id_table_start != ABSENT && !inside(sb.xattr_id_table_start) {
            return Err(Error::Corrupt("xattr table outside the archive"));
        }
        if sb.export_table_start != ABSENT && !inside(sb.export_table_start) {
            return Err(Error::Corrupt("export table outside the archive"));
        }
        Ok(sb)
    }
}
