//! The administrator's `vessel.conf`, in `apptainer.conf` syntax: one
//! `key = value` per line, `#` comments, keys case-insensitive, some keys
//! repeatable. Only the settings Vessel acts on are parsed; other keys of
//! an `apptainer.conf` are accepted and ignored, so a site can copy theirs.
//!
//! The execution control list (Apptainer's `ecl.toml`) is written here as
//! three keys with the same meaning:
//!
//! ```text
//! execution control = yes                 # activated
//! execution control legacy insecure = no  # accept legacy signatures
//! execution group = whitelist /var/containers 12045C8C0B1004D058DE4BEDA20C27EE7FF7BA84
//! execution group = blacklist * 0123456789ABCDEF0123456789ABCDEF01234567
//! ```
//!
//! A group is `MODE DIRECTORY FINGERPRINT…`: images whose file lies directly
//! in DIRECTORY (symlinks resolved) are checked against it; `*` is the group
//! for images in no other group's directory. With execution control on, an
//! image in no group does not run.

use std::path::{Path, PathBuf};

/// Where the configuration lives unless `VESSEL_CONF_DIR` says otherwise.
pub const DEFAULT_CONF_DIR: &str = "/etc/vessel";

/// The configuration directory: `vessel.conf` and the global public keyring.
///
/// The administrator's settings (execution control above all) must not be
/// switched off by a user, so `VESSEL_CONF_DIR` is honoured only for root
/// and for an installation the user owns (a Vessel built or copied by the
/// user, which could be changed anyway), as Apptainer honours its
/// configuration only from its own installation. Anyone else who sets it
/// gets an error, never a silent fallback either way.
pub fn conf_dir() -> Result<PathBuf, ConfError> {
    let var = crate::process_var_os(crate::vessel_vars::CONF_DIR.name).filter(|v| !v.is_empty());
    if var.is_none() {
        // The common case, on every run: no look at the executable or the
        // caller's ids.
        return Ok(PathBuf::from(DEFAULT_CONF_DIR));
    }
    let exe = std::env::current_exe().ok();
    let owner = exe
        .as_deref()
        .and_then(|e| std::fs::metadata(e).ok())
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m));
    choose_conf_dir(var, real_uid(), exe.as_deref(), owner)
}

/// [`conf_dir`]'s rule, given the variable, the caller's real uid (`None`
/// when unknown) and the running executable with its owner.
fn choose_conf_dir(
    var: Option<std::ffi::OsString>,
    uid: Option<u32>,
    exe: Option<&Path>,
    exe_owner: Option<u32>,
) -> Result<PathBuf, ConfError> {
    let Some(dir) = var.filter(|v| !v.is_empty()).map(PathBuf::from) else {
        return Ok(PathBuf::from(DEFAULT_CONF_DIR));
    };
    match uid {
        Some(0) => Ok(dir),
        Some(uid) if exe_owner == Some(uid) => Ok(dir),
        _ => Err(ConfError::OverrideRefused {
            dir,
            exe: exe.map(Path::to_path_buf).unwrap_or_default(),
            owner: exe_owner,
        }),
    }
}

/// The real uid, from `/proc/self/status` (this crate makes no system
/// calls of its own).
fn real_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// `vessel.conf` in [`conf_dir`].
pub fn conf_path() -> Result<PathBuf, ConfError> {
    Ok(conf_dir()?.join("vessel.conf"))
}

/// The settings of `vessel.conf` Vessel acts on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Conf {
    pub execution_control: ExecutionControl,
}

/// Which signed images may run, by where they are and who signed them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecutionControl {
    pub activated: bool,
    /// Verify legacy (Singularity 3.x) signatures of the primary partition.
    pub legacy_insecure: bool,
    pub groups: Vec<ExecGroup>,
}

/// One `execution group` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecGroup {
    pub mode: ListMode,
    /// `None` for `*`: images in no other group's directory.
    pub dir: Option<PathBuf>,
    /// Upper-case hexadecimal OpenPGP fingerprints.
    pub fingerprints: Vec<String>,
}

/// How a group's fingerprints are applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListMode {
    /// Signed by at least one of the keys.
    Whitelist,
    /// Signed by every one of the keys.
    Whitestrict,
    /// Not signed by any of the keys.
    Blacklist,
}

