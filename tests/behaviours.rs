//! Behaviours workflow tools rely on (issue 14): Apptainer's message and
//! status for a missing command, `--mount` with Docker's CSV quoting, and
//! bind mount points made whatever the owner of their parent in the image.

mod common;
use common::*;

use std::path::Path;

/// A directory the test user owns, under `dir`, holding `f` with `text`.
fn source(dir: &Path, name: &str, text: &str) -> String {
    let d = dir.join(name);
    std::fs::create_dir(&d).unwrap();
    std::fs::write(d.join("f"), text).unwrap();
    give_to_test_user(&d);
    give_to_test_user(&d.join("f"));
    d.to_str().unwrap().to_string()
}

#[test]
fn a_missing_command_is_reported_as_apptainer_does() {
    let dir = user_dir();
    let b = busybox();
    let img = b.to_str().unwrap();
    let out = user_run(dir.path(), &["exec", img, "nosuchcmd"], &[]);
    assert_fatal(&out, &["\"nosuchcmd\": executable file not found in $PATH"]);
    let out = user_run(dir.path(), &["exec", img, "/no/such/cmd", "a"], &[]);
    assert_fatal(&out, &["\"/no/such/cmd\": ", "no such file or directory"]);
    // A command that is there still runs, arguments intact.
    let out = user_run(dir.path(), &["exec", img, "echo", "a b", "c"], &[]);
    assert_eq!(assert_ok(&out, "exec echo"), "a b c\n");
}

#[test]
fn mount_takes_dockers_csv_quoting() {
    let dir = user_dir();
    let src = source(dir.path(), "a,b", "comma\n");
    let b = busybox();
    let spec = format!("type=bind,\"source={src}\",destination=/x,readonly");
    let out = user_run(
        dir.path(),
        &["exec", "--mount", &spec, b.to_str().unwrap(), "cat", "/x/f"],
        &[],
    );
    assert_eq!(assert_ok(&out, &spec), "comma\n");
}

#[test]
fn a_bind_below_a_home_the_image_gives_to_nobody_works() {
    let dir = user_dir();
    let src = source(dir.path(), "cache", "cached\n");
    let home = source(dir.path(), "home", "");
    let b = busybox();
    let bind = format!("{src}:/home/wf/.cache/x");
    let out = user_run(
        dir.path(),
        &[
            "exec",
            "--home",
            &home,
            "-B",
            &bind,
            b.to_str().unwrap(),
            "cat",
            "/home/wf/.cache/x/f",
        ],
        &[],
    );
    assert_eq!(assert_ok(&out, &bind), "cached\n");
}

#[test]
fn a_bind_below_a_full_directory_of_another_owner_keeps_its_content() {
    let dir = user_dir();
    let src = source(dir.path(), "cache", "cached\n");
    let home = source(dir.path(), "home", "");
    // A sandbox whose /home holds someone's directory and is not the
    // test user's (when the tests run as root, it is nobody's).
    let sandbox = dir.path().join("sandbox");
    unsquash(&busybox(), &sandbox, &[]);
    std::fs::create_dir_all(sandbox.join("home/alice")).unwrap();
    std::fs::write(sandbox.join("home/alice/keep"), "kept\n").unwrap();
    if running_as_root() {
        chown_tree(&sandbox.join("home"), 65534, 65534);
    }
    let bind = format!("{src}:/home/wf/.cache/x");
    let out = user_run(
        dir.path(),
        &[
            "exec",
            "--home",
            &home,
            "-B",
            &bind,
            sandbox.to_str().unwrap(),
            "cat",
            "/home/wf/.cache/x/f",
            "/home/alice/keep",
        ],
        &[],
    );
    assert_eq!(assert_ok(&out, &bind), "cached\nkept\n");
}

/// A Singularity 2.x image: a SquashFS after a `#!/usr/bin/env
/// run-singularity` line (`.simg`), run and inspected like any image.
#[test]
fn singularity_2_images_run() {
    let dir = user_dir();
    let tree = dir.path().join("tree");
    unsquash(&busybox(), &tree, &[]);
    std::fs::write(tree.join("marker"), "simg\n").unwrap();
    let sqfs = dir.path().join("root.sqfs");
    let out = std::process::Command::new("mksquashfs")
        .arg(&tree)
        .arg(&sqfs)
        .args(["-noappend", "-quiet", "-no-progress", "-all-root"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let simg = dir.path().join("old.simg");
    let mut bytes = b"#!/usr/bin/env run-singularity\n".to_vec();
    bytes.extend(std::fs::read(&sqfs).unwrap());
    std::fs::write(&simg, bytes).unwrap();
    give_to_test_user(dir.path());
    let img = simg.to_str().unwrap();
    let out = user_run(dir.path(), &["exec", img, "cat", "/marker"], &[]);
    assert_eq!(assert_ok(&out, "exec old.simg"), "simg\n");
    let out = user_run(
        dir.path(),
        &["exec", "--unsquash", img, "cat", "/marker"],
        &[],
    );
    assert_eq!(assert_ok(&out, "exec --unsquash old.simg"), "simg\n");
    let out = user_run(dir.path(), &["inspect", img], &[]);
    assert_ok(&out, "inspect old.simg");
}
