//! `vessel sif header|list|info|dump` print exactly what the reference
//! `siftool` printed for the reference corpus (`fixtures/sif/golden`).

mod common;

use common::*;

fn goldens(kind: &str) -> Vec<(String, Vec<u8>)> {
    let dir = sif_fixtures().join("golden").join(kind);
    let mut all: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let p = e.unwrap().path();
            (
                p.file_stem().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    all.sort();
    all
}

fn check(kind: &str, args_for: impl Fn(&str) -> Vec<String>) -> usize {
    let mut mismatches = Vec::new();
    let all = goldens(kind);
    for (name, want) in &all {
        let args = args_for(name);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run(&args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        if &out.stdout != want {
            mismatches.push(format!(
                "{kind}/{name}: got\n{}\nwant\n{}",
                stdout(&out),
                String::from_utf8_lossy(want)
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    all.len()
}

#[test]
fn header_matches_every_golden() {
    let n = check("header", |name| {
        vec![
            "sif".into(),
            "header".into(),
            golden_image(name).display().to_string(),
        ]
    });
    assert_eq!(n, 19);
}

#[test]
fn list_matches_every_golden() {
    let n = check("list", |name| {
        vec![
            "sif".into(),
            "list".into(),
            golden_image(name).display().to_string(),
        ]
    });
    assert_eq!(n, 19);
}

fn info_target(name: &str) -> (&'static str, &'static str) {
    match name {
        "Time" => ("one-object-time.sif", "1"),
        "GenericJSON" => ("one-object-generic-json.sif", "1"),
        "CryptMessage" => ("one-object-crypt-message.sif", "1"),
        "SBOM" => ("one-object-sbom.sif", "1"),
        "OCIRootIndex" => ("one-object-oci-root-index.sif", "1"),
        "OCIBlob" => ("one-object-oci-blob.sif", "1"),
        "DataPartitionRaw" => ("two-groups-signed-pgp.sif", "1"),
        "DataPartitionSquashFS" => ("two-groups-signed-pgp.sif", "2"),
        "DataPartitionEXT3" => ("two-groups-signed-pgp.sif", "3"),
        "DataSignature" => ("two-groups-signed-pgp.sif", "4"),
        other => panic!("no image known for info golden {other}"),
    }
}

#[test]
fn info_matches_every_golden() {
    let n = check("info", |name| {
        let (image, id) = info_target(name);
        let path = sif_fixtures().join("images").join(image);
        vec![
            "sif".into(),
            "info".into(),
            id.into(),
            path.display().to_string(),
        ]
    });
    assert_eq!(n, 10);
}

#[test]
fn dump_matches_every_golden() {
    let n = check("dump", |name| {
        let id = match name {
            "One" => "1",
            "Two" => "2",
            other => panic!("unknown dump golden {other}"),
        };
        let path = sif_fixtures().join("images/one-group.sif");
        vec![
            "sif".into(),
            "dump".into(),
            id.into(),
            path.display().to_string(),
        ]
    });
    assert_eq!(n, 2);
}

#[test]
fn siftool_alias_works() {
    let path = sif_fixtures().join("images/one-group.sif");
    let out = run(&["siftool", "list", path.to_str().unwrap()]);
    assert!(out.status.success());
    assert_eq!(
        out.stdout,
        std::fs::read(sif_fixtures().join("golden/list/OneGroup.golden")).unwrap()
    );
}