impl ListMode {
    pub fn name(self) -> &'static str {
        match self {
            ListMode::Whitelist => "whitelist",
            ListMode::Whitestrict => "whitestrict",
            ListMode::Blacklist => "blacklist",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfError {
    #[error(
        "VESSEL_CONF_DIR={dir} is honoured only for root or for a Vessel installation you own \
         ({exe} belongs to {}): unset it to use the site's configuration in {DEFAULT_CONF_DIR}",
        owner.map_or("an unknown user".to_string(), |o| format!("uid {o}")),
        exe = exe.display(),
        dir = dir.display()
    )]
    OverrideRefused {
        dir: PathBuf,
        exe: PathBuf,
        owner: Option<u32>,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}, line {line}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

impl ExecutionControl {
    /// The group an image at `image` (an absolute path, symlinks resolved)
    /// belongs to: the one naming its directory, else the `*` group.
    pub fn group_for(&self, image: &Path) -> Option<&ExecGroup> {
        let dir = image.parent();
        self.groups
            .iter()
            .find(|g| g.dir.is_some() && g.dir.as_deref() == dir)
            .or_else(|| self.groups.iter().find(|g| g.dir.is_none()))
    }
}

impl Conf {
    /// Reads `path`; a missing file is the default configuration.
    pub fn load(path: &Path) -> Result<Conf, ConfError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Conf::parse(&text, path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Conf::default()),
            Err(source) => Err(ConfError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Parses the text of a configuration file named `path` (for messages).
    pub fn parse(text: &str, path: &Path) -> Result<Conf, ConfError> {
        let mut conf = Conf::default();
        for (n, raw) in text.lines().enumerate() {
            let invalid = |message: String| ConfError::Invalid {
                path: path.to_path_buf(),
                line: n + 1,
                message,
            };
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(invalid(format!("expected `key = value`, found `{line}`")));
            };
            let key = key.split_whitespace().collect::<Vec<_>>().join(" ");
            let value = value.trim();
            let ecl = &mut conf.execution_control;
            match key.to_ascii_lowercase().as_str() {
                "execution control" => ecl.activated = yes_no(value).map_err(invalid)?,
                "execution control legacy insecure" => {
                    ecl.legacy_insecure = yes_no(value).map_err(invalid)?
                }
                "execution group" => {
                    let group = exec_group(value).map_err(invalid)?;
                    if ecl.groups.iter().any(|g| g.dir == group.dir) {
                        return Err(invalid(format!(
                            "the directory {} already has an execution group; give each directory one group",
                            group.dir.as_deref().map_or("*".into(), |d| d.display().to_string())
                        )));
                    }
                    ecl.groups.push(group);
                }
                _ => {}
            }
        }
        Ok(conf)
    }
}

fn yes_no(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "yes" | "true" | "1" => Ok(true),
        "no" | "false" | "0" => Ok(false),
        _ => Err(format!("expected yes or no, found `{value}`")),
    }
}

fn exec_group(value: &str) -> Result<ExecGroup, String> {
    let usage =
        "write `execution group = whitelist|whitestrict|blacklist DIRECTORY|* FINGERPRINT…`";
    let mut words = value.split_whitespace();
    let mode = match words.next().map(str::to_ascii_lowercase).as_deref() {
        Some("whitelist") => ListMode::Whitelist,
        Some("whitestrict") => ListMode::Whitestrict,
        Some("blacklist") => ListMode::Blacklist,
        Some(other) => return Err(format!("unknown mode `{other}`: {usage}")),
        None => return Err(format!("empty execution group: {usage}")),
    };
    let dir = match words.next() {
        Some("*") => None,
        Some(d) if is_clean_absolute(Path::new(d)) => Some(PathBuf::from(d)),
        Some(d) => {
            return Err(format!(
                "`{d}` is not a clean absolute directory (no `.`, `..`, `//` or trailing `/`)"
            ))
        }
        None => return Err(format!("no directory: {usage}")),
    };
    let mut fingerprints = Vec::new();
    for fp in words.flat_map(|w| w.split(',')).filter(|w| !w.is_empty()) {
        if fp.len() != 40 || !fp.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "`{fp}` is not an OpenPGP fingerprint (40 hexadecimal digits, as `vessel key list` prints)"
            ));
        }
        fingerprints.push(fp.to_ascii_uppercase());
    }
    if fingerprints.is_empty() {
        return Err(format!("no fingerprints: {usage}"));
    }
    Ok(ExecGroup {
        mode,
        dir,
        fingerprints,
    })
}

