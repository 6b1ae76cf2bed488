//! Packing a built root file system into a SIF: the tree is streamed as tar
//! into `tar2sqfs`, with the building user's own files given to root (they
//! were root's inside the fake-root build), then wrapped with the definition
//! file and the inspect metadata. Written under a temporary name and renamed,
//! so a failure leaves no partial image.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use vessel_sif::{
    Arch, CreateOptions, DataType, FsType, Metadata, ObjectInput, PartType, Partition, Sif,
};

use crate::def::Definition;

/// Runs `read` on a file or directory of the build that its own mode keeps
/// the user from reading (`mkdir -m 0` in `%post`: root could read it
/// inside), by giving the owner access for that moment. The tar header has
/// already recorded the real mode.
fn readable<T>(
    path: &Path,
    meta: &fs::Metadata,
    read: impl FnOnce() -> io::Result<T>,
) -> io::Result<T> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode();
    let needed = if meta.is_dir() { 0o500 } else { 0o400 };
    if mode & needed == needed {
        return read();
    }
    fs::set_permissions(path, fs::Permissions::from_mode(mode | needed))?;
    let result = read();
    fs::set_permissions(path, fs::Permissions::from_mode(mode & 0o7777))?;
    result
}

/// Streams `root` as tar, owners mapped from `me` to root.
fn stream_tree<W: Write>(root: &Path, me: (u32, u32), out: &mut tar::Builder<W>) -> io::Result<()> {
    let mut links: HashMap<(u64, u64), PathBuf> = HashMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let path = root.join(&rel);
        let meta = fs::symlink_metadata(&path)?;
        let ft = meta.file_type();
        let mut h = tar::Header::new_gnu();
        h.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
        let map = |id: u32, mine: u32| if id == mine { 0 } else { id };
        h.set_uid(map(meta.uid(), me.0) as u64);
        h.set_gid(map(meta.gid(), me.1) as u64);
        let name = if rel.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            rel.clone()
        };
        if ft.is_dir() {
            h.set_size(0);
            out.append_data(&mut h, &name, io::empty())?;
            let mut children: Vec<PathBuf> = readable(&path, &meta, || {
                fs::read_dir(&path)?
                    .map(|e| e.map(|e| rel.join(e.file_name())))
                    .collect::<io::Result<_>>()
            })?;
            children.sort();
            children.reverse();
            stack.extend(children);
        } else if ft.is_symlink() {
            h.set_size(0);
            out.append_link(&mut h, &name, fs::read_link(&path)?)?;
        } else if ft.is_file() {
            if meta.nlink() > 1 {
                if let Some(first) = links.get(&(meta.dev(), meta.ino())) {
                    h.set_entry_type(tar::EntryType::Link);
                    h.set_size(0);
                    out.append_link(&mut h, &name, first)?;
                    continue;
                }
                links.insert((meta.dev(), meta.ino()), name.clone());
            }
            let file = readable(&path, &meta, || fs::File::open(&path))?;
            out.append_data(&mut h, &name, file)?;
        } else {
            // FIFOs and device nodes: metadata only.
            h.set_size(0);
            out.append_data(&mut h, &name, io::empty())?;
        }
    }
    Ok(())
}

/// Makes `output` (a SIF) from the root file system at `root`.
pub fn sif_from_dir(
    root: &Path,
    def: &Definition,
    output: &Path,
    work: &Path,
) -> Result<(), String> {
    sif_from_tree(root, &def.raw, output, work)
}

/// Makes `output` from `root`, recording `deffile` as its definition.
pub fn sif_from_tree(root: &Path, deffile: &str, output: &Path, work: &Path) -> Result<(), String> {
    let squashfs = work.join("rootfs.sqfs");
    let me = {
        let m = fs::metadata(work).map_err(|e| e.to_string())?;
        (m.uid(), m.gid())
    };
    let jobs = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut child = Command::new("tar2sqfs")
        .args([
            "--quiet",
            "--force",
            "--compressor",
            "gzip",
            "--comp-extra",
            "level=6",
            "--num-jobs",
        ])
        .arg(jobs.to_string())
        .arg(&squashfs)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("tar2sqfs (squashfs-tools-ng) is needed to write the image: {e}"))?;
    let stdin = child.stdin.take().expect("piped");
    let streamed = (|| -> io::Result<()> {
        let mut b = tar::Builder::new(io::BufWriter::with_capacity(1 << 20, stdin));
        stream_tree(root, me, &mut b)?;
        b.into_inner()?.flush()
    })();
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "making the SquashFS image failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    streamed.map_err(|e| format!("reading the built root file system: {e}"))?;

    let mut image = vessel_image::Image::Sandbox {
        path: root.to_path_buf(),
    };
    let req = vessel_image::inspect::Request {
        all: true,
        ..Default::default()
    }
    .normalized();
    let meta = vessel_image::inspect::inspect(&mut image, &req).map_err(|e| e.to_string())?;
    let meta_json = serde_json::to_vec(&meta).map_err(|e| e.to_string())?;

    let dir = output
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new()
        .prefix(".vessel-build-")
        .tempfile_in(dir)
        .map_err(|e| format!("cannot write to {}: {e}", dir.display()))?;
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
    let file = tmp.reopen().map_err(|e| e.to_string())?;
    let mut sif = Sif::create(file, &opts).map_err(|e| e.to_string())?;
    let mut named = |t, name: &str, data: &[u8]| -> Result<(), String> {
        let mut input = ObjectInput::new(t);
        input.name = name.into();
        sif.add_object(&input, &mut &data[..], now)
            .map(drop)
            .map_err(|e| e.to_string())
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
    let mut sq = fs::File::open(&squashfs).map_err(|e| e.to_string())?;
    sif.add_object(&part, &mut sq, now)
        .map_err(|e| e.to_string())?;
    sif.into_inner().sync_all().map_err(|e| e.to_string())?;
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755))
            .map_err(|e| e.to_string())?;
    }
    tmp.persist(output)
        .map_err(|e| format!("could not write {}: {}", output.display(), e.error))?;
    Ok(())
}
