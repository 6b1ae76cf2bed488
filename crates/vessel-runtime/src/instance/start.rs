//! `instance start` and `instance run`: the name reserved, the monitor
//! forked and detached, and its word awaited: `ready` once the init runs
//! and the record is written, or `ended N` when the container ended.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use vessel_image::Image;
use vessel_sys::process::{self as p, Fork};
use vessel_sys::Hint;

use super::{find, private_dir, remove_record, InstanceError, Places, Record, VesselRecord};
use crate::launch::Started;
use crate::options::{Action, Host, LaunchOptions};

/// How long `instance start` watches a started instance for a start script
/// that fails at once, before it reports success. A start script that
/// fails later ends the instance just the same (its log says so).
const GRACE: Duration = Duration::from_secs(1);

/// What to start: the name, and where to write the init's pid.
#[derive(Clone, Debug)]
pub struct StartRequest {
    pub name: String,
    pub pid_file: Option<PathBuf>,
    /// A shared container of a job step's ranks ([`super::sharens`]): it
    /// ends when its last member has.
    pub sharens: bool,
    /// A descriptor of the starting command's that the monitor closes at
    /// once: the `--sharens` lock, which would otherwise stay held for as
    /// long as the container runs (a lock belongs to the open file, which
    /// the fork shares).
    pub close_in_monitor: Option<i32>,
}

/// Starts the instance and returns its init's pid once it runs. `opts`
/// carry the command (the start script or the runscript, through the
/// action script).
pub fn start(
    opts: &LaunchOptions,
    host: &Host,
    image: Image,
    req: &StartRequest,
) -> Result<i32, InstanceError> {
    super::check_name(&req.name)?;
    let places = Places::current(host);
    if let Ok(found) = find(&places, host.uid, &req.name) {
        return Err(in_use(&req.name, found.record.pid));
    }
    private_dir(&places.records)?;
    private_dir(&places.logs)?;
    let dir = places.records.join(&req.name);
    match fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(source) => return Err(InstanceError::File { path: dir, source }),
    }
    let record_path = places.record(&req.name);
    // The name is reserved by creating its record, never by replacing one:
    // of two starts at once, one wins.
    let me = p::getpid().as_raw_nonzero().get();
    let placeholder = Record {
        pid: 0,
        ppid: me,
        name: req.name.clone(),
        user: host.user_name(),
        image: opts.image.display().to_string(),
        userns: false,
        cgroup: false,
        ip: String::new(),
        log_err_path: places.log_err(&req.name).display().to_string(),
        log_out_path: places.log_out(&req.name).display().to_string(),
        checkpoint: String::new(),
        sharens_mode: req.sharens,
        vessel: VesselRecord {
            monitor_start: vessel_sys::join::start_time(me).unwrap_or(0),
            uid: host.uid,
            ..VesselRecord::default()
        },
    };
    match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&record_path)
    {
        Ok(mut f) => {
            let text = serde_json::to_string_pretty(&placeholder).unwrap_or_default();
            f.write_all(text.as_bytes())
                .map_err(|source| InstanceError::File {
                    path: record_path.clone(),
                    source,
                })?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(in_use(&req.name, 0));
        }
        Err(source) => {
            return Err(InstanceError::File {
                path: record_path,
                source,
            })
        }
    }
    let log = |path: PathBuf| {
        fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .map_err(|source| InstanceError::File { path, source })
    };
    let (out, err) = match (
        log(places.log_out(&req.name)),
        log(places.log_err(&req.name)),
    ) {
        (Ok(o), Ok(e)) => (o, e),
        (Err(e), _) | (_, Err(e)) => {
            remove_record(&record_path);
            return Err(e);
        }
    };
    let (ours, theirs) = UnixStream::pair().map_err(|source| InstanceError::File {
        path: "socketpair".into(),
        source,
    })?;
    let fork = match p::fork() {
        Ok(f) => f,
        Err(e) => {
            remove_record(&record_path);
            return Err(e.into());
        }
    };
    match fork {
        Fork::Child => {
            drop(ours);
            if let Some(fd) = req.close_in_monitor {
                vessel_sys::join::close_inherited(fd);
            }
            monitor(
                opts,
                host,
                image,
                req,
                placeholder,
                record_path,
                out,
                err,
                theirs,
            )
        }
        Fork::Parent(_) => {
            drop(theirs);
            drop((out, err));
            await_start(&places, req, &record_path, ours)
        }
    }
}

fn in_use(name: &str, pid: i32) -> InstanceError {
    InstanceError::InUse {
        name: name.to_string(),
        pid,
        hint: Hint::new(format!(
            "stop it first (instance stop {name}), or choose another name"
        )),
    }
}

/// The starting command's side: waits for the monitor's word.
fn await_start(
    places: &Places,
    req: &StartRequest,
    record_path: &std::path::Path,
    sock: UnixStream,
) -> Result<i32, InstanceError> {
    let mut reader = BufReader::new(sock);
    let mut line = String::new();
    let ready = reader.read_line(&mut line).is_ok() && line.trim() == "ready";
    // A shared container has no start script to fail.
    let ended = if ready && req.sharens {
        None
    } else if ready {
        let _ = reader.get_ref().set_read_timeout(Some(GRACE));
        line.clear();
        match reader.read_line(&mut line) {
            Ok(n) if n > 0 => line.trim().strip_prefix("ended ").map(str::to_string),
            _ => None,
        }
    } else {
        line.trim()
            .strip_prefix("ended ")
            .map(str::to_string)
            .or(Some("?".into()))
    };
    let Some(status) = ended else {
        // Running: the init's pid is in the record the monitor wrote.
        let pid = Record::read(record_path, vessel_sys::process::getuid())
            .map(|r| r.pid)
            .unwrap_or(0);
        return Ok(pid);
    };
    remove_record(record_path);
    let log = places.log_err(&req.name);
    let said = fs::read_to_string(&log).unwrap_or_default();
    let tail: Vec<&str> = said.lines().rev().take(5).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    let what = if ready {
        format!("its start script ended at once (exit status {status})")
    } else {
        "it could not start".to_string()
    };
    let problem = if tail.is_empty() {
        format!("{what}; its log is {}", log.display())
    } else {
        format!("{what}; {} says: {}", log.display(), tail.join(" / "))
    };
    Err(InstanceError::Failed {
        name: req.name.clone(),
        problem,
    })
}

