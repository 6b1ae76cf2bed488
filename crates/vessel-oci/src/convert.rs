//! `pull docker://…`: registry → blob cache → merged layers → SquashFS
//! (through `tar2sqfs`, which keeps every file's owner and mode from the
//! tar stream, so unprivileged pulls keep real ownership) → SIF with
//! Apptainer's metadata, cached by manifest digest.

use std::fs::File;
use std::io::{self, Seek, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use vessel_sif::{
    Arch, CreateOptions, DataType, FsType, Metadata, ObjectInput, PartType, Partition, Sif,
};

use crate::auth::{self, Credentials};
use crate::cache::{Cache, Claim, Hit, Kind, Producer};
use crate::layers::{self, Layer, LayerError};
use crate::metadata::{self, Extra};
use crate::registry::{
    parse_reference, Connection, Progress, Registry, RegistryError, ResolvedImage,
};

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Cache(#[from] crate::cache::CacheError),
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error(transparent)]
    Auth(#[from] auth::AuthError),
    #[error(
        "tar2sqfs (from squashfs-tools-ng) is needed to convert images: install squashfs-tools-ng"
    )]
    NoTar2sqfs,
    #[error("making the SquashFS image failed: {0}")]
    Squashfs(String),
    #[error("not enough free space in {dir}: the conversion needs about {need} MiB, {have} MiB are free (set APPTAINER_CACHEDIR or APPTAINER_TMPDIR elsewhere)")]
    NoSpace { dir: PathBuf, need: u64, have: u64 },
    #[error("the image config is not valid JSON: {0}")]
    Config(String),
    #[error("writing the SIF image: {0}")]
    Sif(#[from] vessel_sif::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> PullError + '_ {
    move |source| PullError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// How to pull.
#[derive(Clone, Debug)]
pub struct PullOptions {
    /// `os/arch[/variant]` to pick from an index.
    pub platform: String,
    pub no_https: bool,
    pub ca_pem: Vec<Vec<u8>>,
    /// Credentials given directly (variables or a prompt); else the auth files.
    pub credentials: Option<Credentials>,
    pub auth_files: Vec<PathBuf>,
    /// The cache root (`$APPTAINER_CACHEDIR/cache`); `None` for `--disable-cache`.
    pub cache_root: Option<PathBuf>,
    /// Where temporary files go when the cache is disabled.
    pub tmpdir: PathBuf,
    /// Keep device nodes from layers (only meaningful as root).
    pub keep_devices: bool,
    /// When the image was built, for labels.
    pub build_date: String,
    /// Where to report download progress.
    pub progress: Option<ProgressHook>,
}

/// A shared [`Progress`] reporter.
#[derive(Clone)]
pub struct ProgressHook(pub std::sync::Arc<dyn Progress>);

impl std::fmt::Debug for ProgressHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProgressHook")
    }
}

/// A pulled image: the SIF that was checked (a cache entry of the user's
/// own, or an unnamed temporary file), kept open as long as this lives.
pub struct Pulled {
    /// `/proc/self/fd/N` of the open image: names that very file, not the
    /// cache entry's name (which another user sharing the cache could
    /// replace), for as long as this value lives.
    pub sif: PathBuf,
    pub digest: String,
    file: File,
    _temp: Option<tempfile::TempDir>,
}

impl Pulled {
    pub(crate) fn new(hit: Hit, digest: String) -> Pulled {
        let (file, temp) = hit.into_parts();
        Pulled {
            sif: vessel_sys::path::fd_path(&file),
            digest,
            file,
            _temp: temp,
        }
    }

    /// The image, open.
    pub fn file(&self) -> &File {
        &self.file
    }
}

