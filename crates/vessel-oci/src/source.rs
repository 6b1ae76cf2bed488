//! Image sources as Apptainer's transports name them (`docker://`,
//! `oras://`, `http(s)://`, `oci:`, `oci-archive:`, `docker-archive:`), the file name a
//! pull gives each, and fetching any of them into a runnable SIF: what
//! `pull`, `build`, `exec docker://…` and the other commands share.

use std::path::{Path, PathBuf};

use crate::convert::{PullError, PullOptions, Pulled};
use crate::http::HttpError;
use crate::oras::{OrasError, OrasOptions};

/// Where an image comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Docker(String),
    Oras(String),
    /// An `http://` or `https://` URL of a SIF or SquashFS image, whole.
    Url(String),
    OciDir(PathBuf, Option<String>),
    OciArchive(PathBuf, Option<String>),
    DockerArchive(PathBuf, Option<String>),
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{scheme} sources are not implemented yet in Vessel (docker://, oras://, http(s)://, oci:, oci-archive: and docker-archive: are)")]
    NotImplemented { scheme: &'static str },
    #[error("{0:?} is not an image source")]
    NotASource(String, #[source] vessel_sys::Hint),
}

/// `PATH[:TAG]`: a tag is what follows the last ':' when it has no '/'.
fn path_and_tag(rest: &str) -> (PathBuf, Option<String>) {
    match rest.rsplit_once(':') {
        Some((p, t)) if !t.contains('/') && !p.is_empty() => {
            (PathBuf::from(p), Some(t.to_string()))
        }
        _ => (PathBuf::from(rest), None),
    }
}

impl Source {
    /// Parses an image source.
    pub fn parse(uri: &str) -> Result<Source, SourceError> {
        if let Some(r) = uri.strip_prefix("docker://") {
            return Ok(Source::Docker(r.to_string()));
        }
        if let Some(r) = uri.strip_prefix("oras://") {
            return Ok(Source::Oras(r.to_string()));
        }
        if uri.starts_with("http://") || uri.starts_with("https://") {
            return Ok(Source::Url(uri.to_string()));
        }
        for (scheme, make) in [
            (
                "oci-archive:",
                Source::OciArchive as fn(PathBuf, Option<String>) -> Source,
            ),
            ("docker-archive:", Source::DockerArchive),
            ("oci:", Source::OciDir),
        ] {
            if let Some(rest) = uri.strip_prefix(scheme) {
                let (p, t) = path_and_tag(rest);
                return Ok(make(p, t));
            }
        }
        for scheme in ["library://", "shub://", "docker-daemon:"] {
            if uri.starts_with(scheme) {
                return Err(SourceError::NotImplemented { scheme });
            }
        }
        Err(SourceError::NotASource(
            uri.to_string(),
            vessel_sys::Hint::new("name one as docker://NAME[:TAG], oras://, http(s)://, oci:, oci-archive: or docker-archive:"),
        ))
    }
}

/// `name_tag.sif`, as Apptainer names pulled images; a URL's file name
/// for `http(s)://`.
pub fn default_name(source: &str) -> String {
    if source.starts_with("http://") || source.starts_with("https://") {
        let path = source.split(['?', '#']).next().unwrap_or(source);
        if let Some(name) = path.rsplit('/').next().filter(|n| !n.is_empty()) {
            return name.to_string();
        }
    }
    let reference = source.split_once("://").map_or(source, |(_, r)| r);
    let reference = reference
        .split_once(':')
        .filter(|(s, _)| s.starts_with("oci") || s.starts_with("docker-archive"))
        .map_or(reference, |(_, r)| r);
    let without_digest = reference.split('@').next().unwrap_or(reference);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    let (name, tag) = match last.split_once(':') {
        Some((n, t)) => (n, t),
        None => (last, "latest"),
    };
    format!("{name}_{tag}.sif")
}

/// A fetched image: a SIF (or, from a URL, a SquashFS image), kept as long
/// as this lives. `path()` is `/proc/self/fd/N` of the checked, open image.
pub enum Fetched {
    Pulled(Pulled),
}

impl Fetched {
    pub fn path(&self) -> &Path {
        match self {
            Fetched::Pulled(p) => &p.sif,
        }
    }

    pub fn digest(&self) -> &str {
        match self {
            Fetched::Pulled(p) => &p.digest,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Pull(#[from] PullError),
    #[error(transparent)]
    Oras(#[from] OrasError),
    #[error(transparent)]
    Http(#[from] HttpError),
}

/// Fetches `uri` into a runnable SIF.
pub fn fetch(uri: &str, opts: &PullOptions, oras: &OrasOptions) -> Result<Fetched, FetchError> {
    Ok(match Source::parse(uri)? {
        Source::Docker(reference) => Fetched::Pulled(crate::pull_to_sif(&reference, opts)?),
        Source::OciDir(dir, tag) => Fetched::Pulled(crate::local::from_layout(
            &dir,
            tag.as_deref(),
            "oci",
            opts,
        )?),
        Source::OciArchive(f, tag) => {
            Fetched::Pulled(crate::local::from_oci_archive(&f, tag.as_deref(), opts)?)
        }
        Source::DockerArchive(f, tag) => {
            Fetched::Pulled(crate::local::from_docker_archive(&f, tag.as_deref(), opts)?)
        }
        Source::Oras(reference) => Fetched::Pulled(crate::oras::fetch(&reference, oras, opts)?),
        Source::Url(url) => Fetched::Pulled(crate::http::fetch(&url, opts)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources() {
        assert_eq!(
            Source::parse("docker://alpine:3").unwrap(),
            Source::Docker("alpine:3".into())
        );
        assert_eq!(
            Source::parse("oras://r/x:1").unwrap(),
            Source::Oras("r/x:1".into())
        );
        assert_eq!(
            Source::parse("oci:/tmp/layout:v1").unwrap(),
            Source::OciDir("/tmp/layout".into(), Some("v1".into()))
        );
        assert_eq!(
            Source::parse("oci-archive:a/b.tar").unwrap(),
            Source::OciArchive("a/b.tar".into(), None)
        );
        assert_eq!(
            Source::parse("docker-archive:/x.tar:t").unwrap(),
            Source::DockerArchive("/x.tar".into(), Some("t".into()))
        );
        assert!(matches!(
            Source::parse("library://x"),
            Err(SourceError::NotImplemented {
                scheme: "library://"
            })
        ));
        assert_eq!(
            Source::parse("https://h.example/a/b.sif").unwrap(),
            Source::Url("https://h.example/a/b.sif".into())
        );
        assert_eq!(
            Source::parse("http://127.0.0.1:8000/b.sif").unwrap(),
            Source::Url("http://127.0.0.1:8000/b.sif".into())
        );
        assert!(matches!(
            Source::parse("x.def"),
            Err(SourceError::NotASource(..))
        ));
    }

    #[test]
    fn default_names() {
        assert_eq!(default_name("busybox"), "busybox_latest.sif");
        assert_eq!(default_name("127.0.0.1:5000/team/app:1.2"), "app_1.2.sif");
        assert_eq!(default_name("ubuntu:24.04@sha256:abc"), "ubuntu_24.04.sif");
        assert_eq!(
            default_name("docker://127.0.0.1:5000/busybox:latest"),
            "busybox_latest.sif"
        );
        assert_eq!(default_name("oci:/tmp/layout:v1"), "layout_v1.sif");
        assert_eq!(
            default_name("https://h.example:8443/x/busybox.sif?v=1"),
            "busybox.sif"
        );
    }
}
