//! Instances, end to end, as the unprivileged test user: a web server
//! started by an image's `%startscript` (Python's `http.server` in the
//! Debian test image), reached from the host, joined with `exec
//! instance://`, listed, stopped and killed; and the bad inputs.
//!
//! The tests share the test user's instance directory (in its home, as
//! Apptainer keeps it), so they run one at a time (`stop --all` would
//! otherwise stop another test's instances). Processes are checked gone
//! through `/proc` (gone, or a zombie that nothing runs any more): defunct
//! processes of a non-reaping PID 1 linger on some machines.

// The tests read their own settings (VESSEL_TEST_*, VESSEL_FIXTURES, CI),
// not Vessel's variables, so not through vessel-config's registry.
#![allow(clippy::disallowed_methods)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use common::*;

/// One test at a time (see the module's doc).
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// The web image, built once from the Debian test image: its start script
/// serves HTTP on the port given as its first argument, or fails at once
/// when that argument is `fail`.
fn web_sif() -> Option<PathBuf> {
    static SIF: OnceLock<Option<(tempfile::TempDir, PathBuf)>> = OnceLock::new();
    let debian = debian_sif()?;
    SIF.get_or_init(|| {
        let dir = user_dir();
        let d = dir.path();
        let def = write_for_user(
            d,
            "web.def",
            &format!(
                "Bootstrap: localimage\nFrom: {}\n\n%startscript\n    if [ \"$1\" = fail ]; then echo 'start script failing' >&2; exit 3; fi\n    echo \"serving on $1\"\n    exec python3 -m http.server \"$1\" --bind 127.0.0.1\n",
                debian.display()
            ),
        );
        let out = user_run(d, &["build", "web.sif", &def], &[]);
        assert_ok(&out, "building the web image");
        let sif = d.join("web.sif");
        Some((dir, sif))
    })
    .as_ref()
    .map(|(_, p)| p.clone())
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A name no other run uses.
fn name(base: &str) -> String {
    format!("{base}{}", std::process::id())
}

/// `GET /` on the port: the status line, or `None` when nothing answers.
fn http_get(port: u16) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    text.lines().next().map(str::to_string)
}

/// Polls `cond` until it holds, for at most two minutes.
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !cond() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether `pid` no longer runs: no such process, or a zombie.
fn gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rfind(')')
            .is_some_and(|i| stat[i + 2..].starts_with('Z')),
    }
}

/// Every process whose parent chain leads to `pid`.
fn descendants(pid: i32) -> Vec<i32> {
    let mut links: Vec<(i32, i32)> = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        let Some(i) = stat.rfind(')') else { continue };
        if let Some(pp) = stat[i + 2..].split(' ').nth(1).and_then(|v| v.parse().ok()) {
            links.push((p, pp));
        }
    }
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(cur) = todo.pop() {
        for &(p, pp) in &links {
            if pp == cur && !out.contains(&p) {
                out.push(p);
                todo.push(p);
            }
        }
    }
    out
}

/// The record of instance `name`: (monitor pid, init pid).
fn pids(name: &str) -> (i32, i32) {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let user = test_user();
    let path = user.home.join(format!(
        ".apptainer/instances/app/{}/{}/{name}/{name}.json",
        host.trim(),
        user.name
    ));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    (
        v["ppid"].as_i64().unwrap() as i32,
        v["pid"].as_i64().unwrap() as i32,
    )
}

fn vessel_in(dir: &Path, args: &[&str]) -> Output {
    user_run(dir, args, &[])
}

