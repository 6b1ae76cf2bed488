//! Apptainer's execution control list, `ecl.toml`, read into the same
//! [`ExecutionControl`] that `vessel.conf`'s `execution …` keys give:
//!
//! ```toml
//! activated = true
//! legacyinsecure = false
//! [[execgroup]]
//!   tagname = "group1"
//!   mode = "whitelist"            # whitelist | whitestrict | blacklist
//!   dirpath = "/var/containers"   # empty: every other directory
//!   keyfp = ["5994BE54…"]
//! ```

use std::path::{Path, PathBuf};

use crate::conf::{ConfError, ExecGroup, ExecutionControl, ListMode};

/// Parses the text of the `ecl.toml` at `path` (named in errors).
pub fn parse(text: &str, path: &Path) -> Result<ExecutionControl, ConfError> {
    let invalid = |line: usize, message: String| ConfError::Invalid {
        path: path.to_path_buf(),
        line,
        message,
    };
    let doc: toml_edit::DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| {
        let line = e.span().map_or(0, |s| {
            text[..s.start.min(text.len())].lines().count().max(1)
        });
        invalid(line, e.message().trim().to_string())
    })?;
    let line_of = |needle: &str| {
        text.lines()
            .position(|l| l.contains(needle))
            .map_or(0, |n| n + 1)
    };
    let flag = |key: &str| -> Result<bool, ConfError> {
        match doc.get(key) {
            None => Ok(false),
            Some(item) => item
                .as_bool()
                .ok_or_else(|| invalid(line_of(key), format!("{key}: use true or false"))),
        }
    };
    let mut ecl = ExecutionControl {
        activated: flag("activated")?,
        legacy_insecure: flag("legacyinsecure")?,
        groups: Vec::new(),
    };
    let Some(groups) = doc.get("execgroup") else {
        return Ok(ecl);
    };
    let groups = groups.as_array_of_tables().ok_or_else(|| {
        invalid(
            line_of("execgroup"),
            "write each group as [[execgroup]]".into(),
        )
    })?;
    for table in groups.iter() {
        let tag = table
            .get("tagname")
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string();
        let at = line_of(&tag).max(line_of("[[execgroup]]"));
        let group_err = |m: String| invalid(at, format!("execgroup {tag:?}: {m}"));
        let mode = match table.get("mode").and_then(|v| v.as_str()) {
            Some("whitelist") => ListMode::Whitelist,
            Some("whitestrict") => ListMode::Whitestrict,
            Some("blacklist") => ListMode::Blacklist,
            other => {
                return Err(group_err(format!(
                    "mode {}: use whitelist, whitestrict or blacklist",
                    other.map_or("missing".to_string(), |m| format!("{m:?}"))
                )))
            }
        };
        let dir = match table.get("dirpath").and_then(|v| v.as_str()) {
            None | Some("") => None,
            Some(d) if d.starts_with('/') => Some(
                PathBuf::from(d.trim_end_matches('/'))
                    .components()
                    .collect(),
            ),
            Some(d) => return Err(group_err(format!("dirpath {d:?} is not absolute"))),
        };
        if ecl.groups.iter().any(|g: &ExecGroup| g.dir == dir) {
            return Err(group_err(
                "another group has the same dirpath: give each directory one group".into(),
            ));
        }
        let mut fingerprints = Vec::new();
        if let Some(keys) = table.get("keyfp").and_then(|v| v.as_array()) {
            for fp in keys.iter() {
                let fp = fp.as_str().unwrap_or("").replace(' ', "");
                if fp.len() != 40 || !fp.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(group_err(format!(
                        "{fp:?} is not an OpenPGP fingerprint (40 hexadecimal digits)"
                    )));
                }
                fingerprints.push(fp.to_ascii_uppercase());
            }
        }
        ecl.groups.push(ExecGroup {
            mode,
            dir,
            fingerprints,
        });
    }
    Ok(ecl)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FP: &str = "12045C8C0B1004D058DE4BEDA20C27EE7FF7BA84";

    #[test]
    fn reads_apptainers_example() {
        let text = format!(
            "activated = true\nlegacyinsecure = false\n\n[[execgroup]]\n  tagname = \"group1\"\n  mode = \"whitelist\"\n  dirpath = \"/var/containers/\"\n  keyfp = [\"{}\"]\n\n[[execgroup]]\n  tagname = \"rest\"\n  mode = \"blacklist\"\n  dirpath = \"\"\n  keyfp = [\"{FP}\"]\n",
            FP.to_lowercase()
        );
        let ecl = parse(&text, Path::new("ecl.toml")).unwrap();
        assert!(ecl.activated && !ecl.legacy_insecure);
        assert_eq!(ecl.groups[0].dir, Some(PathBuf::from("/var/containers")));
        assert_eq!(ecl.groups[0].fingerprints, [FP]);
        assert_eq!(ecl.groups[1].mode, ListMode::Blacklist);
        assert_eq!(ecl.groups[1].dir, None);
    }

    #[test]
    fn bad_files_name_the_line() {
        let err = |t: &str| parse(t, Path::new("ecl.toml")).unwrap_err().to_string();
        assert!(err("activated = maybe\n").contains("ecl.toml, line 1"));
        let e = err("[[execgroup]]\ntagname = \"g\"\nmode = \"greylist\"\n");
        assert!(e.contains("execgroup \"g\": mode \"greylist\""), "{e}");
        assert!(err("activated = 1\n").contains("activated: use true or false"));
    }
}