fn is_clean_absolute(p: &Path) -> bool {
    let s = p.to_string_lossy();
    p.is_absolute()
        && (s == "/" || !s.ends_with('/'))
        && !s.contains("//")
        && p.components().all(|c| {
            !matches!(
                c,
                std::path::Component::CurDir | std::path::Component::ParentDir
            )
        })
        && !s.split('/').any(|part| part == ".")
}

#[cfg(test)]
mod tests {
    use super::*;

    const FP: &str = "12045C8C0B1004D058DE4BEDA20C27EE7FF7BA84";

    fn parse(text: &str) -> Result<Conf, ConfError> {
        Conf::parse(text, Path::new("vessel.conf"))
    }

    #[test]
    fn only_root_or_the_installation_owner_moves_the_configuration() {
        let exe = Some(Path::new("/usr/bin/vessel"));
        let var = || Some(std::ffi::OsString::from("/home/u/conf"));
        let dir = |r: Result<PathBuf, ConfError>| r.map_err(|e| e.to_string());
        assert_eq!(
            dir(choose_conf_dir(None, Some(1000), exe, Some(0))),
            Ok(PathBuf::from("/etc/vessel"))
        );
        assert_eq!(
            dir(choose_conf_dir(var(), Some(0), exe, Some(0))),
            Ok(PathBuf::from("/home/u/conf"))
        );
        assert_eq!(
            dir(choose_conf_dir(var(), Some(1000), exe, Some(1000))),
            Ok(PathBuf::from("/home/u/conf"))
        );
        let refused = dir(choose_conf_dir(var(), Some(1000), exe, Some(0))).unwrap_err();
        assert!(
            refused.contains("VESSEL_CONF_DIR=/home/u/conf is honoured only for root"),
            "{refused}"
        );
        assert!(
            refused.contains("/usr/bin/vessel belongs to uid 0"),
            "{refused}"
        );
        assert!(choose_conf_dir(var(), None, exe, Some(0)).is_err());
    }

    #[test]
    fn parses_execution_control() {
        let conf = parse(&format!(
            "# site policy\nallow setuid = yes\nexecution control = yes\n\
             execution group = whitelist /data/images {}\n\
             execution group = BlackList * {},{}\n",
            FP.to_lowercase(),
            FP,
            "0123456789abcdef0123456789abcdef01234567"
        ))
        .unwrap();
        let ecl = &conf.execution_control;
        assert!(ecl.activated && !ecl.legacy_insecure);
        assert_eq!(ecl.groups.len(), 2);
        assert_eq!(ecl.groups[0].mode, ListMode::Whitelist);
        assert_eq!(ecl.groups[0].fingerprints, vec![FP.to_string()]);
        assert_eq!(ecl.groups[1].dir, None);
        assert_eq!(ecl.groups[1].fingerprints.len(), 2);
        assert_eq!(
            ecl.group_for(Path::new("/data/images/a.sif")).unwrap().mode,
            ListMode::Whitelist
        );
        assert_eq!(
            ecl.group_for(Path::new("/data/images/sub/a.sif"))
                .unwrap()
                .mode,
            ListMode::Blacklist
        );
    }

    #[test]
    fn a_missing_file_is_the_default() {
        let conf = Conf::load(Path::new("/nonexistent/vessel.conf")).unwrap();
        assert!(!conf.execution_control.activated);
    }

    #[test]
    fn bad_lines_name_the_line_and_the_fix() {
        for (text, want) in [
            ("execution control = maybe", "line 1: expected yes or no"),
            ("\nexecution group = greylist /d X", "line 2: unknown mode"),
            (
                "execution group = whitelist data/ X",
                "not a clean absolute",
            ),
            (
                "execution group = whitelist /d/../e X",
                "not a clean absolute",
            ),
            (
                "execution group = whitelist /d 1234",
                "not an OpenPGP fingerprint",
            ),
            ("execution group = whitelist /d", "no fingerprints"),
            ("just words", "expected `key = value`"),
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(want), "{text:?}: {err}");
        }
        let dup =
            format!("execution group = whitelist /d {FP}\nexecution group = blacklist /d {FP}");
        assert!(parse(&dup)
            .unwrap_err()
            .to_string()
            .contains("line 2: the directory /d already has"));
    }
}
