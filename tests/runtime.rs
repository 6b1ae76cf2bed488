//! Containers as users run them: `exec`, `run`, `shell` and `test` of real
//! images, as an unprivileged user, with real user and mount namespaces.
//! Covers the default mounts, binds (and attempts to escape through
//! symlinks), the environment precedence, namespaces, exit codes and
//! signals.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

/// The Singularity 3.4 image: `run` prints `run: bar ARGS`, `%environment`
/// sets FOO=bar, and `%test` checks `/built.txt`.
fn localimage() -> PathBuf {
    sif_fixtures().join("singularity-3.4/busybox-localimage.sif")
}

/// `vessel exec IMAGE sh -c SCRIPT` as the test user; asserts success.
fn sh(image: &Path, flags: &[&str], script: &str, env: &[(&str, &str)]) -> String {
    let dir = user_dir();
    let mut args = vec!["exec"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&[image.to_str().unwrap(), "/bin/sh", "-c", script]);
    let out = user_run(dir.path(), &args, env);
    assert!(
        out.status.success(),
        "{args:?} failed ({:?}): {}{}",
        out.status,
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

fn write_owned(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    give_to_test_user(path);
}

fn mkdir_owned(path: &Path) {
    std::fs::create_dir_all(path).unwrap();
    give_to_test_user(path);
}

#[test]
fn exec_runs_as_the_calling_user() {
    let u = test_user();
    let out = sh(
        &busybox(),
        &[],
        "id -u; id -g; whoami; echo $HOME; cat /proc/self/status | grep NoNewPrivs",
        &[],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], u.uid.to_string());
    assert_eq!(lines[1], u.gid.to_string());
    assert_eq!(lines[2], u.name);
    assert_eq!(lines[3], u.home.to_str().unwrap());
    assert!(lines[4].ends_with('1'), "no_new_privs must be set: {out}");
}

#[test]
fn exit_codes_and_signals_pass_through() {
    let dir = user_dir();
    let b = busybox();
    let img = b.to_str().unwrap();
    let code = |script: &str| {
        user_run(dir.path(), &["exec", img, "sh", "-c", script], &[])
            .status
            .code()
    };
    assert_eq!(code("exit 0"), Some(0));
    assert_eq!(code("exit 7"), Some(7));
    assert_eq!(code("kill -TERM $$"), Some(143));
    assert_eq!(code("kill -KILL $$"), Some(137));
    // A command that does not exist in the container: as Apptainer says it.
    let out = user_run(dir.path(), &["exec", img, "no-such-command"], &[]);
    assert_eq!(out.status.code(), Some(255), "{}", stderr(&out));
}

#[test]
fn run_test_and_shell_actions() {
    let dir = user_dir();
    let l = localimage();
    let img = l.to_str().unwrap();
    let out = user_run(dir.path(), &["run", img, "a", "b c"], &[]);
    assert_eq!(stdout(&out), "run: bar a b c\n", "{}", stderr(&out));
    let out = user_run(dir.path(), &["test", img], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The busybox image has no %test.
    let out = user_run(dir.path(), &["test", busybox().to_str().unwrap()], &[]);
    assert!(out.status.success());
    assert!(stderr(&out).contains("No test script found"));
    let mut child = user_vessel(&["shell", img], &[], dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"echo \"shell:$FOO:$SHELL\"\nexit 3\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(stdout(&out), "shell:bar:/bin/sh\n");
    let out = user_run(dir.path(), &["shell", "--shell", "/bin/nosuch", img], &[]);
    assert_eq!(out.status.code(), Some(255));
}

#[test]
fn environment_precedence() {
    let l = localimage();
    let show = "echo \"$FOO|$BAR|$BAZ\"";
    // The image (%environment sets FOO=bar) beats the host.
    assert_eq!(
        sh(&l, &[], show, &[("FOO", "host"), ("BAR", "host")]),
        "bar|host|\n"
    );
    // SINGULARITYENV_ beats the image; APPTAINERENV_ beats SINGULARITYENV_.
    assert_eq!(sh(&l, &[], show, &[("SINGULARITYENV_FOO", "s")]), "s||\n");
    assert_eq!(
        sh(
            &l,
            &[],
            show,
            &[("SINGULARITYENV_FOO", "s"), ("APPTAINERENV_FOO", "a")]
        ),
        "a||\n"
    );
    // --env-file beats APPTAINERENV_, --env beats --env-file.
    let dir = user_dir();
    let file = dir.path().join("vars.env");
    write_owned(&file, "FOO=file\nexport BAZ='from file'\n");
    let f = file.to_str().unwrap();
    assert_eq!(
        sh(&l, &["--env-file", f], show, &[("APPTAINERENV_FOO", "a")]),
        "file||from file\n"
    );
    assert_eq!(
        sh(
            &l,
            &["--env-file", f, "--env", "FOO=flag"],
            show,
            &[("APPTAINERENV_FOO", "a")]
        ),
        "flag||from file\n"
    );
    // APPTAINERENV_ values are evaluated in the container; --no-eval keeps them literal.
    assert_eq!(
        sh(&l, &[], "echo $BAR", &[("APPTAINERENV_BAR", "$FOO-x")]),
        "bar-x\n"
    );
    assert_eq!(
        sh(
            &l,
            &["--no-eval"],
            "echo \"$BAR\"",
            &[("APPTAINERENV_BAR", "$FOO-x")]
        ),
        "$FOO-x\n"
    );
    // --cleanenv drops the host, but not the terminal, proxies or launcher variables.
    let env = [
        ("BAR", "host"),
        ("TERM", "xterm"),
        ("SLURM_PROCID", "5"),
        ("OMPI_COMM_WORLD_RANK", "5"),
        ("PMI_RANK", "5"),
    ];
    assert_eq!(
        sh(
            &l,
            &["--cleanenv"],
            "echo \"$BAR|$TERM|$SLURM_PROCID|$OMPI_COMM_WORLD_RANK|$PMI_RANK|$LANG\"",
            &env
        ),
        "|xterm|5|5|5|C\n"
    );
    assert_eq!(
        sh(
            &l,
            &["--no-env", "BAR"],
            "echo \"$BAR|$SLURM_PROCID\"",
            &env
        ),
        "|5\n"
    );
    // What Apptainer sets, and the default PATH.
    let out = sh(
        &l,
        &[],
        "echo $APPTAINER_CONTAINER; echo $APPTAINER_NAME $SINGULARITY_NAME; echo $PATH",
        &[("PATH", "/host/only")],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], l.to_str().unwrap());
    assert_eq!(lines[1], "busybox-localimage.sif busybox-localimage.sif");
    assert_eq!(
        lines[2],
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    );
    assert_eq!(
        sh(
            &l,
            &[],
            "echo $PATH",
            &[("APPTAINERENV_PREPEND_PATH", "/opt/x")]
        )
        .trim_end(),
        "/opt/x:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    );
    // APPTAINER_* variables of the host configure Vessel, never the payload.
    assert_eq!(
        sh(
            &l,
            &[],
            "echo \"[$APPTAINER_CLEANENV]\"",
            &[("APPTAINER_CLEANENV", "0")]
        ),
        "[]\n"
    );
}

#[test]
fn default_mounts() {
    let u = test_user();
    let dir = user_dir();
    write_owned(&dir.path().join("here.txt"), "cwd");
    let b = busybox();
    let out = user_run(
        dir.path(),
        &["exec", b.to_str().unwrap(), "sh", "-c", "pwd; cat here.txt; echo; test -d /proc/1 && echo proc; test -e /sys/kernel && echo sys; test -c /dev/null && echo dev; ls -d $HOME; grep -c . /etc/hosts >/dev/null && echo hosts; touch /tmp/.vessel-probe-$$ && echo tmp"],
        &[],
    );
    let text = stdout(&out);
    assert_eq!(
        text,
        format!(
            "{}\ncwd\nproc\nsys\ndev\n{}\nhosts\ntmp\n",
            dir.path().display(),
            u.home.display()
        ),
        "{}",
        stderr(&out)
    );
    // The image itself is read-only.
    let out = user_run(
        dir.path(),
        &["exec", b.to_str().unwrap(), "touch", "/bin/new"],
        &[],
    );
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("Read-only"), "{}", stderr(&out));
}

#[test]
fn contain_gives_empty_home_tmp_and_a_minimal_dev() {
    let b = busybox();
    let out = sh(
        &b,
        &["--contain"],
        "ls -A $HOME | wc -l; ls -A /tmp | wc -l; ls /dev | tr '\\n' ' '; echo; pwd",
        &[],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0].trim(), "0");
    assert_eq!(lines[1].trim(), "0");
    for d in ["null", "zero", "random", "urandom", "pts", "shm", "ptmx"] {
        assert!(
            lines[2].split(' ').any(|x| x == d),
            "{d} missing from /dev: {}",
            lines[2]
        );
    }
    assert!(
        !lines[2].contains("sda") && !lines[2].contains("loop"),
        "{}",
        lines[2]
    );
    assert_eq!(lines[3], test_user().home.to_str().unwrap());
    // --containall: also PIDs, IPC and the environment.
    assert_eq!(
        sh(&b, &["--containall"], "echo $$ \"[$BAR]\"", &[("BAR", "x")]),
        "2 []\n"
    );
    // --workdir keeps contained /tmp and home on the host.
    let work = user_dir();
    sh(
        &b,
        &["--contain", "--workdir", work.path().to_str().unwrap()],
        "echo kept > /tmp/t; echo home > $HOME/h",
        &[],
    );
    assert_eq!(
        std::fs::read_to_string(work.path().join("tmp/t")).unwrap(),
        "kept\n"
    );
    assert_eq!(
        std::fs::read_to_string(work.path().join("home/h")).unwrap(),
        "home\n"
    );
}

#[test]
fn home_and_working_directory_options() {
    let b = busybox();
    let alt = user_dir();
    write_owned(&alt.path().join("marker"), "m");
    assert_eq!(
        sh(
            &b,
            &["--no-home"],
            "test -e $HOME/. && echo present || echo absent",
            &[]
        )
        .trim(),
        "absent"
    );
    let spec = format!("{}:/home/elsewhere", alt.path().display());
    assert_eq!(
        sh(&b, &["--home", &spec], "echo $HOME; cat $HOME/marker", &[]),
        "/home/elsewhere\nm"
    );
    assert_eq!(sh(&b, &["--cwd", "/etc"], "pwd", &[]), "/etc\n");
    assert_eq!(sh(&b, &["--pwd", "/usr"], "pwd", &[]), "/usr\n");
    let out = sh(
        &b,
        &["--scratch", "/scratch/a", "--scratch", "/s2"],
        "touch /scratch/a/x /s2/y && ls /scratch/a/x /s2/y | wc -l",
        &[],
    );
    assert_eq!(out.trim(), "2");
    assert_eq!(
        sh(
            &b,
            &["--no-mount", "tmp,home,cwd"],
            "ls -A /tmp | wc -l",
            &[]
        )
        .trim(),
        "0"
    );
}

#[test]
fn binds() {
    let b = busybox();
    let data = user_dir();
    write_owned(&data.path().join("in.txt"), "data");
    let d = data.path().to_str().unwrap();
    assert_eq!(
        sh(
            &b,
            &["-B", &format!("{d}:/data")],
            "cat /data/in.txt; echo > /data/out.txt",
            &[]
        ),
        "data"
    );
    assert!(
        data.path().join("out.txt").exists(),
        "writes go to the host directory"
    );
    // Read-only, Docker syntax, and the variable form (added to the flags).
    let out = user_run(
        data.path(),
        &[
            "exec",
            "-B",
            &format!("{d}:/ro:ro"),
            b.to_str().unwrap(),
            "touch",
            "/ro/x",
        ],
        &[],
    );
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("Read-only"));
    assert_eq!(
        sh(
            &b,
            &["--mount", &format!("type=bind,src={d},dst=/m,ro")],
            "cat /m/in.txt",
            &[]
        ),
        "data"
    );
    assert_eq!(
        sh(
            &b,
            &["-B", &format!("{d}:/one")],
            "cat /one/in.txt /two/in.txt",
            &[("APPTAINER_BIND", &format!("{d}:/two"))]
        ),
        "datadata"
    );
    // Binding a single file.
    assert_eq!(
        sh(
            &b,
            &["-B", &format!("{d}/in.txt:/etc/motd")],
            "cat /etc/motd",
            &[]
        ),
        "data"
    );
}

