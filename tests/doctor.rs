//! `vessel doctor` end to end, as the unprivileged test user: the node as
//! it is, then each condition the checkup exists for broken on purpose
//! (`/dev/fuse` 0600, a user without subordinate ids, `newuidmap` without
//! its setuid bit, caches in another user's directory), the expected line
//! and fix seen, the condition restored, and PASS seen again.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Mutex;

use common::*;

/// Every check, as `doctor` names it for an unprivileged user.
const CHECKS: &[&str] = &[
    "user namespaces",
    "overlay in userns",
    "/dev/fuse",
    "FUSE io_uring",
    "subuid",
    "subgid",
    "newuidmap",
    "newgidmap",
    "fake root",
    "kernel squashfs",
    "pull cache",
    "extract cache",
    "tmp dir",
    "configuration",
    "mksquashfs",
    "tar2sqfs",
    "fuse2fs",
    "fuse-overlayfs",
    "NVIDIA GPUs",
    "AMD GPUs",
];

/// The tests of this file change the whole machine (device modes, users,
/// setuid bits): one at a time, so that the node-as-it-is test never sees
/// a condition the other broke.
static MACHINE: Mutex<()> = Mutex::new(());

fn machine() -> std::sync::MutexGuard<'static, ()> {
    MACHINE.lock().unwrap_or_else(|e| e.into_inner())
}

fn doctor(user: &TestUser, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut argv = vec!["doctor"];
    argv.extend_from_slice(args);
    run_as(user, &argv, env, Path::new("/"))
}

/// The line of check `check` and the fix under it, if any.
fn finding<'a>(out: &'a str, check: &str) -> (&'a str, Option<&'a str>) {
    let lines: Vec<&str> = out.lines().collect();
    let i = lines
        .iter()
        .position(|l| {
            l.get(6..)
                .is_some_and(|rest| rest.starts_with(&format!("{check}  ")))
        })
        .unwrap_or_else(|| panic!("no {check:?} line in:\n{out}"));
    let fix = lines.get(i + 1).and_then(|l| l.strip_prefix("  fix: "));
    (lines[i], fix)
}

fn status(out: &str, check: &str) -> &'static str {
    let (line, _) = finding(out, check);
    ["PASS", "INFO", "WARN", "FAIL"]
        .into_iter()
        .find(|s| line.starts_with(s))
        .unwrap_or_else(|| panic!("no status on {line:?}"))
}

/// Runs `doctor` as `user` with `env`, asserts its exit status `code` and
/// that `check` has status `want`, and returns that line and its fix.
fn expect(
    user: &TestUser,
    env: &[(&str, &str)],
    code: i32,
    check: &str,
    want: &str,
) -> (String, Option<String>) {
    let out = doctor(user, &[], env);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(code), "{text}{}", stderr(&out));
    assert_eq!(status(&text, check), want, "{text}");
    let (line, fix) = finding(&text, check);
    (line.to_string(), fix.map(str::to_string))
}

/// Asserts that `check` is PASS (the node restored).
fn passes(user: &TestUser, check: &str, env: &[(&str, &str)]) {
    let out = doctor(user, &[], env);
    let text = stdout(&out);
    assert_eq!(status(&text, check), "PASS", "{text}{}", stderr(&out));
}

/// The `--json` row of `check`.
fn json_row(out: &Output, check: &str) -> serde_json::Value {
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("doctor --json is JSON");
    json.as_array()
        .expect("an array")
        .iter()
        .find(|r| r["check"] == check)
        .unwrap_or_else(|| panic!("no {check} in {json}"))
        .clone()
}

/// Runs `undo` when dropped: the machine is restored even when an
/// assertion fails half-way.
struct Undo<F: FnMut()>(F);

impl<F: FnMut()> Drop for Undo<F> {
    fn drop(&mut self) {
        (self.0)();
    }
}

fn sh(cmd: &str) {
    let status = Command::new("sh").arg("-c").arg(cmd).status().unwrap();
    assert!(status.success(), "{cmd}: {status}");
}

