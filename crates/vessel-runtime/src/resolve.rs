//! The action commands' flags as the user typed them ([`ActionFlags`], the
//! low arguments) turned into decided [`LaunchOptions`] (the high ones),
//! with the `APPTAINER_*`/`SINGULARITY_*` and `VESSEL_*` variables and the
//! host: ripgrep's split. The CLI only parses; every rule that merges a
//! flag with its variable lives here, with a table test.

use std::ffi::OsString;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use vessel_sys::caps::{self, Capability};

use vessel_config::{lookup, lookup_bool, vars, vessel_vars, EnvVar, Tool};

use crate::bind::{parse_binds, parse_mount, BindError};
use vessel_config::conf::{Conf, RootCapabilities};

use crate::options::{
    Action, Driver, GpuOptions, Host, LaunchOptions, OverlaySpec, RootPrivileges, Site, SiteRefusal,
};

/// The flags of `exec`, `run`, `shell` and `test`, unresolved.
#[derive(Clone, Debug, Default)]
pub struct ActionFlags {
    pub bind: Vec<String>,
    pub mount: Vec<String>,
    pub contain: bool,
    pub containall: bool,
    pub cleanenv: bool,
    pub env: Vec<String>,
    pub env_file: Vec<PathBuf>,
    pub no_env: Vec<String>,
    pub no_eval: bool,
    pub no_home: bool,
    pub home: Option<String>,
    pub no_mount: Vec<String>,
    pub scratch: Vec<PathBuf>,
    pub workdir: Option<PathBuf>,
    pub cwd: Option<PathBuf>,
    pub writable: bool,
    pub writable_tmpfs: bool,
    /// `--writable-tmpfs-size`; the site's `sessiondir max size` when not given.
    pub writable_tmpfs_size: Option<u64>,
    pub unsquash: bool,
    pub overlay: Vec<String>,
    pub pid: bool,
    pub ipc: bool,
    pub uts: bool,
    pub hostname: Option<String>,
    pub net: bool,
    pub app: Option<String>,
    pub fakeroot: bool,
    /// Apptainer's flags that Vessel refuses, or honours only in part (see
    /// [`refusal`]), or honours by what it always does.
    pub nv: bool,
    pub nvccli: bool,
    pub rocm: bool,
    pub network: Option<String>,
    pub network_args: Vec<String>,
    pub dns: Option<String>,
    pub no_init: bool,
    pub no_umask: bool,
    pub compat: bool,
    pub containlibs: Vec<String>,
    pub no_privs: bool,
    pub keep_privs: bool,
    pub add_caps: Option<String>,
    pub drop_caps: Option<String>,
    pub security: Vec<String>,
    /// The cgroups flags given (`--memory`, `--cpus`, …), by name.
    pub cgroups: Vec<&'static str>,
    pub sharens: bool,
    pub device: Vec<String>,
    pub allow_setuid: bool,
    pub no_pid: bool,
    pub underlay: bool,
    pub ignore_fakeroot_command: bool,
    pub ignore_subuid: bool,
    pub ignore_userns: bool,
    pub no_nv: bool,
    pub no_rocm: bool,
    pub compat32: bool,
    pub cdi_dirs: Vec<String>,
    pub fusemount: Vec<String>,
    pub intel_hpu: bool,
    pub netns_path: Option<String>,
    pub passphrase: bool,
    pub pem_path: Option<String>,
    pub docker_host: Option<String>,
    pub runscript_timeout: Option<String>,
    /// The image, then the command and its arguments.
    pub rest: Vec<OsString>,
}

/// Which action, with the shell `shell --shell` names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verb {
    Exec,
    Run,
    Shell(Option<String>),
    Test,
}

#[derive(Debug, thiserror::Error)]
pub enum OptionsError {
    #[error("no image given")]
    NoImage,
    #[error("exec needs a command to run after the image, as in: exec IMAGE COMMAND [ARGS...]")]
    NoCommand,
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error("--home {0}: the container path must be absolute")]
    HomeNotAbsolute(String),
    #[error("could not read env file {path}")]
    EnvFileRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("env file {path}: {problem}")]
    EnvFile { path: PathBuf, problem: String },
    #[error(
        "--env: {0:?} is not a variable name (letters, digits and _, not starting with a digit)"
    )]
    EnvName(String),
    #[error("--env {0:?}: expected KEY=VALUE")]
    EnvPair(String),
    #[error("overlay {0}: no such directory or image file")]
    OverlayMissing(PathBuf, #[source] vessel_sys::Hint),
    #[error("--cwd {0}: the path must be absolute")]
    CwdNotAbsolute(PathBuf),
    #[error("VESSEL_IMAGE_DRIVER={0} names no image driver")]
    Driver(String, #[source] vessel_sys::Hint),
    /// A flag of Apptainer's that Vessel parses but does not honour, or
    /// its variable: `flag` names what the user set, `why` says why.
    #[error("{flag} {why}")]
    Unsupported { flag: String, why: String },
    #[error("--dns {0:?}: not an IP address (give name servers as IP[,IP...], for example --dns 10.0.0.2,1.1.1.1)")]
    Dns(String),
    #[error(transparent)]
    Site(#[from] SiteRefusal),
    #[error(
        "{flag} {size}: the site's {file} allows at most {max} MiB (sessiondir max size = {max})"
    )]
    TmpfsSize {
        flag: &'static str,
        size: u64,
        max: u64,
        file: String,
    },
    #[error("{flag} {name:?}: unknown capability (use names such as CAP_NET_RAW or net_raw, or all; capabilities(7) lists them)")]
    Capability { flag: &'static str, name: String },
}

/// The cgroups variables, with the flag each stands for.
const CGROUP_VARS: &[(EnvVar, &str)] = &[
    (vars::APPLY_CGROUPS, "--apply-cgroups"),
    (vars::CPU_SHARES, "--cpus"),
    (vars::CPUSET_CPUS, "--cpuset-cpus"),
    (vars::CPUSET_MEMS, "--cpuset-mems"),
    (vars::MEMORY, "--memory"),
    (vars::MEMORY_RESERVATION, "--memory-reservation"),
    (vars::MEMORY_SWAP, "--memory-swap"),
    (vars::PIDS_LIMIT, "--pids-limit"),
    (vars::BLKIO_WEIGHT, "--blkio-weight"),
    (vars::BLKIO_WEIGHT_DEVICE, "--blkio-weight-device"),
    (vars::OOM_KILL_DISABLE, "--oom-kill-disable"),
];

const CAPS_NEED_ROOT: &str = "needs root: an unprivileged container runs in a user namespace, with no capabilities on the host (Vessel has no setuid starter)";
const SETUID_NEEDS_ROOT: &str = "needs root: setuid programs cannot gain privileges in an unprivileged container (Vessel has no setuid starter)";
const USERNS_NEEDS_ROOT: &str =
    "needs root: without a setuid starter, an unprivileged container always needs a user namespace";
const NEEDS_CNI: &str = "needs CNI and root: Vessel supports only --network none (loopback only)";
const NEEDS_CGROUPS: &str =
    "needs cgroups (root, or cgroups v2 delegated through systemd): not implemented yet in Vessel";

/// Where a refused setting came from: the flag, else its variable (by the
/// name the user set).
enum Given {
    Flag,
    Var(String),
}

impl Vars<'_> {
    /// A boolean setting: the flag, else its variable when true.
    fn given_bool(&self, flag: bool, var: EnvVar) -> Option<Given> {
        if flag {
            return Some(Given::Flag);
        }
        let found = lookup(self.tool, var, self.get).value?;
        lookup_bool(&found.value)
            .unwrap_or(false)
            .then_some(Given::Var(found.name))
    }

    /// A value setting: the flag's, else its variable's when not empty.
    fn given_value(&self, flag: Option<String>, var: EnvVar) -> Option<(Given, String)> {
        if let Some(v) = flag {
            return Some((Given::Flag, v));
        }
        let found = lookup(self.tool, var, self.get).value?;
        (!found.value.trim().is_empty()).then_some((Given::Var(found.name), found.value))
    }
}

fn unsupported(given: Given, flag: &str, why: &str) -> OptionsError {
    let flag = match given {
        Given::Flag => flag.to_string(),
        Given::Var(name) => format!("{name} (like {flag})"),
    };
    OptionsError::Unsupported {
        flag,
        why: why.to_string(),
    }
}

