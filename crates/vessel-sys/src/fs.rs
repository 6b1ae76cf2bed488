//! File-system helpers every crate shares, written once: replacing a file
//! atomically and removing a tree that may hold read-only directories.

use std::fs::{File, Permissions};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A file written beside its final name and moved into place only when
/// complete, so readers see the old content or the new, never a part:
/// created with an unpredictable name (`O_EXCL`, so a planted link at a
/// guessed name is never followed), synced, given its exact mode, renamed
/// over `path`, and the rename made durable by syncing the directory.
/// Dropped before [`AtomicFile::commit`], it leaves nothing behind.
pub struct AtomicFile {
    tmp: tempfile::NamedTempFile,
    path: PathBuf,
    mode: u32,
}

impl AtomicFile {
    /// Starts the replacement of `path`, which will get permission bits
    /// `mode` (exactly: the umask does not narrow them).
    pub fn create(path: &Path, mode: u32) -> io::Result<AtomicFile> {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}.tmp-"))
            .permissions(Permissions::from_mode(mode & 0o700))
            .tempfile_in(parent(path))?;
        Ok(AtomicFile {
            tmp,
            path: path.to_path_buf(),
            mode,
        })
    }

    /// The temporary file, to write the new content into.
    pub fn file(&mut self) -> &mut File {
        self.tmp.as_file_mut()
    }

    /// Moves the complete file into place.
    pub fn commit(self) -> io::Result<()> {
        let file = self.tmp.as_file();
        file.set_permissions(Permissions::from_mode(self.mode))?;
        file.sync_all()?;
        self.tmp.persist(&self.path).map_err(|e| e.error)?;
        File::open(parent(&self.path))?.sync_all()
    }
}

/// Replaces `path` with `data` atomically, with permission bits `mode`.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    use std::io::Write;
    let mut f = AtomicFile::create(path, mode)?;
    f.file().write_all(data)?;
    f.commit()
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Removes the tree at `path`, also where unpacked directories lack write
/// permission (images keep read-only directories), without following
/// symbolic links out of it.
pub fn remove_tree(path: &Path) -> io::Result<()> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(_) => {}
    }
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        if std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
            let _ = std::fs::set_permissions(&p, Permissions::from_mode(0o700));
            stack.extend(
                std::fs::read_dir(&p)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|e| e.path()),
            );
        }
    }
    std::fs::remove_dir_all(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn replaces_with_the_exact_mode_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("keys");
        write_atomic(&f, b"one", 0o600).unwrap();
        write_atomic(&f, b"two", 0o755).unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"two");
        let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o755);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        // Abandoned: nothing is left, the old content stays.
        let mut abandoned = AtomicFile::create(&f, 0o644).unwrap();
        std::io::Write::write_all(abandoned.file(), b"three").unwrap();
        drop(abandoned);
        assert_eq!(std::fs::read(&f).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_link_at_the_final_name_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        let f = dir.path().join("out");
        symlink(&victim, &f).unwrap();
        write_atomic(&f, b"new", 0o644).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        assert!(!f.is_symlink());
    }

    #[test]
    fn removes_read_only_trees_without_following_links() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("kept"), "").unwrap();
        let tree = dir.path().join("tree");
        std::fs::create_dir_all(tree.join("ro/sub")).unwrap();
        std::fs::write(tree.join("ro/sub/f"), "").unwrap();
        symlink(&outside, tree.join("ro/link")).unwrap();
        std::fs::set_permissions(tree.join("ro/sub"), Permissions::from_mode(0o500)).unwrap();
        std::fs::set_permissions(tree.join("ro"), Permissions::from_mode(0o500)).unwrap();
        remove_tree(&tree).unwrap();
        assert!(!tree.exists());
        assert!(outside.join("kept").exists());
        remove_tree(&tree).unwrap();
    }
}
