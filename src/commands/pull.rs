//! `pull`, and the `docker://` images of `exec`/`run`/`shell`/`test`:
//! flags and variables turned into pull options.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use vessel_config::{lookup, lookup_bool, vars, EnvVar, Tool};
use vessel_oci::auth::{self, Credentials};
use vessel_oci::PullOptions;
use vessel_sys::fs::AtomicFile;
use vessel_sys::Hinted;

use crate::cli::{PullArgs, RegistryExtra, RegistryOptions};
use crate::commands::flags::Env;

pub(crate) fn env_value(tool: Tool, var: EnvVar) -> Option<String> {
    lookup(tool, var, vessel_config::process_var)
        .value
        .map(|v| v.value)
}

fn env_flag(tool: Tool, var: EnvVar) -> bool {
    env_value(tool, var)
        .as_deref()
        .and_then(lookup_bool)
        .unwrap_or(false)
}

pub fn home() -> PathBuf {
    vessel_config::paths::home(&vessel_config::process_var)
}

/// `$APPTAINER_CACHEDIR/cache`, else `~/.apptainer/cache`.
pub fn cache_root(tool: Tool) -> PathBuf {
    vessel_config::paths::cache_root(tool, &vessel_config::process_var)
}

/// The Go name of this machine's architecture (`amd64`, `arm64`, …).
fn host_arch() -> String {
    vessel_sif::Arch::host().to_string()
}

pub fn pull_options(
    tool: Tool,
    r: &RegistryOptions,
    arch: Option<&str>,
    variant: Option<&str>,
) -> Result<PullOptions> {
    let arch = arch
        .map(String::from)
        .or_else(|| env_value(tool, vars::PULL_ARCH))
        .unwrap_or_else(host_arch);
    let mut platform = format!("linux/{arch}");
    if let Some(v) = variant {
        platform.push('/');
        platform.push_str(v);
    }
    let username = env_value(tool, vars::DOCKER_USERNAME)
        .or_else(|| vessel_config::process_var("DOCKER_USERNAME"));
    let password = env_value(tool, vars::DOCKER_PASSWORD)
        .or_else(|| vessel_config::process_var("DOCKER_PASSWORD"));
    let credentials = match (username, password) {
        (Some(username), Some(password)) => Some(Credentials { username, password }),
        _ if r.docker_login => Some(crate::prompt::docker_login()?),
        _ => None,
    };
    let authfile = r
        .authfile
        .clone()
        .or_else(|| env_value(tool, vars::AUTH_FILE).map(PathBuf::from));
    let disable_cache = r.disable_cache || env_flag(tool, vars::DISABLE_CACHE);
    let tmpdir = vessel_config::paths::tmp_dir(tool, &vessel_config::process_var);
    let date = super::build::apptainer_date(time::OffsetDateTime::now_utc());
    Ok(PullOptions {
        platform,
        no_https: r.no_https || env_flag(tool, vars::NOHTTPS) || env_flag(tool, vars::NO_HTTPS),
        ca_pem: Vec::new(),
        credentials,
        auth_files: auth::auth_files(authfile.as_deref(), &home()),
        cache_root: (!disable_cache).then(|| cache_root(tool)),
        tmpdir,
        keep_devices: vessel_sys::process::is_root(),
        build_date: date,
        progress: crate::logging::show_progress()
            .then(|| vessel_oci::ProgressHook(std::sync::Arc::new(Bar::default()))),
    })
}

/// [`pull_options`] with the registry flags of `build`, `pull` and `push`
/// that the action commands declare elsewhere: `--tmpdir`,
/// `--docker-username`/`--docker-password` (beating their variables, and
/// making `--docker-login`'s prompt needless) and `APPTAINER_DOCKER_LOGIN`.
pub fn pull_options_for(
    tool: Tool,
    r: &RegistryOptions,
    extra: &RegistryExtra,
    arch: Option<&str>,
    variant: Option<&str>,
) -> Result<PullOptions> {
    let given = extra.docker_username.is_some() || extra.docker_password.is_some();
    let mut r = r.clone();
    r.docker_login = (r.docker_login || env_flag(tool, vars::DOCKER_LOGIN)) && !given;
    let mut opts = pull_options(tool, &r, arch, variant)?;
    if let Some(dir) = &extra.tmpdir {
        opts.tmpdir = dir.clone();
    }
    if given {
        let from_env =
            |var, bare| env_value(tool, var).or_else(|| vessel_config::process_var(bare));
        let username = extra
            .docker_username
            .clone()
            .or_else(|| from_env(vars::DOCKER_USERNAME, "DOCKER_USERNAME"));
        let password = extra
            .docker_password
            .clone()
            .or_else(|| from_env(vars::DOCKER_PASSWORD, "DOCKER_PASSWORD"));
        let (Some(username), Some(password)) = (username, password) else {
            bail!("--docker-username and --docker-password go together (or with APPTAINER_DOCKER_USERNAME and APPTAINER_DOCKER_PASSWORD)");
        };
        opts.credentials = Some(Credentials { username, password });
    }
    Ok(opts)
}