/// The monitor's side: detached, it launches the container and tells the
/// starting command when it runs, then lives as long as it does.
#[allow(clippy::too_many_arguments)]
fn monitor(
    opts: &LaunchOptions,
    host: &Host,
    image: Image,
    req: &StartRequest,
    placeholder: Record,
    record_path: PathBuf,
    out: fs::File,
    err: fs::File,
    mut sock: UnixStream,
) -> ! {
    // Started in a Slurm job: the instance ends with its step, whose
    // process tree this monitor leaves (looked up while its parent, the
    // starting command, still links it to the tree).
    if let Some((pid, started)) = vessel_sys::join::ancestor_named("slurmstepd") {
        match vessel_sys::join::Process::open_to_watch(pid, started) {
            Ok(step) => super::init::end_with_job(step),
            Err(e) => eprintln!("WARNING: the instance will not end with its batch job: {e}"),
        }
    }
    // A session of its own: no terminal, and the terminal's hang-up or
    // Ctrl-C no longer reaches the instance.
    let _ = vessel_sys::join::new_session();
    if let Err(e) = vessel_sys::join::redirect_stdio(&out, &err) {
        let _ = writeln!(sock, "ended 255");
        eprintln!("FATAL:   {e}");
        p::exit_now(255);
    }
    drop((out, err));
    let me = p::getpid().as_raw_nonzero().get();
    // Bound before the container exists: the starting command joins it as
    // soon as it hears `ready`.
    let places = Places::current(host);
    let mut members = if req.sharens {
        match super::sharens::Members::listen(&places, &req.name, host.uid)
            .and_then(super::sharens::Members::spawn)
        {
            Ok(m) => Some(m),
            Err(e) => {
                let _ = writeln!(sock, "ended 255");
                eprintln!("FATAL:   {}", vessel_sys::error_chain(&e));
                p::exit_now(255);
            }
        }
    } else {
        None
    };
    let mut on_start = |s: &Started<'_>| -> Result<(), crate::LaunchError> {
        let init = s.init.as_raw_nonzero().get();
        // A shared container's init has no command; `exec instance://`
        // into it still runs through the image's shell.
        let shared;
        let (argv, env) = if s.plan.argv.is_empty() && s.plan.basis.has_sh {
            shared = s
                .plan
                .basis
                .command(opts, host, &Action::Exec(Vec::new()))?;
            (&shared.argv, &shared.env)
        } else {
            (&s.plan.argv, &s.plan.env)
        };
        let (script, env) = match argv.as_slice() {
            [sh, c, script, ..] if sh == "/bin/sh" && c == "-c" => (
                script.to_string_lossy().into_owned(),
                env.iter()
                    .map(|(k, v)| {
                        (
                            k.to_string_lossy().into_owned(),
                            v.to_string_lossy().into_owned(),
                        )
                    })
                    .collect(),
            ),
            _ => (String::new(), Vec::new()),
        };
        let record = Record {
            pid: init,
            ppid: me,
            userns: s.namespaces.user,
            vessel: VesselRecord {
                monitor_start: vessel_sys::join::start_time(me).unwrap_or(0),
                init_start: vessel_sys::join::start_time(init).unwrap_or(0),
                pid_ns: s.namespaces.pid,
                ipc_ns: s.namespaces.ipc,
                uts_ns: s.namespaces.uts,
                net_ns: s.namespaces.net,
                script,
                env,
                uid: placeholder.vessel.uid,
                capabilities: s
                    .plan
                    .capabilities
                    .as_ref()
                    .map(|c| c.iter().map(|c| vessel_sys::caps::name(*c)).collect()),
                no_new_privs: s.plan.no_new_privs,
                basis: Some(s.plan.basis.clone()),
                cwd: Some(s.plan.cwd.to_string_lossy().into_owned()),
            },
            ..placeholder.clone()
        };
        record
            .write(&record_path)
            .map_err(|e| crate::LaunchError::Io(std::io::Error::other(e.to_string())))?;
        if let Some(members) = members.take() {
            members.start(init, record.vessel.init_start);
        }
        if let Some(file) = &req.pid_file {
            fs::write(file, format!("{init}\n"))?;
        }
        let _ = sock.write_all(b"ready\n");
        Ok(())
    };
    let status = match crate::launch::launch_instance(opts, host, image, &mut on_start) {
        Ok(status) => status,
        Err(e) => {
            eprintln!("FATAL:   {}", vessel_sys::error_chain(&e));
            255
        }
    };
    // The record is removed by the monitor that wrote it, never one a
    // later start of the same name wrote.
    if Record::read(&record_path, placeholder.vessel.uid).is_ok_and(|r| r.ppid == me) {
        remove_record(&record_path);
    }
    // A shared container's logs say something only when it failed.
    if req.sharens {
        for log in [places.log_out(&req.name), places.log_err(&req.name)] {
            if fs::metadata(&log).is_ok_and(|m| m.len() == 0) {
                let _ = fs::remove_file(log);
            }
        }
    }
    let _ = writeln!(sock, "ended {status}");
    p::exit_now(status)
}
