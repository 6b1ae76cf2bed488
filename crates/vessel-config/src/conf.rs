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

use crate::directives;

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

/// `vessel.conf` in [`conf_dir`], or the file `-c/--config` named.
pub fn conf_path() -> Result<PathBuf, ConfError> {
    if let Some(file) = config_file() {
        return Ok(file.to_path_buf());
    }
    Ok(conf_dir()?.join("vessel.conf"))
}

/// The file of `-c/--config FILE`, read instead of `vessel.conf` (and of
/// the Apptainer files beside it). Set once, by the command line, after it
/// checked that the caller may (root, or the installation's owner).
static CONFIG_FILE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Makes [`conf_path`] and [`Conf::load_site`] read `file`.
pub fn set_config_file(file: PathBuf) {
    let _ = CONFIG_FILE.set(file);
}

/// The file [`set_config_file`] gave, if any.
pub fn config_file() -> Option<&'static Path> {
    CONFIG_FILE.get().map(PathBuf::as_path)
}

/// The settings of `vessel.conf`, typed, with Apptainer's defaults for
/// what the file does not say (see [`crate::directives`] for each one's
/// effect).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conf {
    pub execution_control: ExecutionControl,
    /// `bind path`: `(source, destination, read-only)`.
    pub bind_paths: Vec<SiteBind>,
    pub mount_proc: bool,
    pub mount_sys: bool,
    pub mount_dev: DevMode,
    pub mount_devpts: bool,
    pub mount_home: bool,
    pub mount_tmp: bool,
    pub mount_hostfs: bool,
    pub user_bind_control: bool,
    pub config_passwd: bool,
    pub config_group: bool,
    pub config_resolv_conf: bool,
    pub allow_container_sif: bool,
    pub allow_container_squashfs: bool,
    pub allow_container_dir: bool,
    pub allow_container_encrypted: bool,
    pub allow_container_extfs: bool,
    pub limit_container_owners: Vec<String>,
    pub limit_container_groups: Vec<String>,
    pub limit_container_paths: Vec<PathBuf>,
    pub allow_pid_ns: bool,
    pub allow_ipc_ns: bool,
    pub allow_uts_ns: bool,
    pub allow_user_ns: bool,
    /// `sessiondir max size`, MiB.
    pub sessiondir_max_mib: u64,
    pub always_use_nv: bool,
    pub always_use_rocm: bool,
    pub use_nvidia_container_cli: bool,
    /// `enable overlay = no`.
    pub overlay_disabled: bool,
    /// `share namespaces in job steps = yes`: ranks get `--sharens`.
    pub sharens_in_steps: bool,
    /// `enable overlay = driver`: overlays through `fuse-overlayfs`.
    pub overlay_driver: bool,
    /// `enable underlay = preferred`.
    pub underlay_preferred: bool,
    pub root_default_capabilities: RootCapabilities,
    /// `memory fs type = ramfs`.
    pub ramfs: bool,
    /// `mksquashfs procs` (0: all processors).
    pub mksquashfs_procs: u64,
    /// `mksquashfs mem`, as mksquashfs reads it (`1G`).
    pub mksquashfs_mem: Option<String>,
    /// `image driver`: `auto`, `fuse` or `extract`; `None` when unset.
    pub image_driver: Option<String>,
    pub extract_cache_dir: Option<PathBuf>,
    /// `extract cache max size`, GiB.
    pub extract_cache_max_gib: Option<u64>,
    /// The files this configuration was read from (none: the defaults).
    pub read_from: Vec<PathBuf>,
    /// Lines read but not understood: for the caller to print.
    pub warnings: Vec<ConfWarning>,
}

/// One `bind path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiteBind {
    pub src: PathBuf,
    pub dst: PathBuf,
    pub readonly: bool,
}

/// `mount dev`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DevMode {
    /// The host's `/dev`.
    Yes,
    /// A small staged `/dev`, as with `--contain`.
    Minimal,
    /// The image's own `/dev`.
    No,
}

/// `root default capabilities`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RootCapabilities {
    Full,
    /// The capabilities `capability.json` grants root: none, as Vessel
    /// has no such file.
    File,
    No,
}

/// A line of a configuration file that was skipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfWarning {
    pub path: PathBuf,
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for ConfWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}, line {}: {}",
            self.path.display(),
            self.line,
            self.message
        )
    }
}

