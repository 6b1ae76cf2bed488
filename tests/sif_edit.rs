//! `vessel sif new|add|del|setprim` write files that the reference `siftool`
//! (Go, built from Debian's sources by `.ci/build-go-oracle.sh`) reads exactly
//! as Vessel does, laid out byte for byte as the reference lays them out.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// The reference siftool from `$VESSEL_SIFTOOL`.
fn siftool() -> Option<PathBuf> {
    go_oracle("VESSEL_SIFTOOL")
}

fn ok(args: &[&str]) -> String {
    assert_ok(&run(args), format_args!("vessel {args:?}"))
}

fn reference(tool: &Path, args: &[&str]) -> String {
    let out = Command::new(tool).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "siftool {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn input(name: &str) -> String {
    sif_fixtures()
        .join("input")
        .join(name)
        .display()
        .to_string()
}

/// The same sequence of changes, run by either tool: `vessel sif` or the
/// reference siftool. Returns the IDs of the objects made.
fn build(run_tool: &dyn Fn(&[&str]), image: &str, fp: &str) -> Vec<&'static str> {
    let add = |flags: &[&str], object: &str| {
        let mut args = vec!["add"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&[image, object]);
        run_tool(&args);
    };
    run_tool(&["new", image]);
    let primary = [
        "--datatype",
        "4",
        "--parttype",
        "2",
        "--partfs",
        "1",
        "--partarch",
        "2",
    ];
    add(&primary, &input("root.squashfs"));
    let json = [
        "--datatype",
        "6",
        "--groupid",
        "1",
        "--filename",
        "data.json",
    ];
    add(&json, &input("oci-config.json"));
    add(
        &[
            "--datatype",
            "9",
            "--sbomformat",
            "github",
            "--groupid",
            "1",
        ],
        &input("sbom.cdx.json"),
    );
    let signature = [
        "--datatype",
        "5",
        "--signhash",
        "2",
        "--signentity",
        fp,
        "--link",
        "1",
    ];
    add(&signature, &input("index.json"));
    add(&["--datatype", "8"], &input("sbom.cdx.json"));
    add(
        &["--datatype", "7", "--alignment", "512"],
        &input("index.json"),
    );
    let system = [
        "--datatype",
        "4",
        "--parttype",
        "1",
        "--partfs",
        "2",
        "--partarch",
        "1",
    ];
    add(
        &[&system[..], &["--groupid", "2"]].concat(),
        &input("root.ext3"),
    );
    vec!["1", "2", "3", "4", "5", "6", "7"]
}

const FP: &str = "12045C8C0B1004D058DE4BEDA20C27EE7FF7BA84";

/// Header bytes and descriptor fields that hold the random UUID and the
/// times, which differ between any two runs.
fn mask_ids_and_times(bytes: &mut [u8]) {
    bytes[48..80].fill(0);
    for slot in 0..48 {
        let at = 4096 + slot * 585 + 41;
        bytes[at..at + 16].fill(0);
    }
}

