//! Images from local files: an OCI layout directory (`oci:DIR[:TAG]`), an
//! OCI layout in a tar (`oci-archive:FILE[:TAG]`) and a `docker save`
//! archive (`docker-archive:FILE[:TAG]`), converted like a pull.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::cache::Producer;
use crate::convert::{assemble, check_space, PullError, PullOptions, Pulled, Source};
use crate::layers::Layer;
use crate::registry::hex;

/// Metadata files are small; anything larger is damage or an attack.
const JSON_LIMIT: u64 = 16 << 20;

fn bad(what: &str, path: &Path) -> PullError {
    PullError::Config(format!("{}: {what}", path.display()))
}

fn read_json(path: &Path) -> Result<Value, PullError> {
    let mut text = Vec::new();
    File::open(path)
        .and_then(|f| f.take(JSON_LIMIT).read_to_end(&mut text))
        .map_err(|source| PullError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    serde_json::from_slice(&text).map_err(|e| bad(&format!("not valid JSON: {e}"), path))
}

/// The path of a blob in a layout, refusing digests that are not plain
/// `sha256:<64 hex>` (a hostile layout could name `../../etc/passwd`).
fn blob_path(layout: &Path, digest: &str) -> Result<PathBuf, PullError> {
    let hex = digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| bad(&format!("unsupported digest {digest:?}"), layout))?;
    Ok(layout.join("blobs/sha256").join(hex))
}