/// Pulls `reference` (as `name[:tag][@digest]`) into a runnable SIF.
pub fn pull_to_sif(reference: &str, opts: &PullOptions) -> Result<Pulled, PullError> {
    let reference = parse_reference(reference)?;
    let registry_host = reference.resolve_registry().to_string();
    let credentials = match &opts.credentials {
        Some(c) => Some(c.clone()),
        None => auth::lookup(&opts.auth_files, &registry_host)?,
    };
    let registry = Registry::new(&Connection {
        no_https: opts.no_https,
        ca_pem: opts.ca_pem.clone(),
        platform: opts.platform.clone(),
        credentials,
        max_parallel: 4,
    })?;
    let image = registry.resolve(&reference, &opts.platform)?;
    tracing::debug!("{} resolves to {}", reference.whole(), image.digest);

    let cache = opts
        .cache_root
        .as_deref()
        .map(|root| Cache::new(root).map(|c| c.with_private_dir(&opts.tmpdir)))
        .transpose()?;
    let producer = match &cache {
        // A warm cache needs nothing but the manifest.
        Some(c) => match c.claim(Kind::Sif, &image.digest, false)? {
            Claim::Ready(hit) => {
                tracing::debug!("using the cached image {}", hit.path.display());
                return Ok(Pulled::new(hit, image.digest));
            }
            Claim::Mine(producer) => producer,
            Claim::Busy(busy) => {
                tracing::info!(
                    "Another process is pulling {}, waiting for it",
                    reference.whole()
                );
                match busy.wait(c)? {
                    Claim::Ready(hit) => return Ok(Pulled::new(hit, image.digest)),
                    Claim::Mine(producer) => producer,
                    Claim::Busy(_) => {
                        Producer::private(&opts.tmpdir).map_err(io_err(&opts.tmpdir))?
                    }
                }
            }
        },
        None => Producer::private(&opts.tmpdir).map_err(io_err(&opts.tmpdir))?,
    };
    let work_dir = cache.as_ref().map_or(opts.tmpdir.as_path(), |c| c.root());
    let hit = build(&registry, &image, opts, cache.as_ref(), work_dir, producer)?;
    Ok(Pulled::new(hit, image.digest))
}

fn build(
    registry: &Registry,
    image: &ResolvedImage,
    opts: &PullOptions,
    cache: Option<&Cache>,
    work_dir: &Path,
    output: Producer,
) -> Result<Hit, PullError> {
    let whole = image.reference.whole();
    let config_bytes = registry.fetch_small(&image.reference, &image.manifest.config)?;
    let total: u64 = image
        .manifest
        .layers
        .iter()
        .map(|l| l.size.max(0) as u64)
        .sum();
    check_space(work_dir, total)?;
    let progress = opts.progress.as_ref().map(|h| h.0.as_ref());
    let layers = fetch_layers(registry, image, cache, &opts.tmpdir, progress)?;
    let source = Source {
        reference: &whole,
        bootstrap: "docker",
        digest: &image.digest,
        config: &config_bytes,
    };
    assemble(&source, &layers.layers, opts, output)
}

/// Refuses a conversion that would fill the disk: the compressed layers,
/// then the SquashFS, which is usually smaller than the layers
/// uncompressed; three times the layers is a safe estimate.
pub(crate) fn check_space(dir: &Path, layer_bytes: u64) -> Result<(), PullError> {
    let need = layer_bytes.saturating_mul(3);
    if let Ok(have) = vessel_sys::path::free_bytes(dir) {
        if have < need {
            return Err(PullError::NoSpace {
                dir: dir.to_path_buf(),
                need: need >> 20,
                have: have >> 20,
            });
        }
    }
    Ok(())
}

/// What an image is, wherever it came from.
pub(crate) struct Source<'a> {
    /// How the user named it, for labels and the definition file.
    pub reference: &'a str,
    /// The definition file's `bootstrap:` agent.
    pub bootstrap: &'a str,
    /// The manifest digest (or image ID), for labels.
    pub digest: &'a str,
    /// The raw image config.
    pub config: &'a [u8],
}

