//! The administrator's commands: `config global` edits `vessel.conf`,
//! `config fakeroot` the subordinate id files, `buildcfg` prints where
//! Vessel keeps things, and `-c/--config FILE` points a run at another
//! configuration file.

use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use vessel_config::conf::{self, ConfError, DEFAULT_CONF_DIR};
use vessel_config::conf_edit::{self, KeySpec};
use vessel_config::subid::{self, Added};
use vessel_config::{directives, vars, vessel_vars, Tool};
use vessel_sys::Hinted;

use crate::cli::{BuildcfgArgs, ConfigArgs, ConfigCommand, ConfigFakerootArgs, ConfigGlobalArgs};

pub fn run(tool: Tool, args: ConfigArgs) -> Result<u8> {
    match args.command {
        ConfigCommand::Global(a) => global(tool, a),
        ConfigCommand::Fakeroot(a) => fakeroot(a),
    }
}

/// `-c/--config FILE` (or `APPTAINER_CONFIG_FILE`): read FILE instead of
/// `vessel.conf`. As `VESSEL_CONF_DIR`, it is honoured only for root and
/// for an installation the user owns: the site's settings are not the
/// user's to switch off.
pub fn use_config_file(tool: Tool, given: Option<PathBuf>) -> Result<()> {
    let (file, how) = match given {
        Some(f) => {
            let how = format!("--config {}", f.display());
            (f, how)
        }
        None => {
            let found = vessel_config::lookup(tool, vars::CONFIG_FILE, vessel_config::process_var)
                .value
                .filter(|v| !v.value.trim().is_empty());
            let Some(found) = found else {
                return Ok(());
            };
            let how = format!("{}={}", found.name, found.value);
            (PathBuf::from(found.value), how)
        }
    };
    let uid = vessel_sys::process::getuid();
    if uid != 0 {
        let exe = std::env::current_exe().unwrap_or_default();
        let owner = std::fs::metadata(&exe).map(|m| m.uid()).ok();
        if owner != Some(uid) {
            return Err(Hinted::new(
                format!(
                    "{how} is honoured only for root or for a Vessel installation you own ({} belongs to {})",
                    exe.display(),
                    owner.map_or("an unknown user".to_string(), |o| format!("uid {o}"))
                ),
                format!("leave it out to use the site's configuration in {DEFAULT_CONF_DIR}"),
            )
            .into());
        }
    }
    std::fs::metadata(&file).with_context(|| format!("{how}: cannot read {}", file.display()))?;
    tracing::debug!("configuration file: {} ({how})", file.display());
    conf::set_config_file(file);
    Ok(())
}

/// What `config global` was asked to do.
enum Op {
    Set,
    Unset,
    Get,
    Reset,
}

