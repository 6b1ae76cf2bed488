//! `--bind`/`-B`, `--mount` and `APPTAINER_BIND` specifications.

use std::path::PathBuf;

/// One bind mount as the user wrote it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BindSpec {
    pub src: PathBuf,
    pub dst: PathBuf,
    pub readonly: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BindError {
    #[error("bind {0:?}: the source path is empty")]
    EmptySource(String),
    #[error("bind {spec:?}: unknown option {option:?} (use ro or rw)")]
    BadOption { spec: String, option: String },
    #[error("bind {0:?}: paths must be absolute")]
    Relative(String),
    #[error("mount {spec:?}: {problem}")]
    BadMount { spec: String, problem: String },
}

/// Parses `src[:dst[:opts]]` entries, comma-separated, as `--bind` and
/// `APPTAINER_BIND` take them. A relative source is taken from `cwd`.
pub fn parse_binds(value: &str, cwd: &std::path::Path) -> Result<Vec<BindSpec>, BindError> {
    let mut out = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let mut parts = entry.splitn(3, ':');
        let src = parts.next().unwrap_or_default();
        if src.is_empty() {
            return Err(BindError::EmptySource(entry.to_string()));
        }
        let dst = parts.next().filter(|d| !d.is_empty()).unwrap_or(src);
        let mut readonly = false;
        if let Some(opts) = parts.next() {
            for option in opts.split(':') {
                match option {
                    "ro" => readonly = true,
                    "rw" => readonly = false,
                    other => {
                        return Err(BindError::BadOption {
                            spec: entry.to_string(),
                            option: other.to_string(),
                        })
                    }
                }
            }
        }
        if !dst.starts_with('/') {
            return Err(BindError::Relative(entry.to_string()));
        }
        out.push(BindSpec {
            src: cwd.join(src),
            dst: PathBuf::from(dst),
            readonly,
        });
    }
    Ok(out)
}

/// Parses a Docker-style `--mount type=bind,src=…,dst=…[,ro]`.
pub fn parse_mount(value: &str, cwd: &std::path::Path) -> Result<BindSpec, BindError> {
    let bad = |problem: &str| BindError::BadMount {
        spec: value.to_string(),
        problem: problem.to_string(),
    };
    let (mut kind, mut src, mut dst, mut readonly) = (None, None, None, false);
    for field in csv_fields(value).map_err(|p| bad(&p))? {
        let field = field.as_str();
        let (key, val) = field.split_once('=').unwrap_or((field, ""));
        match key {
            "type" => kind = Some(val.to_string()),
            "source" | "src" => src = Some(val.to_string()),
            "destination" | "dst" | "target" => dst = Some(val.to_string()),
            "ro" | "readonly" => readonly = val.is_empty() || val == "true",
            "bind-propagation" => return Err(bad("bind-propagation is not supported")),
            _ => return Err(bad(&format!("unknown field {key:?}"))),
        }
    }
    if kind.as_deref() != Some("bind") {
        return Err(bad("only type=bind is supported"));
    }
    let src = src
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad("a source (src=) is required"))?;
    let dst = dst
        .filter(|d| !d.is_empty())
        .ok_or_else(|| bad("a destination (dst=) is required"))?;
    if !dst.starts_with('/') {
        return Err(bad("the destination must be absolute"));
    }
    Ok(BindSpec {
        src: cwd.join(src),
        dst: PathBuf::from(dst),
        readonly,
    })
}

