use thiserror::Error;

/// Everything that can go wrong reading or changing a SIF file. Messages are
/// written for users: they say what is wrong with the file, not where the
/// parser was.
#[derive(Debug, Error)]
pub enum Error {
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),

    #[error("file is too short to be a SIF image ({len} bytes, the header alone is 128)")]
    TooShort { len: u64 },

    #[error("not a SIF image (no SIF_MAGIC signature at offset 32)")]
    BadMagic,

    #[error("unsupported SIF version {found:?} (only version 01 is supported)")]
    UnsupportedVersion { found: String },

    #[error("corrupt SIF header: {0}")]
    BadHeader(String),

    #[error("truncated SIF image: {what} ends at byte {end}, but the file has only {len} bytes")]
    Truncated { what: String, end: u64, len: u64 },

    #[error("corrupt descriptor in slot {slot}: {reason}")]
    BadDescriptor { slot: usize, reason: String },

    #[error("objects {a} and {b} overlap (bytes {start}-{end})")]
    Overlap {
        a: u32,
        b: u32,
        start: i64,
        end: i64,
    },

    #[error("no object with ID {0}")]
    NoSuchObject(u32),

    #[error("object {id} is not a partition (it is {kind})")]
    NotAPartition { id: u32, kind: String },

    #[error("object {id} is too large to load into memory ({size} bytes, limit {limit})")]
    ObjectTooLarge { id: u32, size: u64, limit: u64 },

    #[error("no free descriptor left (all {0} are used)")]
    NoFreeDescriptor(u64),

    #[error("invalid object input: {0}")]
    InvalidInput(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