/// Refuses `--docker-host` (and `APPTAINER_DOCKER_HOST`) for `command`.
/// The bare `DOCKER_HOST` is the Docker client's own, set wherever Docker
/// is used: Apptainer reads it only for `docker-daemon:` sources, which
/// Vessel refuses by name, so it changes nothing here.
/// `--library` (or its variable): Vessel does not use the Sylabs library.
pub fn refuse_library(env: &Env, library: &Option<String>) -> Result<()> {
    env.refuse("--library", library.is_some(), Some(vars::LIBRARY), false)
}

pub fn refuse_docker_host(env: &Env, extra: &RegistryExtra) -> Result<()> {
    env.refuse(
        "--docker-host",
        extra.docker_host.is_some(),
        Some(vars::DOCKER_HOST),
        false,
    )
}

/// A download progress bar on the terminal.
#[derive(Default)]
struct Bar(std::sync::Mutex<Option<indicatif::ProgressBar>>);

impl vessel_oci::Progress for Bar {
    fn start(&self, total: u64) {
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bytes:>10} / {total_bytes:<10} [{bar:40}] {bytes_per_sec:>12} {eta}",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(bar);
    }
    fn advance(&self, bytes: u64) {
        if let Some(b) = self.0.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            b.inc(bytes);
        }
    }
    fn finish(&self) {
        if let Some(b) = self.0.lock().unwrap_or_else(|e| e.into_inner()).take() {
            b.finish_and_clear();
        }
    }
}

pub use vessel_oci::source::{default_name, Fetched, Source};

/// Fetches any source into a runnable SIF, with the registry settings of
/// the flags and variables.
pub fn fetch(
    tool: Tool,
    r: &RegistryOptions,
    extra: &RegistryExtra,
    arch: Option<&str>,
    variant: Option<&str>,
    uri: &str,
) -> Result<Fetched> {
    let opts = pull_options_for(tool, r, extra, arch, variant)?;
    Ok(vessel_oci::source::fetch(uri, &opts, &oras_from(&opts))?)
}

pub use vessel_runtime::resolve::is_source_uri as is_uri;

/// Registry settings for `oras://`.
pub fn oras_options(
    tool: Tool,
    r: &RegistryOptions,
    extra: &RegistryExtra,
) -> Result<vessel_oci::oras::OrasOptions> {
    Ok(oras_from(&pull_options_for(tool, r, extra, None, None)?))
}

/// The `oras://` part of settings already decided (so `--docker-login`
/// asks once).
fn oras_from(p: &PullOptions) -> vessel_oci::oras::OrasOptions {
    vessel_oci::oras::OrasOptions {
        no_https: p.no_https,
        ca_pem: p.ca_pem.clone(),
        credentials: p.credentials.clone(),
        auth_files: p.auth_files.clone(),
    }
}

/// Downloads an `oras://` SIF to `out`, whole or not at all.
pub fn pull_oras(
    tool: Tool,
    r: &RegistryOptions,
    extra: &RegistryExtra,
    reference: &str,
    out: &Path,
) -> Result<String> {
    let opts = oras_options(tool, r, extra)?;
    let mut tmp = AtomicFile::create(out, 0o755)
        .with_context(|| format!("cannot write {}", out.display()))?;
    let digest = vessel_oci::oras::pull(reference, tmp.file(), &opts)?;
    tmp.commit()
        .with_context(|| format!("could not write {}", out.display()))?;
    Ok(digest)
}

pub fn push(tool: Tool, args: crate::cli::PushArgs) -> Result<u8> {
    let env = Env::new(tool, "push");
    refuse_library(&env, &args.library)?;
    env.refuse("--annotation", !args.annotation.is_empty(), None, false)?;
    refuse_docker_host(&env, &args.extra)?;
    env.warn("--description", args.description.is_some(), None);
    // -U: Vessel pushes unsigned images without the warning it silences.
    let _ = env.flag(args.allow_unsigned, &[vars::ALLOW_UNSIGNED]);
    let Some(reference) = args.uri.strip_prefix("oras://") else {
        bail!(
            "{:?}: push supports oras:// destinations (library:// is not implemented)",
            args.uri
        );
    };
    vessel_image::open_sif(&args.image).map_err(|e| anyhow!("could not load {e}"))?;
    let opts = oras_options(tool, &args.registry, &args.extra)?;
    let digest = vessel_oci::oras::push(&args.image, reference, &opts)?;
    tracing::info!("Pushed {} to {} ({digest})", args.image.display(), args.uri);
    Ok(0)
}

