//! `instance start|run|stop|list|stats`, and `exec|run|shell|test
//! instance://NAME`: the parsed flags handed to `vessel_runtime::instance`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use vessel_config::Tool;
use vessel_runtime::instance::{self as inst, Places, StartRequest};
use vessel_runtime::resolve::Verb;
use vessel_runtime::{Action, Host};

use crate::cli::{ActionArgs, InstanceArgs, InstanceCommand, InstanceStartArgs};

pub fn run(tool: Tool, args: InstanceArgs) -> Result<u8> {
    match args.command {
        InstanceCommand::Start(a) => start(tool, a, false),
        InstanceCommand::Run(a) => start(tool, a, true),
        InstanceCommand::Stop {
            user,
            all,
            force,
            signal,
            timeout,
            names,
        } => stop(user, all, force, signal, timeout, names),
        InstanceCommand::List {
            user,
            json,
            logs,
            all: _,
            name,
        } => list(user, json, logs, name),
        InstanceCommand::Stats {
            user,
            json,
            no_stream: _,
            name,
        } => stats(user, json, name),
    }
}

/// The start script, or nothing (the instance idles), as Apptainer runs it.
const START: &str = "if [ -f /.singularity.d/startscript ]; then\n  \
    [ -x /.singularity.d/startscript ] && exec /.singularity.d/startscript \"$@\"\n  \
    exec /bin/sh /.singularity.d/startscript \"$@\"\n\
    fi\n";

/// The runscript, as `run` runs it.
const RUN: &str = "if [ -f /.singularity.d/runscript ]; then\n  \
    [ -x /.singularity.d/runscript ] && exec /.singularity.d/runscript \"$@\"\n  \
    exec /bin/sh /.singularity.d/runscript \"$@\"\n\
    fi\n";

fn start(tool: Tool, a: InstanceStartArgs, runscript: bool) -> Result<u8> {
    let command = if runscript {
        "instance run"
    } else {
        "instance start"
    };
    for (flag, given) in [
        ("--boot", a.boot),
        ("--dmtcp-launch", a.dmtcp_launch.is_some()),
        ("--dmtcp-restart", a.dmtcp_restart.is_some()),
    ] {
        if given {
            bail!("{}", crate::compat::refusal(command, flag));
        }
    }
    let mut action = a.action;
    if action.rest.len() < 2 {
        bail!(
            "{command} needs an image and an instance name, as in: {command} IMAGE NAME [ARGS...]"
        );
    }
    let mut rest = std::mem::take(&mut action.rest).into_iter();
    let image = rest.next().unwrap_or_default();
    let name = rest.next().unwrap_or_default();
    let name = name
        .to_str()
        .map(str::to_string)
        .unwrap_or_else(|| name.to_string_lossy().into_owned());
    inst::check_name(&name)?;
    // The command is the action script's `exec` of the start script (or the
    // runscript): the instance's environment script is then a plain `exec
    // "$@"`, which `exec instance://` reuses.
    let (script, zero) = if runscript {
        (RUN, "/.singularity.d/actions/run")
    } else {
        (START, "/.singularity.d/actions/start")
    };
    let mut argv: Vec<OsString> = vec![
        image,
        "/bin/sh".into(),
        "-c".into(),
        script.into(),
        zero.into(),
    ];
    argv.extend(rest);
    action.rest = argv;
    let host = Host::current();
    let prepared = super::action::prepare(tool, Verb::Exec, action, &host)?;
    if prepared.opts.sharens {
        bail!(
            "{command}: --sharens (or APPTAINER_SHARENS) does not apply to instances: an instance is shared already, join it with: exec instance://{name} COMMAND"
        );
    }
    let req = StartRequest {
        name: name.clone(),
        pid_file: a.pid_file.map(|p| absolute(&host, p)),
        sharens: false,
        close_in_monitor: None,
    };
    inst::start(&prepared.opts, &host, prepared.image, &req)?;
    tracing::info!("instance started successfully");
    Ok(0)
}

fn absolute(host: &Host, p: PathBuf) -> PathBuf {
    if p.is_absolute() {
        p
    } else {
        host.cwd.join(p)
    }
}

/// The places and uid of `--user`'s instances (root only), or the caller's.
fn places(user: Option<String>) -> Result<(Places, u32)> {
    let host = Host::current();
    let Some(name) = user else {
        return Ok((Places::current(&host), host.uid));
    };
    let entry = vessel_sys::user::passwd_by_name(&name)
        .with_context(|| format!("--user {name}: no such user"))?;
    if host.uid != 0 && entry.uid != host.uid {
        bail!("--user {name}: only root may see or stop another user's instances");
    }
    Ok((
        Places::new(std::path::Path::new(&entry.home), &entry.name),
        entry.uid,
    ))
}

