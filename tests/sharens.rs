//! `--sharens`, end to end, as the unprivileged test user: the commands a
//! job step starts on a node (here: the children of one shell) join one
//! container, each with its own environment; other options are another
//! container; `--pid` is one PID namespace; a member killed with
//! `SIGKILL` takes only its own command; when the last member ends the
//! container goes, and `SIGTERM` of every launcher leaves nothing behind:
//! no process in the container's user namespace, no session directory.
//!
//! The tests share the test user's instance directory, so they run one at
//! a time.

// The tests read their own settings (VESSEL_TEST_*), not Vessel's
// variables, so not through vessel-config's registry.
#![allow(clippy::disallowed_methods)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::*;

fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs the shell `script` as the test user in `dir`, with `$V` the
/// binary, `$I` the image and `TMPDIR` a directory of the test's own.
fn script(dir: &Path, image: &Path, script: &str) -> Output {
    script_with(dir, image, &bin_path(), &[], script)
}

/// [`script`] with `$V` the binary `bin`, and `env` besides.
fn script_with(dir: &Path, image: &Path, bin: &Path, env: &[(&str, &str)], script: &str) -> Output {
    let tmp = dir.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    give_to_test_user(&tmp);
    let mut vars = vec![
        ("V", bin.to_str().unwrap()),
        ("I", image.to_str().unwrap()),
        ("TMPDIR", tmp.to_str().unwrap()),
    ];
    vars.extend_from_slice(env);
    as_user(
        &test_user(),
        Path::new("/bin/sh"),
        &["-c", script],
        &vars,
        dir,
    )
    .stdin(std::process::Stdio::null())
    .output()
    .unwrap()
}

/// The processes (not zombies) in the user namespace `ns`
/// (`user:[INODE]`, as `readlink /proc/self/ns/user` prints it).
fn in_namespace(ns: &str) -> Vec<i32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let same = std::fs::read_link(entry.path().join("ns/user"))
            .is_ok_and(|l| l.to_string_lossy() == ns);
        let zombie = std::fs::read_to_string(entry.path().join("stat"))
            .ok()
            .and_then(|s| s.rfind(')').map(|i| s[i + 2..].starts_with('Z')))
            .unwrap_or(true);
        if same && !zombie {
            pids.push(pid);
        }
    }
    pids
}

