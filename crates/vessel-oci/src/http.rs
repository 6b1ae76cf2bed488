//! `http://` and `https://` image URLs: a SIF (or bare SquashFS) image
//! downloaded as it is, checked, and cached like a converted image.
//!
//! # The cache key
//!
//! A URL names no content, so the entry is keyed by what the server says
//! about it: the sha256 of the URL with its `ETag`, `Last-Modified` and
//! `Content-Length`, as Apptainer keys its `net` cache by the URL and
//! `Last-Modified`. One `GET` is made; its headers decide the key, and on a
//! hit the body is not read. A server that gives neither validator (nothing
//! tells a changed file from the cached one) is downloaded every time, into
//! a private file that is not cached.
//!
//! Such a key does not vouch for the content, exactly as a manifest digest
//! does not vouch for a converted SIF, so the entry is a [`Kind::Sif`]:
//! per user, in the user's own `sif/<uid>/`, checked on its descriptor (see
//! the [`crate::cache`] module doc). The body is streamed into the entry's
//! temporary file, opened as an image ([`vessel_image::open_image`] on
//! `/proc/self/fd/N`) before it is put in place, and handed on as that open
//! file. `--no-https` has no say: the URL's scheme is what is used.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::cache::{Cache, CacheError, Claim, Kind, Producer};
use crate::convert::{PullOptions, Pulled};
use crate::registry::hex;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot download {url}: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("cannot download {url}: the server answered {status}")]
    Status { url: String, status: String },
    #[error("{url} is not a SIF or SquashFS image: {detail}")]
    NotAnImage { url: String, detail: String },
    #[error("downloading {url}: {detail}")]
    Download { url: String, detail: String },
    #[error(transparent)]
    Cache(#[from] CacheError),
}

/// What the server says identifies the file at a URL.
#[derive(Debug, Default, PartialEq, Eq)]
struct Validators {
    etag: Option<String>,
    last_modified: Option<String>,
    length: Option<u64>,
}

impl Validators {
    fn of(response: &reqwest::Response) -> Validators {
        let header = |name: reqwest::header::HeaderName| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        Validators {
            etag: header(reqwest::header::ETAG),
            last_modified: header(reqwest::header::LAST_MODIFIED),
            length: response.content_length(),
        }
    }

    /// The cache key of `url` as it is now, or `None` when nothing tells
    /// whether it changed.
    fn key(&self, url: &str) -> Option<String> {
        if self.etag.is_none() && self.last_modified.is_none() {
            return None;
        }
        let mut h = Sha256::new();
        for part in [
            "vessel-http-1",
            url,
            self.etag.as_deref().unwrap_or(""),
            self.last_modified.as_deref().unwrap_or(""),
            &self.length.map(|n| n.to_string()).unwrap_or_default(),
        ] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        Some(format!("sha256:{}", hex(&h.finalize())))
    }
}