/// The first of Apptainer's flags (or their variables) that Vessel does not
/// honour, as the error naming it; and whether `--network none` asked for
/// a network namespace with only loopback.
fn refusal(a: &mut ActionFlags, vars: &Vars<'_>, host: &Host) -> Result<bool, OptionsError> {
    let gpus = [(
        a.intel_hpu,
        vars::INTEL_HPU,
        "--intel-hpu",
        "is not supported (Intel Gaudi devices)",
    )];
    for (flag, var, name, why) in gpus {
        if let Some(g) = vars.given_bool(flag, var) {
            return Err(unsupported(g, name, why));
        }
    }
    let fuse = a.fusemount.first().cloned();
    if let Some((g, _)) = vars.given_value(fuse, vars::FUSESPEC) {
        let why = "is not supported: mount on the host and bind the mount point";
        return Err(unsupported(g, "--fusemount", why));
    }
    if let Some((g, _)) = vars.given_value(a.netns_path.take(), vars::NETNS_PATH) {
        let why = "is not supported: joining another network namespace needs root; use the host's network or --network none";
        return Err(unsupported(g, "--netns-path", why));
    }
    let encrypted = "is not supported: Vessel does not make or run encrypted images";
    if a.passphrase {
        return Err(unsupported(Given::Flag, "--passphrase", encrypted));
    }
    if a.pem_path.is_some() {
        return Err(unsupported(Given::Flag, "--pem-path", encrypted));
    }
    // Only the prefixed variable: a plain DOCKER_HOST is Docker's own, and
    // matters to Apptainer only for docker-daemon: images.
    if let Some((g, _)) = vars.given_value(a.docker_host.take(), vars::DOCKER_HOST) {
        let why = "is not supported: Vessel does not talk to Docker daemons (docker-daemon: sources); use docker-archive: or a registry";
        return Err(unsupported(g, "--docker-host", why));
    }
    let mut net_none = false;
    if let Some((g, v)) = vars.given_value(a.network.take(), vars::NETWORK) {
        let names: Vec<&str> = v.split(',').map(str::trim).collect();
        if names.iter().all(|n| *n == "none") {
            net_none = true;
        } else {
            let flag = format!("--network {v}");
            return Err(unsupported(g, &flag, NEEDS_CNI));
        }
    }
    let args = a.network_args.first().cloned();
    if let Some((g, _)) = vars.given_value(args, vars::NETWORK_ARGS) {
        return Err(unsupported(g, "--network-args", NEEDS_CNI));
    }
    if host.uid != 0 {
        for (flag, var, name, why) in [
            (a.no_privs, vars::NO_PRIVS, "--no-privs", CAPS_NEED_ROOT),
            (
                a.keep_privs,
                vars::KEEP_PRIVS,
                "--keep-privs",
                CAPS_NEED_ROOT,
            ),
            (
                a.allow_setuid,
                vars::ALLOW_SETUID,
                "--allow-setuid",
                SETUID_NEEDS_ROOT,
            ),
            (
                a.ignore_userns,
                vars::IGNORE_USERNS,
                "--ignore-userns",
                USERNS_NEEDS_ROOT,
            ),
        ] {
            if let Some(g) = vars.given_bool(flag, var) {
                return Err(unsupported(g, name, why));
            }
        }
        for (flag, var, name) in [
            (a.add_caps.clone(), vars::ADD_CAPS, "--add-caps"),
            (a.drop_caps.clone(), vars::DROP_CAPS, "--drop-caps"),
        ] {
            if let Some((g, _)) = vars.given_value(flag, var) {
                return Err(unsupported(g, name, CAPS_NEED_ROOT));
            }
        }
    }
    let security = a.security.first().cloned();
    if let Some((g, _)) = vars.given_value(security, vars::SECURITY) {
        let why = "is not implemented yet in Vessel (seccomp, AppArmor, SELinux, uid and gid)";
        return Err(unsupported(g, "--security", why));
    }
    if let Some(name) = a.cgroups.first() {
        return Err(unsupported(Given::Flag, name, NEEDS_CGROUPS));
    }
    for (var, name) in CGROUP_VARS {
        if let Some((g, _)) = vars.given_value(None, *var) {
            return Err(unsupported(g, name, NEEDS_CGROUPS));
        }
    }
    Ok(net_none)
}

/// `--env`'s value as Apptainer's (pflag's) string map reads it: one
/// `KEY=VALUE` when it holds a single `=` (commas and all), else
/// comma-separated pairs, CSV-quoted where a value holds a comma.
fn env_pairs(value: &str) -> Result<Vec<(String, String)>, OptionsError> {
    let items = match value.matches('=').count() {
        0 => return Err(OptionsError::EnvPair(value.to_string())),
        1 => vec![value.trim_matches('"').to_string()],
        _ => crate::bind::csv_fields(value)
            .map_err(|problem| OptionsError::EnvPair(format!("{value} ({problem})")))?,
    };
    items
        .into_iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if is_variable_name(k) => Ok((k.to_string(), v.to_string())),
            Some((k, _)) => Err(OptionsError::EnvName(k.to_string())),
            None => Err(OptionsError::EnvPair(kv)),
        })
        .collect()
}

/// A shell variable name: letters, digits and `_`, not starting with a
/// digit (anything else would be written into the action script).
fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Reads the variables: the persona's prefix order for Apptainer's, the
/// full name for Vessel's own and the host's.
pub struct Vars<'a> {
    pub tool: Tool,
    pub get: &'a dyn Fn(&str) -> Option<String>,
}