/// Builds the SIF from an image's config and layers into `output`, and
/// returns it, committed (in the cache when `output` is a cache entry).
pub(crate) fn assemble(
    source: &Source<'_>,
    layers: &[Layer],
    opts: &PullOptions,
    mut output: Producer,
) -> Result<Hit, PullError> {
    let whole = source.reference.to_string();
    let config_bytes = source.config;
    let config: serde_json::Value =
        serde_json::from_slice(config_bytes).map_err(|e| PullError::Config(e.to_string()))?;
    let arch_name = config
        .get("architecture")
        .and_then(|a| a.as_str())
        .unwrap_or("")
        .to_string();
    let wanted_arch = opts.platform.split('/').nth(1).unwrap_or("");
    if !arch_name.is_empty() && arch_name != wanted_arch {
        tracing::warn!("{whole} is built for {arch_name}, not {wanted_arch}");
    }
    tracing::info!("Converting {whole} to a SIF image");
    let plan = layers::plan(layers, opts.keep_devices)?;
    if plan.skipped_devices > 0 {
        tracing::info!(
            "Skipped {} device node(s): containers get /dev from the host",
            plan.skipped_devices
        );
    }

    let reference_text = whole.clone();
    let deffile = format!("bootstrap: {}\nfrom: {reference_text}\n", source.bootstrap);
    let runscript = metadata::runscript(&config);
    let env_script = metadata::env_script(&config);
    let labels = metadata::labels(
        &config,
        &reference_text,
        source.digest,
        &arch_name,
        &opts.build_date,
    );
    let labels_json = metadata::labels_json(&labels);
    let extras = metadata::singularity_d(&runscript, &env_script, &labels_json, &deffile);

    // An unnamed file beside the SIF being made: nobody can reach it by a
    // name, and it vanishes with this process, killed or not.
    let mut squashfs = output
        .scratch_file(&opts.tmpdir)
        .map_err(io_err(output.path()))?;
    make_squashfs(layers, &plan, &extras, &squashfs)?;
    squashfs.rewind().map_err(io_err(output.path()))?;

    let arch = Arch::from_go_name(&arch_name).unwrap_or_else(Arch::host);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let id = {
        use sha2::Digest;
        let h = sha2::Sha256::digest(format!("{}{now}{}", source.digest, std::process::id()));
        let mut id = [0u8; 16];
        id.copy_from_slice(&h[..16]);
        id[6] = (id[6] & 0x0f) | 0x40;
        id[8] = (id[8] & 0x3f) | 0x80;
        id
    };
    let mut create = CreateOptions::new(id, now);
    create.launch_script = vessel_sif::APPTAINER_LAUNCH_SCRIPT.into();
    let mut sif = Sif::create(output.file(), &create)?;
    let mut named = |data_type, name: &str, data: &[u8]| -> Result<(), PullError> {
        let mut input = ObjectInput::new(data_type);
        input.name = name.into();
        sif.add_object(&input, &mut &data[..], now)?;
        Ok(())
    };
    named(DataType::DEFFILE, "", deffile.as_bytes())?;
    named(
        DataType::GENERIC_JSON,
        "inspect-metadata.json",
        &metadata::inspect_metadata(&labels, &runscript, &env_script, &deffile),
    )?;
    named(DataType::GENERIC_JSON, "oci-config.json", config_bytes)?;
    let mut part = ObjectInput::new(DataType::PARTITION);
    part.metadata = Metadata::Partition(Partition {
        fs: FsType::SQUASHFS,
        part: PartType::PRIMARY_SYSTEM,
        arch,
    });
    sif.add_object(&part, &mut squashfs, now)?;
    drop(sif);
    Ok(output.commit()?)
}

/// Layers as [`layers`] reads them (by `/proc/self/fd/N` paths), with the
/// checked files those paths name, kept open.
struct OpenLayers {
    layers: Vec<Layer>,
    _files: Vec<File>,
}

/// Every layer blob, checked, from the cache (or downloaded into unnamed
/// temporary files in `tmpdir` without one), downloading the missing ones
/// in parallel. Blobs another process is downloading are waited for, so
/// concurrent pulls share one download.
fn fetch_layers(
    registry: &Registry,
    image: &ResolvedImage,
    cache: Option<&Cache>,
    tmpdir: &Path,
    progress: Option<&dyn Progress>,
) -> Result<OpenLayers, PullError> {
    let descs = &image.manifest.layers;
    let mut files: Vec<Option<File>> = descs.iter().map(|_| None).collect();
    let mut mine = Vec::new();
    let mut producers = Vec::new();
    let mut busy = Vec::new();
    for (i, desc) in descs.iter().enumerate() {
        match cache {
            Some(c) => match c.claim(Kind::Blob, &desc.digest, false)? {
                Claim::Ready(hit) => files[i] = Some(hit.file),
                Claim::Mine(mut p) => {
                    let f = p.file().try_clone().map_err(io_err(p.path()))?;
                    mine.push((desc.clone(), f, p.path().to_path_buf()));
                    producers.push((i, p));
                }
                Claim::Busy(b) => busy.push((i, desc.clone(), b)),
            },
            None => {
                let f = tempfile::tempfile_in(tmpdir).map_err(io_err(tmpdir))?;
                let copy = f.try_clone().map_err(io_err(tmpdir))?;
                mine.push((
                    desc.clone(),
                    copy,
                    tmpdir.join(desc.digest.replace(':', "-")),
                ));
                files[i] = Some(f);
            }
        }
    }
    if !mine.is_empty() {
        let bytes: i64 = mine.iter().map(|(d, _, _)| d.size).sum();
        tracing::info!(
            "Downloading {} layer(s), {:.1} MiB",
            mine.len(),
            bytes as f64 / 1048576.0
        );
    }
    registry.download(&image.reference, mine, progress)?;
    for (i, p) in producers {
        files[i] = Some(p.commit()?.file);
    }
    if let Some(c) = cache {
        for (i, desc, b) in busy {
            let mut p = match b.wait(c)? {
                Claim::Ready(hit) => {
                    files[i] = Some(hit.file);
                    continue;
                }
                Claim::Mine(p) => p,
                Claim::Busy(_) => Producer::private(tmpdir).map_err(io_err(tmpdir))?,
            };
            // The other process failed: download it ourselves.
            let f = p.file().try_clone().map_err(io_err(p.path()))?;
            registry.download(
                &image.reference,
                vec![(desc, f, p.path().to_path_buf())],
                progress,
            )?;
            files[i] = Some(p.commit()?.file);
        }
    }
    let mut layers = Vec::new();
    let mut kept = Vec::new();
    for (desc, file) in descs.iter().zip(files) {
        let file = file.ok_or_else(|| PullError::Io {
            path: PathBuf::from(&desc.digest),
            source: io::Error::other("the layer was neither found nor downloaded"),
        })?;
        layers.push(Layer {
            digest: desc.digest.clone(),
            path: vessel_sys::path::fd_path(&file),
        });
        kept.push(file);
    }
    Ok(OpenLayers {
        layers,
        _files: kept,
    })
}