fn client(url: &str, ca_pem: &[Vec<u8>]) -> Result<reqwest::Client, HttpError> {
    let bad = |e: reqwest::Error| HttpError::Unreachable {
        url: url.to_string(),
        detail: e.to_string(),
    };
    let certs = ca_pem
        .iter()
        .map(|pem| reqwest::Certificate::from_pem(pem))
        .collect::<Result<Vec<_>, _>>()
        .map_err(bad)?;
    reqwest::Client::builder()
        .user_agent(concat!("vessel/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(15))
        .read_timeout(Duration::from_secs(120))
        .tls_certs_merge(certs)
        .build()
        .map_err(bad)
}

/// An error's causes on one line: reqwest's own message only repeats the
/// URL ("error sending request for url (…)"), its causes say what failed.
fn chain(e: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cause = e.source();
    while let Some(c) = cause {
        let s = c.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cause = c.source();
    }
    if parts.is_empty() {
        e.to_string()
    } else {
        parts.join(": ")
    }
}

/// Downloads the image at `url` (or takes it from the cache) and returns
/// it checked and open. Its digest is the cache key when it is cached, else
/// the sha256 of the bytes downloaded.
pub fn fetch(url: &str, opts: &PullOptions) -> Result<Pulled, HttpError> {
    let rt = crate::registry::runtime().map_err(|e| HttpError::Download {
        url: url.to_string(),
        detail: e.to_string(),
    })?;
    let client = client(url, &opts.ca_pem)?;
    rt.block_on(async {
        let response = client
            .get(url)
            .send()
            .await
            .map_err(|e| HttpError::Unreachable {
                url: url.to_string(),
                detail: chain(&e),
            })?;
        let status = response.status();
        if !status.is_success() {
            return Err(HttpError::Status {
                url: url.to_string(),
                status: status.to_string(),
            });
        }
        let validators = Validators::of(&response);
        let key = validators.key(url);
        let cache = match (&opts.cache_root, &key) {
            (Some(root), Some(_)) => Some(Cache::new(root)?.with_private_dir(&opts.tmpdir)),
            _ => None,
        };
        let producer = match (&cache, &key) {
            (Some(c), Some(key)) => match c.claim(Kind::Sif, key, true)? {
                Claim::Ready(hit) => {
                    tracing::debug!("using the cached image {} for {url}", hit.path.display());
                    return Ok(Pulled::new(hit, key.clone()));
                }
                Claim::Mine(p) => p,
                Claim::Busy(_) => private(&opts.tmpdir)?,
            },
            _ => {
                tracing::debug!(
                    "{url} is not cached (no cache, or the server gives no ETag or Last-Modified)"
                );
                private(&opts.tmpdir)?
            }
        };
        download(url, response, &validators, producer, key).await
    })
}

fn private(tmpdir: &Path) -> Result<Producer, HttpError> {
    Producer::private(tmpdir).map_err(|source| {
        CacheError::Io {
            path: tmpdir.to_path_buf(),
            source,
        }
        .into()
    })
}

/// Streams the body into `producer`'s file, checks it is an image, and
/// commits it.
async fn download(
    url: &str,
    mut response: reqwest::Response,
    validators: &Validators,
    mut producer: Producer,
    key: Option<String>,
) -> Result<Pulled, HttpError> {
    let failed = |detail: String| HttpError::Download {
        url: url.to_string(),
        detail,
    };
    tracing::info!(
        "Downloading {url}{}",
        validators
            .length
            .map(|n| format!(" ({:.1} MiB)", n as f64 / 1048576.0))
            .unwrap_or_default()
    );
    let mut hasher = Sha256::new();
    let mut written = 0u64;
    while let Some(chunk) = response.chunk().await.map_err(|e| failed(chain(&e)))? {
        hasher.update(&chunk);
        producer
            .file()
            .write_all(&chunk)
            .map_err(|e| failed(format!("writing {}: {e}", producer.path().display())))?;
        written += chunk.len() as u64;
    }
    if let Some(n) = validators.length.filter(|&n| n != written) {
        return Err(failed(format!(
            "the server announced {n} bytes and sent {written}"
        )));
    }
    let digest = format!("sha256:{}", hex(&hasher.finalize()));
    tracing::debug!("{url}: {written} bytes, {digest}");
    check_image(producer.file()).map_err(|detail| HttpError::NotAnImage {
        url: url.to_string(),
        detail,
    })?;
    let hit = producer.commit()?;
    Ok(Pulled::new(hit, key.unwrap_or(digest)))
}

/// Whether `file` (through its descriptor) holds a SIF or a bare SquashFS
/// image, the images that run from a file.
pub(crate) fn check_image(file: &std::fs::File) -> Result<(), String> {
    let path = vessel_sys::path::fd_path(file);
    match vessel_image::open_image(&path) {
        Ok(vessel_image::Image::Sif { .. } | vessel_image::Image::Squashfs { .. }) => Ok(()),
        Ok(_) => Err("not a regular image file".into()),
        // The path is our descriptor's, which means nothing to the user.
        Err(e) => Err(e.to_string().replace(&format!("{}: ", path.display()), "")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_validators() {
        let none = Validators::default();
        assert_eq!(none.key("http://h/a.sif"), None);
        let v = Validators {
            etag: Some("\"1\"".into()),
            last_modified: None,
            length: Some(10),
        };
        let key = v.key("http://h/a.sif").unwrap();
        assert!(key.starts_with("sha256:") && key.len() == 71, "{key}");
        assert_eq!(v.key("http://h/a.sif").unwrap(), key);
        assert_ne!(v.key("http://h/b.sif").unwrap(), key);
        let changed = Validators {
            etag: Some("\"2\"".into()),
            ..v
        };
        let changed_key = changed.key("http://h/a.sif").unwrap();
        assert_ne!(changed_key, key);
        let longer = Validators {
            length: Some(11),
            ..changed
        };
        assert_ne!(longer.key("http://h/a.sif").unwrap(), changed_key);
    }

    fn serve_once(reply: Vec<u8>) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = listener.accept() {
                use std::io::Read;
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                let _ = s.write_all(&reply);
            }
        });
        format!("http://{addr}/x.sif")
    }

    fn options(dir: &Path) -> PullOptions {
        PullOptions {
            cache_root: Some(dir.join("cache")),
            tmpdir: dir.to_path_buf(),
            platform: "linux/amd64".into(),
            no_https: false,
            ca_pem: Vec::new(),
            credentials: None,
            auth_files: Vec::new(),
            keep_devices: false,
            build_date: String::new(),
            progress: None,
        }
    }

    #[test]
    fn a_missing_file_names_the_url_and_the_status() {
        let dir = tempfile::tempdir().unwrap();
        let url = serve_once(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec());
        let e = fetch(&url, &options(dir.path())).err().unwrap().to_string();
        assert_eq!(
            e,
            format!("cannot download {url}: the server answered 404 Not Found")
        );
    }

    #[test]
    fn a_file_that_is_not_an_image_is_refused_and_not_cached() {
        let dir = tempfile::tempdir().unwrap();
        let body = b"<html>hello</html>";
        let mut reply = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nETag: \"e\"\r\n\r\n",
            body.len()
        )
        .into_bytes();
        reply.extend_from_slice(body);
        let url = serve_once(reply);
        let e = fetch(&url, &options(dir.path())).err().unwrap();
        assert!(matches!(e, HttpError::NotAnImage { .. }), "{e}");
        let uid = vessel_sys::process::getuid();
        let sifs = dir.path().join(format!("cache/vessel/sif/{uid}"));
        let left: Vec<_> = std::fs::read_dir(&sifs)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.ends_with(".lock"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn an_unreachable_host_names_the_url() {
        let dir = tempfile::tempdir().unwrap();
        // A port nothing listens on: bound, then closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}/x.sif");
        let e = fetch(&url, &options(dir.path())).err().unwrap().to_string();
        assert!(e.starts_with(&format!("cannot download {url}: ")), "{e}");
    }
}
