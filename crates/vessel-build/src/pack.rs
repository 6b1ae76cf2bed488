//! Packing a built root file system into a SIF: `mksquashfs` reads the
//! tree as fake root (so the user's own files are root's, files of the
//! user's subordinate ids keep their ids from inside, and files the user
//! may not read are read all the same), then the SquashFS is wrapped with
//! the definition file and the inspect metadata. Written under a temporary
//! name and renamed, so a failure leaves no partial image.

use std::fs;
use std::path::Path;
use std::process::Stdio;

use vessel_sif::{
    Arch, CreateOptions, DataType, FsType, Metadata, ObjectInput, PartType, Partition, Sif,
};

use crate::def::Definition;
use crate::engine::BuildError;
use crate::hostroot::HostRoot;

/// How the SquashFS is made.
#[derive(Clone, Debug, Default)]
pub struct SquashOptions {
    /// `--mksquashfs-args`: extra `mksquashfs` options (`-comp zstd`, …).
    pub mksquashfs_args: Vec<String>,
    /// The site's `mksquashfs procs` (`-processors`; 0: all).
    pub processors: u64,
    /// The site's `mksquashfs mem` (`-mem`), such as `1G`.
    pub mem: Option<String>,
}

impl SquashOptions {
    /// The mksquashfs command line after its source and destination: gzip
    /// unless the user chose a compressor (images must open everywhere, and
    /// gzip is what every kernel and Apptainer release reads).
    fn args(&self) -> Vec<String> {
        let mut args: Vec<String> =
            vec!["-noappend".into(), "-quiet".into(), "-no-progress".into()];
        if !self.mksquashfs_args.iter().any(|a| a == "-comp") {
            args.extend(["-comp".into(), "gzip".into()]);
        }
        // The site's bounds, unless the user's own options set them.
        let given = |o: &str| self.mksquashfs_args.iter().any(|a| a == o);
        if self.processors > 0 && !given("-processors") {
            args.extend(["-processors".into(), self.processors.to_string()]);
        }
        if let Some(mem) = self.mem.as_ref().filter(|_| !given("-mem")) {
            args.extend(["-mem".into(), mem.clone()]);
        }
        args.extend(self.mksquashfs_args.iter().cloned());
        args
    }
}

/// `--mksquashfs-args "-comp zstd -b 1M"`: split into words as a POSIX
/// shell would (quotes and backslashes; no expansions).
pub fn split_mksquashfs_args(text: &str) -> Result<Vec<String>, BuildError> {
    shlex::split(text).ok_or_else(|| BuildError::MksquashfsArgs {
        text: text.to_string(),
    })
}

/// Makes `output` (a SIF) from the root file system at `root`.
pub fn sif_from_dir(
    root: &Path,
    def: &Definition,
    output: &Path,
    work: &Path,
    host: &HostRoot,
    squash: &SquashOptions,
) -> Result<(), BuildError> {
    sif_from_tree(root, &def.raw, output, work, host, squash)
}

/// Makes `output` from `root`, recording `deffile` as its definition.
pub fn sif_from_tree(
    root: &Path,
    deffile: &str,
    output: &Path,
    work: &Path,
    host: &HostRoot,
    squash: &SquashOptions,
) -> Result<(), BuildError> {
    let squashfs = work.join("rootfs.sqfs");
    let out = host
        .command("mksquashfs")
        .arg(root)
        .arg(&squashfs)
        .args(squash.args())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|source| BuildError::NoMksquashfs { source })?;
    if !out.status.success() {
        return Err(BuildError::Mksquashfs {
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr)
                .lines()
                .map(|l| l.trim().to_string())
                .filter(|l| !l.is_empty())
                .collect(),
        });
    }

    let mut image = vessel_image::Image::Sandbox {
        path: root.to_path_buf(),
    };
    let req = vessel_image::inspect::Request {
        all: true,
        ..Default::default()
    }
    .normalized();
    let meta = vessel_image::inspect::inspect(&mut image, &req)?;
    let meta_json = serde_json::to_vec(&meta)?;

    let dir = output
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = vessel_sys::fs::AtomicFile::create(output, 0o755).map_err(|source| {
        BuildError::CreateOutput {
            dir: dir.to_path_buf(),
            source,
        }
    })?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let id = {
        use sha2::Digest;
        let h = sha2::Sha256::digest(format!("{}{now}{}", output.display(), std::process::id()));
        let mut id = [0u8; 16];
        id.copy_from_slice(&h[..16]);
        id[6] = (id[6] & 0x0f) | 0x40;
        id[8] = (id[8] & 0x3f) | 0x80;
        id
    };
    let mut opts = CreateOptions::new(id, now);
    opts.launch_script = vessel_sif::APPTAINER_LAUNCH_SCRIPT.into();
    let staging = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BuildError::Staging { path, source }
    };
    let file = tmp.file().try_clone().map_err(staging(output))?;
    let mut sif = Sif::create(file, &opts).map_err(BuildError::SifWrite)?;
    let mut named = |t, name: &str, data: &[u8]| -> Result<(), BuildError> {
        let mut input = ObjectInput::new(t);
        input.name = name.into();
        sif.add_object(&input, &mut &data[..], now)
            .map(drop)
            .map_err(BuildError::SifWrite)
    };
    if !deffile.is_empty() {
        named(DataType::DEFFILE, "", deffile.as_bytes())?;
    }
    named(DataType::GENERIC_JSON, "inspect-metadata.json", &meta_json)?;
    let mut part = ObjectInput::new(DataType::PARTITION);
    part.metadata = Metadata::Partition(Partition {
        fs: FsType::SQUASHFS,
        part: PartType::PRIMARY_SYSTEM,
        arch: Arch::host(),
    });
    let mut sq = fs::File::open(&squashfs).map_err(staging(&squashfs))?;
    sif.add_object(&part, &mut sq, now)
        .map_err(BuildError::SifWrite)?;
    drop(sif);
    tmp.commit().map_err(|source| BuildError::CommitOutput {
        output: output.to_path_buf(),
        source,
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mksquashfs_args_split_and_default_to_gzip() {
        assert_eq!(
            split_mksquashfs_args(" -comp zstd  -Xcompression-level '19' -e \"a b\"").unwrap(),
            ["-comp", "zstd", "-Xcompression-level", "19", "-e", "a b"]
        );
        assert!(split_mksquashfs_args("-e 'x").is_err());
        let default = SquashOptions::default().args();
        assert!(default.windows(2).any(|w| w == ["-comp", "gzip"]));
        let zstd = SquashOptions {
            mksquashfs_args: vec!["-comp".into(), "zstd".into()],
            ..SquashOptions::default()
        }
        .args();
        assert!(!zstd.iter().any(|a| a == "gzip"));
    }

    #[test]
    fn the_sites_processors_and_memory_unless_the_user_sets_them() {
        let site = |args: &[&str]| {
            SquashOptions {
                mksquashfs_args: args.iter().map(|a| a.to_string()).collect(),
                processors: 4,
                mem: Some("1G".into()),
            }
            .args()
        };
        let a = site(&[]);
        assert!(a.windows(2).any(|w| w == ["-processors", "4"]));
        assert!(a.windows(2).any(|w| w == ["-mem", "1G"]));
        let a = site(&["-processors", "2"]);
        assert_eq!(a.iter().filter(|x| *x == "-processors").count(), 1);
        assert!(a.windows(2).any(|w| w == ["-processors", "2"]));
        assert!(!SquashOptions::default()
            .args()
            .contains(&"-mem".to_string()));
    }
}