#[test]
fn bind_errors() {
    let dir = user_dir();
    let b = busybox();
    let img = b.to_str().unwrap();
    let out = user_run(
        dir.path(),
        &["exec", "-B", "/no/such/dir:/x", img, "true"],
        &[],
    );
    assert_fatal(&out, &["/no/such/dir", "doesn't exist"]);
    if running_as_root() {
        let private = tempfile::tempdir().unwrap();
        std::fs::set_permissions(private.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let p = private.path().to_str().unwrap();
        let out = user_run(dir.path(), &["exec", "-B", p, img, "true"], &[]);
        assert_fatal(&out, &[p, "not readable"]);
    }
    let out = user_run(
        dir.path(),
        &["exec", "-B", "/tmp:/x:bogus", img, "true"],
        &[],
    );
    assert_fatal(&out, &["bogus"]);
}

/// Unpacks the busybox image into a sandbox directory the test user owns.
fn busybox_sandbox(into: &Path) -> PathBuf {
    let root = into.join("sandbox");
    unsquash(&busybox(), &root, &[]);
    if running_as_root() {
        let u = test_user();
        chown_tree(&root, u.uid, u.gid);
    }
    root
}

#[test]
fn sandboxes_and_writable() {
    let dir = user_dir();
    let root = busybox_sandbox(dir.path());
    let r = root.to_str().unwrap();
    assert_eq!(sh(&root, &[], "echo sandbox", &[]), "sandbox\n");
    let out = user_run(dir.path(), &["exec", r, "touch", "/new"], &[]);
    assert_ne!(
        out.status.code(),
        Some(0),
        "a sandbox is read-only without --writable"
    );
    sh(&root, &["--writable"], "echo kept > /new", &[]);
    assert_eq!(std::fs::read_to_string(root.join("new")).unwrap(), "kept\n");
    // --writable on a SIF is refused with a hint.
    let out = user_run(
        dir.path(),
        &["exec", "--writable", busybox().to_str().unwrap(), "true"],
        &[],
    );
    assert_fatal(&out, &["--writable", "--writable-tmpfs"]);
    // --writable-tmpfs: writes work and vanish.
    assert_eq!(
        sh(
            &busybox(),
            &["--writable-tmpfs"],
            "echo x > /bin/new && cat /bin/new",
            &[]
        ),
        "x\n"
    );
    assert_eq!(
        sh(
            &busybox(),
            &[],
            "test -e /bin/new && echo kept || echo gone",
            &[]
        ),
        "gone\n"
    );
    // --overlay DIR keeps changes there for the next run.
    let ov = user_dir();
    let o = ov.path().to_str().unwrap();
    sh(
        &busybox(),
        &["--overlay", o],
        "echo persisted > /opt-file",
        &[],
    );
    assert_eq!(
        sh(&busybox(), &["--overlay", o], "cat /opt-file", &[]),
        "persisted\n"
    );
    assert_eq!(
        std::fs::read_to_string(ov.path().join("upper/opt-file")).unwrap(),
        "persisted\n"
    );
}

/// A sandbox owned by root, shared read-only with users: mount points the
/// overlay cannot create in root's directories go on a small tmpfs instead.
#[test]
fn sandbox_owned_by_another_user() {
    skip_unless!(running_as_root(), "needs root to make a root-owned sandbox");
    let dir = user_dir();
    let root = dir.path().join("shared");
    unsquash(&busybox(), &root, &[]);
    chown_tree(&root, 0, 0);
    let u = test_user();
    assert_eq!(
        sh(&root, &[], "id -u; echo $HOME; ls -d $HOME", &[]),
        format!("{}\n{}\n{}\n", u.uid, u.home.display(), u.home.display())
    );
}

/// Symlinks in the image never steer a bind or a mount point outside the
/// container's root, even in a writable sandbox where mount points are
/// created for real. The links point into the user's host home, which
/// `--contain` keeps out of the container: following them on the host would
/// create directories there.
#[test]
fn symlinks_cannot_escape_the_root() {
    let dir = user_dir();
    let root = busybox_sandbox(dir.path());
    let target = test_user()
        .home
        .join(format!("vessel-escape-victim-{}", std::process::id()));
    assert!(!target.exists());
    // Absolute and relative links pointing at a host directory.
    std::os::unix::fs::symlink(&target, root.join("abs")).unwrap();
    std::os::unix::fs::symlink(
        format!("../../../../../../..{}", target.display()),
        root.join("rel"),
    )
    .unwrap();
    let data = user_dir();
    write_owned(&data.path().join("f"), "data");
    let d = data.path().to_str().unwrap();
    let out = sh(
        &root,
        &[
            "--contain",
            "--writable",
            "-B",
            &format!("{d}:/abs/x"),
            "-B",
            &format!("{d}:/rel/y"),
        ],
        "cat /abs/x/f /rel/y/f",
        &[],
    );
    assert_eq!(out, "datadata");
    assert!(
        !target.exists(),
        "a mount point was created outside the container: {}",
        target.display()
    );
}

#[test]
fn fakeroot() {
    let out = sh(
        &busybox(),
        &["--fakeroot"],
        "id -u; id -g; echo $HOME; cat /proc/self/uid_map | tr -s ' '",
        &[],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(&lines[..3], &["0", "0", "/root"]);
    // Root only inside: uid 0 is the calling user outside.
    assert_eq!(lines[3].trim(), format!("0 {} 1", test_user().uid));
    let dir = user_dir();
    let root = busybox_sandbox(dir.path());
    sh(
        &root,
        &["--fakeroot", "--writable"],
        "touch /by-root && chown 0:0 /by-root",
        &[],
    );
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(root.join("by-root")).unwrap().uid(),
        test_user().uid
    );
}

#[test]
fn namespaces_on_request() {
    let b = busybox();
    // --pid: the payload is PID 2 under a small init that reaps orphans.
    let out = sh(
        &b,
        &["--pid"],
        "echo $$; (sleep 0.2 &); sleep 0.5; ps -o stat | grep -c Z; true",
        &[],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "2");
    assert_eq!(lines[1].trim(), "0", "zombies were not reaped: {out}");
    assert_eq!(
        sh(
            &b,
            &["--hostname", "box42"],
            "hostname; cat /etc/hostname",
            &[]
        ),
        "box42\nbox42\n"
    );
    assert_eq!(
        sh(&b, &["--uts"], "hostname >/dev/null && echo ok", &[]),
        "ok\n"
    );
    let ip = sh(
        &b,
        &["--net"],
        "cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '",
        &[],
    );
    assert_eq!(ip.trim(), "lo", "only loopback with --net");
    assert_eq!(
        sh(&b, &["--net"], "ip link show lo | grep -c UP", &[]).trim(),
        "1"
    );
    let host_ipc = std::fs::read_link("/proc/self/ns/ipc").unwrap();
    let inner = sh(&b, &["--ipc"], "readlink /proc/self/ns/ipc", &[]);
    assert_ne!(inner.trim(), host_ipc.to_str().unwrap());
}

/// `vessel exec IMAGE sh -c SCRIPT` as the test user, once the script has
/// printed `ready`: the monitor and the rest of its output.
fn started(
    image: &Path,
    script: &str,
    env: &[(&str, &str)],
    dir: &Path,
) -> (std::process::Child, std::process::ChildStdout) {
    let mut child = user_vessel(
        &["exec", image.to_str().unwrap(), "sh", "-c", script],
        env,
        dir,
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let mut stdout_pipe = child.stdout.take().unwrap();
    let mut first = [0u8; 6];
    std::io::Read::read_exact(&mut stdout_pipe, &mut first).unwrap();
    assert_eq!(&first, b"ready\n");
    (child, stdout_pipe)
}

/// Sends `sig` to the monitor (setpriv execs it, so the pid is the
/// monitor's).
fn signal(child: &std::process::Child, sig: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn signals_are_relayed_to_the_payload() {
    let dir = user_dir();
    let b = busybox();
    for (sig, expect_out, expect_code) in [
        ("USR1", "got USR1\n", Some(3)),
        ("TERM", "got TERM\n", Some(3)),
    ] {
        let script = format!(
            "trap 'echo got {sig}; exit 3' {sig}; echo ready; while :; do sleep 0.05; done"
        );
        let (mut child, mut stdout_pipe) = started(&b, &script, &[], dir.path());
        signal(&child, sig);
        let deadline = Instant::now() + Duration::from_secs(20);
        let code = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s.code();
            }
            assert!(
                Instant::now() < deadline,
                "the container did not stop after SIG{sig}"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut stdout_pipe, &mut rest).unwrap();
        assert_eq!(rest, expect_out);
        assert_eq!(code, expect_code);
    }
}

/// A monitor killed with SIGKILL leaves nothing behind: its payload dies
/// with it and the session directory in the user's TMPDIR is removed.
#[test]
fn nothing_is_left_after_the_monitor_is_killed() {
    let dir = user_dir();
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    give_to_test_user(&tmp);
    let b = busybox();
    let tmp_var = tmp.to_string_lossy().into_owned();
    let bg_pid = dir.path().join("bg.pid");
    let script = format!(
        "sleep 61 & echo $! > {}; echo ready; exec sleep 60",
        bg_pid.display()
    );
    let (mut child, mut stdout_pipe) = started(&b, &script, &[("TMPDIR", &tmp_var)], dir.path());
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        1,
        "a session directory while it runs"
    );
    signal(&child, "KILL");
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().collect();
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "left behind: {left:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The payload died with its monitor: the pipe's writer is gone.
    let mut rest = Vec::new();
    std::io::Read::read_to_end(&mut stdout_pipe, &mut rest).unwrap();
    // And so did what it started in the background (the sweeper kills
    // what is left in the container's user namespace).
    wait_until_gone(&bg_pid);
}

/// Waits until the process whose pid is in `pid_file` has ended. A killed
/// process may stay a zombie where PID 1 does not reap: it counts as gone.
fn wait_until_gone(pid_file: &Path) {
    let pid = std::fs::read_to_string(pid_file).unwrap();
    let stat = format!("/proc/{}/stat", pid.trim());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let state = std::fs::read_to_string(&stat).unwrap_or_default();
        // Gone (no stat file), or a zombie ("pid (comm) Z …").
        let running = !state.is_empty()
            && state
                .rsplit(')')
                .next()
                .is_some_and(|rest| !rest.trim_start().starts_with('Z'));
        if !running {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the background process survived: {state}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A payload that ends normally with something of its own still running
/// (a daemon, a forgotten `&`): that is ended too, as after a kill. (The
/// monitor spares the sweeper its walk of /proc only when nothing is left.)
#[test]
fn what_a_payload_leaves_running_is_ended_with_it() {
    let dir = user_dir();
    let b = busybox();
    let bg_pid = dir.path().join("bg.pid");
    // A double fork: the sleep's parent ends at once, so it is an orphan.
    let script = format!("(sleep 61 & echo $! > {}) ; echo done", bg_pid.display());
    let out = user_vessel(
        &["exec", b.to_str().unwrap(), "sh", "-c", &script],
        &[],
        dir.path(),
    )
    .output()
    .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "done\n");
    assert!(out.status.success());
    wait_until_gone(&bg_pid);
}

#[test]
fn image_errors() {
    let dir = user_dir();
    let out = user_run(dir.path(), &["exec", "/no/such/image.sif", "true"], &[]);
    assert_fatal(&out, &["/no/such/image.sif", "no such file"]);
    let arm = sif_fixtures().join("apptainer/images/busybox_arm64.sif");
    let out = user_run(dir.path(), &["exec", arm.to_str().unwrap(), "true"], &[]);
    assert_fatal(&out, &["arm64", "amd64"]);
    if running_as_root() {
        let unreadable = dir.path().join("secret.sif");
        std::fs::copy(busybox(), &unreadable).unwrap();
        std::fs::set_permissions(&unreadable, std::fs::Permissions::from_mode(0o000)).unwrap();
        let out = user_run(
            dir.path(),
            &["exec", unreadable.to_str().unwrap(), "true"],
            &[],
        );
        assert_fatal(&out, &["secret.sif", "not readable"]);
    }
    let out = user_run(dir.path(), &["exec", busybox().to_str().unwrap()], &[]);
    assert_fatal(&out, &["needs a command"]);
}

/// `./image.sif ARGS` runs the image through its launch script, with
/// `run-singularity` on the PATH (a link to vessel, as installs provide).
#[test]
fn sif_files_run_directly() {
    let dir = user_dir();
    let bin = dir.path().join("bin");
    mkdir_owned(&bin);
    std::os::unix::fs::symlink(bin_path(), bin.join("run-singularity")).unwrap();
    let image = dir.path().join("app.sif");
    std::fs::copy(busybox(), &image).unwrap();
    std::fs::set_permissions(&image, std::fs::Permissions::from_mode(0o755)).unwrap();
    let u = test_user();
    let mut cmd = if running_as_root() {
        let mut c = std::process::Command::new("setpriv");
        c.args([
            format!("--reuid={}", u.uid),
            format!("--regid={}", u.gid),
            "--init-groups".into(),
        ]);
        c.arg(&image);
        c
    } else {
        std::process::Command::new(&image)
    };
    let out = cmd
        .args(["echo", "launched", "directly"])
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env("HOME", &u.home)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(stdout(&out), "launched directly\n", "{}", stderr(&out));
}

/// Many ranks starting on a cold node extract the image once, and all run.
#[test]
fn concurrent_first_use_extracts_once() {
    let dir = user_dir();
    let cache = user_dir();
    let c = cache.path().join("cache");
    let c = c.to_str().unwrap();
    let b = busybox();
    let children: Vec<_> = (0..16)
        .map(|i| {
            user_vessel(
                &[
                    "exec",
                    "--unsquash",
                    b.to_str().unwrap(),
                    "sh",
                    "-c",
                    &format!("echo rank{i}"),
                ],
                &[("VESSEL_EXTRACT_DIR", c)],
                dir.path(),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    let mut extractions = 0;
    for (i, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        assert_eq!(stdout(&out), format!("rank{i}\n"), "{}", stderr(&out));
        extractions += stderr(&out).matches("Extracting").count();
    }
    assert_eq!(extractions, 1);
    let entries: Vec<_> = std::fs::read_dir(c)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().len() == 64)
        .collect();
    assert_eq!(entries.len(), 1, "one cache entry, no leftovers");
}

/// The Debian image CI builds with debootstrap (see scripts/test.sh).
#[test]
fn debian_image() {
    let Some(image) = debian_sif() else { return };
    let out = sh(&image, &[], "python3 -c 'import json, sqlite3, email, sys; print(sys.version_info[0])'; . /etc/os-release; echo $ID", &[]);
    assert_eq!(out, "3\ndebian\n");
    assert_eq!(
        sh(
            &image,
            &["--cleanenv"],
            "getent passwd $(id -u) | cut -d: -f1",
            &[]
        )
        .trim(),
        test_user().name
    );
}

#[test]
fn read_only_overlays_stack_on_the_image() {
    let layer = user_dir();
    mkdir_owned(&layer.path().join("opt"));
    write_owned(&layer.path().join("opt/tool"), "from layer");
    let spec = format!("{}:ro", layer.path().display());
    assert_eq!(
        sh(
            &busybox(),
            &["--overlay", &spec],
            "cat /opt/tool; ls /bin/busybox",
            &[]
        ),
        "from layer/bin/busybox\n"
    );
    let dir = user_dir();
    let out = user_run(
        dir.path(),
        &[
            "exec",
            "--overlay",
            &spec,
            busybox().to_str().unwrap(),
            "touch",
            "/opt/new",
        ],
        &[],
    );
    assert_ne!(
        out.status.code(),
        Some(0),
        "a read-only overlay keeps the container read-only"
    );
}

/// The extract cache stays within its bound, dropping the least recently
/// used image first.
#[test]
fn extract_cache_is_bounded() {
    let dir = user_dir();
    let cache = user_dir();
    let c = cache.path().join("cache");
    let c = c.to_str().unwrap();
    let env = [("VESSEL_EXTRACT_DIR", c), ("VESSEL_EXTRACT_MAX_GIB", "0")];
    for image in [busybox(), localimage()] {
        let out = user_run(
            dir.path(),
            &["exec", "--unsquash", image.to_str().unwrap(), "true"],
            &env,
        );
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let entries: Vec<_> = std::fs::read_dir(c)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().len() == 64)
        .collect();
    assert_eq!(
        entries.len(),
        1,
        "only the image in use is kept at a bound of 0"
    );
}
