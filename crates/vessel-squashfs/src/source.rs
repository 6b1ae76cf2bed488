//! Bounds-checked positioned reads of the archive region inside a file.

use std::fs::File;
use std::os::unix::fs::FileExt;

use crate::error::{Error, Result};

/// The SquashFS region: `len` bytes starting at `base` in `file`.
///
/// Reads use `pread` (`FileExt::read_exact_at`), so there is no shared file
/// cursor and any number of threads can read at once without a lock.
#[derive(Debug)]
pub(crate) struct Source {
    file: File,
    base: u64,
    len: u64,
}

impl Source {
    pub(crate) fn new(file: File, base: u64, len: u64) -> Self {
        Source { file, base, len }
    }

    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Narrows the region once the superblock tells how much of it is used.
    pub(crate) fn set_len(&mut self, len: u64) {
        self.len = len;
    }

    /// Checks that `[pos, pos + len)` lies inside the region.
    pub(crate) fn check(&self, pos: u64, len: u64) -> Result<()> {
        match pos.checked_add(len) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(Error::OutOfBounds {
                pos,
                len,
                size: self.len,
            }),
        }
    }

    /// Fills `buf` from archive position `pos`; fails if any byte lies outside.
    pub(crate) fn read_at(&self, pos: u64, buf: &mut [u8]) -> Result<()> {
        self.check(pos, buf.len() as u64)?;
        let abs = self
            .base
            .checked_add(pos)
            .ok_or(Error::Corrupt("offset overflow"))?;
        self.file.read_exact_at(buf, abs)?;
        Ok(())
    }

    /// Reads `len` bytes into a new vector; the bounds check comes before the
    /// allocation, so a bogus length cannot make us allocate.
    pub(crate) fn read_vec(&self, pos: u64, len: usize) -> Result<Vec<u8>> {
        self.check(pos, len as u64)?;
        let mut v = vec![0; len];
        self.read_at(pos, &mut v)?;
        Ok(v)
    }
}
