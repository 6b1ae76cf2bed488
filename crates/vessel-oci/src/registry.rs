//! A blocking facade over `oci-client`: resolve a reference to one image
//! manifest (choosing the platform from an index), and download blobs in
//! parallel with digest checks and retries. The tokio runtime lives here and
//! nowhere else.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use futures_util::StreamExt;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::manifest::{ImageIndexEntry, OciDescriptor, OciImageManifest};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use sha2::{Digest, Sha256};

use crate::auth::Credentials;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{0:?} is not a valid image reference: {1}")]
    BadReference(String, String),
    #[error("cannot reach the registry {registry}: {detail} (check the address; for a registry without HTTPS use --no-https)")]
    Unreachable { registry: String, detail: String },
    #[error("the registry {registry} has a certificate this machine does not trust: {detail} (add its CA to the system's trusted certificates, or point SSL_CERT_FILE at a bundle that has it)")]
    Untrusted { registry: String, detail: String },
    #[error("the registry {registry} refused access to {image}: {detail} (log in with `registry login {registry}`, or set APPTAINER_DOCKER_USERNAME and APPTAINER_DOCKER_PASSWORD)")]
    Denied {
        registry: String,
        image: String,
        detail: String,
    },
    #[error("{image} was not found on {registry} (no such repository or tag)")]
    NotFound { registry: String, image: String },
    #[error("{image} has no image for {platform} (it has: {available}; choose one with --arch)")]
    NoPlatform {
        image: String,
        platform: String,
        available: String,
    },
    #[error("blob {digest} from {registry} does not match its digest (got {got}): the download is corrupt")]
    DigestMismatch {
        registry: String,
        digest: String,
        got: String,
    },
    #[error("registry {registry}: {detail}")]
    Other { registry: String, detail: String },
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// How to talk to registries.
#[derive(Clone, Debug, Default)]
pub struct Connection {
    /// Plain HTTP instead of HTTPS (`--no-https`).
    pub no_https: bool,
    /// Extra CA certificates (PEM) to trust.
    pub ca_pem: Vec<Vec<u8>>,
    /// The platform to pick from an index: `os/arch[/variant]`.
    pub platform: String,
    pub credentials: Option<Credentials>,
    pub max_parallel: usize,
}

/// An image manifest resolved for one platform.
#[derive(Clone, Debug)]
pub struct ResolvedImage {
    pub reference: Reference,
    pub manifest: OciImageManifest,
    /// Digest of the single-platform manifest (the cache key).
    pub digest: String,
}

/// Reports download progress (a progress bar on a terminal).
pub trait Progress: Send + Sync {
    fn start(&self, total_bytes: u64);
    fn advance(&self, bytes: u64);
    fn finish(&self);
}

pub struct Registry {
    rt: tokio::runtime::Runtime,
    client: Client,
    auth: RegistryAuth,
    max_parallel: usize,
}

/// The client settings every registry connection shares: scheme, extra CAs
/// and timeouts.
pub(crate) fn client_config(no_https: bool, ca_pem: &[Vec<u8>]) -> ClientConfig {
    ClientConfig {
        protocol: if no_https {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        },
        extra_root_certificates: ca_pem
            .iter()
            .map(|pem| Certificate {
                encoding: CertificateEncoding::Pem,
                data: pem.clone(),
            })
            .collect(),
        connect_timeout: Some(Duration::from_secs(15)),
        read_timeout: Some(Duration::from_secs(120)),
        ..ClientConfig::default()
    }
}

/// The single-threaded runtime the blocking facade runs requests on.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, RegistryError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| RegistryError::Other {
            registry: String::new(),
            detail: e.to_string(),
        })
}

pub(crate) fn registry_auth(creds: Option<&Credentials>) -> RegistryAuth {
    match creds {
        Some(c) => RegistryAuth::Basic(c.username.clone(), c.password.clone()),
        None => RegistryAuth::Anonymous,
    }
}

/// Parses `name[:tag][@digest]` as Docker does (`docker.io/library/` implied).
pub fn parse_reference(text: &str) -> Result<Reference, RegistryError> {
    text.parse::<Reference>()
        .map_err(|e| RegistryError::BadReference(text.to_string(), e.to_string()))
}

