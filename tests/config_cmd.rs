//! The administrator's commands end to end: `config global` edits a
//! scratch `vessel.conf` (comments and order kept, values checked before
//! anything is written), `config fakeroot` scratch copies of
//! `/etc/subuid` and `/etc/subgid` under shadow-utils' lock, `buildcfg`,
//! and `-c/--config FILE` read by `exec` — and users refused each time.
//! Run as root (the configuration is root's to change); skipped otherwise.

mod common;

use std::path::Path;
use std::process::Output;

use common::*;

/// `vessel ARGS` as root with `env`.
fn root_run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = vessel();
    cmd.env_remove("VESSEL_CONF_DIR")
        .env_remove("VESSEL_TEST_SUBID_DIR");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.args(args).output().unwrap()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

#[track_caller]
fn needs_root() -> bool {
    if !running_as_root() {
        skip("the administrator's commands are tested as root");
        return false;
    }
    true
}

const SITE: &str = "# Site configuration of the test cluster.\n\
\n\
# Home directories are on NFS.\n\
mount home = yes   # users want it\n\
\n\
bind path = /etc/localtime\n\
bind path = /etc/hosts\n\
\n\
# MEMORY FS TYPE: [STRING]\n\
memory fs type = tmpfs\n";

#[test]
fn config_global_edits_keep_the_rest_of_the_file() {
    if !needs_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("vessel.conf");
    std::fs::write(&conf, SITE).unwrap();
    std::fs::set_permissions(&conf, std::os::unix::fs::PermissionsExt::from_mode(0o640)).unwrap();
    let d = dir.path().to_str().unwrap();
    let env = [("VESSEL_CONF_DIR", d)];
    let global = |args: &[&str]| {
        let mut all = vec!["config", "global"];
        all.extend_from_slice(args);
        root_run(&all, &env)
    };

    // --set of a single value: in place, comment kept.
    assert_ok(&global(&["--set", "mount home", "no"]), "set");
    let want = SITE.replace("mount home = yes", "mount home = no");
    assert_eq!(read(&conf), want);
    assert_eq!(assert_ok(&global(&["-g", "Mount Home"]), "get"), "no\n");
    // --set of a repeatable one: lines after its last.
    assert_ok(
        &global(&["-s", "bind path", "/scratch,/proj:/project"]),
        "set bind",
    );
    let want = want.replace(
        "bind path = /etc/hosts\n",
        "bind path = /etc/hosts\nbind path = /scratch\nbind path = /proj:/project\n",
    );
    assert_eq!(read(&conf), want);
    assert_eq!(
        assert_ok(&global(&["--get", "bind path"]), "get bind"),
        "/etc/localtime,/etc/hosts,/scratch,/proj:/project\n"
    );
    // A key the file does not set: appended; its default is what --get
    // says before.
    assert_eq!(
        assert_ok(&global(&["--get", "sessiondir max size"]), "get"),
        "64\n"
    );
    assert_ok(
        &global(&["--set", "sessiondir max size", "128"]),
        "set size",
    );
    let want = format!("{want}sessiondir max size = 128\n");
    assert_eq!(read(&conf), want);

    // --dry-run prints the result and writes nothing.
    let dry = global(&["--dry-run", "--unset", "bind path", "/scratch"]);
    assert_eq!(
        assert_ok(&dry, "dry run"),
        want.replace("bind path = /scratch\n", "")
    );
    assert_eq!(read(&conf), want);

    // --unset KEY VALUE, then --unset KEY, then --reset KEY.
    assert_ok(&global(&["-u", "bind path", "/scratch"]), "unset value");
    let want = want.replace("bind path = /scratch\n", "");
    assert_eq!(read(&conf), want);
    assert_ok(&global(&["-u", "sessiondir max size"]), "unset key");
    let want = want.replace("sessiondir max size = 128\n", "");
    assert_eq!(read(&conf), want);
    assert_ok(&global(&["-r", "bind path"]), "reset bind");
    let want = want.replace("bind path = /proj:/project\n", "");
    assert_eq!(read(&conf), want);
    assert_ok(&global(&["-r", "mount home"]), "reset home");
    assert_eq!(
        read(&conf),
        SITE.replace("mount home = yes   # users want it", "mount home = yes")
    );
    // The file keeps its mode through the atomic rewrites, and no
    // temporary file is left beside it.
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&conf).unwrap().permissions());
    assert_eq!(mode & 0o7777, 0o640);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

    // An execution group keeps the commas between its fingerprints, and
    // the parser's own checks apply (one group per directory).
    let group = format!("whitelist /data {FP},{FP2}");
    assert_ok(&global(&["--set", "execution group", &group]), "set group");
    assert_eq!(
        assert_ok(&global(&["--get", "execution group"]), "get group"),
        format!("{group}\n")
    );
    let before = read(&conf);
    let out = global(&["--set", "execution group", &format!("blacklist /data {FP}")]);
    assert_fatal(
        &out,
        &["the directory /data already has an execution group"],
    );
    assert_eq!(read(&conf), before);
}

