//! File contents: full data blocks and tail-end fragments.
//!
//! A regular file's data is a run of blocks starting at `blocks_start`, each
//! described by a size word (bit 24 = stored uncompressed, 0 = sparse block of
//! zeros). The last partial block may instead live in a fragment: a shared
//! block holding several files' tails, found through the fragment table.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::inode::{Detail, FileInfo, Inode, BLOCK_SIZE_MASK, BLOCK_UNCOMPRESSED, NONE_U32};
use crate::Archive;

impl Archive {
    pub(crate) fn read_impl(&self, file: &Inode, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let Detail::File(fi) = &file.detail else {
            return Err(Error::NotAFile);
        };
        if offset >= file.size || buf.is_empty() {
            return Ok(0);
        }
        let want = (file.size - offset).min(buf.len() as u64) as usize;
        let bs = u64::from(self.sb.block_size);
        let mut done = 0usize;
        while done < want {
            let pos = offset + done as u64;
            let index = pos / bs;
            let within = (pos % bs) as usize;
            // Logical length of this block (the last one may be short).
            let block_len = (file.size - index * bs).min(bs) as usize;
            let n = (want - done).min(block_len - within);
            let out = &mut buf[done..done + n];
            if let Some(&word) = fi.blocks.sizes.get(index as usize) {
                let at = fi.blocks.offsets[index as usize];
                self.read_block(fi, word, at, block_len, within, out)?;
            } else {
                self.read_tail(fi, within, out)?;
            }
            done += n;
        }
        Ok(want)
    }

    fn read_block(
        &self,
        fi: &FileInfo,
        word: u32,
        at: u64,
        block_len: usize,
        within: usize,
        out: &mut [u8],
    ) -> Result<()> {
        let disk = word & BLOCK_SIZE_MASK;
        let pos = fi
            .blocks_start
            .checked_add(at)
            .ok_or(Error::Corrupt("data block position overflow"))?;
        if disk == 0 {
            out.fill(0); // sparse block
        } else if word & BLOCK_UNCOMPRESSED != 0 {
            // Stored raw: read the wanted bytes straight into the caller's
            // buffer; the OS page cache is the cache here.
            if (disk as usize) < block_len {
                return Err(Error::Corrupt("uncompressed block shorter than its data"));
            }
            self.src.read_at(pos + within as u64, out)?;
        } else {
            let block = self.data_block(pos, disk, false)?;
            copy_out(&block, within, out)?;
        }
        Ok(())
    }

    fn read_tail(&self, fi: &FileInfo, within: usize, out: &mut [u8]) -> Result<()> {
        if fi.fragment == NONE_U32 {
            return Err(Error::Corrupt("file tail without a fragment"));
        }
        let table = self
            .fragments
            .as_ref()
            .ok_or(Error::Corrupt("file uses a fragment but there are none"))?;
        let mut e = [0u8; 16];
        table.entry(self, u64::from(fi.fragment), &mut e)?;
        let start = u64::from_le_bytes(e[0..8].try_into().map_err(|_| Error::Corrupt("fragment"))?);
        let word = u32::from_le_bytes(
            e[8..12]
                .try_into()
                .map_err(|_| Error::Corrupt("fragment"))?,
        );
        let disk = word & BLOCK_SIZE_MASK;
        if disk == 0
            || disk > self.sb.block_size
            || word & !(BLOCK_UNCOMPRESSED | BLOCK_SIZE_MASK) != 0
        {
            return Err(Error::Corrupt("fragment size out of range"));
        }
        let block = self.data_block(start, disk, word & BLOCK_UNCOMPRESSED != 0)?;
        copy_out(&block, fi.frag_offset as usize + within, out)
    }

    /// A decompressed data or fragment block, through the data cache.
    fn data_block(&self, pos: u64, disk: u32, raw: bool) -> Result<Arc<Vec<u8>>> {
        self.caches.data.get_or_insert_with(&pos, || {
            let bytes = self.src.read_vec(pos, disk as usize)?;
            let data = if raw {
                bytes
            } else {
                self.sb
                    .compressor
                    .decompress(&bytes, self.sb.block_size as usize)?
            };
            Ok(Arc::new(data))
        })
    }
}

fn copy_out(block: &[u8], from: usize, out: &mut [u8]) -> Result<()> {
    let src = from
        .checked_add(out.len())
        .and_then(|end| block.get(from..end))
        .ok_or(Error::Corrupt("data block shorter than the file says"))?;
    out.copy_from_slice(src);
    Ok(())
}