#[test]
fn new_add_del_setprim_as_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    let ours = dir.path().join("ours.sif").display().to_string();
    let ids = build(
        &|args| {
            let mut full = vec!["sif"];
            full.extend_from_slice(args);
            ok(&full);
        },
        &ours,
        FP,
    );

    // What Vessel reads back is what went in.
    let dumped = run(&["sif", "dump", "1", &ours]).stdout;
    assert!(
        dumped == std::fs::read(input("root.squashfs")).unwrap(),
        "dump differs from the input"
    );
    let list = ok(&["sif", "list", &ours]);
    assert!(list.contains("|FS (Squashfs/*System/amd64)"), "{list}");
    assert!(list.contains("|SBOM (github-json)"), "{list}");
    assert!(list.contains("|Signature (SHA-384)"), "{list}");
    assert!(list.contains("|FS (Ext3/System/386)"), "{list}");
    assert!(ok(&["sif", "info", "4", &ours]).contains(FP));

    let Some(tool) = siftool() else { return };
    let tool = tool.as_path();

    // The reference reads Vessel's file exactly as Vessel does.
    let same = |path: &str| {
        assert_eq!(
            ok(&["sif", "header", path]),
            reference(tool, &["header", path])
        );
        assert_eq!(ok(&["sif", "list", path]), reference(tool, &["list", path]));
        for id in &ids {
            let v = run(&["sif", "info", id, path]);
            if v.status.success() {
                assert_eq!(
                    stdout(&v),
                    reference(tool, &["info", id, path]),
                    "info {id}"
                );
            }
        }
    };
    same(&ours);

    // The reference, given the same commands, writes the same bytes.
    let theirs = dir.path().join("theirs.sif").display().to_string();
    build(
        &|args| {
            reference(tool, args);
        },
        &theirs,
        FP,
    );
    let (mut a, mut b) = (
        std::fs::read(&ours).unwrap(),
        std::fs::read(&theirs).unwrap(),
    );
    mask_ids_and_times(&mut a);
    mask_ids_and_times(&mut b);
    assert!(a == b, "layouts differ: {} vs {} bytes", a.len(), b.len());

    // Deleting and promoting, then reading with the reference again.
    ok(&["sif", "del", "2", &ours]);
    ok(&["sif", "setprim", "7", &ours]);
    same(&ours);
    let header = ok(&["sif", "header", &ours]);
    assert!(header.contains("Primary Architecture: 386"), "{header}");
    assert!(ok(&["sif", "list", &ours]).contains("|FS (Ext3/*System/386)"));
    assert!(ok(&["sif", "list", &ours]).contains("|FS (Squashfs/System/amd64)"));
    ok(&["sif", "del", "7", &ours]);
    same(&ours);
    assert!(!ok(&["sif", "header", &ours]).contains("Primary Architecture"));
}

#[test]
fn new_replaces_an_existing_file_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.sif");
    std::fs::write(&path, vec![b'x'; 100_000]).unwrap();
    let p = path.to_str().unwrap();
    ok(&["sif", "new", p]);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 32176);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "temporary files left behind");
    assert!(ok(&["sif", "header", p]).contains("Descriptors Free:   48"));
}

#[test]
fn add_errors_name_the_problem_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("x.sif");
    let p = image.to_str().unwrap();
    ok(&["sif", "new", p]);
    let before = std::fs::read(&image).unwrap();
    let obj = input("index.json");
    for (args, needle) in [
        (vec!["--datatype", "0"], "--datatype"),
        (vec!["--datatype", "12"], "--datatype"),
        (
            vec!["--datatype", "4", "--partfs", "1"],
            "--partarch must be passed",
        ),
        (
            vec![
                "--datatype",
                "4",
                "--partfs",
                "1",
                "--parttype",
                "1",
                "--partarch",
                "99",
            ],
            "unknown architecture",
        ),
        (
            vec!["--datatype", "5", "--signhash", "9", "--signentity", FP],
            "invalid hash type",
        ),
        (
            vec!["--datatype", "5", "--signhash", "1", "--signentity", "zz"],
            "signing entity",
        ),
        (
            vec!["--datatype", "5", "--signhash", "1", "--signentity", "abcd"],
            "got 2, want 20",
        ),
        (vec!["--datatype", "9"], "--sbomformat must be passed"),
        (
            vec!["--datatype", "9", "--sbomformat", "nope"],
            "invalid SBOM format",
        ),
        (vec!["--datatype", "7", "--link", "0"], "invalid object ID"),
    ] {
        let mut full = vec!["sif", "add"];
        full.extend_from_slice(&args);
        full.extend_from_slice(&[p, &obj]);
        assert_fatal(&run(&full), &[needle]);
    }
    let long = "n".repeat(129);
    assert_fatal(
        &run(&[
            "sif",
            "add",
            "--datatype",
            "7",
            "--filename",
            &long,
            p,
            &obj,
        ]),
        &[p, "at most 128"],
    );
    assert_fatal(
        &run(&["sif", "add", "--datatype", "7", p, "/nonexistent"]),
        &["/nonexistent"],
    );
    assert_eq!(
        std::fs::read(&image).unwrap(),
        before,
        "a failed add changed the image"
    );
}

#[test]
fn full_descriptor_table() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("x.sif");
    let p = image.to_str().unwrap();
    ok(&["sif", "new", p]);
    let obj = input("index.json");
    for _ in 0..48 {
        ok(&["sif", "add", "--datatype", "7", p, &obj]);
    }
    assert_fatal(
        &run(&["sif", "add", "--datatype", "7", p, &obj]),
        &[p, "no free descriptor"],
    );
    assert!(ok(&["sif", "header", p]).contains("Descriptors Free:   0"));
}