const FP: &str = "12045C8C0B1004D058DE4BEDA20C27EE7FF7BA84";
const FP2: &str = "0123456789ABCDEF0123456789ABCDEF01234567";

#[test]
fn a_new_vessel_conf_starts_from_the_apptainer_conf_read_in_its_place() {
    if !needs_root() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let conf_dir = root.path().join("vessel");
    std::fs::create_dir_all(root.path().join("apptainer")).unwrap();
    std::fs::create_dir(&conf_dir).unwrap();
    let theirs = "# Apptainer's\nmount home = no\nbind path = /etc/hosts\n";
    std::fs::write(root.path().join("apptainer/apptainer.conf"), theirs).unwrap();
    let env = [("VESSEL_CONF_DIR", conf_dir.to_str().unwrap())];
    // Read as it is: the value comes from apptainer.conf.
    let get = root_run(&["config", "global", "--get", "mount home"], &env);
    assert_eq!(assert_ok(&get, "get"), "no\n");
    let out = root_run(
        &["config", "global", "--set", "bind path", "/scratch"],
        &env,
    );
    assert_ok(&out, "set");
    assert_eq!(
        read(&conf_dir.join("vessel.conf")),
        format!("{theirs}bind path = /scratch\n")
    );
    // apptainer.conf itself is left alone.
    assert_eq!(read(&root.path().join("apptainer/apptainer.conf")), theirs);
    // A key absent everywhere is added to its default list.
    std::fs::remove_file(root.path().join("apptainer/apptainer.conf")).unwrap();
    std::fs::remove_file(conf_dir.join("vessel.conf")).unwrap();
    assert_ok(
        &root_run(&["config", "global", "-s", "bind path", "/scratch"], &env),
        "set on nothing",
    );
    assert_eq!(
        read(&conf_dir.join("vessel.conf")),
        "bind path = /etc/localtime\nbind path = /etc/hosts\nbind path = /scratch\n"
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(conf_dir.join("vessel.conf"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o7777, 0o644);
}

#[test]
fn config_global_refuses_bad_keys_and_values_before_writing() {
    if !needs_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("vessel.conf");
    std::fs::write(&conf, SITE).unwrap();
    let env = [("VESSEL_CONF_DIR", dir.path().to_str().unwrap())];
    for (args, needles) in [
        (
            &["--set", "mount hme", "no"][..],
            &[
                "`mount hme` is not a directive of vessel.conf",
                "did you mean `mount home`",
            ][..],
        ),
        (
            &["--set", "mount home", "maybe"],
            &["mount home", "`maybe` is not allowed: use yes or no"],
        ),
        (&["--set", "mount dev", "some"], &["use yes, no, minimal"]),
        (
            &["--set", "sessiondir max size", "0"],
            &["a whole number from 1"],
        ),
        (
            &["--set", "bind path", "relative"],
            &["bind path", "absolute"],
        ),
        (
            &["--unset", "bind path", "/not/there"],
            &["`bind path` has no value `/not/there`"],
        ),
        (&["--set", "mount home"], &["give a value"]),
        (&["mount home", "no"], &["--set, --unset, --get or --reset"]),
    ] {
        let mut all = vec!["config", "global"];
        all.extend_from_slice(args);
        let out = root_run(&all, &env);
        assert_fatal(&out, needles);
        assert_eq!(read(&conf), SITE, "{args:?} changed the file");
    }
}

#[test]
fn users_may_not_edit_the_site_configuration() {
    let dir = user_dir();
    let out = user_run(
        dir.path(),
        &["config", "global", "--set", "mount home", "no"],
        &[],
    );
    assert_fatal(
        &out,
        &["only an administrator (root) may change /etc/vessel/vessel.conf"],
    );
    let out = user_run(
        dir.path(),
        &["config", "fakeroot", "--add", &test_user().name],
        // Honoured for root only: a user is told about /etc's files.
        &[("VESSEL_TEST_SUBID_DIR", dir.path().to_str().unwrap())],
    );
    assert_fatal(
        &out,
        &["only an administrator (root) may change /etc/subuid and /etc/subgid"],
    );
}

/// Scratch subuid and subgid files, as root's test directory.
fn subid_scratch(uid_text: &str, gid_text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("subuid"), uid_text).unwrap();
    std::fs::write(dir.path().join("subgid"), gid_text).unwrap();
    dir
}

#[test]
fn config_fakeroot_adds_a_free_range_and_toggles_it() {
    if !needs_root() {
        return;
    }
    let user = test_user();
    let uids = "# ranges\nroot:100000:65536\nsomeone:165536:10\n";
    let gids = "root:100000:65536\n";
    let dir = subid_scratch(uids, gids);
    let (uid_file, gid_file) = (dir.path().join("subuid"), dir.path().join("subgid"));
    let env = [("VESSEL_TEST_SUBID_DIR", dir.path().to_str().unwrap())];
    let fakeroot = |op: &str| root_run(&["config", "fakeroot", op, &user.name], &env);

    assert_ok(&fakeroot("--add"), "add");
    // The first 65536 ids from 100000 that overlap no range.
    let added_uid = format!("{uids}{}:165546:65536\n", user.name);
    let added_gid = format!("{gids}{}:165536:65536\n", user.name);
    assert_eq!(read(&uid_file), added_uid);
    assert_eq!(read(&gid_file), added_gid);
    // Again: nothing changes.
    assert_ok(&fakeroot("-a"), "add again");
    assert_eq!(read(&uid_file), added_uid);

    assert_ok(&fakeroot("--disable"), "disable");
    assert_eq!(
        read(&uid_file),
        added_uid.replace(&format!("{}:", user.name), &format!("!{}:", user.name))
    );
    assert_eq!(
        read(&gid_file),
        added_gid.replace(&format!("{}:", user.name), &format!("!{}:", user.name))
    );
    assert_ok(&fakeroot("-e"), "enable");
    assert_eq!(read(&uid_file), added_uid);
    assert_eq!(read(&gid_file), added_gid);
    assert_ok(&fakeroot("-r"), "remove");
    assert_eq!(read(&uid_file), uids);
    assert_eq!(read(&gid_file), gids);
    // Neither lock nor temporary file is left behind.
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, [".pwd.lock", "subgid", "subuid"]);

    // Removing what is not there, and an unknown user: one line each.
    assert_fatal(&fakeroot("--remove"), &["has no entry for", &user.name]);
    assert_eq!(read(&uid_file), uids);
    let out = root_run(&["config", "fakeroot", "--add", "no-such-user-here"], &env);
    assert_fatal(&out, &["there is no user no-such-user-here"]);
}