impl Default for Conf {
    fn default() -> Conf {
        Conf {
            execution_control: ExecutionControl::default(),
            bind_paths: ["/etc/localtime", "/etc/hosts"]
                .into_iter()
                .map(|p| SiteBind {
                    src: p.into(),
                    dst: p.into(),
                    readonly: true,
                })
                .collect(),
            mount_proc: true,
            mount_sys: true,
            mount_dev: DevMode::Yes,
            mount_devpts: true,
            mount_home: true,
            mount_tmp: true,
            mount_hostfs: false,
            user_bind_control: true,
            config_passwd: true,
            config_group: true,
            config_resolv_conf: true,
            allow_container_sif: true,
            allow_container_squashfs: true,
            allow_container_dir: true,
            allow_container_encrypted: true,
            allow_container_extfs: true,
            limit_container_owners: Vec::new(),
            limit_container_groups: Vec::new(),
            limit_container_paths: Vec::new(),
            allow_pid_ns: true,
            allow_ipc_ns: true,
            allow_uts_ns: true,
            allow_user_ns: true,
            sessiondir_max_mib: 64,
            always_use_nv: false,
            always_use_rocm: false,
            use_nvidia_container_cli: false,
            overlay_disabled: false,
            sharens_in_steps: false,
            overlay_driver: false,
            underlay_preferred: false,
            root_default_capabilities: RootCapabilities::Full,
            ramfs: false,
            mksquashfs_procs: 0,
            mksquashfs_mem: None,
            image_driver: None,
            extract_cache_dir: None,
            extract_cache_max_gib: None,
            read_from: Vec::new(),
            warnings: Vec::new(),
        }
    }
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