impl Registry {
    pub fn new(conn: &Connection) -> Result<Registry, RegistryError> {
        let wanted = conn.platform.clone();
        let resolver = move |entries: &[ImageIndexEntry]| -> Option<String> {
            entries
                .iter()
                .find(|e| {
                    e.platform.as_ref().is_some_and(|p| {
                        let mut name = format!("{}/{}", p.os, p.architecture);
                        if wanted.split('/').count() == 3 {
                            name.push('/');
                            name.push_str(p.variant.as_deref().unwrap_or(""));
                        }
                        name == wanted
                    })
                })
                .map(|e| e.digest.clone())
        };
        let config = ClientConfig {
            platform_resolver: Some(Box::new(resolver)),
            ..client_config(conn.no_https, &conn.ca_pem)
        };
        let rt = runtime()?;
        let auth = registry_auth(conn.credentials.as_ref());
        Ok(Registry {
            rt,
            client: Client::new(config),
            auth,
            max_parallel: conn.max_parallel.max(1),
        })
    }

    /// The manifest for this machine's (or the chosen) platform.
    pub fn resolve(
        &self,
        reference: &Reference,
        platform: &str,
    ) -> Result<ResolvedImage, RegistryError> {
        let result = self.rt.block_on(
            self.client
                .pull_image_manifest_and_list_digest(reference, &self.auth),
        );
        match result {
            Ok((manifest, digest, _)) => Ok(ResolvedImage {
                reference: reference.clone(),
                manifest,
                digest,
            }),
            Err(e) => match self.index_platforms(reference) {
                Some(available) if !available.iter().any(|p| platform.starts_with(p.as_str())) => {
                    Err(RegistryError::NoPlatform {
                        image: reference.whole(),
                        platform: platform.to_string(),
                        available: available.join(", "),
                    })
                }
                _ => Err(classify(reference, e)),
            },
        }
    }

    /// The platforms an index offers, when the reference names an index.
    fn index_platforms(&self, reference: &Reference) -> Option<Vec<String>> {
        let (raw, _) = self
            .rt
            .block_on(self.client.pull_manifest_raw(
                reference,
                &self.auth,
                &[
                    "application/vnd.oci.image.index.v1+json",
                    "application/vnd.docker.distribution.manifest.list.v2+json",
                ],
            ))
            .ok()?;
        let v: serde_json::Value = serde_json::from_slice(&raw).ok()?;
        let list = v.get("manifests")?.as_array()?;
        Some(
            list.iter()
                .filter_map(|m| {
                    let p = m.get("platform")?;
                    Some(format!(
                        "{}/{}",
                        p.get("os")?.as_str()?,
                        p.get("architecture")?.as_str()?
                    ))
                })
                .collect(),
        )
    }

    /// Downloads `blobs` (each to its file), in parallel, checking every
    /// digest; transient failures are retried with backoff.
    pub fn download(
        &self,
        reference: &Reference,
        blobs: Vec<(OciDescriptor, File, PathBuf)>,
        progress: Option<&dyn Progress>,
    ) -> Result<(), RegistryError> {
        if let Some(p) = progress {
            p.start(blobs.iter().map(|(d, _, _)| d.size.max(0) as u64).sum());
        }
        let result = self.rt.block_on(async {
            let results: Vec<Result<(), RegistryError>> = futures_util::stream::iter(blobs)
                .map(|(desc, file, path)| self.download_one(reference, desc, file, path, progress))
                .buffer_unordered(self.max_parallel)
                .collect()
                .await;
            results
                .into_iter()
                .collect::<Result<Vec<()>, _>>()
                .map(drop)
        });
        if let Some(p) = progress {
            p.finish();
        }
        result
    }

