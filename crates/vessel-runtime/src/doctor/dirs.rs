//! The directories Vessel writes: the pull cache, the extract cache and
//! the tmp dir. Who owns them (a directory another user owns can be
//! changed under Vessel's feet, so it is refused), what file system they
//! are on (network file systems are slow and weak at locking for a cache),
//! and how much room is left. Nothing is created: a directory not made yet
//! is judged by the one it will be made in.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use vessel_config::vessel_vars;
use vessel_sys::probe::{can_create_in, statfs};

use super::{human_size, owner_name, Finding, Node};
use crate::resolve::{extract_settings, Vars};

/// Below this, a pull or a build of a common image does not fit.
const LOW_SPACE: u64 = 2 << 30;

/// A file system type by its `statfs` magic number, and for network and
/// parallel file systems why a cache or tmp dir there is a problem.
fn fs_type(magic: u32) -> (String, Option<&'static str>) {
    const NETWORK: &str = "a network file system";
    let (name, network) = match magic {
        0xEF53 => ("ext4", false),
        0x5846_5342 => ("xfs", false),
        0x9123_683E => ("btrfs", false),
        0x0102_1994 => ("tmpfs", false),
        0x2FC1_2FC1 => ("zfs", false),
        0x794C_7630 => ("overlayfs", false),
        0x6573_5546 => ("fuse", false),
        0x6969 => ("NFS", true),
        0x0BD0_0BD0 => ("Lustre", true),
        0x4750_4653 => ("GPFS", true),
        0x1983_0326 => ("BeeGFS", true),
        0x00C3_6400 => ("CephFS", true),
        0xFF53_4D42 => ("CIFS", true),
        0xFE53_4D42 => ("SMB2", true),
        0xAAD7_AAEA => ("PanFS", true),
        other => return (format!("file system type {other:#x}"), None),
    };
    (name.to_string(), network.then_some(NETWORK))
}

/// What a directory is for, which decides what is wrong with it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    PullCache,
    ExtractCache,
    Tmp,
}

impl Kind {
    fn check(self) -> &'static str {
        match self {
            Kind::PullCache => "pull cache",
            Kind::ExtractCache => "extract cache",
            Kind::Tmp => "tmp dir",
        }
    }

    /// Why a network file system hurts this directory.
    fn network_cost(self) -> &'static str {
        match self {
            Kind::PullCache => {
                "shared by every node: locks depend on the server and every read goes over the network"
            }
            Kind::ExtractCache => {
                "the extract cache should be node-local: each node unpacks over the network and runs read through it"
            }
            Kind::Tmp => "builds and pulls unpack whole images there, slowly over the network",
        }
    }
}

pub(super) fn checks(node: &Node<'_>) -> Vec<Finding> {
    let get = |n: &str| (node.get)(n);
    let cache = vessel_config::paths::cache_root(node.tool, &get);
    // The extract cache where a run would put it, as the runtime decides.
    let vars = Vars {
        tool: node.tool,
        get: node.get,
    };
    let conf = node.site.as_ref().cloned().unwrap_or_default();
    let (extract, fallback, _) = extract_settings(&vars, &node.host, &conf);
    let extract = match fallback {
        None => dir(
            node,
            Kind::ExtractCache,
            &extract,
            vessel_vars::EXTRACT_DIR.name,
        ),
        Some(fallback) => default_extract(node, &extract, &fallback),
    };
    vec![
        dir(node, Kind::PullCache, &cache, &node.persona_var("CACHEDIR")),
        extract,
        dir(
            node,
            Kind::Tmp,
            &node.tmp_dir(),
            &node.persona_var("TMPDIR"),
        ),
    ]
}

/// The default extract cache: when another user holds `vessel-UID`, runs
/// fall back to the user's home, which works but is not node-local.
fn default_extract(node: &Node<'_>, path: &Path, fallback: &Path) -> Finding {
    let finding = dir(
        node,
        Kind::ExtractCache,
        path,
        vessel_vars::EXTRACT_DIR.name,
    );
    if finding.status != super::Status::Fail {
        return finding;
    }
    Finding::warn(
        Kind::ExtractCache.check(),
        format!(
            "{}; runs extract to {} instead",
            finding.finding,
            fallback.display()
        ),
        finding.fix.unwrap_or_default(),
    )
}

