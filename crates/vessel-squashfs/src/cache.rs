//! Bounded, concurrent caches of decompressed blocks.
//!
//! `quick_cache`'s sync cache is sharded, so FUSE worker threads touching
//! different blocks rarely contend; `get_or_insert_with` makes concurrent
//! misses on the same block wait for one decompression instead of each doing
//! its own. Both caches are keyed by the block's position in the archive and
//! weighted by decompressed bytes.

use std::sync::Arc;

use quick_cache::sync::Cache;
use quick_cache::Weighter;

use crate::metadata::MetaBlock;

/// Cache sizes, in bytes of decompressed data.
#[derive(Clone, Debug)]
pub struct OpenOptions {
    /// Decompressed metadata blocks (inodes, directories, tables); 8 KiB each.
    pub metadata_cache_bytes: u64,
    /// Decompressed file data and fragment blocks (up to `block_size` each).
    pub data_cache_bytes: u64,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            metadata_cache_bytes: 16 << 20,
            data_cache_bytes: 64 << 20,
        }
    }
}

/// Per-entry bookkeeping overhead we charge on top of the payload, so that a
/// cache full of tiny blocks still has a bounded entry count.
const ENTRY_OVERHEAD: u64 = 64;

#[derive(Clone)]
pub(crate) struct MetaWeighter;

impl Weighter<u64, Arc<MetaBlock>> for MetaWeighter {
    fn weight(&self, _key: &u64, val: &Arc<MetaBlock>) -> u64 {
        val.data.len() as u64 + ENTRY_OVERHEAD
    }
}

#[derive(Clone)]
pub(crate) struct DataWeighter;

impl Weighter<u64, Arc<Vec<u8>>> for DataWeighter {
    fn weight(&self, _key: &u64, val: &Arc<Vec<u8>>) -> u64 {
        val.len() as u64 + ENTRY_OVERHEAD
    }
}

pub(crate) type MetaCache = Cache<u64, Arc<MetaBlock>, MetaWeighter>;
pub(crate) type DataCache = Cache<u64, Arc<Vec<u8>>, DataWeighter>;

pub(crate) struct Caches {
    pub(crate) meta: MetaCache,
    pub(crate) data: DataCache,
}

impl Caches {
    pub(crate) fn new(opts: &OpenOptions, block_size: u32) -> Self {
        // A zero capacity is allowed by the options; keep the estimates >= 1 so
        // the cache builder never sees a degenerate configuration.
        let meta_items = (opts.metadata_cache_bytes / 8192).max(1) as usize;
        let data_items = (opts.data_cache_bytes / u64::from(block_size.max(1))).max(1) as usize;
        Caches {
            meta: Cache::with_weighter(meta_items, opts.metadata_cache_bytes.max(1), MetaWeighter),
            data: Cache::with_weighter(data_items, opts.data_cache_bytes.max(1), DataWeighter),
        }
    }
}
