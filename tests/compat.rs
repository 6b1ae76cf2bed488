//! The compatibility table (`src/compat.rs`, the README's "Compatibility
//! with Apptainer's flags") as users meet it: every flag it says is refused
//! is refused when typed, `vessel CMD --flag [VALUE] ARGS…` with a real
//! image, by exactly one `FATAL:` line naming it and exit status 255; and
//! every flag honoured for root only is refused that way for the test user.

mod common;

use std::process::Output;

use common::*;

/// A row of the table, as `vessel __compat-table` prints it.
struct Row {
    command: String,
    flag: String,
    status: String,
    root_only: bool,
    takes_value: bool,
}

fn table() -> Vec<Row> {
    let out = run(&["__compat-table"]);
    assert_ok(&out, "vessel __compat-table")
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 5, "{l}");
            Row {
                command: f[0].into(),
                flag: f[1].into(),
                status: f[2].into(),
                root_only: f[3] == "root-only",
                takes_value: f[4] == "value",
            }
        })
        .collect()
}

/// The commands refused as a whole: the `FATAL:` line names the command.
const WHOLE: &[(&str, &str)] = &[
    ("key search", "key search is not supported"),
    ("key pull", "key pull is not supported"),
    ("key push", "key push is not supported"),
];

/// A value the flag's parser takes, where it takes one.
fn value_for(flag: &str) -> &'static str {
    match flag {
        "--network-args" => "portmap=8080:80/tcp",
        "--security" => "seccomp:profile.json",
        "--device" => "nvidia.com/gpu=all",
        "--memory" | "--memory-reservation" | "--memory-swap" => "1G",
        "--blkio-weight-device" => "/dev/sda:100",
        "--fusemount" => "host:sshfs server: /mnt",
        "--annotation" => "org.example.key=value",
        "--library" => "https://library.example.org",
        "--docker-host" => "unix:///var/run/docker.sock",
        "--buildkit-host" => "tcp://127.0.0.1:1234",
        // Numbers and paths alike.
        _ => "1",
    }
}

/// The positional arguments `command` needs to get as far as its flags.
fn positionals(command: &str, image: &str) -> Vec<String> {
    let v: &[&str] = match command {
        "global" => &["version"],
        "exec" => &[image, "true"],
        "run" | "shell" | "test" | "verify" | "inspect" | "sign" => &[image],
        "build" => &["out.sif", image],
        "pull" => &["docker://127.0.0.1:9/none:latest"],
        "push" => &[image, "oras://127.0.0.1:9/none:latest"],
        "instance start" | "instance run" => &[image, "web"],
        "instance stop" | "instance stats" => &["web"],
        "overlay create" => &["overlay.img"],
        "key search" | "key pull" | "key push" => &["0123456789ABCDEF"],
        "registry login" | "registry logout" => &["docker://127.0.0.1:9"],
        "config global" => &["mount home", "no"],
        "config fakeroot" => &["root"],
        _ => &[],
    };
    v.iter().map(|s| s.to_string()).collect()
}

/// `vessel CMD --flag [VALUE] ARGS…` (global flags before the command).
fn command_line(row: &Row, image: &str) -> Vec<String> {
    let mut line: Vec<String> = Vec::new();
    if row.command != "global" {
        line.extend(row.command.split(' ').map(String::from));
    }
    line.push(row.flag.clone());
    if row.takes_value {
        line.push(value_for(&row.flag).to_string());
    }
    line.extend(positionals(&row.command, image));
    line
}

/// What the one `FATAL:` line must name: the flag, or, for the commands
/// refused as a whole, the command.
fn named(row: &Row) -> String {
    WHOLE
        .iter()
        .find(|(c, _)| row.command == *c || row.command.starts_with(&format!("{c} ")))
        .map_or_else(|| row.flag.clone(), |(_, n)| n.to_string())
}

/// Exit 255, one `FATAL:` line (its `HINT:` lines aside) that names
/// `needle`; else what went wrong.
fn refused_by_name(out: &Output, needle: &str) -> Result<(), String> {
    let err = stderr(out);
    let lines: Vec<&str> = err.lines().collect();
    let ok = out.status.code() == Some(255)
        && lines
            .first()
            .is_some_and(|l| l.starts_with("FATAL:   ") && l.contains(needle))
        && lines[1..].iter().all(|l| l.starts_with("HINT:    "));
    if ok {
        Ok(())
    } else {
        Err(format!("exit {:?}: {err}", out.status.code()))
    }
}

fn check(rows: &[Row], run: impl Fn(&[String]) -> Output) {
    let image = busybox();
    let image = image.to_str().unwrap();
    let mut failed = Vec::new();
    for row in rows {
        let line = command_line(row, image);
        let out = run(&line);
        if let Err(why) = refused_by_name(&out, &named(row)) {
            failed.push(format!("vessel {}\n    {}", line.join(" "), why.trim()));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} refusals are not one FATAL line naming the flag:\n{}",
        failed.len(),
        rows.len(),
        failed.join("\n")
    );
}

#[test]
fn every_refused_flag_is_refused_by_name() {
    let rows: Vec<Row> = table()
        .into_iter()
        .filter(|r| r.status == "refused")
        .collect();
    assert!(rows.len() > 100, "{} refused rows", rows.len());
    let dir = tempfile::tempdir().unwrap();
    check(&rows, |line| {
        vessel()
            .current_dir(dir.path())
            .args(line)
            .output()
            .unwrap()
    });
    // Nothing was made on the way.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// The flags honoured for root only are refused by name for other users.
#[test]
fn root_only_flags_are_refused_for_users() {
    skip_unless!(running_as_root(), "needs root, to run as the test user");
    let rows: Vec<Row> = table().into_iter().filter(|r| r.root_only).collect();
    assert!(!rows.is_empty());
    let dir = user_dir();
    check(&rows, |line| {
        let args: Vec<&str> = line.iter().map(String::as_str).collect();
        user_run(dir.path(), &args, &[])
    });
}