/// Waits (up to 20 s) until nothing runs in the user namespace `ns`.
fn assert_namespace_empties(ns: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = in_namespace(ns);
        if left.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            let cmds: Vec<String> = left
                .iter()
                .map(|p| {
                    std::fs::read_to_string(format!("/proc/{p}/cmdline"))
                        .unwrap_or_default()
                        .replace('\0', " ")
                })
                .collect();
            panic!("still running in the shared container {ns}: {left:?} {cmds:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The image as this test names it: a link of its own, which the shared
/// containers' records name (so that other runs of the test user meanwhile
/// do not count).
fn own_image(dir: &Path, image: &Path) -> PathBuf {
    let link = dir.join("image.sif");
    std::os::unix::fs::symlink(image, &link).unwrap();
    link
}

/// The test user's shared containers (names) of the image `image`.
fn shared_records(image: &Path) -> Vec<String> {
    let base = test_user().home.join(".apptainer/instances/app");
    let mut names = Vec::new();
    for host in std::fs::read_dir(&base).into_iter().flatten().flatten() {
        let dir = host.path().join(test_user().name);
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let record = e.path().join(format!("{name}.json"));
            let text = std::fs::read_to_string(record).unwrap_or_default();
            let quoted = format!("{:?}", image.to_str().unwrap());
            if name.starts_with("sharens-") && text.contains(&quoted) {
                names.push(name);
            }
        }
    }
    names.sort();
    names
}

/// Waits (up to 20 s) until no shared container of `image` is recorded.
fn assert_records_go(image: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !shared_records(image).is_empty() {
        assert!(
            Instant::now() < deadline,
            "still recorded: {:?}",
            shared_records(image)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What the test's `TMPDIR` holds after the runs: session directories
/// left behind would be there.
fn leftovers(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir.join("tmp"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect()
}

/// The container's namespaces as a member prints them, and its rank.
const SHOW: &str = r#"echo "rank=$R $(readlink /proc/self/ns/mnt) $(readlink /proc/self/ns/user) $(readlink /proc/self/ns/pid)""#;

#[test]
fn the_commands_of_one_step_share_one_container_each_with_its_own_environment() {
    let _serial = serial();
    let Some(image) = debian_sif() else { return };
    if !running_as_root() {
        return skip("checking the container's processes needs root");
    }
    let dir = user_dir();
    let image = own_image(dir.path(), &image);
    let out = script(
        dir.path(),
        &image,
        &format!(
            r#"for r in 1 2 3; do R=$r "$V" exec --sharens "$I" sh -c '{SHOW}; sleep 1' & done; wait"#
        ),
    );
    let text = assert_ok(&out, "three members");
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort();
    assert_eq!(lines.len(), 3, "{text}");
    let fields: Vec<Vec<&str>> = lines.iter().map(|l| l.split(' ').collect()).collect();
    // Each its own rank, all one mount and user namespace, not the host's.
    let ranks: Vec<&str> = fields.iter().map(|f| f[0]).collect();
    assert_eq!(ranks, ["rank=1", "rank=2", "rank=3"], "{text}");
    assert!(
        fields.iter().all(|f| f[1..3] == fields[0][1..3]),
        "not one container: {text}"
    );
    let host_user = std::fs::read_link("/proc/self/ns/user").unwrap();
    assert_ne!(fields[0][2], host_user.to_string_lossy(), "{text}");
    // The last member gone, the container is.
    assert_namespace_empties(fields[0][2]);
    assert_eq!(
        shared_records(&image),
        Vec::<String>::new(),
        "its record stays"
    );
    assert_eq!(leftovers(dir.path()), Vec::<PathBuf>::new());
}

#[test]
fn members_that_come_and_go_at_once_all_run() {
    let _serial = serial();
    let Some(image) = debian_sif() else { return };
    let dir = user_dir();
    let image = own_image(dir.path(), &image);
    // Members end while others join: containers end and start anew, and
    // every command runs once.
    let out = script(
        dir.path(),
        &image,
        r#"for r in 1 2 3 4 5 6 7 8 9 10 11 12; do "$V" exec --sharens "$I" echo ran & done; wait"#,
    );
    let text = assert_ok(&out, "twelve short members");
    assert_eq!(
        text.lines().filter(|l| *l == "ran").count(),
        12,
        "{text}{}",
        stderr(&out)
    );
    assert_records_go(&image);
}

#[test]
fn other_options_are_another_container_and_pid_is_one_pid_namespace() {
    let _serial = serial();
    let Some(image) = debian_sif() else { return };
    let dir = user_dir();
    let out = script(
        dir.path(),
        &image,
        &format!(
            r#"R=plain "$V" exec --sharens "$I" sh -c '{SHOW}; sleep 1' &
R=pid1 "$V" exec --sharens --pid "$I" sh -c '{SHOW}; sleep 1' &
R=pid2 "$V" exec --sharens --pid "$I" sh -c '{SHOW}; sleep 1' &
wait"#
        ),
    );
    let text = assert_ok(&out, "members with and without --pid");
    let line = |rank: &str| -> Vec<String> {
        text.lines()
            .find(|l| l.starts_with(&format!("rank={rank} ")))
            .unwrap_or_else(|| panic!("no line of {rank}: {text}"))
            .split(' ')
            .map(str::to_string)
            .collect()
    };
    let (plain, pid1, pid2) = (line("plain"), line("pid1"), line("pid2"));
    assert_ne!(
        plain[1], pid1[1],
        "--pid shares the plain container: {text}"
    );
    assert_eq!(pid1[1..4], pid2[1..4], "--pid members apart: {text}");
    let host_pid = std::fs::read_link("/proc/self/ns/pid").unwrap();
    assert_ne!(pid1[3], host_pid.to_string_lossy(), "{text}");
    assert_eq!(plain[3], host_pid.to_string_lossy().as_ref(), "{text}");
}

#[test]
fn a_killed_member_takes_only_its_command_and_the_last_ends_the_container() {
    let _serial = serial();
    let Some(image) = debian_sif() else { return };
    if !running_as_root() {
        return skip("checking the container's processes needs root");
    }
    let dir = user_dir();
    let image = own_image(dir.path(), &image);
    // Member A sleeps long; its launcher is killed with SIGKILL. Member B
    // outlives it, then ends: the container ends with it.
    let out = script(
        dir.path(),
        &image,
        &format!(
            r#"R=a "$V" exec --sharens "$I" sh -c '{SHOW}; touch /dev/shm/vessel-test-a; exec sleep 300' & a=$!
R=b "$V" exec --sharens "$I" sh -c 'sleep 3; {SHOW}; ls /dev/shm; echo b-done' & b=$!
sleep 1.5; kill -9 $a; wait $a; echo "a=$?"; wait $b; echo "b=$?""#
        ),
    );
    let text = assert_ok(&out, "a member killed");
    assert!(
        text.contains("a=137") && text.contains("b-done") && text.contains("b=0"),
        "{text}{}",
        stderr(&out)
    );
    let ns = |rank: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("rank={rank} ")))
            .and_then(|l| l.split(' ').nth(2).map(str::to_string))
            .unwrap_or_else(|| panic!("no line of {rank}: {text}"))
    };
    assert_eq!(ns("a"), ns("b"), "{text}");
    assert_namespace_empties(&ns("a"));
    assert_records_go(&image);
    assert_eq!(leftovers(dir.path()), Vec::<PathBuf>::new());
}

#[test]
fn sigterm_of_every_process_of_the_step_leaves_nothing_behind() {
    let _serial = serial();
    let Some(image) = debian_sif() else { return };
    if !running_as_root() {
        return skip("checking the container's processes needs root");
    }
    let dir = user_dir();
    let image = own_image(dir.path(), &image);
    // As a job's end: every process of the step gets SIGTERM, the
    // launchers (which relay it to their commands, with --pid) and the
    // container's own (its monitor, keeper and FUSE server). Without --pid
    // the members became their commands: the container's end ends them.
    for flags in ["--pid", "--cleanenv"] {
        let out = script(
            dir.path(),
            &image,
            &format!(
                r#"R=1 "$V" exec --sharens {flags} "$I" sh -c '{SHOW}; sleep 300 & wait' & one=$!
R=2 "$V" exec --sharens {flags} "$I" sh -c '{SHOW}; sleep 300 & wait' & two=$!
sleep 2; pkill -TERM -f -- "$I"; wait $one; echo "one=$?"; wait $two; echo "two=$?""#
            ),
        );
        let text = assert_ok(&out, format_args!("members ({flags}) stopped with SIGTERM"));
        // Ended by the signal, or by the container's end if that came first.
        let ended = |n: &str| {
            ["143", "137"]
                .iter()
                .any(|s| text.contains(&format!("{n}={s}")))
        };
        assert!(
            ended("one") && ended("two"),
            "{flags}: {text}{}",
            stderr(&out)
        );
        let ns = text
            .lines()
            .find(|l| l.starts_with("rank="))
            .and_then(|l| l.split(' ').nth(2))
            .unwrap_or_else(|| panic!("no member said where it ran: {text}"));
        assert_namespace_empties(ns);
        assert_records_go(&image);
        assert_eq!(leftovers(dir.path()), Vec::<PathBuf>::new());
    }
}

#[test]
fn the_site_can_share_containers_among_ranks_and_ranks_apart_are_warned() {
    let _serial = serial();
    let Some(image) = debian_sif() else { return };
    let user = test_user();
    // VESSEL_CONF_DIR is honoured for the owner of the installation only.
    let (_install, own) = user_owned_vessel(&user);
    let site = user_dir();
    let conf_dir = site.path().join("etc");
    std::fs::create_dir_all(&conf_dir).unwrap();
    std::fs::write(
        conf_dir.join("vessel.conf"),
        "share namespaces in job steps = yes\n",
    )
    .unwrap();
    let dir = user_dir();
    // Two ranks of one Open MPI job, as mpirun starts them.
    let ranks = format!(
        r#"for r in 0 1; do OMPI_COMM_WORLD_RANK=$r R=$r "$V" exec "$I" sh -c '{SHOW}' & done; wait"#
    );
    let mpi = [
        ("OMPI_COMM_WORLD_SIZE", "2"),
        ("PMIX_NAMESPACE", "vessel-test-job"),
    ];
    let mut env = mpi.to_vec();
    env.push(("VESSEL_CONF_DIR", conf_dir.to_str().unwrap()));
    let out = script_with(dir.path(), &image, &own, &env, &ranks);
    let text = assert_ok(&out, "two ranks under the site's directive");
    let namespaces: Vec<&str> = text.lines().filter_map(|l| l.split(' ').nth(1)).collect();
    assert_eq!(namespaces.len(), 2, "{text}");
    assert_eq!(namespaces[0], namespaces[1], "not shared: {text}");
    // Without it, ranks apart from each other are told why MPI suffers.
    let out = script_with(
        dir.path(),
        &image,
        &bin_path(),
        &mpi,
        r#""$V" exec --contain --pid "$I" true"#,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(
            "WARNING: --contain gives each rank of an Open MPI launch of 2 ranks its own /dev/shm"
        ) && err.contains("WARNING: --pid gives each rank")
            && err.contains("add --sharens"),
        "{err}"
    );
}

#[test]
fn instances_refuse_sharens_by_name() {
    let Some(image) = debian_sif() else { return };
    let dir = user_dir();
    let out = user_run(
        dir.path(),
        &[
            "instance",
            "start",
            "--sharens",
            image.to_str().unwrap(),
            "shared",
        ],
        &[],
    );
    assert_fatal(&out, &["--sharens", "does not apply to instances"]);
}
