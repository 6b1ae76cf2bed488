//! Reading files of a container root file system that sits in a host
//! directory, resolving symlinks as the container would see them: an
//! absolute link target or a `..` never leaves the root. Used for sandboxes
//! and for metadata unpacked from images, which may hold hostile links.

use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

/// Symlinks followed in one lookup before giving up, as Linux's ELOOP does.
const MAX_SYMLINKS: usize = 40;

/// A directory used as a container's `/`.
#[derive(Clone, Debug)]
pub struct RootDir {
    root: PathBuf,
}

impl RootDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        RootDir { root: root.into() }
    }

    /// The host path of container path `path`, with every symlink resolved
    /// inside the root. `None` when something on the way does not exist.
    pub fn resolve(&self, path: &str) -> io::Result<Option<PathBuf>> {
        let mut pending: Vec<String> = components(path);
        pending.reverse();
        let mut resolved: Vec<String> = Vec::new();
        let mut links = 0;
        while let Some(name) = pending.pop() {
            match name.as_str() {
                "." => continue,
                ".." => {
                    resolved.pop();
                    continue;
                }
                _ => {}
            }
            let host = self.host_path(&resolved).join(&name);
            let meta = match std::fs::symlink_metadata(&host) {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::NotADirectory => return Ok(None),
                Err(e) => return Err(e),
            };
            if meta.file_type().is_symlink() {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(io::Error::other(format!(
                        "too many levels of symbolic links resolving {path}"
                    )));
                }
                let target = std::fs::read_link(&host)?;
                let target = target.to_string_lossy();
                if target.starts_with('/') {
                    resolved.clear();
                }
                pending.extend(components(&target).into_iter().rev());
            } else {
                resolved.push(name);
            }
        }
        Ok(Some(self.host_path(&resolved)))
    }

    /// A regular file's contents, `None` when it does not exist or is not a
    /// regular file (`test -f` semantics). Files over `limit` bytes are an
    /// error rather than a large allocation.
    pub fn read_file(&self, path: &str, limit: u64) -> io::Result<Option<Vec<u8>>> {
        let Some(host) = self.resolve(path)? else {
            return Ok(None);
        };
        let meta = std::fs::metadata(&host)?;
        if !meta.is_file() {
            return Ok(None);
        }
        if meta.len() > limit {
            return Err(io::Error::other(format!(
                "{path} is {} bytes, more than the {limit} expected of a metadata file",
                meta.len()
            )));
        }
        let mut out = Vec::with_capacity(meta.len() as usize);
        std::fs::File::open(&host)?
            .take(limit)
            .read_to_end(&mut out)?;
        Ok(Some(out))
    }

    /// Whether `path` is a directory (following symlinks inside the root).
    pub fn is_dir(&self, path: &str) -> io::Result<bool> {
        Ok(match self.resolve(path)? {
            Some(host) => std::fs::metadata(host).is_ok_and(|m| m.is_dir()),
            None => false,
        })
    }

    /// The names in directory `path`, sorted; empty when it does not exist.
    pub fn list_dir(&self, path: &str) -> io::Result<Vec<String>> {
        let Some(host) = self.resolve(path)? else {
            return Ok(Vec::new());
        };
        let entries = match std::fs::read_dir(host) {
            Ok(e) => e,
            Err(e) if matches!(e.raw_os_error(), Some(2 | 20)) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut names = entries
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<io::Result<Vec<_>>>()?;
        names.sort();
        Ok(names)
    }

    fn host_path(&self, resolved: &[String]) -> PathBuf {
        let mut p = self.root.clone();
        p.extend(resolved);
        p
    }
}

/// The normal components of a path, `..` and `.` kept for the resolver.
fn components(path: &str) -> Vec<String> {
    Path::new(path)
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_string_lossy().into_owned()),
            Component::ParentDir => Some("..".into()),
            Component::CurDir => Some(".".into()),
            Component::RootDir | Component::Prefix(_) => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlinks_stay_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(root.join(".singularity.d")).unwrap();
        std::fs::write(root.join("etc/passwd"), "inside").unwrap();
        std::fs::write(dir.path().join("secret"), "outside").unwrap();
        symlink("/etc/passwd", root.join(".singularity.d/abs")).unwrap();
        symlink("../../../../secret", root.join(".singularity.d/up")).unwrap();
        symlink("loop", root.join("loop")).unwrap();
        let r = RootDir::new(&root);
        assert_eq!(
            r.read_file("/.singularity.d/abs", 100).unwrap().unwrap(),
            b"inside"
        );
        assert_eq!(r.read_file("/.singularity.d/up", 100).unwrap(), None);
        assert_eq!(r.read_file("/../secret", 100).unwrap(), None);
        assert!(r.read_file("/loop", 100).is_err());
        assert_eq!(r.read_file("/etc", 100).unwrap(), None);
        assert!(r.read_file("/etc/passwd", 3).is_err());
        assert_eq!(r.list_dir("/nonexistent").unwrap(), Vec::<String>::new());
        assert_eq!(
            r.list_dir("/").unwrap(),
            vec![".singularity.d", "etc", "loop"]
        );
    }
}