    /// Parses the text of a configuration file named `path` (for
    /// messages). A key Vessel does not know is a warning; a value a
    /// directive does not allow is an error, so that no run starts
    /// half-configured.
    pub fn parse(text: &str, path: &Path) -> Result<Conf, ConfError> {
        let mut conf = Conf {
            read_from: vec![path.to_path_buf()],
            ..Conf::default()
        };
        // A `bind path` line replaces the default list, as in Apptainer.
        let mut binds_given = false;
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
            let key = directives::normalize(key);
            let value = value.trim();
            let Some(directive) = directives::find(&key) else {
                let hint = directives::suggest(&key)
                    .map(|k| format!(" (did you mean `{k}`?)"))
                    .unwrap_or_default();
                conf.warnings.push(ConfWarning {
                    path: path.to_path_buf(),
                    line: n + 1,
                    message: format!("unknown directive `{key}`: ignored{hint}"),
                });
                continue;
            };
            // An empty value leaves a setting at its default, as
            // Apptainer's template writes unset ones.
            if value.is_empty() && !directive.repeatable {
                continue;
            }
            directives::check(directive.values, value)
                .map_err(|m| invalid(format!("{key}: {m}")))?;
            let yes = || directives::parse_bool(value).unwrap_or(false);
            let lower = value.to_ascii_lowercase();
            match key.as_str() {
                "execution control" => conf.execution_control.activated = yes(),
                "share namespaces in job steps" => conf.sharens_in_steps = yes(),
                "execution control legacy insecure" => {
                    conf.execution_control.legacy_insecure = yes()
                }
                "execution group" => {
                    let group = exec_group(value).map_err(invalid)?;
                    let ecl = &mut conf.execution_control;
                    if ecl.groups.iter().any(|g| g.dir == group.dir) {
                        return Err(invalid(format!(
                            "the directory {} already has an execution group; give each directory one group",
                            group.dir.as_deref().map_or("*".into(), |d| d.display().to_string())
                        )));
                    }
                    ecl.groups.push(group);
                }
                "bind path" => {
                    if !binds_given {
                        conf.bind_paths.clear();
                        binds_given = true;
                    }
                    if !value.is_empty() {
                        conf.bind_paths.push(site_bind(value).map_err(invalid)?);
                    }
                }
                "mount proc" => conf.mount_proc = yes(),
                "mount sys" => conf.mount_sys = yes(),
                "mount dev" => {
                    conf.mount_dev = match lower.as_str() {
                        "minimal" => DevMode::Minimal,
                        "no" => DevMode::No,
                        _ => DevMode::Yes,
                    }
                }
                "mount devpts" => conf.mount_devpts = yes(),
                "mount home" => conf.mount_home = yes(),
                "mount tmp" => conf.mount_tmp = yes(),
                "mount hostfs" => conf.mount_hostfs = yes(),
                "user bind control" => conf.user_bind_control = yes(),
                "config passwd" => conf.config_passwd = yes(),
                "config group" => conf.config_group = yes(),
                "config resolv_conf" => conf.config_resolv_conf = yes(),
                "allow container sif" => conf.allow_container_sif = yes(),
                "allow container squashfs" => conf.allow_container_squashfs = yes(),
                "allow container dir" => conf.allow_container_dir = yes(),
                "allow container encrypted" => conf.allow_container_encrypted = yes(),
                "allow container extfs" => conf.allow_container_extfs = yes(),
                "limit container owners" => conf.limit_container_owners.extend(names(value)),
                "limit container groups" => conf.limit_container_groups.extend(names(value)),
                "limit container paths" => {
                    for p in names(value) {
                        let p = PathBuf::from(p);
                        if !p.is_absolute() {
                            return Err(invalid(format!(
                                "limit container paths: `{}` is not an absolute path",
                                p.display()
                            )));
                        }
                        conf.limit_container_paths.push(p);
                    }
                }
                "allow pid ns" => conf.allow_pid_ns = yes(),
                "allow ipc ns" => conf.allow_ipc_ns = yes(),
                "allow uts ns" => conf.allow_uts_ns = yes(),
                "allow user ns" => conf.allow_user_ns = yes(),
                "sessiondir max size" => {
                    conf.sessiondir_max_mib = value.parse().unwrap_or(conf.sessiondir_max_mib)
                }
                "always use nv" => conf.always_use_nv = yes(),
                "always use rocm" => conf.always_use_rocm = yes(),
                "use nvidia-container-cli" => conf.use_nvidia_container_cli = yes(),
                "enable overlay" => {
                    conf.overlay_disabled = lower == "no";
                    conf.overlay_driver = lower == "driver";
                }
                "enable underlay" => conf.underlay_preferred = lower == "preferred",
                "root default capabilities" => {
                    conf.root_default_capabilities = match lower.as_str() {
                        "file" => RootCapabilities::File,
                        "no" => RootCapabilities::No,
                        _ => RootCapabilities::Full,
                    }
                }
                "memory fs type" => conf.ramfs = lower == "ramfs",
                "mksquashfs procs" => conf.mksquashfs_procs = value.parse().unwrap_or(0),
                "mksquashfs mem" => conf.mksquashfs_mem = Some(value.to_string()),
                "image driver" => conf.image_driver = Some(lower),
                "extract cache dir" => conf.extract_cache_dir = Some(PathBuf::from(value)),
                "extract cache max size" => conf.extract_cache_max_gib = value.parse().ok(),
                // Accepted, with no effect (see the directive's `effect`).
                _ => {}
            }
        }
        Ok(conf)
    }

    /// The site's configuration as the running `tool` reads it: `vessel.conf`
    /// in [`conf_dir`]; when there is none, the Apptainer installation's
    /// files beside it (see [`Conf::load_site_in`]).
    pub fn load_site(tool: crate::Tool) -> Result<Conf, ConfError> {
        if let Some(file) = config_file() {
            return Conf::load(file);
        }
        Conf::load_site_in(&conf_dir()?, tool)
    }

    /// [`Conf::load_site`] for the configuration directory `dir`. A node
    /// image configured for Apptainer configures Vessel: without
    /// `dir/vessel.conf`, `apptainer/apptainer.conf` and
    /// `apptainer/ecl.toml` in `dir`'s parent are read (for the
    /// `singularity` persona, `singularity/singularity.conf` and
    /// `singularity/ecl.toml`): `/etc/apptainer` beside `/etc/vessel`. They
    /// are looked for beside `dir` so that only who may move `dir` (root,
    /// or the owner of the installation) may move them.
    pub fn load_site_in(dir: &Path, tool: crate::Tool) -> Result<Conf, ConfError> {
        let own = dir.join("vessel.conf");
        if exists(&own)? {
            return Conf::load(&own);
        }
        let base = dir.parent().unwrap_or(Path::new("/"));
        let (sub, name) = match tool {
            crate::Tool::Singularity => ("singularity", "singularity.conf"),
            _ => ("apptainer", "apptainer.conf"),
        };
        let theirs = base.join(sub).join(name);
        let mut conf = if exists(&theirs)? {
            Conf::load(&theirs)?
        } else {
            Conf::default()
        };
        let ecl = base.join(sub).join("ecl.toml");
        if exists(&ecl)? {
            let text = std::fs::read_to_string(&ecl).map_err(|source| ConfError::Read {
                path: ecl.clone(),
                source,
            })?;
            conf.execution_control = crate::ecl::parse(&text, &ecl)?;
            conf.read_from.push(ecl);
        }
        Ok(conf)
    }
}