#[test]
fn config_fakeroot_honours_shadow_utils_lock() {
    if !needs_root() {
        return;
    }
    let user = test_user();
    let dir = subid_scratch("", "");
    let env = [("VESSEL_TEST_SUBID_DIR", dir.path().to_str().unwrap())];
    let lock = dir.path().join("subgid.lock");
    // A lock held by a live process (this test): refused at once, nothing
    // written, the lock left to its owner.
    std::fs::write(&lock, format!("{}\0", std::process::id())).unwrap();
    let out = root_run(&["config", "fakeroot", "--add", &user.name], &env);
    assert_fatal(
        &out,
        &[
            "subgid.lock is held by process",
            &std::process::id().to_string(),
        ],
    );
    assert_eq!(read(&dir.path().join("subuid")), "");
    assert_eq!(read(&dir.path().join("subgid")), "");
    assert!(lock.exists());
    assert!(!dir.path().join("subuid.lock").exists());
    // A stale one (its process gone) is taken over, as shadow does.
    std::fs::write(&lock, "4194305\0").unwrap();
    assert_ok(
        &root_run(&["config", "fakeroot", "--add", &user.name], &env),
        "add over a stale lock",
    );
    assert!(read(&dir.path().join("subgid")).starts_with(&format!("{}:100000:65536", user.name)));
    assert!(!lock.exists());
}

/// The user database's lock (`lckpwdf`'s POSIX lock on `.pwd.lock`) held
/// by another program: `config fakeroot` waits for it as glibc does (15
/// seconds), then gives up by name, having written nothing.
#[test]
fn config_fakeroot_waits_for_the_user_database_lock() {
    if !needs_root() {
        return;
    }
    let user = test_user();
    let dir = subid_scratch("", "");
    let pwd_lock = dir.path().join(".pwd.lock");
    // python3's lockf is fcntl(F_SETLKW), the lock lckpwdf takes.
    let mut holder = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import fcntl, sys, time\n\
             f = open(sys.argv[1], 'w')\n\
             fcntl.lockf(f, fcntl.LOCK_EX)\n\
             print('locked', flush=True)\n\
             time.sleep(120)\n",
        )
        .arg(&pwd_lock)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "locked");
    let out = root_run(
        &["config", "fakeroot", "--add", &user.name],
        &[("VESSEL_TEST_SUBID_DIR", dir.path().to_str().unwrap())],
    );
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert_fatal(
        &out,
        &[".pwd.lock is locked by another program editing the user database"],
    );
    assert_eq!(read(&dir.path().join("subuid")), "");
    assert!(!dir.path().join("subuid.lock").exists());
}

