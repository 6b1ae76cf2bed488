//! Unpacking the metadata directories of a SquashFS root file system, for
//! images that carry no `inspect-metadata.json`.
//!
//! Only `/.singularity.d` and `/scif` are unpacked, with Vessel's own
//! reader, into a private temporary directory that is removed afterwards.

use std::fs::File;
use std::path::{Path, PathBuf};

use tempfile::TempDir;
use vessel_squashfs::Archive;

use crate::{extract, ExtractOptions};

/// Unpacks `/.singularity.d` and `/scif` from the SquashFS at `offset` in
/// `image`; the returned directory is the root of what was unpacked.
pub fn unpack_metadata(image: &Path, offset: u64) -> Result<TempDir, String> {
    let dir = tempfile::Builder::new()
        .prefix("vessel-inspect-")
        .tempdir()
        .map_err(|e| format!("could not create a temporary directory: {e}"))?;
    let root = dir.path().join("root");
    let file = File::open(image).map_err(|e| format!("{}: {e}", image.display()))?;
    let len = file
        .metadata()
        .map_err(|e| format!("{}: {e}", image.display()))?
        .len();
    let arc = Archive::open(file, offset, len.saturating_sub(offset))
        .map_err(|e| format!("{}: {e}", image.display()))?;
    let opts = ExtractOptions {
        paths: vec![PathBuf::from("/.singularity.d"), PathBuf::from("/scif")],
        // Metadata files only: the user's own ids are what is wanted.
        owners: Some(false),
    };
    extract(&arc, &root, &opts).map_err(|e| {
        format!(
            "could not read the root file system of {}: {}",
            image.display(),
            vessel_sys::error_chain(&e)
        )
    })?;
    Ok(dir)
}
