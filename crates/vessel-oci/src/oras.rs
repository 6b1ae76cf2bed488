//! `oras://`: a SIF stored as-is as an OCI artifact (one layer of media
//! type `application/vnd.sylabs.sif.layer.v1.sif`, an empty `{}` config),
//! as Apptainer and SingularityCE store it, for `pull` and `push`, and
//! cached by manifest digest for `exec`, `run` and `build` ([`fetch`]).

use std::fs::File;
use std::io::Read;
use std::path::Path;

use oci_client::client::ClientConfig;
use oci_client::manifest::{OciDescriptor, OciImageManifest, OciManifest};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, RegistryOperation};
use sha2::{Digest, Sha256};

use crate::auth::{self, Credentials};
use crate::cache::{Cache, CacheError, Claim, Kind, Producer};
use crate::convert::{PullOptions, Pulled};
use crate::registry::{client_config, hex, parse_reference, registry_auth, runtime, RegistryError};

pub const SIF_LAYER_MEDIA_TYPE: &str = "application/vnd.sylabs.sif.layer.v1.sif";
pub const SIF_CONFIG_MEDIA_TYPE: &str = "application/vnd.sylabs.sif.config.v1+json";
const EMPTY_CONFIG: &[u8] = b"{}";

/// How to reach the registry, as for `docker://`.
#[derive(Clone, Debug, Default)]
pub struct OrasOptions {
    pub no_https: bool,
    pub ca_pem: Vec<Vec<u8>>,
    pub credentials: Option<Credentials>,
    pub auth_files: Vec<std::path::PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum OrasError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Auth(#[from] auth::AuthError),
    #[error("{reference} is not a SIF image (its layer is {media_type}); pull it with docker:// instead")]
    NotSif {
        reference: String,
        media_type: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("{0}")]
    Other(String),
}

struct Session {
    rt: tokio::runtime::Runtime,
    client: Client,
    auth: RegistryAuth,
}

fn session(reference: &oci_client::Reference, opts: &OrasOptions) -> Result<Session, OrasError> {
    let creds = match &opts.credentials {
        Some(c) => Some(c.clone()),
        None => auth::lookup(&opts.auth_files, reference.resolve_registry())?,
    };
    let config = ClientConfig {
        // One PUT of the whole stream, which every registry takes.
        use_monolithic_push: true,
        ..client_config(opts.no_https, &opts.ca_pem)
    };
    Ok(Session {
        rt: runtime()?,
        client: Client::new(config),
        auth: registry_auth(creds.as_ref()),
    })
}

fn other(
    reference: &oci_client::Reference,
    e: oci_client::errors::OciDistributionError,
) -> OrasError {
    OrasError::Registry(crate::registry::classify(reference, e))
}

/// A resolved `oras://` reference: the session, the manifest's digest and
/// the SIF layer to download.
struct Resolved {
    reference: oci_client::Reference,
    session: Session,
    digest: String,
    layer: OciDescriptor,
}

fn resolve(reference: &str, opts: &OrasOptions) -> Result<Resolved, OrasError> {
    let r = parse_reference(reference)?;
    let s = session(&r, opts)?;
    let (manifest, digest) =
        s.rt.block_on(s.client.pull_image_manifest(&r, &s.auth))
            .map_err(|e| other(&r, e))?;
    let layer = manifest
        .layers
        .iter()
        .find(|l| l.media_type == SIF_LAYER_MEDIA_TYPE)
        .ok_or_else(|| OrasError::NotSif {
            reference: r.whole(),
            media_type: manifest
                .layers
                .first()
                .map(|l| l.media_type.clone())
                .unwrap_or_default(),
        })?
        .clone();
    Ok(Resolved {
        reference: r,
        session: s,
        digest,
        layer,
    })
}

impl Resolved {
    /// Downloads the SIF layer into `out`, checking its digest.
    fn download(&self, out: &mut File) -> Result<(), OrasError> {
        let (r, s, layer) = (&self.reference, &self.session, &self.layer);
        tracing::info!(
            "Downloading SIF image {} ({:.1} MiB)",
            r.whole(),
            layer.size as f64 / 1048576.0
        );
        let mut hasher = Sha256::new();
        s.rt.block_on(async {
            use futures_util::StreamExt;
            use std::io::Write;
            let mut stream = s
                .client
                .pull_blob_stream(r, layer)
                .await
                .map_err(|e| other(r, e))?;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk
                    .map_err(|e| OrasError::Other(format!("downloading {}: {e}", layer.digest)))?;
                hasher.update(&chunk);
                out.write_all(&chunk)
                    .map_err(|e| OrasError::Other(format!("writing the image: {e}")))?;
            }
            Ok::<(), OrasError>(())
        })?;
        let got = format!("sha256:{}", hex(&hasher.finalize()));
        if got != layer.digest {
            return Err(RegistryError::DigestMismatch {
                registry: r.resolve_registry().to_string(),
                digest: layer.digest.clone(),
                got,
            }
            .into());
        }
        Ok(())
    }
}

