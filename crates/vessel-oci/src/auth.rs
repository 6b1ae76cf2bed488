//! Registry credentials, stored as Docker does (`{"auths": {HOST: {"auth":
//! base64(user:password)}}}`) in `~/.apptainer/docker-config.json`, with
//! `~/.docker/config.json` read as a fallback.

use std::path::{Path, PathBuf};

use base64::Engine;
use serde_json::{json, Map, Value};

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid Docker config file: {reason}")]
    Format { path: PathBuf, reason: String },
}

/// A user name and password for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, ****)", self.username)
    }
}

/// The credentials files to read, in order: an explicit `--authfile`, else
/// Apptainer's, then Docker's.
pub fn auth_files(authfile: Option<&Path>, home: &Path) -> Vec<PathBuf> {
    match authfile {
        Some(f) => vec![f.to_path_buf()],
        None => vec![
            home.join(".apptainer/docker-config.json"),
            home.join(".docker/config.json"),
        ],
    }
}

/// The file `registry login` writes to.
pub fn write_target(authfile: Option<&Path>, home: &Path) -> PathBuf {
    authfile
        .map(Path::to_path_buf)
        .unwrap_or_else(|| home.join(".apptainer/docker-config.json"))
}

fn read(path: &Path) -> Result<Option<Map<String, Value>>, AuthError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(AuthError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(m)) => Ok(Some(m)),
        Ok(_) => Err(AuthError::Format {
            path: path.to_path_buf(),
            reason: "not a JSON object".into(),
        }),
        Err(e) => Err(AuthError::Format {
            path: path.to_path_buf(),
            reason: e.to_string(),
        }),
    }
}

/// Registry keys match with or without a scheme, as Docker writes both.
fn host_of(key: &str) -> &str {
    let k = key
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    k.split('/').next().unwrap_or(k)
}

/// Looks the registry up in `files`, first match wins.
pub fn lookup(files: &[PathBuf], registry: &str) -> Result<Option<Credentials>, AuthError> {
    for path in files {
        let Some(config) = read(path)? else { continue };
        let Some(Value::Object(auths)) = config.get("auths") else {
            continue;
        };
        for (key, entry) in auths {
            if host_of(key) != registry {
                continue;
            }
            if let Some(encoded) = entry.get("auth").and_then(Value::as_str) {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(encoded)
                    .map_err(|e| AuthError::Format {
                        path: path.clone(),
                        reason: format!("auth for {key}: {e}"),
                    })?;
                let text = String::from_utf8_lossy(&decoded);
                if let Some((u, p)) = text.split_once(':') {
                    return Ok(Some(Credentials {
                        username: u.to_string(),
                        password: p.to_string(),
                    }));
                }
            }
        }
    }
    Ok(None)
}

/// Stores (or with `None` removes) the credentials for `registry` in
/// `path`, keeping everything else in the file; written privately and
/// atomically.
pub fn store(path: &Path, registry: &str, creds: Option<&Credentials>) -> Result<bool, AuthError> {
    let io = |source| AuthError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut config = read(path)?.unwrap_or_default();
    let auths = config.entry("auths").or_insert_with(|| json!({}));
    let Value::Object(auths) = auths else {
        return Err(AuthError::Format {
            path: path.to_path_buf(),
            reason: "\"auths\" is not an object".into(),
        });
    };
    let existing: Vec<String> = auths
        .keys()
        .filter(|k| host_of(k) == registry)
        .cloned()
        .collect();
    let changed = !existing.is_empty() || creds.is_some();
    for k in existing {
        auths.remove(&k);
    }
    if let Some(c) = creds {
        let encoded = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", c.username, c.password));
        auths.insert(registry.to_string(), json!({ "auth": encoded }));
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let text = serde_json::to_string_pretty(&Value::Object(config)).expect("JSON values serialize");
    vessel_sys::fs::write_atomic(path, text.as_bytes(), 0o600).map_err(io)?;
    Ok(changed)
}

/// The registries with stored credentials, for `registry list`.
pub fn list(files: &[PathBuf]) -> Result<Vec<(String, String)>, AuthError> {
    let mut out = Vec::new();
    for path in files {
        let Some(config) = read(path)? else { continue };
        if let Some(Value::Object(auths)) = config.get("auths") {
            for (key, entry) in auths {
                let user = entry
                    .get("auth")
                    .and_then(Value::as_str)
                    .and_then(|a| base64::engine::general_purpose::STANDARD.decode(a).ok())
                    .map(|d| {
                        String::from_utf8_lossy(&d)
                            .split(':')
                            .next()
                            .unwrap_or("")
                            .to_string()
                    })
                    .unwrap_or_default();
                if !out
                    .iter()
                    .any(|(k, _): &(String, String)| k == host_of(key))
                {
                    out.push((host_of(key).to_string(), user));
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_lookup_remove() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("docker-config.json");
        let c = Credentials {
            username: "u".into(),
            password: "p:w".into(),
        };
        assert!(store(&f, "127.0.0.1:5443", Some(&c)).unwrap());
        assert_eq!(
            lookup(std::slice::from_ref(&f), "127.0.0.1:5443").unwrap(),
            Some(c)
        );
        assert_eq!(lookup(std::slice::from_ref(&f), "other").unwrap(), None);
        assert_eq!(
            list(std::slice::from_ref(&f)).unwrap(),
            vec![("127.0.0.1:5443".to_string(), "u".to_string())]
        );
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(store(&f, "127.0.0.1:5443", None).unwrap());
        assert_eq!(
            lookup(std::slice::from_ref(&f), "127.0.0.1:5443").unwrap(),
            None
        );
        assert!(!store(&f, "127.0.0.1:5443", None).unwrap());
    }

    #[test]
    fn docker_style_keys_with_a_scheme() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("config.json");
        std::fs::write(
            &f,
            r#"{"auths":{"https://index.docker.io/v1/":{"auth":"YTpi"}}}"#,
        )
        .unwrap();
        let c = lookup(&[f], "index.docker.io").unwrap().unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("a", "b"));
    }
}