impl Vars<'_> {
    fn value(&self, var: EnvVar) -> Option<String> {
        lookup(self.tool, var, self.get).value.map(|v| v.value)
    }

    fn flag(&self, vars: &[EnvVar]) -> bool {
        vars.iter().any(|v| {
            self.value(*v)
                .as_deref()
                .and_then(lookup_bool)
                .unwrap_or(false)
        })
    }

    /// A comma-separated list variable, used when the flag gave none.
    fn list(&self, cli: Vec<String>, var: EnvVar) -> Vec<String> {
        if !cli.is_empty() {
            return cli;
        }
        self.value(var)
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Whether an image argument names a source to fetch (`docker://…`,
/// `oci:…`) rather than a local path.
pub fn is_source_uri(image: &str) -> bool {
    image.contains("://")
        || ["oci:", "oci-archive:", "docker-archive:", "docker-daemon:"]
            .iter()
            .any(|s| image.starts_with(s))
}

/// Decides the launch options of `verb` from `flags`, the variables and
/// `host`, with Apptainer's default site configuration. Reads the env
/// files named; touches nothing else.
pub fn resolve(
    verb: Verb,
    flags: ActionFlags,
    vars: &Vars<'_>,
    host: &Host,
) -> Result<LaunchOptions, OptionsError> {
    resolve_site(verb, flags, vars, host, &Conf::default())
}

/// [`resolve`] under the site's configuration `conf`: its default mounts
/// and GPUs, and its refusals of what it does not allow, each naming the
/// flag and the directive.
pub fn resolve_site(
    verb: Verb,
    flags: ActionFlags,
    vars: &Vars<'_>,
    host: &Host,
    conf: &Conf,
) -> Result<LaunchOptions, OptionsError> {
    let mut a = flags;
    let site = Site::from_conf(conf);
    site_refusal(&a, vars, host, conf, &site)?;
    // Docker's semantics: no shim init, no umask passed in, no evaluation
    // of arguments, a contained and writable (but discarded) root.
    let compat = a.compat || vars.flag(&[vars::COMPAT]);
    let containall = compat || a.containall || vars.flag(&[vars::CONTAINALL]);
    // --no-pid beats --pid and what implies it (--containall, --compat).
    let no_pid = a.no_pid || vars.flag(&[vars::NO_PID]);
    let pid = !no_pid && (a.pid || containall || vars.flag(&[vars::PID, vars::UNSHARE_PID]));
    let net_none = refusal(&mut a, vars, host)?;
    let ipc = a.ipc || containall || vars.flag(&[vars::IPC, vars::UNSHARE_IPC]);
    let uts = a.uts || vars.flag(&[vars::UTS, vars::UNSHARE_UTS]);
    let mut hostname = a.hostname.clone().or_else(|| vars.value(vars::HOSTNAME));
    let (mut pid, mut ipc, mut uts) = (pid, ipc, uts);
    let implied = if compat { "--compat" } else { "--containall" };
    for (on, allowed, flag, what, directive) in [
        (
            pid,
            conf.allow_pid_ns,
            if a.pid {
                "--pid"
            } else if containall {
                implied
            } else {
                "--pid (by its variable)"
            },
            "PID namespaces",
            "allow pid ns = no",
        ),
        (
            ipc,
            conf.allow_ipc_ns,
            if a.ipc {
                "--ipc"
            } else if containall {
                implied
            } else {
                "--ipc (by its variable)"
            },
            "IPC namespaces",
            "allow ipc ns = no",
        ),
        (
            uts || hostname.is_some(),
            conf.allow_uts_ns,
            if a.uts {
                "--uts"
            } else if hostname.is_some() {
                "--hostname"
            } else {
                "--uts (by its variable)"
            },
            "UTS namespaces",
            "allow uts ns = no",
        ),
    ] {
        // As Apptainer: the site's word wins and the container runs
        // without the namespace; Vessel says so.
        if on && !allowed {
            tracing::warn!(
                "{flag}: the site's {} does not allow {what} ({directive}): running without one",
                site.file
            );
        }
    }
    pid &= conf.allow_pid_ns;
    ipc &= conf.allow_ipc_ns;
    if !conf.allow_uts_ns {
        uts = false;
        hostname = None;
    }
    if let Some((g, _)) = vars.given_value(a.runscript_timeout.take(), vars::RUNSCRIPT_TIMEOUT) {
        // Apptainer's limit is on its embedded shell's evaluation of the
        // action script; Vessel's /bin/sh evaluates it and execs the
        // command: there is nothing to limit.
        let why = "has no effect: Vessel evaluates runscripts with /bin/sh, without a time limit";
        tracing::warn!("{}", unsupported(g, "--runscript-timeout", why));
    }
    let dns = dns_servers(a.dns.take(), vars)?;
    let containlibs = vars
        .list(split_commas(&a.containlibs), vars::CONTAINLIBS)
        .into_iter()
        .map(|l| absolute(Path::new(&l), &host.cwd))
        .collect();
    let root_privileges = root_privileges(&a, vars, host, conf.root_default_capabilities)?;
    let gpus = gpu_options(&a, vars, conf)?;
    // Checked in `refusal`: only root gets here with it.
    let allow_setuid = vars
        .given_bool(a.allow_setuid, vars::ALLOW_SETUID)
        .is_some();
    let mut rest = a.rest.into_iter();
    let image = rest.next().ok_or(OptionsError::NoImage)?;
    let args: Vec<OsString> = rest.collect();
    let action = match verb {
        Verb::Exec if args.is_empty() => return Err(OptionsError::NoCommand),
        Verb::Exec => Action::Exec(args),
        Verb::Run => Action::Run(args),
        Verb::Test => Action::Test(args),
        Verb::Shell(shell) => {
            if !args.is_empty() {
                tracing::warn!("shell takes no arguments after the image: ignoring them");
            }
            Action::Shell(shell.or_else(|| vars.value(vars::SHELL)))
        }
    };
    let image = match image.to_str() {
        Some(uri) if is_source_uri(uri) => PathBuf::from(uri),
        _ => absolute(Path::new(&image), &host.cwd),
    };

    let mut binds = Vec::new();
    for spec in a
        .bind
        .iter()
        .cloned()
        .chain(vars.value(vars::BIND))
        .chain(vars.value(vars::BINDPATH))
    {
        binds.extend(parse_binds(&spec, &host.cwd)?);
    }
    for spec in a.mount.iter().cloned().chain(vars.value(vars::MOUNT)) {
        binds.push(parse_mount(&spec, &host.cwd)?);
    }
    let home = match a.home.or_else(|| vars.value(vars::HOME)) {
        Some(spec) => {
            let (src, dst) = spec.split_once(':').unwrap_or((&spec, &spec));
            let (src, dst) = (absolute(Path::new(src), &host.cwd), PathBuf::from(dst));
            if !dst.is_absolute() {
                return Err(OptionsError::HomeNotAbsolute(spec));
            }
            Some((src, dst))
        }
        None => None,
    };
    let files = if a.env_file.is_empty() {
        vars.list(Vec::new(), vars::ENV_FILE)
            .into_iter()
            .map(PathBuf::from)
            .collect()
    } else {
        a.env_file
    };
    let mut env_files = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(|source| OptionsError::EnvFileRead {
            path: f.clone(),
            source,
        })?;
        crate::env::parse_env_file(&text).map_err(|problem| OptionsError::EnvFile {
            path: f.clone(),
            problem,
        })?;
        env_files.push((f, text));
    }
    let mut env = Vec::new();
    for kv in &a.env {
        env.extend(env_pairs(kv)?);
    }
    let overlays = a
        .overlay
        .iter()
        .cloned()
        .chain(
            vars.value(vars::OVERLAY)
                .into_iter()
                .flat_map(|v| v.split(',').map(String::from).collect::<Vec<_>>()),
        )
        .map(|spec| {
            let (dir, readonly) = match spec.strip_suffix(":ro") {
                Some(d) => (d.to_string(), true),
                None => (spec.strip_suffix(":rw").unwrap_or(&spec).to_string(), false),
            };
            let path = absolute(Path::new(&dir), &host.cwd);
            if !path.exists() {
                return Err(OptionsError::OverlayMissing(
                    path,
                    vessel_sys::Hint::new(
                        "make a directory for it, or an image with `vessel overlay create FILE`",
                    ),
                ));
            }
            Ok(OverlaySpec { path, readonly })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let cwd = a
        .cwd
        .or_else(|| vars.value(vars::CWD).map(PathBuf::from))
        .or_else(|| vars.value(vars::PWD).map(PathBuf::from))
        .or_else(|| vars.value(vars::TARGET_PWD).map(PathBuf::from));
    if let Some(c) = &cwd {
        if !c.is_absolute() {
            return Err(OptionsError::CwdNotAbsolute(c.clone()));
        }
    }
    let driver = if a.unsquash || vars.flag(&[vars::UNSQUASH]) {
        Driver::Extract
    } else {
        match (vars.get)(vessel_vars::IMAGE_DRIVER.name) {
            Some(v) => Driver::parse(&v).ok_or_else(|| {
                OptionsError::Driver(v, vessel_sys::Hint::new("use auto, fuse or extract"))
            })?,
            // Checked when the configuration was read.
            None => conf
                .image_driver
                .as_deref()
                .and_then(Driver::parse)
                .unwrap_or_default(),
        }
    };
    let (extract_dir, extract_fallback, extract_max_bytes) = extract_settings(vars, host, conf);
    let writable = a.writable || vars.flag(&[vars::WRITABLE]);
    // nvidia-container-cli writes into the root: a writable (discarded)
    // layer unless the root is writable already, as Apptainer does.
    let nvccli_layer = gpus.nvccli && !writable && !overlays.iter().any(|o| !o.readonly);
    let writable_tmpfs =
        compat || a.writable_tmpfs || vars.flag(&[vars::WRITABLE_TMPFS]) || nvccli_layer;
    let max = conf.sessiondir_max_mib;
    let tmpfs_size_mib = match a.writable_tmpfs_size {
        Some(size) if size > max && writable_tmpfs => {
            return Err(OptionsError::TmpfsSize {
                flag: "--writable-tmpfs-size",
                size,
                max,
                file: site.file.clone(),
            })
        }
        Some(size) => size,
        // Apptainer's writable tmpfs is the session, of this size.
        None => max,
    };
    if conf.overlay_disabled {
        let asked = if !overlays.is_empty() {
            Some("--overlay")
        } else if writable_tmpfs {
            Some(if compat {
                "--compat"
            } else {
                "--writable-tmpfs"
            })
        } else {
            None
        };
        if let Some(flag) = asked {
            return Err(site
                .refuse(Some(flag), "overlays", "enable overlay = no")
                .into());
        }
    }
    Ok(LaunchOptions {
        image,
        action: Some(action),
        app: a.app.or_else(|| vars.value(vars::APP)),
        binds,
        contain: a.contain || containall || vars.flag(&[vars::CONTAIN]),
        no_home: a.no_home || vars.flag(&[vars::NO_HOME]),
        home,
        no_mount: vars.list(a.no_mount, vars::NO_MOUNT),
        scratch: vars
            .list(
                a.scratch
                    .iter()
                    .map(|p| p.to_string_lossy().into_owned())
                    .collect(),
                vars::SCRATCH,
            )
            .into_iter()
            .chain(vars.value(vars::SCRATCHDIR))
            .map(PathBuf::from)
            .collect(),
        workdir: a
            .workdir
            .or_else(|| vars.value(vars::WORKDIR).map(PathBuf::from))
            .map(|w| absolute(&w, &host.cwd)),
        cwd,
        writable,
        writable_tmpfs,
        tmpfs_size_mib,
        overlays,
        underlay: a.underlay || vars.flag(&[vars::UNDERLAY]),
        sharens: a.sharens || vars.flag(&[vars::SHARENS]),
        pid,
        ipc,
        uts,
        net: a.net || net_none || vars.flag(&[vars::NET, vars::UNSHARE_NET]),
        hostname,
        cleanenv: a.cleanenv || containall || vars.flag(&[vars::CLEANENV]),
        no_env: vars.list(a.no_env, vars::NOENV),
        env_files,
        env,
        no_eval: compat || a.no_eval || vars.flag(&[vars::NO_EVAL]),
        no_init: compat || a.no_init || vars.flag(&[vars::NOSHIMINIT]),
        no_umask: compat || a.no_umask || vars.flag(&[vars::NO_UMASK]),
        fakeroot: a.fakeroot || vars.flag(&[vars::FAKEROOT]),
        ignore_subuid: a.ignore_subuid || vars.flag(&[vars::IGNORE_SUBUID]),
        dns,
        containlibs,
        gpus,
        root_privileges,
        allow_setuid,
        driver,
        extract_dir,
        extract_fallback,
        extract_max_bytes,
        product: vars.tool.product().to_string(),
        site,
    })
}

/// What the site's configuration refuses before anything else is decided:
/// any container for users when user namespaces are not allowed, and the
/// user's own binds without `user bind control`.
fn site_refusal(
    a: &ActionFlags,
    vars: &Vars<'_>,
    host: &Host,
    conf: &Conf,
    site: &Site,
) -> Result<(), OptionsError> {
    if !conf.allow_user_ns && host.uid != 0 {
        let what = "user namespaces, which Vessel needs to run a container for a user other than root (it has no setuid starter)";
        return Err(site.refuse(None, what, "allow user ns = no").into());
    }
    if conf.user_bind_control {
        return Ok(());
    }
    let by_var = |var: EnvVar| lookup(vars.tool, var, vars.get).value.map(|f| f.name);
    let asked = [
        (!a.bind.is_empty()).then(|| "-B/--bind".to_string()),
        by_var(vars::BIND),
        by_var(vars::BINDPATH),
        (!a.mount.is_empty()).then(|| "--mount".to_string()),
        by_var(vars::MOUNT),
        a.home
            .as_ref()
            .filter(|h| h.contains(':'))
            .map(|_| "--home SRC:DST".to_string()),
        (!a.scratch.is_empty()).then(|| "--scratch".to_string()),
        a.workdir.as_ref().map(|_| "--workdir".to_string()),
        (!a.containlibs.is_empty()).then(|| "--containlibs".to_string()),
    ];
    match asked.into_iter().flatten().next() {
        Some(flag) => Err(site
            .refuse(Some(&flag), "user binds", "user bind control = no")
            .into()),
        None => Ok(()),
    }
}

/// `--nv`, `--rocm` (each switched off by `--no-nv`/`--no-rocm`, which
/// override the site's `always use` settings), `--compat32`, and CDI
/// `--device`s with `--cdi-dirs`.
fn gpu_options(a: &ActionFlags, vars: &Vars<'_>, conf: &Conf) -> Result<GpuOptions, OptionsError> {
    let nv_off = a.no_nv || vars.flag(&[vars::NV_OFF, vars::NO_NV]);
    let rocm_off = a.no_rocm || vars.flag(&[vars::ROCM_OFF, vars::NO_ROCM]);
    let nv = !nv_off && (a.nv || conf.always_use_nv || vars.flag(&[vars::NV]));
    // --nvccli implies --nv; with --nv, the site can ask for it.
    let nvccli = !nv_off
        && (a.nvccli || vars.flag(&[vars::NVCCLI]) || (nv && conf.use_nvidia_container_cli));
    let nv = nv || nvccli;
    let rocm = !rocm_off && (a.rocm || conf.always_use_rocm || vars.flag(&[vars::ROCM]));
    let compat32 = vars.given_bool(a.compat32, vars::COMPAT32);
    let compat32_given = compat32.is_some();
    if let Some(g) = compat32.filter(|_| !nv && !rocm) {
        let why = "needs --nv or --rocm: it adds their 32-bit libraries";
        return Err(unsupported(g, "--compat32", why));
    }
    let cdi_dirs = split_commas(&a.cdi_dirs);
    let cdi_dirs = if cdi_dirs.is_empty() {
        crate::gpu::cdi::DEFAULT_DIRS
            .iter()
            .map(PathBuf::from)
            .collect()
    } else {
        cdi_dirs.into_iter().map(PathBuf::from).collect()
    };
    Ok(GpuOptions {
        nv,
        nvccli,
        rocm,
        compat32: compat32_given,
        devices: split_commas(&a.device),
        cdi_dirs,
    })
}

/// A list flag's values, each of which may hold several, comma-separated
/// (pflag's string slices).
fn split_commas(values: &[String]) -> Vec<String> {
    values
        .iter()
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect()
}

/// `--dns IP[,IP...]` (or its variable): the name servers, checked.
fn dns_servers(flag: Option<String>, vars: &Vars<'_>) -> Result<Vec<IpAddr>, OptionsError> {
    let Some((_, value)) = vars.given_value(flag, vars::DNS) else {
        return Ok(Vec::new());
    };
    split_commas(&[value])
        .into_iter()
        .map(|ip| ip.parse().map_err(|_| OptionsError::Dns(ip)))
        .collect()
}

/// `--add-caps`/`--drop-caps` values as Apptainer reads them:
/// comma-separated, any case, with or without `CAP_`, or `all`.
fn capabilities(flag: &'static str, value: &str) -> Result<Vec<Capability>, OptionsError> {
    let mut out = Vec::new();
    for name in split_commas(&[value.to_string()]) {
        if name.eq_ignore_ascii_case("all") || name.eq_ignore_ascii_case("cap_all") {
            return Ok(caps::all());
        }
        match caps::by_name(&name) {
            Some(c) => out.push(c),
            None => return Err(OptionsError::Capability { flag, name }),
        }
    }
    Ok(out)
}

/// Real root's capabilities in the container, as Apptainer decides them:
/// the site's `root default capabilities` (`full`: all of them; `file`,
/// which `capability.json` would fill, and `no`: none), all with
/// `--keep-privs`, none with `--no-privs` (which beats `--keep-privs`),
/// then `--add-caps` added and `--drop-caps` taken away. `None` for other
/// users (refused in [`refusal`] if they asked).
fn root_privileges(
    a: &ActionFlags,
    vars: &Vars<'_>,
    host: &Host,
    default: RootCapabilities,
) -> Result<Option<RootPrivileges>, OptionsError> {
    if host.uid != 0 {
        return Ok(None);
    }
    let no_privs = vars.given_bool(a.no_privs, vars::NO_PRIVS).is_some();
    let keep_privs = vars.given_bool(a.keep_privs, vars::KEEP_PRIVS).is_some();
    let full = keep_privs || default == RootCapabilities::Full;
    let mut keep = if no_privs || !full {
        Vec::new()
    } else {
        caps::all()
    };
    if let Some((_, v)) = vars.given_value(a.add_caps.clone(), vars::ADD_CAPS) {
        keep.extend(capabilities("--add-caps", &v)?);
    }
    if let Some((_, v)) = vars.given_value(a.drop_caps.clone(), vars::DROP_CAPS) {
        let drop = capabilities("--drop-caps", &v)?;
        keep.retain(|c| !drop.contains(c));
    }
    keep.sort_by_key(|c| c.index());
    keep.dedup();
    Ok(Some(RootPrivileges {
        keep,
        no_new_privs: no_privs,
    }))
}

/// The node-local cache for extracted images: `VESSEL_EXTRACT_DIR`, else
/// `/var/tmp/vessel-UID/extract` (kept across jobs, unlike a job's
/// `$TMPDIR`), bounded by `VESSEL_EXTRACT_MAX_GIB` (default 20). When
/// another user took the default place first, the cache falls back to the
/// user's home (`~/.apptainer/cache/vessel/extract`); a directory the user
/// named is used or refused, never replaced.
pub fn extract_settings(
    vars: &Vars<'_>,
    host: &Host,
    conf: &Conf,
) -> (PathBuf, Option<PathBuf>, u64) {
    let named = (vars.get)(vessel_vars::EXTRACT_DIR.name)
        .filter(|d| !d.is_empty())
        .map(|d| absolute(Path::new(&d), &host.cwd))
        .or_else(|| conf.extract_cache_dir.clone());
    let fallback = named
        .is_none()
        .then(|| host.home.join(".apptainer/cache/vessel/extract"));
    let dir = named.unwrap_or_else(|| {
        let var_tmp = Path::new("/var/tmp");
        let base = if var_tmp.is_dir() {
            var_tmp.to_path_buf()
        } else {
            host.tmpdir.clone()
        };
        base.join(format!("vessel-{}", host.uid)).join("extract")
    });
    let gib = (vars.get)(vessel_vars::EXTRACT_MAX_GIB.name)
        .and_then(|v| v.parse::<u64>().ok())
        .or(conf.extract_cache_max_gib)
        .unwrap_or(20);
    (dir, fallback, gib << 30)
}

fn absolute(p: &Path, cwd: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        cwd.join(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> Host {
        Host {
            cwd: "/work".into(),
            ..Host::for_tests()
        }
    }

    fn flags(rest: &[&str]) -> ActionFlags {
        ActionFlags {
            rest: rest.iter().map(OsString::from).collect(),
            ..ActionFlags::default()
        }
    }

    /// Resolves `exec img.sif true` with `f` changed and the variables of
    /// `env`, as the `tool` persona.
    fn resolve_with(
        tool: Tool,
        env: &[(&str, &str)],
        f: impl FnOnce(&mut ActionFlags),
    ) -> Result<LaunchOptions, OptionsError> {
        resolve_as(1000, tool, env, f)
    }

    /// [`resolve_with`] for the user `uid`.
    fn resolve_as(
        uid: u32,
        tool: Tool,
        env: &[(&str, &str)],
        f: impl FnOnce(&mut ActionFlags),
    ) -> Result<LaunchOptions, OptionsError> {
        let mut a = flags(&["img.sif", "true"]);
        f(&mut a);
        let table: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let get = move |k: &str| table.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let host = Host { uid, ..host() };
        resolve(Verb::Exec, a, &Vars { tool, get: &get }, &host)
    }

    fn opts(env: &[(&str, &str)], f: impl FnOnce(&mut ActionFlags)) -> LaunchOptions {
        resolve_with(Tool::Apptainer, env, f).unwrap()
    }

    /// Resolves `exec img.sif true` with `f` changed, for user `uid`,
    /// under the site configuration `text`.
    fn under_site(
        text: &str,
        uid: u32,
        f: impl FnOnce(&mut ActionFlags),
    ) -> Result<LaunchOptions, String> {
        let conf = Conf::parse(text, Path::new("/etc/vessel/vessel.conf")).unwrap();
        let mut a = flags(&["img.sif", "true"]);
        f(&mut a);
        let vars = Vars {
            tool: Tool::Apptainer,
            get: &|k| (k == "APPTAINER_BIND" && uid == 7).then(|| "/v".to_string()),
        };
        let host = Host { uid, ..host() };
        resolve_site(Verb::Exec, a, &vars, &host, &conf).map_err(|e| e.to_string())
    }

    #[test]
    fn the_sites_refusals_name_the_flag_and_the_directive() {
        let refused = |text: &str, uid: u32, f: fn(&mut ActionFlags), want: &str| {
            let err = under_site(text, uid, f).unwrap_err();
            assert!(err.contains(want), "{text}: {err}");
            assert!(
                err.contains("the site's /etc/vessel/vessel.conf does not allow"),
                "{err}"
            );
        };
        let ubc = "user bind control = no";
        refused(ubc, 1000, |a| a.bind = vec!["/a".into()], "-B/--bind: ");
        refused(
            ubc,
            1000,
            |a| a.mount = vec!["type=bind,src=/a,dst=/b".into()],
            "--mount: ",
        );
        refused(
            ubc,
            1000,
            |a| a.home = Some("/h:/home/x".into()),
            "--home SRC:DST: ",
        );
        refused(ubc, 1000, |a| a.workdir = Some("/w".into()), "--workdir: ");
        refused(ubc, 7, |_| {}, "APPTAINER_BIND: ");
        assert!(under_site(ubc, 1000, |a| a.home = Some("/h".into())).is_ok());
        // Namespaces the site forbids are left out, as Apptainer does.
        let ns = "allow pid ns = no\nallow ipc ns = no\nallow uts ns = no";
        for set in [
            (|a: &mut ActionFlags| a.pid = true) as fn(&mut ActionFlags),
            |a| a.containall = true,
            |a| a.compat = true,
            |a| a.ipc = true,
            |a| a.hostname = Some("h".into()),
        ] {
            let o = under_site(ns, 1000, set).unwrap();
            assert!(!o.pid && !o.ipc && !o.uts && o.hostname.is_none());
        }
        refused("allow user ns = no", 1000, |_| {}, "user namespaces");
        assert!(under_site("allow user ns = no", 0, |_| {}).is_ok());
        let ov = "enable overlay = no";
        refused(ov, 1000, |a| a.writable_tmpfs = true, "--writable-tmpfs: ");
        refused(ov, 1000, |a| a.overlay = vec!["/".into()], "--overlay: ");
    }

    #[test]
    fn the_sites_settings() {
        // The writable tmpfs is the site's session size unless asked.
        let o = under_site("sessiondir max size = 32", 1000, |a| {
            a.writable_tmpfs = true
        })
        .unwrap();
        assert_eq!(o.tmpfs_size_mib, 32);
        assert_eq!(opts(&[], |_| {}).tmpfs_size_mib, 64);
        let err = under_site("sessiondir max size = 32", 1000, |a| {
            a.writable_tmpfs = true;
            a.writable_tmpfs_size = Some(48);
        })
        .unwrap_err();
        assert!(err.contains("--writable-tmpfs-size 48: the site's /etc/vessel/vessel.conf allows at most 32 MiB"), "{err}");
        // always use nv|rocm, unless --no-nv|--no-rocm.
        let o = under_site("always use nv = yes\nalways use rocm = yes", 1000, |_| {}).unwrap();
        assert!(o.gpus.nv && o.gpus.rocm);
        let o = under_site("always use nv = yes", 1000, |a| a.no_nv = true).unwrap();
        assert!(!o.gpus.nv);
        // root default capabilities, and --keep-privs over it.
        let caps = |text: &str, keep: bool| {
            under_site(text, 0, |a| a.keep_privs = keep)
                .unwrap()
                .root_privileges
                .unwrap()
                .keep
                .len()
        };
        assert_eq!(caps("", false), caps::all().len());
        assert_eq!(caps("root default capabilities = no", false), 0);
        assert_eq!(caps("root default capabilities = file", false), 0);
        assert_eq!(
            caps("root default capabilities = no", true),
            caps::all().len()
        );
        // Vessel's own keys, under their variables.
        let o = under_site(
            "image driver = extract\nextract cache dir = /scratch/x\nextract cache max size = 3",
            1000,
            |_| {},
        )
        .unwrap();
        assert_eq!(o.driver, Driver::Extract);
        assert_eq!(o.extract_dir, PathBuf::from("/scratch/x"));
        assert_eq!(o.extract_max_bytes, 3 << 30);
        let o = under_site("mount home = no\nbind path = /data", 1000, |_| {}).unwrap();
        assert!(!o.site.home && o.site.binds.len() == 1);
        assert_eq!(o.site.file, "/etc/vessel/vessel.conf");
    }

    #[test]
    fn each_boolean_flag_and_its_variables() {
        type Get = fn(&LaunchOptions) -> bool;
        type Set = fn(&mut ActionFlags);
        let table: &[(Set, &[&str], Get)] = &[
            (|a| a.contain = true, &["CONTAIN"], |o| o.contain),
            (|a| a.cleanenv = true, &["CLEANENV"], |o| o.cleanenv),
            (|a| a.no_home = true, &["NO_HOME"], |o| o.no_home),
            (|a| a.no_eval = true, &["NO_EVAL"], |o| o.no_eval),
            (|a| a.writable = true, &["WRITABLE"], |o| o.writable),
            (
                |a| a.writable_tmpfs = true,
                &["WRITABLE_TMPFS"],
                |o| o.writable_tmpfs,
            ),
            (|a| a.pid = true, &["PID", "UNSHARE_PID"], |o| o.pid),
            (|a| a.ipc = true, &["IPC", "UNSHARE_IPC"], |o| o.ipc),
            (|a| a.uts = true, &["UTS", "UNSHARE_UTS"], |o| o.uts),
            (|a| a.net = true, &["NET", "UNSHARE_NET"], |o| o.net),
            (|a| a.fakeroot = true, &["FAKEROOT"], |o| o.fakeroot),
            (
                |a| a.unsquash = true,
                &["UNSQUASH"],
                |o| o.driver == Driver::Extract,
            ),
        ];
        for (set, keys, get) in table {
            assert!(!get(&opts(&[], |_| {})));
            assert!(get(&opts(&[], set)));
            for key in *keys {
                for prefix in ["APPTAINER_", "SINGULARITY_"] {
                    let name = format!("{prefix}{key}");
                    assert!(get(&opts(&[(&name, "1")], |_| {})), "{name}=1");
                    assert!(!get(&opts(&[(&name, "0")], |_| {})), "{name}=0");
                }
            }
        }
    }

    #[test]
    fn containall_implies_contain_pid_ipc_and_cleanenv() {
        for o in [
            opts(&[], |a| a.containall = true),
            opts(&[("APPTAINER_CONTAINALL", "true")], |_| {}),
        ] {
            assert!(o.contain && o.pid && o.ipc && o.cleanenv);
            assert!(!o.net && !o.uts);
        }
    }

    #[test]
    fn value_flags_and_their_variables() {
        let o = opts(
            &[
                ("APPTAINER_HOSTNAME", "node"),
                ("APPTAINER_APP", "tool"),
                ("APPTAINER_WORKDIR", "scratch"),
                ("APPTAINER_CWD", "/data"),
                ("APPTAINER_HOME", "/h:/home/x"),
                ("APPTAINER_NO_MOUNT", "tmp, home"),
                ("APPTAINER_NOENV", "A,B"),
                ("APPTAINER_SCRATCH", "/s1,/s2"),
                ("APPTAINER_SCRATCHDIR", "/s3"),
            ],
            |_| {},
        );
        assert_eq!(o.hostname.as_deref(), Some("node"));
        assert_eq!(o.app.as_deref(), Some("tool"));
        assert_eq!(o.workdir, Some(PathBuf::from("/work/scratch")));
        assert_eq!(o.cwd, Some(PathBuf::from("/data")));
        assert_eq!(o.home, Some(("/h".into(), "/home/x".into())));
        assert_eq!(o.no_mount, ["tmp", "home"]);
        assert_eq!(o.no_env, ["A", "B"]);
        assert_eq!(
            o.scratch,
            [PathBuf::from("/s1"), "/s2".into(), "/s3".into()]
        );
        // A flag wins over its variable.
        let o = opts(
            &[
                ("APPTAINER_HOSTNAME", "node"),
                ("APPTAINER_NO_MOUNT", "tmp"),
            ],
            |a| {
                a.hostname = Some("flag".into());
                a.no_mount = vec!["sys".into()];
                a.cwd = Some("/flag".into());
            },
        );
        assert_eq!(o.hostname.as_deref(), Some("flag"));
        assert_eq!(o.no_mount, ["sys"]);
        assert_eq!(o.cwd, Some(PathBuf::from("/flag")));
        // --pwd's variables, in order.
        let o = opts(
            &[("APPTAINER_PWD", "/p"), ("APPTAINER_TARGET_PWD", "/t")],
            |_| {},
        );
        assert_eq!(o.cwd, Some(PathBuf::from("/p")));
    }

    #[test]
    fn binds_from_flags_and_variables_add_up() {
        let o = opts(
            &[("APPTAINER_BIND", "/b"), ("APPTAINER_BINDPATH", "/c:/d:ro")],
            |a| {
                a.bind = vec!["/a".into()];
                a.mount = vec!["type=bind,src=/e,dst=/f".into()];
            },
        );
        let srcs: Vec<_> = o.binds.iter().map(|b| b.src.clone()).collect();
        assert_eq!(
            srcs,
            [PathBuf::from("/a"), "/b".into(), "/c".into(), "/e".into()]
        );
    }

    #[test]
    fn prefixes_follow_the_persona() {
        let env = [
            ("APPTAINER_HOSTNAME", "apptainer"),
            ("SINGULARITY_HOSTNAME", "singularity"),
        ];
        let name = |tool| resolve_with(tool, &env, |_| {}).unwrap().hostname.unwrap();
        assert_eq!(name(Tool::Apptainer), "apptainer");
        assert_eq!(name(Tool::Vessel), "apptainer");
        assert_eq!(name(Tool::Singularity), "singularity");
    }

    #[test]
    fn vessel_variables() {
        assert_eq!(opts(&[], |_| {}).driver, Driver::Auto);
        let o = opts(&[("VESSEL_IMAGE_DRIVER", "fuse")], |_| {});
        assert_eq!(o.driver, Driver::Fuse);
        let err = resolve_with(Tool::Vessel, &[("VESSEL_IMAGE_DRIVER", "x")], |_| {});
        assert!(matches!(err, Err(OptionsError::Driver(..))));
        let o = opts(&[], |_| {});
        assert_eq!(o.extract_dir, PathBuf::from("/var/tmp/vessel-1000/extract"));
        assert_eq!(
            o.extract_fallback,
            Some(PathBuf::from("/home/u/.apptainer/cache/vessel/extract"))
        );
        assert_eq!(o.extract_max_bytes, 20 << 30);
        let o = opts(
            &[
                ("VESSEL_EXTRACT_DIR", "cache"),
                ("VESSEL_EXTRACT_MAX_GIB", "2"),
            ],
            |_| {},
        );
        assert_eq!(o.extract_dir, PathBuf::from("/work/cache"));
        assert_eq!(o.extract_fallback, None);
        assert_eq!(o.extract_max_bytes, 2 << 30);
    }

    #[test]
    fn images_actions_and_refusals() {
        let o = opts(&[], |_| {});
        assert_eq!(o.image, PathBuf::from("/work/img.sif"));
        assert_eq!(o.product, "Apptainer");
        let o = opts(&[], |a| {
            a.rest = vec!["docker://alpine".into(), "id".into()]
        });
        assert_eq!(o.image, PathBuf::from("docker://alpine"));
        let err = |f: fn(&mut ActionFlags)| resolve_with(Tool::Vessel, &[], f).unwrap_err();
        assert!(matches!(
            err(|a| a.rest.truncate(1)),
            OptionsError::NoCommand
        ));
        assert!(matches!(err(|a| a.rest.clear()), OptionsError::NoImage));
        assert!(matches!(
            err(|a| a.env = vec!["novalue".into()]),
            OptionsError::EnvPair(_)
        ));
        assert!(matches!(
            err(|a| a.home = Some("/h:rel".into())),
            OptionsError::HomeNotAbsolute(_)
        ));
        assert!(matches!(
            err(|a| a.cwd = Some("rel".into())),
            OptionsError::CwdNotAbsolute(_)
        ));
        assert!(matches!(
            err(|a| a.overlay = vec!["/nonexistent-overlay".into()]),
            OptionsError::OverlayMissing(..)
        ));
        let shell = resolve(
            Verb::Shell(None),
            flags(&["img.sif"]),
            &Vars {
                tool: Tool::Apptainer,
                get: &|k| (k == "APPTAINER_SHELL").then(|| "/bin/zsh".to_string()),
            },
            &host(),
        )
        .unwrap();
        assert_eq!(shell.action, Some(Action::Shell(Some("/bin/zsh".into()))));
    }

    /// The refused error's message, or `None` when the settings resolve.
    fn refused(uid: u32, env: &[(&str, &str)], f: impl FnOnce(&mut ActionFlags)) -> Option<String> {
        match resolve_as(uid, Tool::Apptainer, env, f) {
            Ok(_) => None,
            Err(e @ OptionsError::Unsupported { .. }) => Some(e.to_string()),
            Err(e) => panic!("unexpected error: {e}"),
        }
    }

    #[test]
    fn each_refused_flag_is_named_with_why() {
        type Set = fn(&mut ActionFlags);
        let table: &[(Set, &str)] = &[
            (
                |a| a.network = Some("bridge".into()),
                "--network bridge needs CNI and root",
            ),
            (
                |a| a.network = Some("none,bridge".into()),
                "--network none,bridge needs CNI and root",
            ),
            (
                |a| a.network_args = vec!["portmap=80:80/tcp".into()],
                "--network-args needs CNI and root",
            ),
            (|a| a.no_privs = true, "--no-privs needs root"),
            (|a| a.keep_privs = true, "--keep-privs needs root"),
            (
                |a| a.add_caps = Some("CAP_NET_RAW".into()),
                "--add-caps needs root",
            ),
            (
                |a| a.drop_caps = Some("all".into()),
                "--drop-caps needs root",
            ),
            (
                |a| a.security = vec!["seccomp:p.json".into()],
                "--security is not implemented",
            ),
            (|a| a.cgroups = vec!["--memory"], "--memory needs cgroups"),
            (|a| a.cgroups = vec!["--cpus"], "--cpus needs cgroups"),
            (|a| a.allow_setuid = true, "--allow-setuid needs root"),
            (|a| a.ignore_userns = true, "--ignore-userns needs root"),
            (
                |a| a.compat32 = true,
                "--compat32 needs --nv or --rocm: it adds their 32-bit libraries",
            ),
            (
                |a| a.fusemount = vec!["host:sshfs x: /m".into()],
                "--fusemount is not supported",
            ),
            (|a| a.intel_hpu = true, "--intel-hpu is not supported"),
            (
                |a| a.netns_path = Some("/run/netns/x".into()),
                "--netns-path is not supported",
            ),
            (
                |a| a.passphrase = true,
                "--passphrase is not supported: Vessel does not make or run encrypted images",
            ),
            (
                |a| a.pem_path = Some("k.pem".into()),
                "--pem-path is not supported: Vessel does not make or run encrypted images",
            ),
            (
                |a| a.docker_host = Some("unix:///d.sock".into()),
                "--docker-host is not supported: Vessel does not talk to Docker daemons",
            ),
        ];
        for (set, want) in table {
            let got = refused(1000, &[], set).unwrap_or_default();
            assert!(got.starts_with(want), "{got:?} should start with {want:?}");
        }
        // Root may use the root-only ones.
        type Root = fn(&mut ActionFlags);
        let root: &[Root] = &[
            |a| a.keep_privs = true,
            |a| a.no_privs = true,
            |a| a.add_caps = Some("net_raw".into()),
            |a| a.drop_caps = Some("all".into()),
            |a| a.allow_setuid = true,
            |a| a.ignore_userns = true,
        ];
        for set in root {
            assert_eq!(refused(0, &[], set), None);
        }
    }

    #[test]
    fn each_refused_variable_is_named() {
        let table: &[(&str, &str, &str)] = &[
            (
                "APPTAINER_NETWORK",
                "bridge",
                "(like --network bridge) needs CNI",
            ),
            (
                "APPTAINER_NETWORK_ARGS",
                "IP=10.0.0.2",
                "(like --network-args)",
            ),
            ("APPTAINER_NO_PRIVS", "1", "(like --no-privs) needs root"),
            (
                "APPTAINER_KEEP_PRIVS",
                "1",
                "(like --keep-privs) needs root",
            ),
            (
                "APPTAINER_ADD_CAPS",
                "CAP_X",
                "(like --add-caps) needs root",
            ),
            (
                "APPTAINER_DROP_CAPS",
                "CAP_X",
                "(like --drop-caps) needs root",
            ),
            ("APPTAINER_SECURITY", "uid:0", "(like --security)"),
            (
                "APPTAINER_APPLY_CGROUPS",
                "c.toml",
                "(like --apply-cgroups)",
            ),
            (
                "APPTAINER_CPU_SHARES",
                "2",
                "APPTAINER_CPU_SHARES (like --cpus)",
            ),
            ("APPTAINER_MEMORY", "1G", "(like --memory) needs cgroups"),
            ("APPTAINER_PIDS_LIMIT", "10", "(like --pids-limit)"),
            (
                "APPTAINER_OOM_KILL_DISABLE",
                "1",
                "(like --oom-kill-disable)",
            ),
            (
                "APPTAINER_ALLOW_SETUID",
                "1",
                "(like --allow-setuid) needs root",
            ),
            (
                "SINGULARITY_IGNORE_USERNS",
                "true",
                "SINGULARITY_IGNORE_USERNS (like --ignore-userns) needs root",
            ),
            (
                "APPTAINER_COMPAT32",
                "1",
                "(like --compat32) needs --nv or --rocm",
            ),
            ("SINGULARITY_FUSESPEC", "host:x /m", "(like --fusemount)"),
            ("APPTAINER_INTEL_HPU", "1", "(like --intel-hpu)"),
            (
                "APPTAINER_NETNS_PATH",
                "/run/netns/x",
                "(like --netns-path)",
            ),
            (
                "APPTAINER_DOCKER_HOST",
                "unix:///d.sock",
                "(like --docker-host)",
            ),
        ];
        for (name, value, want) in table {
            let got = refused(1000, &[(name, value)], |_| {}).unwrap_or_default();
            assert!(got.contains(want), "{name}={value}: {got:?} lacks {want:?}");
        }
        // False booleans and empty values are not set.
        for (name, value) in [("APPTAINER_NV", "0"), ("APPTAINER_MEMORY", "")] {
            assert_eq!(refused(1000, &[(name, value)], |_| {}), None, "{name}");
        }
        // Docker's own DOCKER_HOST is not Apptainer's setting.
        assert_eq!(
            refused(1000, &[("DOCKER_HOST", "tcp://d:2375")], |_| {}),
            None
        );
    }

    #[test]
    fn dns_servers_from_the_flag_or_its_variables() {
        let ips = |v: &[&str]| -> Vec<IpAddr> { v.iter().map(|i| i.parse().unwrap()).collect() };
        assert!(opts(&[], |_| {}).dns.is_empty());
        let o = opts(&[], |a| a.dns = Some("10.0.0.2, 1.1.1.1,,fd00::1".into()));
        assert_eq!(o.dns, ips(&["10.0.0.2", "1.1.1.1", "fd00::1"]));
        for prefix in ["APPTAINER_", "SINGULARITY_"] {
            let o = opts(&[(&format!("{prefix}DNS"), "9.9.9.9")], |_| {});
            assert_eq!(o.dns, ips(&["9.9.9.9"]), "{prefix}DNS");
        }
        // The flag wins over the variable.
        let o = opts(&[("APPTAINER_DNS", "9.9.9.9")], |a| {
            a.dns = Some("8.8.8.8".into())
        });
        assert_eq!(o.dns, ips(&["8.8.8.8"]));
        let err = resolve_with(Tool::Vessel, &[], |a| {
            a.dns = Some("1.1.1.1,dns.example".into())
        });
        let err = err.unwrap_err().to_string();
        assert!(
            err.starts_with("--dns \"dns.example\": not an IP address"),
            "{err}"
        );
    }

    #[test]
    fn containlibs_from_the_flag_or_its_variables() {
        let o = opts(&[], |a| {
            a.containlibs = vec!["/l/a.so,lib/b.so".into(), "/l/c.so".into()]
        });
        let want: Vec<PathBuf> = vec!["/l/a.so".into(), "/work/lib/b.so".into(), "/l/c.so".into()];
        assert_eq!(o.containlibs, want);
        for prefix in ["APPTAINER_", "SINGULARITY_"] {
            let o = opts(
                &[(&format!("{prefix}CONTAINLIBS"), "/l/a.so,/l/b.so")],
                |_| {},
            );
            assert_eq!(o.containlibs, [PathBuf::from("/l/a.so"), "/l/b.so".into()]);
        }
        let o = opts(&[("APPTAINER_CONTAINLIBS", "/l/v.so")], |a| {
            a.containlibs = vec!["/l/f.so".into()]
        });
        assert_eq!(o.containlibs, [PathBuf::from("/l/f.so")]);
    }

    /// Resolves as root with `env`, `f` changed.
    fn as_root(env: &[(&str, &str)], f: impl FnOnce(&mut ActionFlags)) -> LaunchOptions {
        resolve_as(0, Tool::Apptainer, env, f).unwrap()
    }

    #[test]
    fn roots_capabilities() {
        use Capability as C;
        let privs = |o: LaunchOptions| o.root_privileges.unwrap();
        // Other users: none decided (the user namespace's only).
        assert_eq!(opts(&[], |_| {}).root_privileges, None);
        // Root keeps all by default (root default capabilities = full),
        // without no_new_privs; --keep-privs is the same.
        for o in [as_root(&[], |_| {}), as_root(&[], |a| a.keep_privs = true)] {
            let p = privs(o);
            assert_eq!(p.keep, caps::all());
            assert!(!p.no_new_privs);
        }
        // --no-privs: none, and no_new_privs; it beats --keep-privs.
        for o in [
            as_root(&[], |a| a.no_privs = true),
            as_root(&[], |a| {
                a.no_privs = true;
                a.keep_privs = true
            }),
            as_root(&[("APPTAINER_NO_PRIVS", "1")], |_| {}),
            as_root(&[("SINGULARITY_NO_PRIVS", "true")], |_| {}),
        ] {
            assert_eq!(
                privs(o),
                RootPrivileges {
                    keep: vec![],
                    no_new_privs: true
                }
            );
        }
        // --drop-caps, in any spelling.
        for spelling in ["CAP_NET_RAW", "net_raw", "Net_Raw,cap_chown"] {
            let p = privs(as_root(&[], |a| a.drop_caps = Some(spelling.into())));
            assert!(!p.keep.contains(&C::CAP_NET_RAW), "{spelling}");
            assert!(p.keep.contains(&C::CAP_SYS_ADMIN), "{spelling}");
        }
        let p = privs(as_root(&[], |a| a.drop_caps = Some("all".into())));
        assert!(p.keep.is_empty() && !p.no_new_privs);
        // --add-caps on top of --no-privs; --drop-caps is applied last, as
        // in Apptainer.
        let p = privs(as_root(&[], |a| {
            a.no_privs = true;
            a.add_caps = Some("net_raw,CAP_CHOWN,net_raw".into());
        }));
        assert_eq!(p.keep, [C::CAP_CHOWN, C::CAP_NET_RAW]);
        let p = privs(as_root(&[], |a| {
            a.add_caps = Some("net_raw".into());
            a.drop_caps = Some("net_raw".into());
        }));
        assert!(!p.keep.contains(&C::CAP_NET_RAW));
        // Their variables, both prefixes; the flag beats the variable.
        for prefix in ["APPTAINER_", "SINGULARITY_"] {
            let add = format!("{prefix}ADD_CAPS");
            let drop = format!("{prefix}DROP_CAPS");
            let p = privs(as_root(&[(&add, "chown"), (&drop, "all")], |_| {}));
            assert!(p.keep.is_empty(), "{prefix}");
            let p = privs(as_root(&[(&drop, "sys_admin")], |_| {}));
            assert!(!p.keep.contains(&C::CAP_SYS_ADMIN), "{prefix}");
        }
        let p = privs(as_root(&[("APPTAINER_DROP_CAPS", "chown")], |a| {
            a.drop_caps = Some("net_raw".into())
        }));
        assert!(p.keep.contains(&C::CAP_CHOWN) && !p.keep.contains(&C::CAP_NET_RAW));
        // An unknown name is an error naming it.
        let err = resolve_as(0, Tool::Apptainer, &[], |a| {
            a.drop_caps = Some("net_raw,CAP_NOPE".into())
        })
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "--drop-caps \"CAP_NOPE\": unknown capability (use names such as CAP_NET_RAW or net_raw, or all; capabilities(7) lists them)"
        );
    }

    #[test]
    fn allow_setuid_no_pid_and_ignore_subuid() {
        assert!(as_root(&[], |a| a.allow_setuid = true).allow_setuid);
        assert!(as_root(&[("SINGULARITY_ALLOW_SETUID", "1")], |_| {}).allow_setuid);
        assert!(!as_root(&[], |_| {}).allow_setuid);
        // --no-pid beats --pid, --containall and --compat.
        for f in [
            (|a: &mut ActionFlags| a.pid = true) as fn(&mut ActionFlags),
            |a| a.containall = true,
            |a| a.compat = true,
        ] {
            assert!(opts(&[], f).pid);
            let o = opts(&[], |a| {
                f(a);
                a.no_pid = true
            });
            assert!(!o.pid);
            for prefix in ["APPTAINER_", "SINGULARITY_"] {
                assert!(!opts(&[(&format!("{prefix}NO_PID"), "1")], f).pid);
            }
        }
        // --containall keeps its other parts.
        let o = opts(&[], |a| {
            a.containall = true;
            a.no_pid = true
        });
        assert!(o.contain && o.ipc && o.cleanenv && !o.pid);
        assert!(opts(&[], |a| a.ignore_subuid = true).ignore_subuid);
        for prefix in ["APPTAINER_", "SINGULARITY_"] {
            let name = format!("{prefix}IGNORE_SUBUID");
            assert!(opts(&[(&name, "1")], |_| {}).ignore_subuid);
            assert!(!opts(&[(&name, "0")], |_| {}).ignore_subuid);
        }
    }

    #[test]
    fn flags_vessel_honours_by_what_it_always_does_are_accepted() {
        type Set = fn(&mut ActionFlags);
        let table: &[Set] = &[
            |a| a.underlay = true,
            |a| a.ignore_fakeroot_command = true,
            |a| a.no_nv = true,
            |a| a.no_rocm = true,
            |a| a.runscript_timeout = Some("30s".into()),
        ];
        for set in table {
            assert!(resolve_with(Tool::Apptainer, &[], set).is_ok());
        }
        for var in [
            "APPTAINER_UNDERLAY",
            "APPTAINER_IGNORE_FAKEROOT_COMMAND",
            "APPTAINER_NV_OFF",
            "SINGULARITY_NO_NV",
            "APPTAINER_ROCM_OFF",
            "APPTAINER_NO_ROCM",
            "APPTAINER_RUNSCRIPT_TIMEOUT",
        ] {
            assert!(
                resolve_with(Tool::Apptainer, &[(var, "1")], |_| {}).is_ok(),
                "{var}"
            );
        }
    }

    #[test]
    fn network_none_and_no_init_are_honoured() {
        assert!(opts(&[], |a| a.network = Some("none".into())).net);
        assert!(opts(&[("APPTAINER_NETWORK", "none")], |_| {}).net);
        assert!(!opts(&[], |_| {}).net);
        assert!(!opts(&[], |a| a.no_init = true).pid);
        let o = opts(&[("APPTAINER_NOSHIMINIT", "1")], |a| a.pid = true);
        assert!(o.pid && o.no_init);
        assert!(opts(&[("SINGULARITY_NO_UMASK", "1")], |_| {}).no_umask);
        assert!(opts(&[], |a| a.no_umask = true).no_umask);
    }

    #[test]
    fn compat_means_docker_semantics() {
        for o in [
            opts(&[], |a| a.compat = true),
            opts(&[("APPTAINER_COMPAT", "true")], |_| {}),
        ] {
            assert!(o.contain && o.pid && o.ipc && o.cleanenv);
            assert!(o.writable_tmpfs && o.no_init && o.no_umask && o.no_eval);
        }
        let o = opts(&[], |_| {});
        assert!(!o.no_init && !o.no_umask && !o.writable_tmpfs);
    }

    #[test]
    fn env_is_a_comma_separated_map() {
        let env = |values: &[&str]| {
            opts(&[], |a| {
                a.env = values.iter().map(|v| v.to_string()).collect()
            })
            .env
        };
        let pairs = |p: &[(&str, &str)]| -> Vec<(String, String)> {
            p.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(env(&["A=1,B=2"]), pairs(&[("A", "1"), ("B", "2")]));
        assert_eq!(
            env(&["A=1", "B=2,C=3"]),
            pairs(&[("A", "1"), ("B", "2"), ("C", "3")])
        );
        // One `=`: the whole value, commas and all (pflag's rule).
        assert_eq!(env(&["A=1,2"]), pairs(&[("A", "1,2")]));
        assert_eq!(env(&["A=x=y"]), pairs(&[("A", "x=y")]));
        // CSV quoting keeps a comma in a value of several pairs.
        assert_eq!(env(&["\"A=1,2\",B=3"]), pairs(&[("A", "1,2"), ("B", "3")]));
        assert_eq!(env(&["A="]), pairs(&[("A", "")]));
        let err = |v: &str| resolve_with(Tool::Vessel, &[], |a| a.env = vec![v.into()]);
        assert!(matches!(err("novalue"), Err(OptionsError::EnvPair(_))));
        assert!(matches!(
            err("A=1,novalue,B=2"),
            Err(OptionsError::EnvPair(_))
        ));
    }

    #[test]
    fn env_names_must_be_variable_names() {
        for bad in ["-A=1", "1X=2", "A B=3", "=4"] {
            let e = resolve_with(Tool::Apptainer, &[], |a| a.env = vec![bad.into()]);
            assert!(matches!(e, Err(OptionsError::EnvName(_))), "{bad}: {e:?}");
        }
        let ok = opts(&[], |a| a.env = vec!["_A1=x,B=y".into()]);
        assert_eq!(
            ok.env,
            [("_A1".into(), "x".into()), ("B".into(), "y".into())]
        );
    }

    #[test]
    fn gpu_options_from_flags_and_variables() {
        let g = |env: &[(&str, &str)], f: fn(&mut ActionFlags)| opts(env, f).gpus;
        assert!(!g(&[], |_| {}).any());
        assert!(g(&[], |a| a.nv = true).nv);
        assert!(g(&[("APPTAINER_NV", "1")], |_| {}).nv);
        assert!(g(&[("SINGULARITY_ROCM", "true")], |_| {}).rocm);
        // --no-nv and its variables win, as over the site's `always use nv`.
        assert!(!g(&[("APPTAINER_NV", "1")], |a| a.no_nv = true).nv);
        assert!(!g(&[("APPTAINER_NO_NV", "1")], |a| a.nv = true).nv);
        assert!(!g(&[("APPTAINER_ROCM_OFF", "1")], |a| a.rocm = true).rocm);
        let both = g(&[("APPTAINER_COMPAT32", "1")], |a| a.nv = true);
        assert!(both.nv && both.compat32);
        let cdi = g(&[], |a| {
            a.device = vec!["nvidia.com/gpu=0,nvidia.com/gpu=1".into()];
            a.cdi_dirs = vec!["/site/cdi".into()];
        });
        assert_eq!(cdi.devices, ["nvidia.com/gpu=0", "nvidia.com/gpu=1"]);
        assert_eq!(cdi.cdi_dirs, [PathBuf::from("/site/cdi")]);
        // --nvccli is --nv through NVIDIA's tool, on a writable layer.
        let nvccli = opts(&[], |a| a.nvccli = true);
        assert!(nvccli.gpus.nv && nvccli.gpus.nvccli && nvccli.writable_tmpfs);
        assert!(g(&[("APPTAINER_NVCCLI", "1")], |_| {}).nvccli);
        assert!(!g(&[("APPTAINER_NVCCLI", "1")], |a| a.no_nv = true).nv);
        let default_dirs = g(&[], |a| a.device = vec!["x.com/y=z".into()]).cdi_dirs;
        assert_eq!(
            default_dirs,
            [PathBuf::from("/etc/cdi"), "/var/run/cdi".into()]
        );
    }
}