fn list(user: Option<String>, json: bool, logs: bool, name: Option<String>) -> Result<u8> {
    if json && logs {
        bail!("instance list: --json and --logs cannot be used together");
    }
    let (places, uid) = places(user)?;
    let found = inst::list(&places, uid, name.as_deref());
    let mut out = String::new();
    if json {
        let rows: Vec<serde_json::Value> = found
            .iter()
            .map(|f| {
                let r = &f.record;
                serde_json::json!({
                    "instance": r.name,
                    "pid": r.pid,
                    "img": r.image,
                    "ip": r.ip,
                    "logErrPath": r.log_err_path,
                    "logOutPath": r.log_out_path,
                })
            })
            .collect();
        out = serde_json::to_string_pretty(&serde_json::json!({ "instances": rows }))?;
        out.push('\n');
    } else if logs {
        out.push_str(&table(
            &["INSTANCE NAME", "PID", "LOGS"],
            found
                .iter()
                .flat_map(|f| {
                    let r = &f.record;
                    [
                        vec![r.name.clone(), r.pid.to_string(), r.log_err_path.clone()],
                        vec![String::new(), String::new(), r.log_out_path.clone()],
                    ]
                })
                .collect(),
        ));
    } else {
        out.push_str(&table(
            &["INSTANCE NAME", "PID", "IP", "IMAGE"],
            found
                .iter()
                .map(|f| {
                    let r = &f.record;
                    vec![
                        r.name.clone(),
                        r.pid.to_string(),
                        r.ip.clone(),
                        r.image.clone(),
                    ]
                })
                .collect(),
        ));
    }
    super::write_stdout(out.as_bytes())?;
    Ok(0)
}

/// Columns padded to their widest cell plus four spaces, as Apptainer's
/// tab writer prints them.
fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.len());
        }
    }
    let mut out = String::new();
    let head: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for r in std::iter::once(&head).chain(rows.iter()) {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(c);
            } else {
                line.push_str(&format!("{c:<w$}", w = widths[i] + 4));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn stop(
    user: Option<String>,
    all: bool,
    force: bool,
    signal: Option<String>,
    timeout: u64,
    names: Vec<String>,
) -> Result<u8> {
    if names.is_empty() && !all {
        bail!("instance stop needs an instance name (or --all), as in: instance stop NAME");
    }
    let signal = match signal {
        None => 15,
        Some(s) => match inst::signal_number(&s) {
            Some(n) => n,
            None => {
                bail!("--signal {s}: not a signal (use a name such as TERM or INT, or a number)")
            }
        },
    };
    let (places, uid) = places(user)?;
    let how = inst::Stop {
        signal,
        timeout: Duration::from_secs(timeout),
        force,
    };
    let mut targets = Vec::new();
    if all {
        targets = inst::list(&places, uid, None);
    } else {
        for n in &names {
            let matched: Vec<_> = if n.contains(['*', '?']) {
                inst::list(&places, uid, Some(n))
            } else {
                vec![inst::find(&places, uid, n)?]
            };
            if matched.is_empty() {
                bail!("no running instance matches {n}");
            }
            targets.extend(matched);
        }
    }
    for t in &targets {
        tracing::info!(
            "Stopping {} instance of {} (PID={})",
            t.record.name,
            t.record.image,
            t.record.pid
        );
        inst::stop(t, how)?;
    }
    Ok(0)
}

fn stats(user: Option<String>, json: bool, name: Option<String>) -> Result<u8> {
    let Some(name) = name else {
        bail!("instance stats needs an instance name, as in: instance stats NAME");
    };
    let (places, uid) = places(user)?;
    let found = inst::find(&places, uid, &name)?;
    let s = inst::stats(&found);
    let out = if json {
        format!("{}\n", serde_json::to_string_pretty(&s)?)
    } else {
        table(
            &["INSTANCE NAME", "CPU TIME", "MEM USAGE", "PIDS"],
            vec![vec![
                s.name.clone(),
                format!("{:.2}s", s.cpu_seconds),
                format!("{:.1}MiB", s.memory_bytes as f64 / 1048576.0),
                s.pids.to_string(),
            ]],
        )
    };
    super::write_stdout(out.as_bytes())?;
    Ok(0)
}

/// `exec|run|shell|test instance://NAME [ARGS]`.
pub fn join(_tool: Tool, verb: Verb, name: &str, args: ActionArgs) -> Result<u8> {
    let host = Host::current();
    let places = Places::current(&host);
    let found = inst::find(&places, host.uid, name)?;
    // The container is the instance's: what would change it is said to
    // change nothing, never silently dropped.
    let ignored: Vec<&str> = [
        ("--bind", !args.bind.is_empty()),
        ("--mount", !args.mount.is_empty()),
        ("--overlay", !args.overlay.is_empty()),
        ("--scratch", !args.scratch.is_empty()),
        ("--writable", args.writable),
        ("--writable-tmpfs", args.writable_tmpfs),
        ("--contain", args.contain),
        ("--containall", args.containall),
        ("--fakeroot", args.fakeroot),
        ("--pid", args.pid),
        ("--ipc", args.ipc),
        ("--net", args.net),
        ("--uts", args.uts),
        ("--hostname", args.hostname.is_some()),
        ("--home", args.home.is_some()),
        ("--env", !args.env.is_empty()),
        ("--env-file", !args.env_file.is_empty()),
        ("--cleanenv", args.cleanenv),
    ]
    .into_iter()
    .filter_map(|(flag, given)| given.then_some(flag))
    .collect();
    if !ignored.is_empty() {
        tracing::warn!(
            "{} change nothing for instance://{name}: its container, mounts and environment are the instance's",
            ignored.join(", ")
        );
    }
    let rest: Vec<OsString> = args.rest.into_iter().skip(1).collect();
    let action = match verb {
        Verb::Exec if rest.is_empty() => {
            bail!("exec needs a command to run after the image, as in: exec instance://{name} COMMAND [ARGS...]")
        }
        Verb::Exec => Action::Exec(rest),
        Verb::Run => Action::Run(rest),
        Verb::Test => Action::Test(rest),
        Verb::Shell(shell) => Action::Shell(shell),
    };
    let product = "Apptainer";
    let status = inst::join::join(&found, &action, &host, product)?;
    Ok(u8::try_from(status).unwrap_or(255))
}