/// The directory itself when it exists, else the nearest one above it.
fn existing(path: &Path) -> (PathBuf, std::fs::Metadata) {
    let mut here = path.to_path_buf();
    loop {
        if let Ok(meta) = std::fs::metadata(&here) {
            return (here, meta);
        }
        if !here.pop() {
            let root = PathBuf::from("/");
            let meta = std::fs::metadata(&root).expect("/ exists");
            return (root, meta);
        }
    }
}

fn dir(node: &Node<'_>, kind: Kind, path: &Path, var: &str) -> Finding {
    let check = kind.check();
    let shown = path.display();
    let (found, meta) = existing(path);
    let exists = found == path;
    let use_own = format!(
        "use a directory of your own: `export {var}=DIR`, or have {} removed (by its owner or an administrator)",
        found.display()
    );
    if exists && !meta.is_dir() {
        return Finding::fail(check, format!("{shown} is not a directory"), use_own);
    }
    let owner = meta.uid();
    let mode = meta.permissions().mode();
    let sticky = mode & 0o1000 != 0;
    // Root's directories above a cache are the system's; another user's
    // directory anywhere on the last stretch can be changed by them.
    let others = owner != node.uid() && owner != 0;
    if others && !node.is_root() && !(kind == Kind::Tmp && sticky) {
        return Finding::fail(
            check,
            format!(
                "{} belongs to {}, not to you: they could change what Vessel reads from it",
                found.display(),
                owner_name(owner)
            ),
            use_own,
        );
    }
    if !can_create_in(&found) {
        return Finding::fail(
            check,
            format!(
                "you cannot write in {} (mode {:04o}, owner {})",
                found.display(),
                mode & 0o7777,
                owner_name(owner)
            ),
            use_own,
        );
    }
    if kind != Kind::Tmp && exists && owner == 0 && !node.is_root() {
        return Finding::fail(
            check,
            format!("{shown} belongs to root, not to you (made by a `sudo` run?)"),
            format!(
                "an administrator: `chown -R {} {shown}`, or {use_own}",
                node.user()
            ),
        );
    }
    let where_ = if exists {
        shown.to_string()
    } else {
        format!("{shown} (not made yet; in {})", found.display())
    };
    let usage = match statfs(&found) {
        Ok(u) => u,
        Err(e) => return Finding::warn(check, format!("{where_}: {e}"), use_own),
    };
    let (fs, network) = fs_type(usage.magic);
    let room = format!(
        "{fs}, {} free of {}",
        human_size(usage.free),
        human_size(usage.total)
    );
    if let Some(what) = network {
        return Finding::warn(
            check,
            format!("{where_}: {room}: {what}, {}", kind.network_cost()),
            format!("point {var} at a node-local disk (/var/tmp, /local, $SLURM_TMPDIR …)"),
        );
    }
    if usage.free < LOW_SPACE {
        return Finding::warn(
            check,
            format!("{where_}: {room}: less than {} left", human_size(LOW_SPACE)),
            format!("free some space, or point {var} at a disk with more room"),
        );
    }
    Finding::pass(check, format!("{where_}: {room}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_file_systems_are_named_with_why() {
        assert_eq!(fs_type(0x6969).0, "NFS");
        assert!(fs_type(0x0BD0_0BD0).1.is_some());
        assert!(fs_type(0x4750_4653).1.is_some());
        assert!(fs_type(0x1983_0326).1.is_some());
        assert_eq!(fs_type(0xEF53), ("ext4".to_string(), None));
        assert_eq!(fs_type(0x1234).0, "file system type 0x1234");
    }

    #[test]
    fn a_missing_directory_is_judged_by_its_parent() {
        let (found, meta) = existing(Path::new("/proc/self/no/such/dir"));
        assert_eq!(found, Path::new("/proc/self"));
        assert!(meta.is_dir());
    }
}