/// The fields of one CSV record, as Docker (and so Apptainer) reads a
/// `--mount` value: a field that starts with `"` runs to the closing
/// quote, commas included, and `""` in it is one literal quote
/// (`"source=/a,b"`, as cwltool writes paths with commas). Unquoted fields
/// are trimmed and empty ones dropped, as before. Hand-written rather than
/// the `csv` crate: one record from a string, no I/O, no new dependency.
pub(crate) fn csv_fields(value: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut chars = value.chars().peekable();
    loop {
        while chars.next_if(|c| *c == ' ' || *c == '\t').is_some() {}
        let mut field = String::new();
        if chars.next_if_eq(&'"').is_some() {
            loop {
                match chars.next() {
                    Some('"') if chars.next_if_eq(&'"').is_some() => field.push('"'),
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => return Err("a quoted field has no closing quote".into()),
                }
            }
            while chars.next_if(|c| *c == ' ' || *c == '\t').is_some() {}
            match chars.next() {
                None | Some(',') => {}
                Some(c) => {
                    return Err(format!(
                        "{c:?} after a closing quote (use \"\" for a quote)"
                    ))
                }
            }
            fields.push(field);
        } else {
            for c in chars.by_ref() {
                match c {
                    ',' => break,
                    '"' => {
                        return Err(
                            "a quote inside an unquoted field (quote the whole field)".into()
                        )
                    }
                    c => field.push(c),
                }
            }
            let field = field.trim();
            if !field.is_empty() {
                fields.push(field.to_string());
            }
        }
        if chars.peek().is_none() {
            return Ok(fields);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn b(src: &str, dst: &str, ro: bool) -> BindSpec {
        BindSpec {
            src: src.into(),
            dst: dst.into(),
            readonly: ro,
        }
    }

    #[test]
    fn bind_forms() {
        let cwd = Path::new("/work");
        assert_eq!(
            parse_binds("/data", cwd).unwrap(),
            vec![b("/data", "/data", false)]
        );
        assert_eq!(
            parse_binds("/data:/mnt:ro, /scratch:/s", cwd).unwrap(),
            vec![b("/data", "/mnt", true), b("/scratch", "/s", false)]
        );
        assert_eq!(
            parse_binds("rel:/x", cwd).unwrap(),
            vec![b("/work/rel", "/x", false)]
        );
        assert!(matches!(
            parse_binds("/a:/b:bogus", cwd),
            Err(BindError::BadOption { .. })
        ));
        assert!(matches!(
            parse_binds(":/b", cwd),
            Err(BindError::EmptySource(_))
        ));
        assert!(matches!(
            parse_binds("/a:b", cwd),
            Err(BindError::Relative(_))
        ));
    }

    #[test]
    fn mount_forms() {
        let cwd = Path::new("/work");
        assert_eq!(
            parse_mount("type=bind,src=/a,dst=/b,ro", cwd).unwrap(),
            b("/a", "/b", true)
        );
        assert_eq!(
            parse_mount("type=bind,source=/a,target=/b", cwd).unwrap(),
            b("/a", "/b", false)
        );
        assert!(parse_mount("type=volume,src=/a,dst=/b", cwd).is_err());
        // Docker's CSV quoting, as cwltool writes paths with commas.
        assert_eq!(
            parse_mount("type=bind,\"source=/a,b\",destination=/x", cwd).unwrap(),
            b("/a,b", "/x", false)
        );
        assert_eq!(
            parse_mount("\"type=bind\",\"src=/q\"\"t\"\"\",\"dst=/y\",readonly", cwd).unwrap(),
            b("/q\"t\"", "/y", true)
        );
        assert!(parse_mount("type=bind,src=/a", cwd).is_err());
    }

    #[test]
    fn csv_fields_follow_dockers_quoting() {
        let ok = |v: &str| csv_fields(v).unwrap();
        assert_eq!(ok("a,b"), ["a", "b"]);
        assert_eq!(ok(" a , ,b,"), ["a", "b"]);
        assert_eq!(ok("\"a,b\",c"), ["a,b", "c"]);
        assert_eq!(ok("\"say \"\"hi\"\"\""), ["say \"hi\""]);
        assert_eq!(ok("x,\"\""), ["x", ""]);
        assert!(csv_fields("\"open").is_err());
        assert!(csv_fields("\"a\"b").is_err());
        assert!(csv_fields("a\"b").is_err());
    }
}
