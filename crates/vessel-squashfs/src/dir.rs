//! Directory listings and the directory index.
//!
//! A listing is a run of headers `{count-1, inode block, base inode number}`
//! each followed by up to 256 entries `{offset, number delta (i16), type,
//! name length-1, name}`, sorted by name (strcmp order). Extended directories
//! also carry an index, stored right after the inode: for each metadata block
//! boundary crossed by the listing, the listing offset and block of the next
//! header and that header's first name. `lookup` uses it to skip straight to
//! the right block.

use std::cmp::Ordering;

use crate::error::{Error, Result};
use crate::inode::{DirInfo, Inode, InodeRef, Kind};
use crate::metadata::{MetaReader, METADATA_SIZE};
use crate::Archive;

/// Longest file name in SquashFS.
const MAX_NAME: usize = 256;
/// Most entries one header may announce.
const MAX_RUN: u32 = 256;

/// One directory entry.
#[derive(Clone, Debug)]
pub struct DirEntry {
    pub name: Vec<u8>,
    pub inode: InodeRef,
    pub number: u32,
    pub kind: Kind,
}

fn dir_info(dir: &Inode) -> Result<&DirInfo> {
    match &dir.detail {
        crate::inode::Detail::Dir(d) => Ok(d),
        _ => Err(Error::NotADirectory),
    }
}

impl Archive {
    /// Calls `f` on entries from listing position (`pos`, `off`) with
    /// `remaining` listing bytes left, until `f` returns false.
    fn scan(
        &self,
        pos: u64,
        off: usize,
        mut remaining: u64,
        mut f: impl FnMut(DirEntry) -> bool,
    ) -> Result<()> {
        let mut m = MetaReader::new(self, pos, off)?;
        let take = |remaining: &mut u64, n: u64| -> Result<()> {
            *remaining = remaining
                .checked_sub(n)
                .ok_or(Error::Corrupt("directory entry overruns listing"))?;
            Ok(())
        };
        while remaining > 0 {
            take(&mut remaining, 12)?;
            let count = m.u32()?;
            let start = m.u32()?;
            let base = m.u32()?;
            if count >= MAX_RUN {
                return Err(Error::Corrupt("directory header count too large"));
            }
            for _ in 0..=count {
                take(&mut remaining, 8)?;
                let offset = m.u16()?;
                let delta = m.u16()? as i16;
                let etype = m.u16()?;
                let name_len = usize::from(m.u16()?) + 1;
                if name_len > MAX_NAME {
                    return Err(Error::Corrupt("directory entry name too long"));
                }
                take(&mut remaining, name_len as u64)?;
                let name = m.bytes(name_len)?;
                // A name that could escape or confuse path resolution would be
                // a security problem for a FUSE server; reject it outright.
                if name == b"." || name == b".." || name.iter().any(|&c| c == b'/' || c == 0) {
                    return Err(Error::Corrupt("invalid name in directory entry"));
                }
                let number = i64::from(base) + i64::from(delta);
                if number < 1 || number > i64::from(self.sb.inode_count) {
                    return Err(Error::Corrupt("directory entry inode number out of range"));
                }
                if usize::from(offset) >= METADATA_SIZE {
                    return Err(Error::Corrupt("directory entry inode offset too large"));
                }
                let entry = DirEntry {
                    name,
                    inode: InodeRef((u64::from(start) << 16) | u64::from(offset)),
                    number: number as u32,
                    kind: Kind::from_type(etype)?,
                };
                if !f(entry) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    fn listing_start(&self, d: &DirInfo) -> Result<u64> {
        self.sb
            .directory_table_start
            .checked_add(u64::from(d.start_block))
            .filter(|&p| p < self.src.len())
            .ok_or(Error::Corrupt("directory listing outside the archive"))
    }

    pub(crate) fn read_dir_impl(&self, dir: &Inode) -> Result<Vec<DirEntry>> {
        let d = dir_info(dir)?;
        let mut out = Vec::new();
        if d.listing == 0 {
            return Ok(out);
        }
        let pos = self.listing_start(d)?;
        self.scan(pos, usize::from(d.offset), u64::from(d.listing), |e| {
            out.push(e);
            true
        })?;
        Ok(out)
    }

    pub(crate) fn lookup_impl(&self, dir: &Inode, name: &[u8]) -> Result<Option<DirEntry>> {
        let d = dir_info(dir)?;
        if d.listing == 0 || name.is_empty() || name.len() > MAX_NAME {
            return Ok(None);
        }
        let (pos, off, skipped) = self.index_seek(d, name)?;
        let mut found = None;
        self.scan(pos, off, u64::from(d.listing) - skipped, |e| {
            // Entries are sorted, so the first name past ours ends the search.
            match e.name.as_slice().cmp(name) {
                Ordering::Less => true,
                Ordering::Equal => {
                    found = Some(e);
                    false
                }
                Ordering::Greater => false,
            }
        })?;
        Ok(found)
    }

    /// Uses the directory index (if any) to find where to start scanning for
    /// `name`: (block position, offset, listing bytes skipped).
    fn index_seek(&self, d: &DirInfo, name: &[u8]) -> Result<(u64, usize, u64)> {
        let start = self.listing_start(d)?;
        let mut best = (start, usize::from(d.offset), 0u64);
        if d.index_count == 0 {
            return Ok(best);
        }
        let mut m = MetaReader::new(self, d.index_pos.0, d.index_pos.1)?;
        let mut last_index = 0u64;
        for _ in 0..d.index_count {
            let index = u64::from(m.u32()?);
            let block = m.u32()?;
            let name_len = m.u32()? as usize + 1;
            if name_len > MAX_NAME {
                return Err(Error::Corrupt("directory index name too long"));
            }
            let iname = m.bytes(name_len)?;
            if iname.as_slice() > name {
                break;
            }
            if index < last_index || index >= u64::from(d.listing) {
                return Err(Error::Corrupt("directory index out of order"));
            }
            last_index = index;
            let pos = self
                .sb
                .directory_table_start
                .checked_add(u64::from(block))
                .filter(|&p| p < self.src.len())
                .ok_or(Error::Corrupt("directory index block outside the archive"))?;
            // The index counts bytes of the listing; the listing began at
            // `d.offset` inside its first block and every full block holds
            // exactly 8 KiB, which gives the offset inside `block`.
            let off = ((u64::from(d.offset) + index) % METADATA_SIZE as u64) as usize;
            best = (pos, off, index);
        }
        Ok(best)
    }
}
