//! `exec`, `run`, `shell` and `test`: flags and `APPTAINER_*` variables
//! turned into launch options, then the container is run.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use vessel_config::{lookup, lookup_bool, vars, EnvVar, Tool};
use vessel_runtime::bind::{parse_binds, parse_mount};
use vessel_runtime::options::{Driver, OverlaySpec};
use vessel_runtime::{Action, Host, LaunchOptions};

use crate::cli::ActionArgs;

/// Which action, with the arguments after the image.
pub enum Verb {
    Exec,
    Run,
    Shell(Option<String>),
    Test,
}

pub fn run(tool: Tool, verb: Verb, args: ActionArgs) -> Result<u8> {
    let host = Host::current();
    let registry = args.registry.clone();
    let mut opts = options(tool, verb, args, &host)?;
    // `exec docker://…`: pull into the cache (or a temporary file), then run that.
    let image_arg = opts.image.to_string_lossy().into_owned();
    // `exec docker://…` and the like: fetch into the cache (or a temporary
    // file), then run that.
    let _fetched = if super::pull::is_uri(&image_arg) {
        let fetched = super::pull::fetch(tool, &registry, None, None, &image_arg)?;
        opts.image = fetched.path().to_path_buf();
        Some(fetched)
    } else {
        None
    };
    // Opened once: execution control checks this file, and the container
    // runs from it, whatever happens to the path meanwhile.
    let mut image =
        vessel_image::open_image(&opts.image).map_err(vessel_runtime::LaunchError::from)?;
    execution_control(&mut image)?;
    let status = vessel_runtime::launch_image(&opts, &host, image)?;
    Ok(u8::try_from(status).unwrap_or(255))
}

/// The administrator's execution control list (`vessel.conf`): a SIF image
/// runs only if it is signed as its execution group demands, checked before
/// anything is mounted. As in Apptainer, it governs SIF images only; other
/// image kinds are for the site's other settings to allow or not.
fn execution_control(image: &mut vessel_image::Image) -> Result<()> {
    let dir = vessel_config::conf::conf_dir()?;
    let path = dir.join("vessel.conf");
    let conf = vessel_config::conf::Conf::load(&path)?;
    let ecl = &conf.execution_control;
    if !ecl.activated {
        return Ok(());
    }
    let vessel_image::Image::Sif { sif, path: named } = image else {
        return Ok(());
    };
    // The group is the directory the opened file really lies in.
    let real = std::fs::read_link(vessel_sys::path::fd_path(sif.get_ref()))
        .with_context(|| format!("cannot resolve the image path {}", named.display()))?;
    let global = vessel_sign::Keyring::global(dir);
    let keys = global
        .public_keys()
        .context("reading the global public keyring for the execution control list")?;
    vessel_sign::policy::check(ecl, &real, sif, &keys)
        .with_context(|| format!("{} does not allow this image to run", path.display()))
}

/// A variable for an option, in the persona's prefix order.
fn env_value(tool: Tool, var: EnvVar) -> Option<String> {
    lookup(tool, var, vessel_config::process_var)
        .value
        .map(|v| v.value)
}

fn env_flag(tool: Tool, vars: &[EnvVar]) -> bool {
    vars.iter().any(|v| {
        env_value(tool, *v)
            .as_deref()
            .and_then(lookup_bool)
            .unwrap_or(false)
    })
}