    async fn download_one(
        &self,
        reference: &Reference,
        desc: OciDescriptor,
        mut file: File,
        path: PathBuf,
        progress: Option<&dyn Progress>,
    ) -> Result<(), RegistryError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self
                .try_download(reference, &desc, &mut file, &path, progress)
                .await
            {
                Ok(()) => return Ok(()),
                Err(
                    e @ (RegistryError::Denied { .. }
                    | RegistryError::NotFound { .. }
                    | RegistryError::Write { .. }),
                ) => return Err(e),
                Err(e) if attempt >= 4 => return Err(e),
                Err(e) => {
                    tracing::warn!("download of {} failed ({e}), retrying", desc.digest);
                    tokio::time::sleep(Duration::from_millis(250 << attempt)).await;
                    file.set_len(0).map_err(|source| RegistryError::Write {
                        path: path.clone(),
                        source,
                    })?;
                    use std::io::Seek;
                    file.rewind().map_err(|source| RegistryError::Write {
                        path: path.clone(),
                        source,
                    })?;
                }
            }
        }
    }

    async fn try_download(
        &self,
        reference: &Reference,
        desc: &OciDescriptor,
        file: &mut File,
        path: &std::path::Path,
        progress: Option<&dyn Progress>,
    ) -> Result<(), RegistryError> {
        let write_err = |source| RegistryError::Write {
            path: path.to_path_buf(),
            source,
        };
        let mut stream = self
            .client
            .pull_blob_stream(reference, desc)
            .await
            .map_err(|e| classify(reference, e))?;
        let mut hasher = Sha256::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                let text = e.to_string();
                let registry = reference.resolve_registry().to_string();
                // oci-client checks digests as it streams: report that as
                // the digest mismatch it is.
                match text
                    .split("got ")
                    .nth(1)
                    .filter(|_| text.contains("digest"))
                {
                    Some(got) => RegistryError::DigestMismatch {
                        registry,
                        digest: desc.digest.clone(),
                        got: got.trim().to_string(),
                    },
                    None => RegistryError::Other {
                        registry,
                        detail: format!("downloading {}: {text}", desc.digest),
                    },
                }
            })?;
            hasher.update(&chunk);
            file.write_all(&chunk).map_err(write_err)?;
            if let Some(p) = progress {
                p.advance(chunk.len() as u64);
            }
        }
        let got = format!("sha256:{}", hex(&hasher.finalize()));
        if desc.digest.starts_with("sha256:") && got != desc.digest {
            return Err(RegistryError::DigestMismatch {
                registry: reference.resolve_registry().to_string(),
                digest: desc.digest.clone(),
                got,
            });
        }
        Ok(())
    }

    /// Fetches a small blob (the image config) into memory.
    pub fn fetch_small(
        &self,
        reference: &Reference,
        desc: &OciDescriptor,
    ) -> Result<Vec<u8>, RegistryError> {
        let mut out = Vec::new();
        self.rt
            .block_on(self.client.pull_blob(reference, desc, &mut out))
            .map_err(|e| classify(reference, e))?;
        let got = format!("sha256:{}", hex(&Sha256::digest(&out)));
        if desc.digest.starts_with("sha256:") && got != desc.digest {
            return Err(RegistryError::DigestMismatch {
                registry: reference.resolve_registry().to_string(),
                digest: desc.digest.clone(),
                got,
            });
        }
        Ok(out)
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Turns a client error into what the user needs to know.
pub(crate) fn classify(
    reference: &Reference,
    e: oci_client::errors::OciDistributionError,
) -> RegistryError {
    use oci_client::errors::OciDistributionError as E;
    let registry = reference.resolve_registry().to_string();
    let image = reference.whole();
    // Registry messages may carry newlines; errors stay on one line.
    let text = e
        .to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    match &e {
        E::AuthenticationFailure(_) | E::UnauthorizedError { .. } => RegistryError::Denied {
            registry,
            image,
            detail: text,
        },
        E::ImageManifestNotFoundError(_) => RegistryError::NotFound { registry, image },
        E::RegistryError { envelope, .. }
            if envelope.errors.iter().any(|x| {
                matches!(
                    x.code,
                    oci_client::errors::OciErrorCode::ManifestUnknown
                        | oci_client::errors::OciErrorCode::NameUnknown
                        | oci_client::errors::OciErrorCode::BlobUnknown
                )
            }) =>
        {
            RegistryError::NotFound { registry, image }
        }
        E::RegistryError { envelope, .. }
            if envelope.errors.iter().any(|x| {
                matches!(
                    x.code,
                    oci_client::errors::OciErrorCode::Unauthorized
                        | oci_client::errors::OciErrorCode::Denied
                )
            }) =>
        {
            RegistryError::Denied {
                registry,
                image,
                detail: text,
            }
        }
        E::ServerError {
            code: 401 | 403, ..
        } => RegistryError::Denied {
            registry,
            image,
            detail: text,
        },
        E::ServerError { code: 404, .. } => RegistryError::NotFound { registry, image },
        E::RequestError(re) if re.is_connect() || re.is_timeout() => {
            let mut detail = text.clone();
            let mut source = std::error::Error::source(re);
            while let Some(s) = source {
                detail = s.to_string();
                source = s.source();
            }
            if detail.contains("certificate") {
                RegistryError::Untrusted { registry, detail }
            } else {
                RegistryError::Unreachable { registry, detail }
            }
        }
        _ => RegistryError::Other {
            registry,
            detail: text,
        },
    }
}
