//! The keyring's files: a private directory, and files replaced so that
//! readers see either the old or the new content, never a half-written
//! keyring.

use std::fs::{self, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

/// Creates `dir` (and parents) with mode 0700 if missing; an existing
/// directory with another mode is set to 0700, as Apptainer does for its
/// key directory, since it holds secret keys.
pub fn ensure_private_dir(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let mode = fs::metadata(dir)?.permissions().mode() & 0o7777;
    if mode != 0o700 {
        fs::set_permissions(dir, Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Atomically replaces `path` with `data`, with permission bits `mode`.
pub fn write(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    vessel_sys::fs::write_atomic(path, data, mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_with_mode() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("a/keys");
        ensure_private_dir(&keys).unwrap();
        assert_eq!(
            fs::metadata(&keys).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let f = keys.join("pgp-secret");
        write(&f, b"one", 0o600).unwrap();
        write(&f, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&f).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::read_dir(&keys).unwrap().count(),
            1,
            "no temporary file left"
        );
    }
}
