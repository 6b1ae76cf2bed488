//! Two-level lookup tables (ids, fragments, export, xattr ids).
//!
//! The superblock points at an array of u64 positions, one per metadata
//! block; the fixed-size entries themselves are packed into those blocks.
//! Looking up entry `i` therefore costs one (cached) metadata block read.

use crate::error::{Error, Result};
use crate::metadata::{MetaReader, METADATA_SIZE};
use crate::source::Source;
use crate::Archive;

pub(crate) struct LookupTable {
    blocks: Vec<u64>,
    count: u64,
    entry: usize,
}

impl LookupTable {
    /// Reads the block position array at `start` for `count` entries of
    /// `entry` bytes. The array must lie inside the archive, which bounds the
    /// allocation by the archive size.
    pub(crate) fn load(src: &Source, start: u64, count: u64, entry: usize) -> Result<Self> {
        let bytes = count
            .checked_mul(entry as u64)
            .ok_or(Error::Corrupt("table too large"))?;
        let nblocks = bytes.div_ceil(METADATA_SIZE as u64);
        let array_len = nblocks
            .checked_mul(8)
            .ok_or(Error::Corrupt("table too large"))?;
        src.check(start, array_len)?;
        let raw = src.read_vec(start, array_len as usize)?;
        let blocks: Vec<u64> = raw
            .chunks_exact(8)
            .map(|c| {
                let mut a = [0; 8];
                a.copy_from_slice(c);
                u64::from_le_bytes(a)
            })
            .collect();
        if blocks.iter().any(|&p| p >= src.len()) {
            return Err(Error::Corrupt("table block outside the archive"));
        }
        Ok(LookupTable {
            blocks,
            count,
            entry,
        })
    }

    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    /// Reads entry `i` into `out` (which must be `entry` bytes long).
    pub(crate) fn entry(&self, arc: &Archive, i: u64, out: &mut [u8]) -> Result<()> {
        if i >= self.count || out.len() != self.entry {
            return Err(Error::Corrupt("table index out of range"));
        }
        let byte = i * self.entry as u64;
        let block = usize::try_from(byte / METADATA_SIZE as u64)
            .map_err(|_| Error::Corrupt("table index out of range"))?;
        let pos = *self
            .blocks
            .get(block)
            .ok_or(Error::Corrupt("table index out of range"))?;
        MetaReader::new(arc, pos, (byte % METADATA_SIZE as u64) as usize)?.read(out)
    }
}