fn global(tool: Tool, a: ConfigGlobalArgs) -> Result<u8> {
    let (op, flag) = match (a.set, a.unset, a.get, a.reset) {
        (true, false, false, false) => (Op::Set, "--set"),
        (false, true, false, false) => (Op::Unset, "--unset"),
        (false, false, true, false) => (Op::Get, "--get"),
        (false, false, false, true) => (Op::Reset, "--reset"),
        (false, false, false, false) => {
            bail!(
                "say what to do with `{}`: --set, --unset, --get or --reset",
                a.directive
            )
        }
        _ => bail!("give only one of --set, --unset, --get and --reset"),
    };
    let Some(directive) = directives::find(&a.directive) else {
        let guess = directives::suggest(&a.directive)
            .map(|k| format!(" (did you mean `{k}`?)"))
            .unwrap_or_default();
        return Err(Hinted::new(
            format!("`{}` is not a directive of vessel.conf{guess}", a.directive),
            format!(
                "the directives are: {}",
                directives::known_keys()
                    .iter()
                    .map(|d| d.key)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
        .into());
    };
    let spec = KeySpec::from(directive);
    let key = directive.key;
    let path = conf::conf_path()?;
    let writes = !matches!(op, Op::Get) && !a.dry_run;
    if writes && vessel_sys::process::getuid() != 0 && conf::config_file().is_none() {
        // Only root may move the configuration directory, so an
        // unprivileged caller editing a file there owns the installation.
        if path.starts_with(DEFAULT_CONF_DIR) {
            return Err(Hinted::new(
                format!(
                    "config global {flag}: only an administrator (root) may change {}",
                    path.display()
                ),
                "run `config global` as root",
            )
            .into());
        }
    }
    let (text, existed) = read_conf(&path, tool)?;
    let file = path.display().to_string();

    let new = match op {
        Op::Get => {
            let mut values = conf_edit::get(&text, &spec);
            if values.is_empty() {
                values = spec.default.clone();
            }
            // Comma-joined as Apptainer prints them, but a value holding
            // commas of its own (an execution group) gets a line each.
            let sep = if spec.comma_list || !spec.repeatable {
                ","
            } else {
                "\n"
            };
            if !values.is_empty() {
                println!("{}", values.join(sep));
            }
            return Ok(0);
        }
        Op::Set => {
            let value = a.value.as_deref().unwrap_or("");
            check_values(directive, &spec, value, &path)?;
            conf_edit::set(&text, &spec, value)?
        }
        Op::Unset => conf_edit::unset(&text, &spec, a.value.as_deref(), &file)?,
        Op::Reset => {
            if a.value.is_some() {
                bail!("--reset takes only the directive: `{key}` goes back to its default");
            }
            conf_edit::reset(&text, &spec)
        }
    };
    // An edit may not break a file that was sound (two execution groups
    // for one directory, say): the parser has the last word.
    if conf::Conf::parse(&text, &path).is_ok() {
        if let Err(e) = conf::Conf::parse(&new, &path) {
            bail!("`{key}` cannot be changed so: {}", e);
        }
    }
    if a.dry_run {
        crate::commands::write_stdout(new.as_bytes())?;
        return Ok(0);
    }
    if existed && new == text {
        tracing::info!("{file} already says so: left unchanged");
        return Ok(0);
    }
    let mode = std::fs::metadata(&path).map_or(0o644, |m| m.mode() & 0o7777);
    vessel_sys::fs::write_atomic(&path, new.as_bytes(), mode)
        .with_context(|| format!("cannot write {file}"))?;
    Ok(0)
}

/// The values `--set` would write, checked as the parser checks them,
/// before anything is written: one line naming what is allowed.
fn check_values(d: &directives::Directive, spec: &KeySpec, value: &str, path: &Path) -> Result<()> {
    let values = if spec.repeatable {
        spec.values(value)
    } else {
        vec![value.trim().to_string()]
    };
    for v in values.iter().filter(|v| !v.is_empty()) {
        directives::check(d.values, v).map_err(|m| anyhow!("`{}`: {m}", d.key))?;
        // Deeper rules (bind path syntax, execution groups) are the
        // parser's: the line alone must parse.
        match conf::Conf::parse(&format!("{} = {v}\n", d.key), path) {
            Err(ConfError::Invalid { message, .. }) if message.starts_with(d.key) => {
                bail!("{message}")
            }
            Err(ConfError::Invalid { message, .. }) => bail!("`{}`: {message}", d.key),
            Err(e) => return Err(e.into()),
            Ok(_) => {}
        }
    }
    Ok(())
}

/// The text of the configuration file and whether it exists. A missing
/// `vessel.conf` starts as the Apptainer configuration Vessel reads in its
/// place (as `Conf::load_site_in` finds it, for the persona), so that
/// creating it keeps the site's settings.
fn read_conf(path: &Path, tool: Tool) -> Result<(String, bool)> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok((text, true)),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            if conf::config_file().is_none() {
                let dir = path.parent().unwrap_or(Path::new("/"));
                let base = dir.parent().unwrap_or(Path::new("/"));
                let theirs = match tool {
                    Tool::Singularity => base.join("singularity/singularity.conf"),
                    _ => base.join("apptainer/apptainer.conf"),
                };
                if let Ok(text) = std::fs::read_to_string(&theirs) {
                    tracing::info!(
                        "{} does not exist: it starts as a copy of {}, which Vessel read in its place",
                        path.display(),
                        theirs.display()
                    );
                    return Ok((text, false));
                }
            }
            Ok((String::new(), false))
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// The files `config fakeroot` edits: `/etc`'s, or for root's tests a
/// scratch directory's.
fn subid_dir() -> PathBuf {
    match vessel_config::own_var(vessel_vars::TEST_SUBID_DIR).filter(|d| !d.is_empty()) {
        Some(d) if vessel_sys::process::getuid() == 0 => PathBuf::from(d),
        _ => PathBuf::from("/etc"),
    }
}

fn fakeroot(a: ConfigFakerootArgs) -> Result<u8> {
    let flag = match (a.add, a.remove, a.enable, a.disable) {
        (true, false, false, false) => "--add",
        (false, true, false, false) => "--remove",
        (false, false, true, false) => "--enable",
        (false, false, false, true) => "--disable",
        (false, false, false, false) => {
            bail!(
                "say what to do for {}: --add, --remove, --enable or --disable",
                a.user
            )
        }
        _ => bail!("give only one of --add, --remove, --enable and --disable"),
    };
    let dir = subid_dir();
    let (uid_file, gid_file) = (dir.join("subuid"), dir.join("subgid"));
    if vessel_sys::process::getuid() != 0 {
        return Err(Hinted::new(
            format!(
                "config fakeroot {flag}: only an administrator (root) may change {} and {}",
                uid_file.display(),
                gid_file.display()
            ),
            "run `config fakeroot` as root",
        )
        .into());
    }
    let user = vessel_sys::user::passwd_by_name(&a.user)
        .or_else(|| {
            a.user
                .parse()
                .ok()
                .and_then(vessel_sys::user::passwd_by_uid)
        })
        .ok_or_else(|| anyhow!("there is no user {} on this system", a.user))?;
    // shadow-utils' order: the user database's lock, then each file's.
    let _pwd = vessel_sys::shadow_lock::lock_pwd(
        &dir.join(".pwd.lock"),
        vessel_sys::shadow_lock::PWD_LOCK_WAIT,
    )?;
    let _uid_lock = vessel_sys::shadow_lock::lock_file(&uid_file)?;
    let _gid_lock = vessel_sys::shadow_lock::lock_file(&gid_file)?;
    // Both files are edited in memory first, so that an error in the
    // second leaves the first unwritten.
    let mut writes = Vec::new();
    for file in [&uid_file, &gid_file] {
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) if e.kind() == ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", file.display())),
        };
        let name = file.display().to_string();
        let new = if a.add {
            match subid::add(&text, &name, &user.name, user.uid)? {
                Added::New { text, start } => {
                    tracing::info!(
                        "{name}: {} gets ids {start} to {}",
                        user.name,
                        u64::from(start) + u64::from(subid::RANGE) - 1
                    );
                    Some(text)
                }
                Added::Present(e) => {
                    tracing::info!(
                        "{name}: {} has ids {} to {} already{}",
                        user.name,
                        e.start,
                        u64::from(e.start) + u64::from(e.count) - 1,
                        if e.disabled {
                            " (disabled: --enable gives them back)"
                        } else {
                            ""
                        }
                    );
                    None
                }
            }
        } else if a.remove {
            Some(subid::remove(&text, &name, &user.name, user.uid)?.0)
        } else {
            subid::set_disabled(&text, &name, &user.name, user.uid, a.disable)?
        };
        if let Some(new) = new {
            let mode = std::fs::metadata(file).map_or(0o644, |m| m.mode() & 0o7777);
            writes.push((file, new, mode));
        }
    }
    for (file, text, mode) in writes {
        vessel_sys::fs::write_atomic(file, text.as_bytes(), mode)
            .with_context(|| format!("cannot write {}", file.display()))?;
    }
    Ok(0)
}