/// Checks a blob against its digest.
fn verify(path: &Path, digest: &str) -> Result<(), PullError> {
    let mut f = File::open(path).map_err(|source| PullError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(|source| PullError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let got = format!("sha256:{}", hex(&h.finalize()));
    if got != digest {
        return Err(bad(
            &format!("blob {digest} does not match its digest (got {got})"),
            path,
        ));
    }
    Ok(())
}

/// Converts the image `tag` (or the only one) of the OCI layout `dir`.
pub fn from_layout(
    dir: &Path,
    tag: Option<&str>,
    bootstrap: &str,
    opts: &PullOptions,
) -> Result<Pulled, PullError> {
    let index = read_json(&dir.join("index.json"))?;
    let manifests = index["manifests"]
        .as_array()
        .ok_or_else(|| bad("index.json has no manifests", dir))?;
    let name = |m: &Value| {
        m["annotations"]["org.opencontainers.image.ref.name"]
            .as_str()
            .map(String::from)
    };
    let chosen = match tag {
        Some(t) => manifests.iter().find(|m| name(m).as_deref() == Some(t)),
        None if manifests.len() == 1 => manifests.first(),
        None => None,
    }
    .ok_or_else(|| {
        let tags: Vec<String> = manifests.iter().filter_map(name).collect();
        bad(
            &format!(
                "no image {:?} here (it has: {})",
                tag.unwrap_or(""),
                tags.join(", ")
            ),
            dir,
        )
    })?;
    let mut digest = chosen["digest"].as_str().unwrap_or_default().to_string();
    let mut manifest = read_json(&blob_path(dir, &digest)?)?;
    // An index inside: choose the platform.
    if let Some(list) = manifest["manifests"].as_array().cloned() {
        let platform = |m: &Value| {
            format!(
                "{}/{}",
                m["platform"]["os"].as_str().unwrap_or(""),
                m["platform"]["architecture"].as_str().unwrap_or("")
            )
        };
        let m = list
            .iter()
            .find(|m| opts.platform.starts_with(&platform(m)))
            .ok_or_else(|| bad(&format!("no image for {}", opts.platform), dir))?;
        digest = m["digest"].as_str().unwrap_or_default().to_string();
        manifest = read_json(&blob_path(dir, &digest)?)?;
    }
    let config_digest = manifest["config"]["digest"].as_str().unwrap_or_default();
    let config_path = blob_path(dir, config_digest)?;
    verify(&config_path, config_digest)?;
    let config = std::fs::read(&config_path).map_err(|source| PullError::Io {
        path: config_path.clone(),
        source,
    })?;
    let mut layers = Vec::new();
    for l in manifest["layers"]
        .as_array()
        .ok_or_else(|| bad("the manifest has no layers", dir))?
    {
        let d = l["digest"].as_str().unwrap_or_default();
        let path = blob_path(dir, d)?;
        verify(&path, d)?;
        layers.push(Layer {
            digest: d.to_string(),
            path,
        });
    }
    let reference = format!(
        "{}{}",
        dir.display(),
        tag.map(|t| format!(":{t}")).unwrap_or_default()
    );
    convert(&reference, bootstrap, &digest, &config, &layers, opts)
}

/// Converts an OCI layout packed in a tar file.
pub fn from_oci_archive(
    file: &Path,
    tag: Option<&str>,
    opts: &PullOptions,
) -> Result<Pulled, PullError> {
    let dir = unpack(file, opts)?;
    from_layout(dir.path(), tag, "oci-archive", opts)
}

/// Converts a `docker save` archive: `manifest.json` lists, per image, its
/// config file and its layer tars in order.
pub fn from_docker_archive(
    file: &Path,
    tag: Option<&str>,
    opts: &PullOptions,
) -> Result<Pulled, PullError> {
    let dir = unpack(file, opts)?;
    let root = dir.path();
    let manifest = read_json(&root.join("manifest.json"))?;
    let images = manifest
        .as_array()
        .ok_or_else(|| bad("manifest.json is not a list", file))?;
    let image = match tag {
        Some(t) => images.iter().find(|i| {
            i["RepoTags"].as_array().is_some_and(|tags| {
                tags.iter().any(|x| {
                    x.as_str()
                        .is_some_and(|x| x == t || x.ends_with(&format!(":{t}")))
                })
            })
        }),
        None => images.first(),
    }
    .ok_or_else(|| {
        bad(
            &format!("no image {:?} in the archive", tag.unwrap_or("")),
            file,
        )
    })?;
    let inside = |p: &str| -> Result<PathBuf, PullError> {
        if p.starts_with('/') || p.split('/').any(|c| c == "..") {
            return Err(bad(&format!("unsafe path {p:?} in manifest.json"), file));
        }
        Ok(root.join(p))
    };
    let config_path = inside(image["Config"].as_str().unwrap_or_default())?;
    let config = std::fs::read(&config_path).map_err(|source| PullError::Io {
        path: config_path.clone(),
        source,
    })?;
    let id = format!("sha256:{}", hex(&Sha256::digest(&config)));
    let layers = image["Layers"]
        .as_array()
        .ok_or_else(|| bad("manifest.json lists no layers", file))?
        .iter()
        .map(|l| {
            let p = l.as_str().unwrap_or_default();
            Ok(Layer {
                digest: p.to_string(),
                path: inside(p)?,
            })
        })
        .collect::<Result<Vec<_>, PullError>>()?;
    let reference = format!(
        "{}{}",
        file.display(),
        tag.map(|t| format!(":{t}")).unwrap_or_default()
    );
    convert(&reference, "docker-archive", &id, &config, &layers, opts)
}

/// Unpacks an archive into a private temporary directory (the tar crate
/// refuses entries that would land outside it).
fn unpack(file: &Path, opts: &PullOptions) -> Result<tempfile::TempDir, PullError> {
    let io = |source| PullError::Io {
        path: file.to_path_buf(),
        source,
    };
    let size = std::fs::metadata(file).map_err(io)?.len();
    check_space(&opts.tmpdir, size)?;
    let dir = tempfile::Builder::new()
        .prefix("vessel-archive-")
        .tempdir_in(&opts.tmpdir)
        .map_err(io)?;
    let mut archive = tar::Archive::new(std::io::BufReader::new(File::open(file).map_err(io)?));
    archive.set_preserve_permissions(false);
    archive.unpack(dir.path()).map_err(io)?;
    Ok(dir)
}

fn convert(
    reference: &str,
    bootstrap: &str,
    digest: &str,
    config: &[u8],
    layers: &[Layer],
    opts: &PullOptions,
) -> Result<Pulled, PullError> {
    let total = layers
        .iter()
        .filter_map(|l| std::fs::metadata(&l.path).ok())
        .map(|m| m.len())
        .sum();
    check_space(&opts.tmpdir, total)?;
    // A private file in the user's temporary directory, handed on open.
    let output = Producer::private(&opts.tmpdir).map_err(|source| PullError::Io {
        path: opts.tmpdir.clone(),
        source,
    })?;
    let source = Source {
        reference,
        bootstrap,
        digest,
        config,
    };
    let hit = assemble(&source, layers, opts, output)?;
    Ok(Pulled::new(hit, digest.to_string()))
}
