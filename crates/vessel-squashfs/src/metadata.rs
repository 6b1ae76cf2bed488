//! Metadata blocks and a cursor that reads records spanning them.
//!
//! Inodes, directories and the lookup tables live in "metadata blocks": a
//! 2-byte header (bit 15 = stored uncompressed, low 15 bits = size on disk)
//! followed by at most 8 KiB of (compressed) data. Consecutive blocks form one
//! logical byte stream, addressed by (block position, offset inside the
//! decompressed block); records freely cross block boundaries.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::Archive;

pub(crate) const METADATA_SIZE: usize = 8192;

/// One decompressed metadata block plus where the next one starts.
pub(crate) struct MetaBlock {
    pub(crate) data: Vec<u8>,
    pub(crate) next: u64,
}

impl Archive {
    /// The decompressed metadata block at archive position `pos`, from the cache.
    pub(crate) fn meta_block(&self, pos: u64) -> Result<Arc<MetaBlock>> {
        self.caches
            .meta
            .get_or_insert_with(&pos, || self.load_meta_block(pos))
    }

    fn load_meta_block(&self, pos: u64) -> Result<Arc<MetaBlock>> {
        let mut hdr = [0u8; 2];
        self.src.read_at(pos, &mut hdr)?;
        let h = u16::from_le_bytes(hdr);
        let len = usize::from(h & 0x7fff);
        // mksquashfs stores a block raw when compression would not shrink it,
        // so even the on-disk size never exceeds 8 KiB.
        if len == 0 || len > METADATA_SIZE {
            return Err(Error::Corrupt("metadata block size out of range"));
        }
        let raw = self.src.read_vec(pos + 2, len)?;
        let data = if h & 0x8000 != 0 {
            raw
        } else {
            self.sb.compressor.decompress(&raw, METADATA_SIZE)?
        };
        Ok(Arc::new(MetaBlock {
            data,
            next: pos + 2 + len as u64,
        }))
    }
}

/// A read position in the metadata stream.
///
/// Positions only move forward (each block's `next` lies after it), and every
/// block read is bounds-checked, so a cursor always terminates.
pub(crate) struct MetaReader<'a> {
    arc: &'a Archive,
    pos: u64,
    off: usize,
    block: Option<Arc<MetaBlock>>,
}

impl<'a> MetaReader<'a> {
    pub(crate) fn new(arc: &'a Archive, pos: u64, off: usize) -> Result<Self> {
        if off >= METADATA_SIZE {
            return Err(Error::Corrupt("metadata offset beyond block size"));
        }
        Ok(MetaReader {
            arc,
            pos,
            off,
            block: None,
        })
    }

    /// Current (block position, offset); used to come back later (e.g. to a
    /// directory index that follows an inode).
    pub(crate) fn position(&self) -> (u64, usize) {
        (self.pos, self.off)
    }

    pub(crate) fn read(&mut self, buf: &mut [u8]) -> Result<()> {
        let mut done = 0;
        while done < buf.len() {
            let block = match &self.block {
                Some(b) => Arc::clone(b),
                None => {
                    let b = self.arc.meta_block(self.pos)?;
                    self.block = Some(Arc::clone(&b));
                    b
                }
            };
            let avail = block.data.len().saturating_sub(self.off);
            if avail == 0 {
                if self.off > block.data.len() {
                    return Err(Error::Corrupt("metadata offset past end of block"));
                }
                self.pos = block.next;
                self.off = 0;
                self.block = None;
                continue;
            }
            let n = avail.min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&block.data[self.off..self.off + n]);
            done += n;
            self.off += n;
        }
        Ok(())
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        self.read(&mut a)?;
        Ok(a)
    }

    pub(crate) fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// Reads `len` bytes; callers bound `len` by a format limit first.
    pub(crate) fn bytes(&mut self, len: usize) -> Result<Vec<u8>> {
        let mut v = vec![0; len];
        self.read(&mut v)?;
        Ok(v)
    }
}