#[test]
fn buildcfg_prints_the_places() {
    let out = assert_ok(&run(&["buildcfg"]), "buildcfg");
    for want in [
        "PACKAGE_NAME=vessel\n",
        "SYSCONFDIR=/etc\n",
        "APPTAINER_CONFDIR=/etc/vessel\n",
        "APPTAINER_CONF_FILE=/etc/vessel/vessel.conf\n",
        "APPTAINER_SUID_INSTALL=0\n",
    ] {
        assert!(out.contains(want), "{want:?} missing from:\n{out}");
    }
    assert!(out.lines().all(|l| l.contains('=')), "{out}");
    let version = assert_ok(&run(&["buildcfg", "PACKAGE_VERSION"]), "one");
    assert_eq!(version.trim(), env!("CARGO_PKG_VERSION"));
    assert_fatal(&run(&["buildcfg", "NOPE"]), &["no variable named \"NOPE\""]);
}

#[test]
fn a_config_file_given_with_c_is_what_exec_reads() {
    if !needs_root() {
        return;
    }
    let image = busybox();
    if !image.exists() {
        skip(format_args!("no busybox fixture at {}", image.display()));
        return;
    }
    let dir = user_dir();
    // Execution control with no group for the image's directory: the image
    // may not run, and the refusal names the file that said so.
    let file = dir.path().join("site-test.conf");
    std::fs::write(
        &file,
        "execution control = yes\n\
         execution group = whitelist /nonexistent 12045C8C0B1004D058DE4BEDA20C27EE7FF7BA84\n",
    )
    .unwrap();
    give_to_test_user(&file);
    let file_arg = file.to_str().unwrap();
    let image_arg = image.to_str().unwrap();
    let out = root_run(&["-c", file_arg, "exec", image_arg, "true"], &[]);
    assert_failed(&out, &[file_arg, "no execution group"]);
    let out = root_run(
        &["exec", image_arg, "true"],
        &[("APPTAINER_CONFIG_FILE", file_arg)],
    );
    assert_failed(&out, &[file_arg, "no execution group"]);
    // `config global` edits that file.
    assert_ok(
        &root_run(
            &[
                "-c",
                file_arg,
                "config",
                "global",
                "-s",
                "execution control",
                "no",
            ],
            &[],
        ),
        "config global -c",
    );
    assert!(read(&file).starts_with("execution control = no\n"));

    // A `bind path` of that file shows up in the container.
    let data = user_dir();
    write_for_user(data.path(), "marker", "site data\n");
    let binds = dir.path().join("binds.conf");
    std::fs::write(
        &binds,
        format!("bind path = {}:/mnt/sitedata\n", data.path().display()),
    )
    .unwrap();
    let out = root_run(
        &[
            "-c",
            binds.to_str().unwrap(),
            "exec",
            image_arg,
            "cat",
            "/mnt/sitedata/marker",
        ],
        &[],
    );
    assert_eq!(assert_ok(&out, "exec with -c"), "site data\n");

    // A user of the site's installation may not point it elsewhere.
    let out = user_run(
        dir.path(),
        &["-c", file_arg, "exec", image_arg, "true"],
        &[],
    );
    assert_fatal(
        &out,
        &[&format!(
            "--config {file_arg} is honoured only for root or for a Vessel installation you own"
        )],
    );
    let out = user_run(
        dir.path(),
        &["exec", image_arg, "true"],
        &[("APPTAINER_CONFIG_FILE", file_arg)],
    );
    assert_fatal(&out, &["APPTAINER_CONFIG_FILE=", "honoured only for root"]);
    // Their own installation may.
    let user = test_user();
    let (_install, own) = user_owned_vessel(&user);
    let out = as_user(
        &user,
        &own,
        &[
            "-c",
            file_arg,
            "config",
            "global",
            "--get",
            "execution control",
        ],
        &[],
        dir.path(),
    )
    .output()
    .unwrap();
    assert_eq!(assert_ok(&out, "own installation"), "no\n");
    // A file that is not there is named.
    let out = root_run(&["-c", "/nonexistent/vessel.conf", "buildcfg"], &[]);
    assert_fatal(&out, &["--config /nonexistent/vessel.conf: cannot read"]);
}
