//! Unpacking the metadata directories of a SquashFS root file system, for
//! images that carry no `inspect-metadata.json`.
//!
//! This uses `unsquashfs` (squashfs-tools) until Vessel's own SquashFS reader
//! lands; only `/.singularity.d` and `/scif` are unpacked, into a private
//! temporary directory that is removed afterwards.

use std::path::Path;
use std::process::Command;

use tempfile::TempDir;

/// Unpacks `/.singularity.d` and `/scif` from the SquashFS at `offset` in
/// `image`; the returned directory is the root of what was unpacked.
pub fn unpack_metadata(image: &Path, offset: u64) -> Result<TempDir, String> {
    let dir = tempfile::Builder::new()
        .prefix("vessel-inspect-")
        .tempdir()
        .map_err(|e| format!("could not create a temporary directory: {e}"))?;
    let root = dir.path().join("root");
    let output = Command::new("unsquashfs")
        .arg("-no-progress")
        .arg("-no-xattrs")
        .arg("-offset")
        .arg(offset.to_string())
        .arg("-dest")
        .arg(&root)
        .arg(image)
        .arg("/.singularity.d")
        .arg("/scif")
        .output()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                "unsquashfs is needed to read this image: install squashfs-tools".to_string()
            }
            _ => format!("could not run unsquashfs: {e}"),
        })?;
    // Exit status 2 means "non-fatal errors", such as a device node that an
    // unprivileged user cannot create: the metadata files are still there.
    if !output.status.success() && output.status.code() != Some(2) {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        return Err(format!(
            "unsquashfs could not read the root file system: {last}"
        ));
    }
    if !root.exists() {
        std::fs::create_dir(&root).map_err(|e| e.to_string())?;
    }
    Ok(dir)
}