/// Downloads the SIF stored at `reference` into `out` (a new file),
/// checking its digest; returns the manifest digest.
pub fn pull(reference: &str, out: &mut File, opts: &OrasOptions) -> Result<String, OrasError> {
    let resolved = resolve(reference, opts)?;
    resolved.download(out)?;
    Ok(resolved.digest)
}

/// The SIF stored at `reference`, to run: from the pull cache when it has
/// it, keyed by the manifest digest like a converted `docker://` image (per
/// user, see the [`crate::cache`] module doc), else downloaded into it,
/// checked to be a SIF first. Without a cache (`--disable-cache`), into a
/// private temporary file.
pub fn fetch(reference: &str, opts: &OrasOptions, pull: &PullOptions) -> Result<Pulled, OrasError> {
    let resolved = resolve(reference, opts)?;
    let digest = resolved.digest.clone();
    let private = |dir: &Path| {
        Producer::private(dir).map_err(|source| OrasError::Io {
            path: dir.to_path_buf(),
            source,
        })
    };
    let cache = pull
        .cache_root
        .as_deref()
        .map(|root| Cache::new(root).map(|c| c.with_private_dir(&pull.tmpdir)))
        .transpose()?;
    let mut producer = match &cache {
        Some(c) => match c.claim(Kind::Sif, &digest, true)? {
            Claim::Ready(hit) => {
                tracing::debug!("using the cached image {}", hit.path.display());
                return Ok(Pulled::new(hit, digest));
            }
            Claim::Mine(p) => p,
            Claim::Busy(_) => private(&pull.tmpdir)?,
        },
        None => private(&pull.tmpdir)?,
    };
    resolved.download(producer.file())?;
    crate::http::check_image(producer.file()).map_err(|why| {
        OrasError::Other(format!(
            "{} is not a SIF image: {why}",
            resolved.reference.whole()
        ))
    })?;
    Ok(Pulled::new(producer.commit()?, digest))
}

/// Uploads the SIF at `path` to `reference`, streaming it from disk;
/// returns the SIF's digest.
pub fn push(path: &Path, reference: &str, opts: &OrasOptions) -> Result<String, OrasError> {
    let io = |source| OrasError::Io {
        path: path.to_path_buf(),
        source,
    };
    let r = parse_reference(reference)?;
    let s = session(&r, opts)?;
    // The digest first: a registry accepts a blob only under its digest.
    let mut file = File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let digest = format!("sha256:{}", hex(&hasher.finalize()));
    let config_digest = format!("sha256:{}", hex(&Sha256::digest(EMPTY_CONFIG)));
    let title = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    s.rt.block_on(async {
        s.client
            .auth(&r, &s.auth, RegistryOperation::Push)
            .await
            .map_err(|e| other(&r, e))?;
        let file = File::open(path).map_err(io)?;
        let stream = futures_util::stream::unfold(file, |mut f| async move {
            let mut chunk = vec![0u8; 4 << 20];
            match f.read(&mut chunk) {
                Ok(0) => None,
                Ok(n) => {
                    chunk.truncate(n);
                    Some((Ok(bytes::Bytes::from(chunk)), f))
                }
                Err(e) => Some((Err(oci_client::errors::OciDistributionError::IoError(e)), f)),
            }
        });
        s.client
            .push_blob_stream(&r, stream, &digest, Some(size))
            .await
            .map_err(|e| other(&r, e))?;
        s.client
            .push_blob(&r, EMPTY_CONFIG.to_vec(), &config_digest)
            .await
            .map_err(|e| other(&r, e))?;
        let manifest = OciImageManifest {
            schema_version: 2,
            media_type: Some("application/vnd.oci.image.manifest.v1+json".into()),
            config: OciDescriptor {
                media_type: SIF_CONFIG_MEDIA_TYPE.into(),
                digest: config_digest.clone(),
                size: EMPTY_CONFIG.len() as i64,
                ..OciDescriptor::default()
            },
            layers: vec![OciDescriptor {
                media_type: SIF_LAYER_MEDIA_TYPE.into(),
                digest: digest.clone(),
                size: size as i64,
                annotations: Some(
                    [("org.opencontainers.image.title".to_string(), title)]
                        .into_iter()
                        .collect(),
                ),
                ..OciDescriptor::default()
            }],
            ..OciImageManifest::default()
        };
        s.client
            .push_manifest(&r, &OciManifest::Image(manifest))
            .await
            .map_err(|e| other(&r, e))
    })?;
    Ok(digest)
}
