//! The crate's error type.

/// Everything that can go wrong while reading an archive.
///
/// Corrupt or hostile input always ends up here (mostly as [`Error::Corrupt`]),
/// never as a panic.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a SquashFS archive (bad magic)")]
    BadMagic,
    #[error("unsupported SquashFS version {major}.{minor} (only 4.0 is supported)")]
    UnsupportedVersion { major: u16, minor: u16 },
    #[error("unsupported feature: {0}")]
    Unsupported(&'static str),
    #[error("corrupt archive: {0}")]
    Corrupt(&'static str),
    #[error("read of {len} bytes at {pos} is outside the archive ({size} bytes)")]
    OutOfBounds { pos: u64, len: u64, size: u64 },
    #[error("decompression failed ({compressor}): {reason}")]
    Decompress {
        compressor: &'static str,
        reason: String,
    },
    #[error("not a directory")]
    NotADirectory,
    #[error("not a regular file")]
    NotAFile,
    #[error("not a symbolic link")]
    NotASymlink,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
