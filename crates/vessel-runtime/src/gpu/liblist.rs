//! `nvliblist.conf` and `rocmliblist.conf`: which of the host's driver
//! files a GPU option makes visible, in Apptainer's format (one entry per
//! line, `#` comments; `NAME.so` libraries, `/PATH` files, other names
//! programs). Vessel ships its own lists; a file of the same name in the
//! site's configuration directory replaces one.

use std::path::{Path, PathBuf};

/// One line of a list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// A library name (or its prefix) to look up in the linker cache.
    Library(String),
    /// A file bound at its own path.
    File(PathBuf),
    /// A program looked up in the system's bin directories.
    Program(String),
}

/// The GPU vendors Vessel knows lists for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vendor {
    Nvidia,
    Amd,
}

impl Vendor {
    /// The list's file name, in Vessel's and Apptainer's configuration.
    pub fn list_name(self) -> &'static str {
        match self {
            Vendor::Nvidia => "nvliblist.conf",
            Vendor::Amd => "rocmliblist.conf",
        }
    }

    /// Vessel's own list.
    fn default_list(self) -> &'static str {
        match self {
            Vendor::Nvidia => include_str!("nvliblist.conf"),
            Vendor::Amd => include_str!("rocmliblist.conf"),
        }
    }

    /// The option that asks for this vendor's GPUs.
    pub fn option(self) -> &'static str {
        match self {
            Vendor::Nvidia => "--nv",
            Vendor::Amd => "--rocm",
        }
    }
}

/// A list with where it came from, for messages.
#[derive(Clone, Debug)]
pub struct LibList {
    pub origin: String,
    pub entries: Vec<Entry>,
}

/// Why a site's list could not be used.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the GPU file list {path}")]
pub struct LibListError {
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

impl LibList {
    /// The site's list in `conf_dir` when there is one, else Vessel's.
    pub fn load(vendor: Vendor, conf_dir: &Path) -> Result<LibList, LibListError> {
        let path = conf_dir.join(vendor.list_name());
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(LibList {
                origin: path.display().to_string(),
                entries: parse(&text),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(LibList {
                origin: format!("Vessel's default {}", vendor.list_name()),
                entries: parse(vendor.default_list()),
            }),
            Err(source) => Err(LibListError { path, source }),
        }
    }
}

/// The entries of a list's text, in order, each once.
pub fn parse(text: &str) -> Vec<Entry> {
    let mut entries: Vec<Entry> = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let entry = if line.starts_with('/') {
            Entry::File(PathBuf::from(line))
        } else if line.ends_with(".so") || line.contains(".so.") {
            Entry::Library(line.to_string())
        } else {
            Entry::Program(line.to_string())
        };
        if !entries.contains(&entry) {
            entries.push(entry);
        }
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_classified_as_apptainer_does() {
        let list = parse(
            "# comment\n\nnvidia-smi\nlibcuda.so  # trailing\nlibnvoptix.so.1\n/etc/vulkan/icd.d/nvidia_icd.json\nlibcuda.so\n",
        );
        assert_eq!(
            list,
            [
                Entry::Program("nvidia-smi".into()),
                Entry::Library("libcuda.so".into()),
                Entry::Library("libnvoptix.so.1".into()),
                Entry::File("/etc/vulkan/icd.d/nvidia_icd.json".into()),
            ]
        );
    }

    #[test]
    fn the_shipped_lists_parse_and_a_site_list_replaces_them() {
        let tmp = tempfile::tempdir().unwrap();
        let nv = LibList::load(Vendor::Nvidia, tmp.path()).unwrap();
        assert!(nv.entries.contains(&Entry::Library("libcuda.so".into())));
        assert!(nv.entries.contains(&Entry::Program("nvidia-smi".into())));
        let rocm = LibList::load(Vendor::Amd, tmp.path()).unwrap();
        assert!(rocm.entries.contains(&Entry::Program("rocm-smi".into())));
        std::fs::write(tmp.path().join("nvliblist.conf"), "libonly.so\n").unwrap();
        let site = LibList::load(Vendor::Nvidia, tmp.path()).unwrap();
        assert_eq!(site.entries, [Entry::Library("libonly.so".into())]);
        assert!(site.origin.ends_with("nvliblist.conf"));
    }
}