/// Streams the merged layers and the metadata into `tar2sqfs`.
fn make_squashfs(
    layers: &[Layer],
    plan: &layers::MergePlan,
    extras: &[Extra],
    out: &File,
) -> Result<(), PullError> {
    let jobs = std::thread::available_parallelism().map_or(2, |n| n.get());
    // gzip, which every SquashFS reader has (Apptainer's default too), at
    // level 4. Measured on the Debian test image (163 MiB of tar, tar2sqfs
    // with 2 jobs on 2 CPUs; issue 20): level 6 took 2.64 s for 64.2 MB,
    // level 5 1.88 s (+0.7 %), level 4 1.44 s (+2.4 %), level 3 1.36 s
    // (+5.1 %), level 1 1.07 s (+8.7 %); unpacking any of them took the
    // same 0.56 s of CPU. Level 6 had been 3.3 times faster than the
    // default 9 for 0.4 % more. Level 4 is the last before zlib's fast
    // strategy, where the size grows faster than the time falls.
    let mut child = Command::new("tar2sqfs")
        .args([
            "--quiet",
            "--force",
            "--compressor",
            "gzip",
            "--comp-extra",
            "level=4",
            "--num-jobs",
        ])
        .arg(jobs.to_string())
        // The output is our unnamed file, given as the child's standard
        // output: no name in a shared directory is ever opened.
        .arg("/dev/stdout")
        .stdin(Stdio::piped())
        .stdout(Stdio::from(
            out.try_clone()
                .map_err(|e| PullError::Squashfs(e.to_string()))?,
        ))
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => PullError::NoTar2sqfs,
            _ => PullError::Squashfs(e.to_string()),
        })?;
    let stdin = child.stdin.take().expect("stdin is piped");
    let streamed = (|| -> Result<(), PullError> {
        let mut builder = tar::Builder::new(io::BufWriter::with_capacity(1 << 20, stdin));
        // The image's own metadata (an image Apptainer built and pushed) is
        // replaced by the one made from its config.
        let replaced = |p: &[u8]| {
            p == b"singularity" || p == b".singularity.d" || p.starts_with(b".singularity.d/")
        };
        layers::write(layers, plan, replaced, &mut builder)?;
        for extra in extras {
            append_extra(&mut builder, extra).map_err(|e| PullError::Squashfs(e.to_string()))?;
        }
        let mut w = builder
            .into_inner()
            .map_err(|e| PullError::Squashfs(e.to_string()))?;
        w.flush().map_err(|e| PullError::Squashfs(e.to_string()))?;
        Ok(())
    })();
    let output = child
        .wait_with_output()
        .map_err(|e| PullError::Squashfs(e.to_string()))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(PullError::Squashfs(
            stderr
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("tar2sqfs failed")
                .to_string(),
        ));
    }
    streamed
}

fn append_extra<W: Write>(b: &mut tar::Builder<W>, extra: &Extra) -> io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    match extra {
        Extra::Dir { path } => {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
            h.set_size(0);
            b.append_data(&mut h, path, io::empty())
        }
        Extra::File {
            path,
            mode,
            content,
        } => {
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(*mode);
            h.set_size(content.len() as u64);
            b.append_data(&mut h, path, content.as_bytes())
        }
        Extra::Symlink { path, target } => {
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_mode(0o777);
            h.set_size(0);
            b.append_link(&mut h, path, target)
        }
    }
}