fn options(tool: Tool, verb: Verb, a: ActionArgs, host: &Host) -> Result<LaunchOptions> {
    let mut rest = a.rest.into_iter();
    let image = rest.next().ok_or_else(|| anyhow!("no image given"))?;
    let args: Vec<OsString> = rest.collect();
    let action = match verb {
        Verb::Exec => {
            if args.is_empty() {
                bail!("exec needs a command to run after the image, as in: exec IMAGE COMMAND [ARGS...]");
            }
            Action::Exec(args)
        }
        Verb::Run => Action::Run(args),
        Verb::Test => Action::Test(args),
        Verb::Shell(shell) => {
            if !args.is_empty() {
                tracing::warn!("shell takes no arguments after the image: ignoring them");
            }
            Action::Shell(shell.or_else(|| env_value(tool, vars::SHELL)))
        }
    };
    let image = match image.to_str() {
        Some(uri) if super::pull::is_uri(uri) => PathBuf::from(uri),
        _ => absolute(Path::new(&image), &host.cwd),
    };

    let containall = a.containall || env_flag(tool, &[vars::CONTAINALL]);
    let mut binds = Vec::new();
    for spec in a
        .bind
        .iter()
        .cloned()
        .chain(env_value(tool, vars::BIND))
        .chain(env_value(tool, vars::BINDPATH))
    {
        binds.extend(parse_binds(&spec, &host.cwd)?);
    }
    for spec in a.mount.iter().cloned().chain(env_value(tool, vars::MOUNT)) {
        binds.push(parse_mount(&spec, &host.cwd)?);
    }
    let home = match a.home.or_else(|| env_value(tool, vars::HOME)) {
        Some(spec) => {
            let (src, dst) = spec.split_once(':').unwrap_or((&spec, &spec));
            let (src, dst) = (absolute(Path::new(src), &host.cwd), PathBuf::from(dst));
            if !dst.is_absolute() {
                bail!("--home {spec}: the container path must be absolute");
            }
            Some((src, dst))
        }
        None => None,
    };
    let list = |cli: Vec<String>, var: EnvVar| -> Vec<String> {
        if !cli.is_empty() {
            return cli;
        }
        env_value(tool, var)
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut env_files = Vec::new();
    let files = if a.env_file.is_empty() {
        list(Vec::new(), vars::ENV_FILE)
            .into_iter()
            .map(PathBuf::from)
            .collect()
    } else {
        a.env_file
    };
    for f in files {
        let text = std::fs::read_to_string(&f)
            .with_context(|| format!("could not read env file {}", f.display()))?;
        vessel_runtime::env::parse_env_file(&text)
            .map_err(|e| anyhow!("env file {}: {e}", f.display()))?;
        env_files.push((f, text));
    }
    let mut env = Vec::new();
    for kv in a.env {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| anyhow!("--env {kv:?}: expected KEY=VALUE"))?;
        env.push((k.to_string(), v.to_string()));
    }
    let overlays = a
        .overlay
        .iter()
        .cloned()
        .chain(
            env_value(tool, vars::OVERLAY)
                .into_iter()
                .flat_map(|v| v.split(',').map(String::from).collect::<Vec<_>>()),
        )
        .map(|spec| {
            let (dir, ro) = match spec.strip_suffix(":ro") {
                Some(d) => (d.to_string(), true),
                None => (spec.strip_suffix(":rw").unwrap_or(&spec).to_string(), false),
            };
            let dir = absolute(Path::new(&dir), &host.cwd);
            if !dir.is_dir() {
                bail!(
                    "overlay {}: not a directory (only overlay directories are supported so far)",
                    dir.display()
                );
            }
            Ok(OverlaySpec { dir, readonly: ro })
        })
        .collect::<Result<Vec<_>>>()?;
    let cwd = a
        .cwd
        .or_else(|| env_value(tool, vars::CWD).map(PathBuf::from))
        .or_else(|| env_value(tool, vars::PWD).map(PathBuf::from))
        .or_else(|| env_value(tool, vars::TARGET_PWD).map(PathBuf::from));
    if let Some(c) = &cwd {
        if !c.is_absolute() {
            bail!("--cwd {}: the path must be absolute", c.display());
        }
    }

    let (extract_dir, extract_fallback, extract_max_bytes) = extract_settings(host);
    Ok(LaunchOptions {
        image,
        action: Some(action),
        app: a.app.or_else(|| env_value(tool, vars::APP)),
        binds,
        contain: a.contain || containall || env_flag(tool, &[vars::CONTAIN]),
        no_home: a.no_home || env_flag(tool, &[vars::NO_HOME]),
        home,
        no_mount: list(a.no_mount, vars::NO_MOUNT),
        scratch: list(
            a.scratch
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect(),
            vars::SCRATCH,
        )
        .into_iter()
        .chain(env_value(tool, vars::SCRATCHDIR))
        .map(PathBuf::from)
        .collect(),
        workdir: a
            .workdir
            .or_else(|| env_value(tool, vars::WORKDIR).map(PathBuf::from))
            .map(|w| absolute(&w, &host.cwd)),
        cwd,
        writable: a.writable || env_flag(tool, &[vars::WRITABLE]),
        writable_tmpfs: a.writable_tmpfs || env_flag(tool, &[vars::WRITABLE_TMPFS]),
        tmpfs_size_mib: a.writable_tmpfs_size,
        overlays,
        pid: a.pid || containall || env_flag(tool, &[vars::PID, vars::UNSHARE_PID]),
        ipc: a.ipc || containall || env_flag(tool, &[vars::IPC, vars::UNSHARE_IPC]),
        uts: a.uts || env_flag(tool, &[vars::UTS, vars::UNSHARE_UTS]),
        net: a.net || env_flag(tool, &[vars::NET, vars::UNSHARE_NET]),
        hostname: a.hostname.or_else(|| env_value(tool, vars::HOSTNAME)),
        cleanenv: a.cleanenv || containall || env_flag(tool, &[vars::CLEANENV]),
        no_env: list(a.no_env, vars::NOENV),
        env_files,
        env,
        no_eval: a.no_eval || env_flag(tool, &[vars::NO_EVAL]),
        fakeroot: a.fakeroot || env_flag(tool, &[vars::FAKEROOT]),
        driver: if a.unsquash || env_flag(tool, &[vars::UNSQUASH]) {
            Driver::Extract
        } else {
            match vessel_config::own_var(vessel_config::vessel_vars::IMAGE_DRIVER) {
                Some(v) => Driver::parse(&v)
                    .ok_or_else(|| anyhow!("VESSEL_IMAGE_DRIVER={v}: use auto, fuse or extract"))?,
                None => Driver::Auto,
            }
        },
        extract_dir,
        extract_fallback,
        extract_max_bytes,
        product: tool.product().to_string(),
    })
}

/// The node-local cache for extracted images: `VESSEL_EXTRACT_DIR`, else
/// `/var/tmp/vessel-UID/extract` (kept across jobs, unlike a job's
/// `$TMPDIR`), bounded by `VESSEL_EXTRACT_MAX_GIB` (default 20). When
/// another user took the default place first, the cache falls back to the
/// user's home (`~/.apptainer/cache/vessel/extract`); a directory the user
/// named is used or refused, never replaced.
fn extract_settings(host: &Host) -> (PathBuf, Option<PathBuf>, u64) {
    let named = vessel_config::process_var_os(vessel_config::vessel_vars::EXTRACT_DIR.name)
        .filter(|d| !d.is_empty())
        .map(|d| absolute(Path::new(&d), &host.cwd));
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
    let gib = vessel_config::own_var(vessel_config::vessel_vars::EXTRACT_MAX_GIB)
        .and_then(|v| v.parse::<u64>().ok())
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