/// The names `instance list --json` shows.
fn listed(dir: &Path) -> Vec<String> {
    let out = assert_ok(
        &vessel_in(dir, &["instance", "list", "--json"]),
        "instance list",
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["instance"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_web_service_runs_in_the_background_is_joined_and_stops() {
    let _one = serial();
    let Some(sif) = web_sif() else { return };
    let dir = user_dir();
    let d = dir.path();
    let sif = sif.to_str().unwrap();
    let web = name("web");
    let port = free_port().to_string();
    let pid_file = d.join("web.pid");
    let out = vessel_in(
        d,
        &[
            "instance",
            "start",
            "--contain",
            "--pid",
            "--pid-file",
            "web.pid",
            sif,
            &web,
            &port,
        ],
    );
    assert_ok(&out, "instance start");
    let port: u16 = port.parse().unwrap();
    eventually("the server answers", || {
        http_get(port).is_some_and(|l| l.contains("200"))
    });
    let (monitor, init) = pids(&web);
    let inside = descendants(init);
    assert!(!inside.is_empty(), "no process under the init");
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap().trim(),
        init.to_string()
    );
    // Its resource use, from /proc: the init and the server at least.
    let out = assert_ok(
        &vessel_in(d, &["instance", "stats", "--json", &web]),
        "instance stats",
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["pids"].as_u64().is_some_and(|n| n >= 2), "{out}");
    assert!(v["memory_bytes"].as_u64().is_some_and(|n| n > 0), "{out}");
    // Its logs: the start script's output.
    let out = assert_ok(
        &vessel_in(d, &["instance", "list", "--logs", &web]),
        "--logs",
    );
    let log_out = out
        .split_whitespace()
        .find(|w| w.ends_with(&format!("{web}.out")))
        .unwrap_or_else(|| panic!("no .out log in: {out}"));
    let said = std::fs::read_to_string(log_out).unwrap();
    assert!(said.contains(&format!("serving on {port}")), "{said}");

    // Listed, with the pid and image.
    let out = assert_ok(&vessel_in(d, &["instance", "list", "--json"]), "list");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let me = v["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["instance"] == web.as_str())
        .unwrap_or_else(|| panic!("{web} not listed: {out}"));
    assert_eq!(me["pid"].as_i64(), Some(init as i64));
    assert_eq!(me["img"].as_str(), Some(sif));
    let out = assert_ok(&vessel_in(d, &["instance", "list", &web]), "list NAME");
    assert!(
        out.lines().nth(1).is_some_and(|l| l.starts_with(&web)),
        "{out}"
    );

    // Joined: the same (contained, private) /tmp, the same processes (the
    // instance's PID namespace).
    let inst = format!("instance://{web}");
    assert_ok(
        &vessel_in(d, &["exec", &inst, "sh", "-c", "echo joined > /tmp/mark"]),
        "exec writes",
    );
    let out = assert_ok(
        &vessel_in(d, &["exec", &inst, "cat", "/tmp/mark"]),
        "exec reads",
    );
    assert_eq!(out, "joined\n");
    assert!(
        !Path::new("/tmp/mark").exists()
            || std::fs::read_to_string("/tmp/mark").unwrap() != "joined\n"
    );
    let out = assert_ok(
        &vessel_in(
            d,
            &[
                "exec",
                &inst,
                "sh",
                "-c",
                "cat /proc/[0-9]*/cmdline | tr '\\0' ' '",
            ],
        ),
        "exec lists processes",
    );
    assert!(out.contains("http.server"), "{out}");
    let out = vessel_in(d, &["exec", &inst, "sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));

    // Stopped: nothing answers, nothing is left, the record is gone.
    assert_ok(&vessel_in(d, &["instance", "stop", &web]), "instance stop");
    assert!(http_get(port).is_none(), "the port still answers");
    for pid in [monitor, init].into_iter().chain(inside) {
        eventually(&format!("process {pid} ends"), || gone(pid));
    }
    assert!(!listed(d).contains(&web));
}

#[test]
fn writable_tmpfs_changes_are_seen_by_joiners_and_an_image_without_start_script_idles() {
    let _one = serial();
    let Some(debian) = debian_sif() else { return };
    let dir = user_dir();
    let d = dir.path();
    let idle = name("idle");
    let out = vessel_in(
        d,
        &[
            "instance",
            "start",
            "--writable-tmpfs",
            debian.to_str().unwrap(),
            &idle,
        ],
    );
    assert_ok(&out, "instance start");
    let inst = format!("instance://{idle}");
    assert_ok(
        &vessel_in(
            d,
            &["exec", &inst, "sh", "-c", "echo changed > /etc/vessel-mark"],
        ),
        "a change",
    );
    let out = assert_ok(
        &vessel_in(d, &["exec", &inst, "cat", "/etc/vessel-mark"]),
        "seen",
    );
    assert_eq!(out, "changed\n");
    // `run` and `test` join too (the Debian image's runscript and test).
    let out = vessel_in(d, &["test", &inst]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (monitor, init) = pids(&idle);
    assert_ok(&vessel_in(d, &["instance", "stop", &idle]), "stop");
    eventually("the instance ends", || gone(monitor) && gone(init));
    // A new instance starts from the image again.
    let again = name("again");
    assert_ok(
        &vessel_in(
            d,
            &[
                "instance",
                "start",
                "--writable-tmpfs",
                debian.to_str().unwrap(),
                &again,
            ],
        ),
        "start again",
    );
    let out = vessel_in(
        d,
        &[
            "exec",
            &format!("instance://{again}"),
            "cat",
            "/etc/vessel-mark",
        ],
    );
    assert!(!out.status.success(), "the change outlived its instance");
    assert_ok(&vessel_in(d, &["instance", "stop", &again]), "stop");
}

#[test]
fn two_instances_of_one_image_and_stop_all() {
    let _one = serial();
    let Some(sif) = web_sif() else { return };
    let dir = user_dir();
    let d = dir.path();
    let sif = sif.to_str().unwrap();
    let (a, b) = (name("one"), name("two"));
    let (pa, pb) = (free_port(), free_port());
    assert_ok(
        &vessel_in(d, &["instance", "start", sif, &a, &pa.to_string()]),
        "first",
    );
    assert_ok(
        &vessel_in(d, &["instance", "start", sif, &b, &pb.to_string()]),
        "second",
    );
    eventually("both answer", || {
        http_get(pa).is_some() && http_get(pb).is_some()
    });
    let names = listed(d);
    assert!(names.contains(&a) && names.contains(&b), "{names:?}");
    let mut all = Vec::new();
    for n in [&a, &b] {
        let (m, i) = pids(n);
        all.extend([m, i]);
        all.extend(descendants(i));
    }
    let out = vessel_in(d, &["instance", "stop", "--all"]);
    assert_ok(&out, "stop --all");
    for pid in all {
        eventually(&format!("process {pid} ends"), || gone(pid));
    }
    assert!(http_get(pa).is_none() && http_get(pb).is_none());
    let names = listed(d);
    assert!(!names.contains(&a) && !names.contains(&b), "{names:?}");
}

#[test]
fn killing_the_monitor_ends_the_whole_instance() {
    let _one = serial();
    let Some(sif) = web_sif() else { return };
    let dir = user_dir();
    let d = dir.path();
    let web = name("killed");
    let port = free_port();
    assert_ok(
        &vessel_in(
            d,
            &[
                "instance",
                "start",
                sif.to_str().unwrap(),
                &web,
                &port.to_string(),
            ],
        ),
        "start",
    );
    eventually("the server answers", || http_get(port).is_some());
    let (monitor, init) = pids(&web);
    let inside = descendants(init);
    assert!(!inside.is_empty());
    let status = std::process::Command::new("kill")
        .args(["-9", &monitor.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    eventually("list drops the instance", || !listed(d).contains(&web));
    for pid in std::iter::once(init).chain(inside) {
        eventually(&format!("process {pid} ends"), || gone(pid));
    }
    assert!(http_get(port).is_none());
}

#[test]
fn bad_input_is_one_fatal_line() {
    let _one = serial();
    let Some(sif) = web_sif() else { return };
    let dir = user_dir();
    let d = dir.path();
    let sif = sif.to_str().unwrap();
    // An unknown instance.
    let out = vessel_in(d, &["exec", "instance://no-such-instance", "true"]);
    assert_fatal(&out, &["no instance named no-such-instance"]);
    let out = vessel_in(d, &["instance", "stop", "no-such-instance"]);
    assert_fatal(&out, &["no instance named no-such-instance"]);
    // A name that is not one.
    let out = vessel_in(d, &["instance", "start", sif, "a/b"]);
    assert_fatal(&out, &["not a valid instance name"]);
    // A start script that fails at once: reported, nothing left.
    let bad = name("fails");
    let out = vessel_in(d, &["instance", "start", sif, &bad, "fail"]);
    assert_fatal(&out, &["start script", "status 3", "start script failing"]);
    assert!(!listed(d).contains(&bad));
    // A name in use.
    let web = name("dup");
    let port = free_port().to_string();
    assert_ok(
        &vessel_in(d, &["instance", "start", sif, &web, &port]),
        "start",
    );
    let out = vessel_in(d, &["instance", "start", sif, &web, &port]);
    assert_fatal(&out, &["already running", &web]);
    assert_ok(&vessel_in(d, &["instance", "stop", &web]), "stop");
    // No name at all.
    let out = vessel_in(d, &["instance", "stop"]);
    assert_fatal(&out, &["--all"]);
}
