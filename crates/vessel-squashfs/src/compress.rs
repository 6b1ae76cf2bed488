//! Block decompression for the six SquashFS compressors.
//!
//! Every decompressor writes into an output bounded by the caller's `max`
//! (8 KiB for metadata, `block_size` for data), so a hostile block cannot make
//! us allocate more than one block's worth.

use std::cell::RefCell;

use crate::error::{Error, Result};

/// Memory limit for the xz/lzma decoders. SquashFS dictionaries are at most
/// the block size (1 MiB); a header asking for much more is corrupt.
const XZ_MEMLIMIT: u64 = 64 << 20;

/// The compressor named by the superblock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Compressor {
    Gzip,
    Lzma,
    Lzo,
    Xz,
    Lz4,
    Zstd,
}

impl Compressor {
    pub(crate) fn from_id(id: u16) -> Result<Self> {
        Ok(match id {
            1 => Compressor::Gzip,
            2 => Compressor::Lzma,
            3 => Compressor::Lzo,
            4 => Compressor::Xz,
            5 => Compressor::Lz4,
            6 => Compressor::Zstd,
            _ => return Err(Error::Unsupported("unknown compressor id")),
        })
    }

    /// The on-disk compressor id.
    pub fn id(self) -> u16 {
        match self {
            Compressor::Gzip => 1,
            Compressor::Lzma => 2,
            Compressor::Lzo => 3,
            Compressor::Xz => 4,
            Compressor::Lz4 => 5,
            Compressor::Zstd => 6,
        }
    }

    /// The name mksquashfs uses for it.
    pub fn name(self) -> &'static str {
        match self {
            Compressor::Gzip => "gzip",
            Compressor::Lzma => "lzma",
            Compressor::Lzo => "lzo",
            Compressor::Xz => "xz",
            Compressor::Lz4 => "lz4",
            Compressor::Zstd => "zstd",
        }
    }

    /// Decompresses one block, failing if the output would exceed `max` bytes.
    pub(crate) fn decompress(self, input: &[u8], max: usize) -> Result<Vec<u8>> {
        let fail = |reason: String| Error::Decompress {
            compressor: self.name(),
            reason,
        };
        let out = match self {
            Compressor::Gzip => gzip(input, max).map_err(fail)?,
            Compressor::Xz => {
                let s = xz2::stream::Stream::new_stream_decoder(XZ_MEMLIMIT, 0)
                    .map_err(|e| fail(e.to_string()))?;
                xz_like(s, input, max).map_err(fail)?
            }
            Compressor::Lzma => {
                let s = xz2::stream::Stream::new_lzma_decoder(XZ_MEMLIMIT)
                    .map_err(|e| fail(e.to_string()))?;
                xz_like(s, input, max).map_err(fail)?
            }
            Compressor::Lz4 => {
                let mut out = vec![0; max];
                let n = lz4_flex::block::decompress_into(input, &mut out)
                    .map_err(|e| fail(e.to_string()))?;
                out.truncate(n);
                out
            }
            Compressor::Zstd => zstd_block(input, max).map_err(|e| fail(e.to_string()))?,
            Compressor::Lzo => crate::lzo::decompress(input, max).map_err(|e| fail(e.into()))?,
        };
        if out.len() > max {
            return Err(fail("output larger than a block".into()));
        }
        Ok(out)
    }
}

/// zlib-wrapped deflate (what squashfs calls "gzip"), through libdeflate:
/// a SquashFS block is decompressed whole into a buffer of known bound,
/// the case libdeflate is made for (about twice zlib's speed, which is most
/// of a cold container start-up's CPU time in the FUSE server).
fn gzip(input: &[u8], max: usize) -> Result<Vec<u8>, String> {
    DEFLATE.with(|cell| {
        let mut d = cell.borrow_mut();
        let d = d.get_or_insert_with(libdeflater::Decompressor::new);
        let mut out = vec![0; max];
        let n = d.zlib_decompress(input, &mut out).map_err(|e| match e {
            libdeflater::DecompressionError::InsufficientSpace => {
                "output larger than a block".to_string()
            }
            libdeflater::DecompressionError::BadData => "corrupt or truncated stream".to_string(),
        })?;
        out.truncate(n);
        Ok(out)
    })
}

/// xz (and legacy lzma-alone) through liblzma.
fn xz_like(mut s: xz2::stream::Stream, input: &[u8], max: usize) -> Result<Vec<u8>, String> {
    use xz2::stream::{Action, Status};
    let mut out = Vec::with_capacity(max);
    loop {
        let consumed = usize::try_from(s.total_in()).map_err(|e| e.to_string())?;
        let produced = out.len();
        let rest = input.get(consumed..).ok_or("input overrun")?;
        let status = s
            .process_vec(rest, &mut out, Action::Finish)
            .map_err(|e| e.to_string())?;
        if status == Status::StreamEnd {
            return Ok(out);
        }
        if out.len() >= max {
            return Err("output larger than a block".into());
        }
        if s.total_in() as usize == consumed && out.len() == produced {
            return Err("truncated stream".into());
        }
    }
}

thread_local! {
    static DEFLATE: RefCell<Option<libdeflater::Decompressor>> = const { RefCell::new(None) };
    // A zstd decompression context is costly to set up (allocations for the
    // window); keep one per thread instead of one per block.
    static ZSTD: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

fn zstd_block(input: &[u8], max: usize) -> std::io::Result<Vec<u8>> {
    ZSTD.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(zstd::bulk::Decompressor::new()?);
        }
        match slot.as_mut() {
            Some(d) => d.decompress(input, max),
            None => Err(std::io::Error::other("zstd context unavailable")),
        }
    })
}
