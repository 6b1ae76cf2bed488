//! `vessel inspect` prints what Apptainer prints for the same image. The
//! expected outputs in `tests/data/inspect` were produced by Apptainer's own
//! inspect logic run over these images.

mod common;

use std::path::{Path, PathBuf};

use common::*;

const FLAGS: &[(&str, &[&str])] = &[
    ("default", &[]),
    ("labels", &["--labels"]),
    ("runscript", &["--runscript"]),
    ("startscript", &["--startscript"]),
    ("test", &["--test"]),
    ("deffile", &["--deffile"]),
    ("environment", &["--environment"]),
    ("helpfile", &["--helpfile"]),
    ("list-apps", &["--list-apps"]),
    ("json", &["--json"]),
    ("all", &["--all"]),
];

fn check_all(image: &Path, expected: &str) {
    let dir = data().join("inspect").join(expected);
    let mut mismatches = Vec::new();
    for (name, flags) in FLAGS {
        let mut args = vec!["inspect"];
        args.extend_from_slice(flags);
        args.push(image.to_str().unwrap());
        let out = run(&args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        let want = std::fs::read(dir.join(format!("{name}.txt"))).unwrap();
        if out.stdout != want {
            mismatches.push(format!(
                "{expected} {name}:\n--- got\n{}\n--- want\n{}",
                stdout(&out),
                String::from_utf8_lossy(&want)
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn apptainer_built_sif_with_stored_metadata() {
    check_all(&busybox(), "busybox_amd64");
}

#[test]
fn singularity_3_4_sif_read_from_its_root_file_system() {
    check_all(
        &sif_fixtures().join("singularity-3.4/busybox-localimage.sif"),
        "busybox-localimage",
    );
}

/// A sandbox unpacked from the same image prints the same as the image.
#[test]
fn sandbox_directory() {
    let dir = tempfile::tempdir().unwrap();
    let root = unpack(&busybox(), dir.path());
    check_all(&root, "busybox_amd64-sandbox");
}

/// A bare SquashFS file (the partition without its SIF wrapper).
#[test]
fn bare_squashfs_file() {
    let image = sif_fixtures().join("singularity-3.4/busybox-localimage.sif");
    let dir = tempfile::tempdir().unwrap();
    let squashfs = dir.path().join("root.sqfs");
    let out = run(&["sif", "dump", "3", image.to_str().unwrap()]);
    std::fs::write(&squashfs, out.stdout).unwrap();
    let out = run(&["inspect", "--runscript", squashfs.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "#!/bin/sh\n\n    echo \"run: $FOO $*\"\n");
}

/// Images for other architectures can be inspected: nothing in them runs.
#[test]
fn foreign_architectures() {
    for (image, arch) in [
        ("busybox_arm64.sif", "arm64"),
        ("busybox_ppc64le.sif", "ppc64le"),
    ] {
        let path = sif_fixtures().join("apptainer/images").join(image);
        let out = run(&["inspect", path.to_str().unwrap()]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            stdout(&out).contains(&format!("org.label-schema.build-arch: {arch}")),
            "{}",
            stdout(&out)
        );
    }
}

#[test]
fn apps_in_a_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let write = |p: &str, text: &str| {
        let path = root.join(p.trim_start_matches('/'));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write("/.singularity.d/labels.json", "{\"top\": \"yes\"}");
    write("/.singularity.d/runscript", "#!/bin/sh\necho top\n");
    write(
        "/scif/apps/hello/scif/runscript",
        "#!/bin/sh\necho hello\n\n",
    );
    write("/scif/apps/hello/scif/labels.json", "{\"app\": \"hello\"}");
    write(
        "/scif/apps/hello/scif/env/90-environment.sh",
        "export A=1\n",
    );
    write("/scif/apps/world/scif/runscript.help", "world help\n");
    std::fs::create_dir_all(root.join("scif/apps/not-an-app")).unwrap();
    let r = root.to_str().unwrap();

    let text = |args: &[&str]| {
        let mut full = vec!["inspect"];
        full.extend_from_slice(args);
        full.push(r);
        let out = run(&full);
        assert!(out.status.success(), "{full:?}: {}", stderr(&out));
        stdout(&out)
    };
    assert_eq!(text(&["--list-apps"]), "hello\nworld\n");
    assert_eq!(text(&[]), "top: yes\n");
    assert_eq!(text(&["--app", "hello"]), "app: hello\n");
    assert_eq!(
        text(&["--app", "hello", "--runscript"]),
        "#!/bin/sh\necho hello\n"
    );
    assert_eq!(
        text(&["--app", "hello", "--environment"]),
        "=== /scif/apps/hello/scif/env/90-environment.sh ===\nexport A=1\n\n"
    );
    assert_eq!(text(&["--app", "world", "--helpfile"]), "world help\n");
    assert_eq!(text(&["--app", "nope"]), "");
    let json = text(&["--app", "hello", "--json"]);
    assert!(
        json.contains("\"apps\": {\n\t\t\t\t\"hello\": {\n\t\t\t\t\t\"labels\""),
        "{json}"
    );
    assert!(!json.contains("world"), "{json}");
    let all = text(&["--all"]);
    assert!(
        all.contains("\"world\": {\n\t\t\t\t\t\"helpfile\": \"world help\""),
        "{all}"
    );
    assert!(
        all.contains("\"runscript\": \"#!/bin/sh\\necho top\""),
        "{all}"
    );
}

#[test]
fn broken_labels_are_reported_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let sd = dir.path().join(".singularity.d");
    std::fs::create_dir_all(&sd).unwrap();
    std::fs::write(sd.join("labels.json"), "{not json").unwrap();
    let out = run(&["inspect", dir.path().to_str().unwrap()]);
    assert!(out.status.success());
    assert!(stdout(&out).is_empty());
    assert!(
        stderr(&out).starts_with("WARNING: Unable to parse labels"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn symlinks_in_a_sandbox_resolve_inside_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join(".singularity.d")).unwrap();
    std::fs::write(dir.path().join("host-secret"), "secret").unwrap();
    std::os::unix::fs::symlink("../../host-secret", root.join(".singularity.d/runscript")).unwrap();
    let out = run(&["inspect", "--runscript", root.to_str().unwrap()]);
    assert!(out.status.success());
    assert!(!stdout(&out).contains("secret"));
}

fn unpack(image: &Path, into: &Path) -> PathBuf {
    let root = into.join("sandbox");
    unsquash(image, &root, &[]);
    root
}