/// `buildcfg [KEY]`: Apptainer's build parameters, with the places this
/// Vessel really uses (it has no configure step: the directories follow
/// from where the program is installed).
pub fn buildcfg(tool: Tool, args: BuildcfgArgs) -> Result<u8> {
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/usr/bin/vessel"));
    let bindir = exe.parent().unwrap_or(Path::new("/usr/bin")).to_path_buf();
    let prefix = bindir.parent().unwrap_or(Path::new("/")).to_path_buf();
    let p = |sub: &str| prefix.join(sub).display().to_string();
    let confdir = conf::conf_dir()?;
    let conf_file = conf::conf_path()?;
    let session = vessel_config::paths::tmp_dir(tool, &vessel_config::process_var);
    let params: Vec<(&str, String)> = vec![
        ("PACKAGE_NAME", "vessel".into()),
        ("PACKAGE_VERSION", crate::commands::VERSION.into()),
        ("BUILDDIR", String::new()),
        ("PREFIX", prefix.display().to_string()),
        ("EXECPREFIX", prefix.display().to_string()),
        ("BINDIR", bindir.display().to_string()),
        ("SBINDIR", p("sbin")),
        ("LIBEXECDIR", p("libexec")),
        ("DATAROOTDIR", p("share")),
        ("DATADIR", p("share")),
        (
            "SYSCONFDIR",
            confdir
                .parent()
                .unwrap_or(Path::new("/"))
                .display()
                .to_string(),
        ),
        ("SHAREDSTATEDIR", p("com")),
        ("LOCALSTATEDIR", "/var".into()),
        ("RUNSTATEDIR", "/run".into()),
        ("INCLUDEDIR", p("include")),
        ("DOCDIR", p("share/doc/vessel")),
        ("INFODIR", p("share/info")),
        ("LIBDIR", p("lib")),
        ("LOCALEDIR", p("share/locale")),
        ("MANDIR", p("share/man")),
        ("APPTAINER_CONFDIR", confdir.display().to_string()),
        ("SESSIONDIR", session.display().to_string()),
        ("PLUGIN_ROOTDIR", String::new()),
        ("APPTAINER_CONF_FILE", conf_file.display().to_string()),
        ("APPTAINER_SUID_INSTALL", "0".into()),
    ];
    let mut out = String::new();
    match args.key {
        Some(key) => {
            let (_, value) = params
                .iter()
                .find(|(k, _)| *k == key)
                .ok_or_else(|| anyhow!("no variable named \"{key}\""))?;
            out.push_str(value);
            out.push('\n');
        }
        None => {
            for (k, v) in &params {
                out.push_str(&format!("{k}={v}\n"));
            }
        }
    }
    crate::commands::write_stdout(out.as_bytes())?;
    Ok(0)
}