/// Whether `path` exists; an error other than "not there" is reported.
fn exists(path: &Path) -> Result<bool, ConfError> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(ConfError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// A list directive's value: names separated by commas or spaces.
fn names(value: &str) -> impl Iterator<Item = String> + '_ {
    value
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(String::from)
}

/// `SRC[:DST[:ro|rw]]`, both absolute.
fn site_bind(value: &str) -> Result<SiteBind, String> {
    let mut parts = value.split(':').map(str::trim);
    let src = PathBuf::from(parts.next().unwrap_or(""));
    let dst = parts.next().filter(|d| !d.is_empty()).map(PathBuf::from);
    // The host's own files among Apptainer's defaults are bound read-only
    // unless asked otherwise: nothing in a container has to write them.
    let host_file = ["/etc/localtime", "/etc/hosts"]
        .iter()
        .any(|f| Path::new(f) == src);
    let readonly = match parts.next() {
        None => host_file,
        Some("rw") => false,
        Some("ro") => true,
        Some(other) => {
            return Err(format!(
                "bind path: unknown option `{other}`: write `bind path = SRC[:DST[:ro]]`"
            ))
        }
    };
    let dst = dst.unwrap_or_else(|| src.clone());
    for p in [&src, &dst] {
        if !p.is_absolute() {
            return Err(format!(
                "bind path: `{}` is not an absolute path: write `bind path = SRC[:DST]`",
                p.display()
            ));
        }
    }
    Ok(SiteBind { src, dst, readonly })
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
            (
                "execution control = maybe",
                "line 1: execution control: `maybe` is not allowed: use yes or no",
            ),
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
    #[test]
    fn apptainers_defaults_without_a_file() {
        let conf = Conf::default();
        assert!(conf.mount_home && conf.mount_tmp && conf.user_bind_control);
        assert_eq!(conf.mount_dev, DevMode::Yes);
        assert_eq!(conf.sessiondir_max_mib, 64);
        let binds: Vec<_> = conf.bind_paths.iter().map(|b| b.src.clone()).collect();
        assert_eq!(
            binds,
            [PathBuf::from("/etc/localtime"), "/etc/hosts".into()]
        );
        assert!(conf.read_from.is_empty());
    }

    #[test]
    fn parses_the_site_directives() {
        let conf = parse(
            "bind path = /data:/mnt/sitedata\nbind path = /scratch\nbind path = /ref:/ref:ro\n\
             mount home = no\nMount  Dev = minimal\nallow container dir = no\n\
             limit container paths = /opt/images, /srv/sif\nsessiondir max size = 128\n\
             always use nv = yes\nenable overlay = no\nroot default capabilities = no\n\
             memory fs type = ramfs\nimage driver = extract\nmax loop devices = 256\n\
             # mksquashfs mem = 1G\ndownload part size =\n",
        )
        .unwrap();
        assert_eq!(conf.bind_paths.len(), 3);
        assert_eq!(conf.bind_paths[0].dst, PathBuf::from("/mnt/sitedata"));
        assert_eq!(conf.bind_paths[1].dst, PathBuf::from("/scratch"));
        assert!(conf.bind_paths[2].readonly && !conf.bind_paths[0].readonly);
        assert!(!conf.mount_home && !conf.allow_container_dir && conf.always_use_nv);
        assert_eq!(conf.mount_dev, DevMode::Minimal);
        assert_eq!(conf.limit_container_paths.len(), 2);
        assert_eq!(conf.sessiondir_max_mib, 128);
        assert!(conf.overlay_disabled && conf.ramfs);
        assert_eq!(conf.root_default_capabilities, RootCapabilities::No);
        assert_eq!(conf.image_driver.as_deref(), Some("extract"));
        assert!(conf.warnings.is_empty(), "{:?}", conf.warnings);
    }

    #[test]
    fn an_unknown_key_is_a_warning_and_a_bad_value_an_error() {
        let conf = parse("mount hom = no\nallow setuid = yes\n").unwrap();
        assert!(conf.mount_home);
        let w: Vec<String> = conf.warnings.iter().map(|w| w.to_string()).collect();
        assert_eq!(
            w,
            ["vessel.conf, line 1: unknown directive `mount hom`: ignored (did you mean `mount home`?)"]
        );
        for (text, want) in [
            (
                "\nmount dev = maybe",
                "vessel.conf, line 2: mount dev: `maybe` is not allowed: use yes, no, minimal",
            ),
            (
                "sessiondir max size = 0",
                "sessiondir max size: `0` is not allowed: use a whole number from 1 to",
            ),
            ("sessiondir max size = lots", "line 1: sessiondir max size"),
            ("bind path = data", "`data` is not an absolute path"),
            ("bind path = /a:/b:rx", "unknown option `rx`"),
            ("limit container paths = opt", "not an absolute path"),
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }

    #[test]
    fn the_apptainer_installation_beside_is_the_drop_in() {
        let root = std::env::temp_dir().join(format!("vessel-conf-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let dir = root.join("etc/vessel");
        std::fs::create_dir_all(root.join("etc/apptainer")).unwrap();
        std::fs::create_dir_all(root.join("etc/singularity")).unwrap();
        let load = |tool| Conf::load_site_in(&dir, tool).unwrap();
        assert_eq!(load(crate::Tool::Vessel), Conf::default());
        std::fs::write(
            root.join("etc/apptainer/apptainer.conf"),
            "mount home = no\n",
        )
        .unwrap();
        std::fs::write(
            root.join("etc/apptainer/ecl.toml"),
            format!("activated = true\n[[execgroup]]\nmode = \"whitelist\"\ndirpath = \"/d\"\nkeyfp = [\"{FP}\"]\n"),
        )
        .unwrap();
        std::fs::write(
            root.join("etc/singularity/singularity.conf"),
            "mount tmp = no\n",
        )
        .unwrap();
        let conf = load(crate::Tool::Apptainer);
        assert!(!conf.mount_home && conf.execution_control.activated);
        assert_eq!(
            conf.read_from,
            [
                root.join("etc/apptainer/apptainer.conf"),
                root.join("etc/apptainer/ecl.toml")
            ]
        );
        let conf = load(crate::Tool::Singularity);
        assert!(conf.mount_home && !conf.mount_tmp);
        // vessel.conf, when there is one, is the only file read.
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("vessel.conf"), "mount proc = no\n").unwrap();
        let conf = load(crate::Tool::Apptainer);
        assert!(conf.mount_home && !conf.mount_proc && !conf.execution_control.activated);
        std::fs::remove_dir_all(&root).unwrap();
    }
    /// Apptainer's template, as `confgen` renders its defaults (the keys
    /// of `pkg/util/apptainerconf`'s `File`, and the newer ones of §7.2):
    /// read without a warning.
    #[test]
    fn apptainers_rendered_template_reads_cleanly() {
        let text = "allow setuid = yes\nmax loop devices = 256\nallow pid ns = yes\n\
            config passwd = yes\nconfig group = yes\nconfig resolv_conf = yes\nmount proc = yes\n\
            mount sys = yes\nmount dev = yes\nmount devpts = yes\nmount home = yes\nmount tmp = yes\n\
            mount hostfs = no\nbind path = /etc/localtime\nbind path = /etc/hosts\n\
            user bind control = yes\nenable fusemount = yes\nenable overlay = try\n\
            enable underlay = yes\nmount slave = yes\nsessiondir max size = 64\n\
            allow container sif = yes\nallow container encrypted = yes\n\
            allow container squashfs = yes\nallow container extfs = yes\nallow container dir = yes\n\
            always use nv = no\nuse nvidia-container-cli = no\nalways use rocm = no\n\
            root default capabilities = full\nmemory fs type = tmpfs\n\
            # cni configuration path =\ncni plugin path =\n\
            binary path = $PATH:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n\
            mksquashfs procs = 0\nmksquashfs mem =\nshared loop devices = no\nimage driver =\n\
            download concurrency = 3\ndownload part size = 5242880\ndownload buffer size = 32768\n\
            systemd cgroups = yes\nallow ipc ns = yes\nallow user ns = yes\nallow uts ns = yes\n\
            allow setuid-mount encrypted = yes\nallow setuid-mount squashfs = iflimited\n\
            allow setuid-mount extfs = no\nsync writable extfs = no\n\
            apptheus communication socket path = /run/apptheus/gateway.sock\nallow monitoring = no\n\
            nvidia-container-cli path =\nldconfig path =\ncryptsetup path =\nmksquashfs path =\n\
            unsquashfs path =\ngo path =\n";
        let conf = parse(text).unwrap();
        assert!(conf.warnings.is_empty(), "{:?}", conf.warnings);
        assert_eq!(
            Conf {
                read_from: Vec::new(),
                ..conf
            },
            Conf::default()
        );
    }
}