#[test]
fn the_node_as_it_is_passes() {
    let _machine = machine();
    let user = test_user();
    let out = doctor(&user, &[], &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    for check in CHECKS {
        let (line, fix) = finding(&text, check);
        assert!(!line.starts_with("FAIL"), "{line}");
        if line.starts_with("WARN") {
            assert!(fix.is_some(), "a warning without its fix: {line}");
        }
    }
    for check in [
        "user namespaces",
        "overlay in userns",
        "/dev/fuse",
        "tmp dir",
    ] {
        assert_eq!(status(&text, check), "PASS", "{text}");
    }

    let out = doctor(&user, &["--json"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    for check in CHECKS {
        let row = json_row(&out, check);
        let s = row["status"].as_str().unwrap();
        assert!(["PASS", "INFO", "WARN"].contains(&s), "{row}");
        assert!(
            row["finding"].as_str().is_some_and(|f| !f.is_empty()),
            "{row}"
        );
        assert_eq!(row["fix"].is_null(), s != "WARN", "{row}");
    }
}

#[test]
fn the_apptainer_and_singularity_personas_have_it_too() {
    let _machine = machine();
    let dir = tempfile::tempdir().unwrap();
    for name in ["apptainer", "singularity"] {
        let link = dir.path().join(name);
        std::os::unix::fs::symlink(bin_path(), &link).unwrap();
        let out = Command::new(&link)
            .args(["doctor", "--help"])
            .output()
            .unwrap();
        let help = assert_ok(&out, format!("{name} doctor --help"));
        assert!(
            help.contains("Exit status: 0 when no check FAILs"),
            "{help}"
        );
    }
}

#[test]
fn broken_conditions_are_named_with_their_fix() {
    skip_unless!(
        running_as_root(),
        "breaking /dev/fuse, users and newuidmap on purpose needs root"
    );
    let Some(attacker) = attacker() else { return };
    let _machine = machine();
    let user = test_user();

    // /dev/fuse that users cannot open.
    let mode = std::fs::metadata("/dev/fuse").unwrap().permissions().mode() & 0o7777;
    {
        let _undo = Undo(|| {
            std::fs::set_permissions("/dev/fuse", std::fs::Permissions::from_mode(mode)).unwrap()
        });
        std::fs::set_permissions("/dev/fuse", std::fs::Permissions::from_mode(0o600)).unwrap();
        let (line, fix) = expect(&user, &[], 1, "/dev/fuse", "FAIL");
        assert!(
            line.contains("mode 0600") && line.contains("Permission denied"),
            "{line}"
        );
        let fix = fix.expect("a fix");
        assert!(fix.contains("chmod 0666 /dev/fuse"), "{fix}");
        assert!(fix.contains("VESSEL_IMAGE_DRIVER=extract"), "{fix}");
        let out = doctor(&user, &["--json"], &[]);
        assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
        let row = json_row(&out, "/dev/fuse");
        assert_eq!(row["status"], "FAIL", "{row}");
        assert_eq!(row["fix"].as_str(), Some(fix.as_str()), "{row}");
        // Not needed when the user runs images by extraction.
        expect(
            &user,
            &[("VESSEL_IMAGE_DRIVER", "extract")],
            0,
            "/dev/fuse",
            "INFO",
        );
    }
    std::fs::set_permissions("/dev/fuse", std::fs::Permissions::from_mode(0o666)).unwrap();
    passes(&user, "/dev/fuse", &[]);

    // A user without subordinate ids.
    let name = "vdoctor";
    let _ = Command::new("userdel").args(["-r", name]).output();
    {
        let _undo = Undo(|| {
            let _ = Command::new("userdel").args(["-r", name]).output();
        });
        sh(&format!(
            "useradd -m -s /bin/sh -K SUB_UID_COUNT=0 -K SUB_GID_COUNT=0 {name}"
        ));
        for file in ["/etc/subuid", "/etc/subgid"] {
            let text = std::fs::read_to_string(file).unwrap();
            assert!(
                !text.lines().any(|l| l.starts_with(&format!("{name}:"))),
                "useradd gave {name} a range in {file}"
            );
        }
        let bare = named_user(name);
        for (check, option) in [("subuid", "--add-subuids"), ("subgid", "--add-subgids")] {
            // Warnings only: exit 0.
            let (line, fix) = expect(&bare, &[], 0, check, "WARN");
            assert!(line.contains(&format!("no range for {name}")), "{line}");
            let fix = fix.expect("a fix");
            assert!(
                fix.contains(&format!("usermod {option} ")) && fix.ends_with(&format!("{name}`")),
                "{fix}"
            );
        }
        expect(&bare, &[], 0, "fake root", "WARN");
    }
    passes(&user, "subuid", &[]);
    passes(&user, "fake root", &[]);

    // newuidmap without its setuid bit.
    {
        let _undo = Undo(|| sh("chmod u+s /usr/bin/newuidmap"));
        sh("chmod u-s /usr/bin/newuidmap");
        let (line, fix) = expect(&user, &[], 0, "newuidmap", "WARN");
        assert!(
            line.contains("/usr/bin/newuidmap has no setuid bit (mode 0755, owner root)"),
            "{line}"
        );
        assert_eq!(
            fix.as_deref(),
            Some(
                "an administrator: `chown root /usr/bin/newuidmap && chmod u+s /usr/bin/newuidmap`"
            )
        );
        expect(&user, &[], 0, "fake root", "WARN");
    }
    let mode = std::fs::metadata("/usr/bin/newuidmap")
        .unwrap()
        .permissions()
        .mode();
    assert_ne!(mode & 0o4000, 0, "newuidmap got its setuid bit back");
    passes(&user, "newuidmap", &[]);
    passes(&user, "fake root", &[]);

    // Caches in a directory another user owns.
    let theirs = dir_of(&attacker);
    let theirs_path = theirs.path().to_str().unwrap();
    std::fs::create_dir(theirs.path().join("cache")).unwrap();
    chown_tree(&theirs.path().join("cache"), attacker.uid, attacker.gid);
    let env = [("APPTAINER_CACHEDIR", theirs_path)];
    let (line, fix) = expect(&user, &env, 1, "pull cache", "FAIL");
    let owner = format!("belongs to {} (uid {})", attacker.name, attacker.uid);
    assert!(
        line.contains(&format!("{theirs_path}/cache {owner}")),
        "{line}"
    );
    assert!(fix
        .expect("a fix")
        .contains("export APPTAINER_CACHEDIR=DIR"));
    let env = [("VESSEL_EXTRACT_DIR", theirs_path)];
    let (line, fix) = expect(&user, &env, 1, "extract cache", "FAIL");
    assert!(line.contains(&format!("{theirs_path} {owner}")), "{line}");
    assert!(fix
        .expect("a fix")
        .contains("export VESSEL_EXTRACT_DIR=DIR"));
    let mine = user_dir();
    let mine_path = mine.path().to_str().unwrap();
    passes(&user, "pull cache", &[("APPTAINER_CACHEDIR", mine_path)]);
    passes(&user, "extract cache", &[("VESSEL_EXTRACT_DIR", mine_path)]);
    let out = doctor(&user, &[], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

#[test]
fn a_broken_configuration_fails_naming_its_line() {
    skip_unless!(
        running_as_root(),
        "VESSEL_CONF_DIR is honoured for root (or the installation's owner) only"
    );
    let conf = tempfile::tempdir().unwrap();
    let dir = conf.path().to_str().unwrap();
    let root = TestUser {
        name: "root".into(),
        uid: 0,
        gid: 0,
        home: "/root".into(),
    };
    std::fs::write(conf.path().join("vessel.conf"), "mount home = maybe\n").unwrap();
    let env = [("VESSEL_CONF_DIR", dir)];
    let (line, fix) = expect(&root, &env, 1, "configuration", "FAIL");
    assert!(
        line.contains(&format!("{dir}/vessel.conf, line 1")),
        "{line}"
    );
    assert!(fix.is_some(), "{line}");

    std::fs::write(conf.path().join("vessel.conf"), "mount home = no\n").unwrap();
    let (line, _) = expect(&root, &env, 0, "configuration", "PASS");
    assert!(line.contains("vessel.conf parses"), "{line}");
}