pub fn run(tool: Tool, args: PullArgs) -> Result<u8> {
    let env = Env::new(tool, "pull");
    refuse_library(&env, &args.library)?;
    env.refuse(
        "--reproducible",
        args.reproducible,
        Some(vars::REPRODUCIBLE),
        true,
    )?;
    refuse_docker_host(&env, &args.extra)?;
    // -U, --allow-unauthenticated and --no-cleanup ask for nothing Vessel
    // would do otherwise: its sources carry no signatures to check, and a
    // failed pull leaves no temporary files behind.
    let _ = env.flag(
        args.allow_unsigned || args.allow_unauthenticated || args.no_cleanup,
        &[
            vars::ALLOW_UNSIGNED,
            vars::ALLOW_UNAUTHENTICATED,
            vars::NO_CLEANUP,
        ],
    );
    let force = env.flag(args.force, &[vars::FORCE]);
    let sandbox = env.flag(args.sandbox, &[vars::SANDBOX]);
    let (out, source) = match args.args.as_slice() {
        [source] => (None, source.clone()),
        [out, source] => (Some(PathBuf::from(out)), source.clone()),
        _ => unreachable!("clap takes one or two"),
    };
    let dir = env
        .value(
            args.dir.as_ref().map(|d| d.to_string_lossy().into_owned()),
            &[vars::PULLDIR, vars::PULLFOLDER],
        )
        .map(PathBuf::from);
    let name = env.value(args.name.clone(), &[vars::PULL_NAME]);
    // OUTPUT stands on its own; --name and the default name go in the
    // pull directory when there is one.
    let out = match (out, args.name.is_some(), name) {
        (Some(_), true, _) => {
            bail!("pull: give the image file either as OUTPUT or with --name, not both")
        }
        (Some(o), false, _) => o,
        (None, _, name) => {
            let name = name.unwrap_or_else(|| default_name(&source));
            dir.map_or_else(|| PathBuf::from(&name), |d| d.join(&name))
        }
    };
    if out.exists() && !force {
        return Err(Hinted::new(
            format!("image file {} already exists", out.display()),
            "use --force to overwrite it",
        )
        .into());
    }
    // The fetched SIF goes to `out` whole, or with --sandbox is unpacked
    // into the directory `out` (an existing one replaced, as --force
    // allowed), as `build --sandbox DIR SOURCE` does.
    let place = |sif: &Path| -> Result<()> {
        if !sandbox {
            return install(sif, &out);
        }
        let vessel = std::env::current_exe().context("cannot find the vessel executable")?;
        if out.exists() {
            vessel_build::engine::remove_sandbox(&out, &vessel)?;
        }
        vessel_build::engine::unpack_to_sandbox(sif, &out)?;
        Ok(())
    };
    if let Some(reference) = source.strip_prefix("oras://") {
        let digest = if sandbox {
            let tmp = tempfile::Builder::new()
                .prefix("vessel-pull-")
                .tempdir_in(args.extra.tmpdir.clone().unwrap_or_else(|| {
                    vessel_config::paths::tmp_dir(tool, &vessel_config::process_var)
                }))
                .context("cannot make a temporary directory")?;
            let sif = tmp.path().join("image.sif");
            let digest = pull_oras(tool, &args.registry, &args.extra, reference, &sif)?;
            place(&sif)?;
            digest
        } else {
            pull_oras(tool, &args.registry, &args.extra, reference, &out)?
        };
        tracing::info!("Pulled {source} ({digest}) to {}", out.display());
        return Ok(0);
    }
    let arch = env.value(args.arch.clone(), &[vars::PULL_ARCH]);
    let variant = env.value(args.arch_variant.clone(), &[vars::PULL_ARCH_VARIANT]);
    let fetched = fetch(
        tool,
        &args.registry,
        &args.extra,
        arch.as_deref(),
        variant.as_deref(),
        &source,
    )?;
    place(fetched.path())?;
    tracing::info!(
        "Pulled {source} ({}) to {}",
        fetched.digest(),
        out.display()
    );
    Ok(0)
}

/// Copies the pulled image to `out` under a temporary name and renames it
/// into place: an existing file is replaced whole or not at all. The
/// temporary file has an unpredictable name, is made with `O_EXCL` (so a
/// link planted in the output's directory is never followed) and written
/// through its descriptor; `sif` may be a `/proc/self/fd/N` path, which
/// names the very image that was checked.
pub fn install(sif: &Path, out: &Path) -> Result<()> {
    let mut tmp = AtomicFile::create(out, 0o755)
        .with_context(|| format!("cannot write {}", out.display()))?;
    let mut from = std::fs::File::open(sif)
        .with_context(|| format!("cannot read the pulled image {}", sif.display()))?;
    std::io::copy(&mut from, tmp.file())
        .with_context(|| format!("copying the image to {}", out.display()))?;
    tmp.commit()
        .with_context(|| format!("could not write {}", out.display()))?;
    Ok(())
}
