//! Parse every definition file under `<fixtures>/sif` (Apptainer's own test
//! definitions and a Singularity 3.4 one), applying the build arguments
//! Apptainer's tests use, and check a few fields of each.
//!
//! `<fixtures>` is `$VESSEL_FIXTURES`, or `../../../shared/fixtures` relative
//! to this crate (the workspace's `shared/fixtures` once the crate lives in
//! `crates/vessel-build`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use vessel_build::{apply_build_args_in, parse, Definition, ErrorKind, FilesBlock};

#[path = "../../../tests/common/fixtures.rs"]
mod shared;

fn sif_dir() -> PathBuf {
    let dir = shared::sif_fixtures();
    assert!(
        dir.is_dir(),
        "fixture directory {} not found; set VESSEL_FIXTURES to the shared `fixtures` directory",
        dir.display()
    );
    dir
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out);
        } else if p.extension().is_some_and(|e| e == "def") {
            out.push(p);
        }
    }
}

fn all_defs() -> Vec<(String, String)> {
    let root = sif_dir();
    let mut paths = Vec::new();
    walk(&root, &mut paths);
    paths
        .into_iter()
        .map(|p| {
            let rel = p
                .strip_prefix(&root)
                .expect("under root")
                .to_string_lossy()
                .replace('\\', "/");
            let text = std::fs::read_to_string(&p)
                .unwrap_or_else(|e| panic!("reading {}: {e}", p.display()));
            (rel, text)
        })
        .collect()
}

fn args(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn load(rel: &str, build_args: &[(&str, &str)]) -> Definition {
    let (_, text) = all_defs()
        .into_iter()
        .find(|(r, _)| r == rel)
        .unwrap_or_else(|| panic!("fixture {rel} not found"));
    let (templated, _) =
        apply_build_args_in(rel, &text, &args(build_args), false).unwrap_or_else(|e| panic!("{e}"));
    parse(rel, &templated).unwrap_or_else(|e| panic!("{e}"))
}

/// Build arguments per fixture, as Apptainer's tests pass them
/// (e2e/imgbuild/imgbuild.go, internal/pkg/build/build_test.go).
fn build_args_for(rel: &str) -> &'static [(&'static str, &'static str)] {
    match rel {
        "apptainer/defs/build-args/single-stage.def" => &[
            ("IMAGE", "/tmp/busybox.sif"),
            ("SCRIPT_PATH", "../test/build-args/script.sh"),
        ],
        "apptainer/defs/build-args/single-stage-unit-test.def" => {
            &[("OS_VER", "1"), ("AUTHOR", "jason")]
        }
        "apptainer/defs/build-args/multiple-stage.def" => &[
            ("DEVEL_IMAGE", "golang:1.12.3-alpine3.9"),
            ("FINAL_IMAGE", "alpine:3.9"),
            ("HOME", "/root"),
        ],
        "apptainer/defs/build-args/multiple-stage-unit-test.def" => &[
            ("DEVEL_IMAGE", "golang:1.12.3-alpine3.9"),
            ("FINAL_IMAGE", "alpine:3.9"),
        ],
        "apptainer/defs/redhat_build.def" => &[("FROMIMAGE", "fedora:latest")],
        "apptainer/defs/unprivileged_build.def"
        | "apptainer/defs/unprivileged_build_2.def"
        | "apptainer/defs/unprivileged_build_4.def" => &[("FROMSIF", "/tmp/ubuntu.sif")],
        _ => &[],
    }
}

fn files(from: Option<&str>, entries: &[(&str, Option<&str>)]) -> FilesBlock {
    FilesBlock {
        from: from.map(str::to_string),
        entries: entries
            .iter()
            .map(|(s, d)| (s.to_string(), d.map(str::to_string)))
            .collect(),
    }
}

fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Every `.def` parses (after templating) and renders to text that parses
/// back to the same definition.
#[test]
fn every_fixture_parses_and_round_trips() {
    let defs = all_defs();
    assert!(
        defs.len() >= 23,
        "expected at least 23 fixture .def files, found {}",
        defs.len()
    );
    for (rel, text) in &defs {
        let (templated, warnings) =
            apply_build_args_in(rel, text, &args(build_args_for(rel)), false)
                .unwrap_or_else(|e| panic!("templating {rel}: {e}"));
        assert!(warnings.is_empty(), "{rel}: {warnings:?}");
        assert!(
            !templated.contains("{{"),
            "{rel}: template left after apply_build_args"
        );
        let def = parse(rel, &templated).unwrap_or_else(|e| panic!("{e}"));
        assert!(!def.stages.is_empty(), "{rel}");
        assert_eq!(def.raw, templated, "{rel}: raw text");
        let joined: String = def.stages.iter().map(|s| s.raw.as_str()).collect();
        assert_eq!(joined, templated, "{rel}: stage raw texts");
        for s in &def.stages {
            assert!(
                vessel_build::BOOTSTRAP_AGENTS.contains(&s.bootstrap.as_str()),
                "{rel}: bootstrap {}",
                s.bootstrap
            );
            assert!(s.from().is_some_and(|f| !f.is_empty()), "{rel}: From");
        }

        let rendered = def.render();
        let again = parse("rendered", &rendered)
            .unwrap_or_else(|e| panic!("{rel}: rendered text fails to parse: {e}\n{rendered}"));
        let strip = |d: &Definition| {
            let mut d = d.clone();
            d.raw.clear();
            d.warnings.clear();
            d.stages.iter_mut().for_each(|s| s.raw.clear());
            d
        };
        assert_eq!(strip(&def), strip(&again), "{rel}: round trip");

        // CRLF line endings give the same definition.
        let crlf = templated.replace('\n', "\r\n");
        let d_crlf = parse(rel, &crlf).unwrap_or_else(|e| panic!("{rel} (CRLF): {e}"));
        assert_eq!(strip(&def), strip(&d_crlf), "{rel}: CRLF");
    }
}

#[test]
fn templated_fixtures_fail_without_their_args() {
    let defs = all_defs();
    let text = |rel: &str| {
        defs.iter()
            .find(|(r, _)| r == rel)
            .map(|(_, t)| t.clone())
            .unwrap_or_else(|| panic!("fixture {rel} not found"))
    };

    // "ko case single stage build": IMAGE is missing.
    let rel = "apptainer/defs/build-args/single-stage.def";
    let e = apply_build_args_in(
        rel,
        &text(rel),
        &args(&[("SCRIPT_PATH", "../test/build-args/script.sh")]),
        false,
    )
    .unwrap_err();
    assert_eq!(
        e.kind,
        ErrorKind::UndefinedBuildArg {
            name: "IMAGE".into()
        }
    );
    assert_eq!(e.line, Some(2));
    assert!(e
        .to_string()
        .starts_with(&format!("{rel}:2: build argument IMAGE is not defined")));

    // "ko case multiple stage build": HOME has a default only in stage 1.
    let rel = "apptainer/defs/build-args/multiple-stage.def";
    let e = apply_build_args_in(
        rel,
        &text(rel),
        &args(&[
            ("DEVEL_IMAGE", "golang:1.12.3-alpine3.9"),
            ("FINAL_IMAGE", "alpine:3.9"),
        ]),
        false,
    )
    .unwrap_err();
    assert_eq!(
        e.kind,
        ErrorKind::UndefinedBuildArg {
            name: "HOME".into()
        }
    );
    assert_eq!(e.line, Some(32));

    // "ko case single stage build with additional args provided".
    let rel = "apptainer/defs/build-args/single-stage.def";
    let a = args(&[
        ("ADDITION", "1"),
        ("IMAGE", "/tmp/busybox.sif"),
        ("SCRIPT_PATH", "../test/build-args/script.sh"),
    ]);
    let e = apply_build_args_in(rel, &text(rel), &a, false).unwrap_err();
    assert_eq!(
        e.kind,
        ErrorKind::UnusedBuildArgs {
            names: vec!["ADDITION".into()]
        }
    );
    assert!(e
        .to_string()
        .starts_with(&format!("{rel}: unused build args: ADDITION")));
    // ... and the "ok" variant with --warn-unused-build-args.
    let (t, w) = apply_build_args_in(rel, &text(rel), &a, true).unwrap();
    assert_eq!(w, vec!["unused build args: ADDITION".to_string()]);
    parse(rel, &t).unwrap();

    // "ok case multiple stage build with arg file": DEMO from the file is
    // unused, so it only passes with the warning.
    let rel = "apptainer/defs/build-args/multiple-stage.def";
    let file_args = vessel_build::collect_build_args(
        &[
            "DEVEL_IMAGE=golang:1.12.3-alpine3.9",
            "FINAL_IMAGE=alpine:3.9",
        ],
        Some(("argfile", "HOME=/root\nDEMO=demo=with===equals==signs\n")),
    )
    .unwrap();
    assert!(apply_build_args_in(rel, &text(rel), &file_args, false).is_err());
    let (t, w) = apply_build_args_in(rel, &text(rel), &file_args, true).unwrap();
    assert_eq!(w, vec!["unused build args: DEMO".to_string()]);
    assert!(t.contains("cd /root\n"));
}

#[test]
fn build_args_single_stage() {
    let d = load(
        "apptainer/defs/build-args/single-stage.def",
        build_args_for("apptainer/defs/build-args/single-stage.def"),
    );
    assert_eq!(d.stages.len(), 1);
    let s = &d.stages[0];
    assert_eq!(s.bootstrap, "localimage");
    assert_eq!(s.from(), Some("/tmp/busybox.sif"));
    assert_eq!(
        s.sections.arguments,
        labels(&[
            ("AUTHOR", "jason"),
            ("VERSION", "1"),
            ("DEMO", "this is a demo build definition file"),
            ("TMP_FILE", "tmpfile"),
        ])
    );
    assert_eq!(
        s.sections.setup.body,
        "    touch ${APPTAINER_ROOTFS}/tmpfile\n\n"
    );
    assert_eq!(
        s.sections.files,
        vec![files(None, &[("../test/build-args/script.sh", None)])]
    );
    assert!(s.sections.environment.contains("export AUTHOR=jason\n"));
    assert!(s.sections.environment.contains("export VERSION=1\n"));
    assert!(s
        .sections
        .post
        .body
        .contains("    ../test/build-args/script.sh\n"));
    assert_eq!(
        s.sections.labels,
        labels(&[("Author", "jason"), ("Version", "1")])
    );
    assert_eq!(
        s.sections.help,
        "    This is a this is a demo build definition file for templating definition file\n"
    );
    assert!(s.sections.startscript.body.contains("wget --help"));
    assert!(s.sections.test.body.contains("/bin/busybox | grep BusyBox"));
}

#[test]
fn build_args_single_stage_unit_test() {
    // internal/pkg/build/build_test.go: TestProcessDefsSingleDef
    let d = load(
        "apptainer/defs/build-args/single-stage-unit-test.def",
        &[("OS_VER", "1"), ("AUTHOR", "jason")],
    );
    let s = &d.stages[0];
    assert_eq!(s.from(), Some("alpine:1"));
    assert_eq!(s.name.as_deref(), Some("build"));
    assert_eq!(
        s.sections.help.trim(),
        "This is a demo for templating definition file"
    );
    assert_eq!(s.sections.labels, labels(&[("Author", "jason")]));
    assert_eq!(s.sections.environment.trim(), "export OS_VER=1");
    // The %arguments defaults (TestReadDefaults).
    assert_eq!(
        s.sections.arguments,
        labels(&[("OS_VER", "3.17"), ("DEMO", "a demo"), ("AUTHOR", "jason")])
    );
}

#[test]
fn build_args_multiple_stage() {
    let d = load(
        "apptainer/defs/build-args/multiple-stage.def",
        build_args_for("apptainer/defs/build-args/multiple-stage.def"),
    );
    assert_eq!(d.stages.len(), 2);
    assert_eq!(d.stages[0].name.as_deref(), Some("devel"));
    assert_eq!(d.stages[0].from(), Some("golang:1.12.3-alpine3.9"));
    assert!(d.stages[0].sections.post.body.contains("  cd /root\n"));
    assert_eq!(d.stages[1].name.as_deref(), Some("final"));
    assert_eq!(d.stages[1].from(), Some("alpine:3.9"));
    assert_eq!(
        d.stages[1].sections.files,
        vec![files(
            Some("devel"),
            &[("/root/hello.sh", Some("/bin/hello"))]
        )]
    );
}

#[test]
fn build_args_multiple_stage_unit_test() {
    // TestProcessDefsMultipleDef: HOME comes from each stage's own default.
    let d = load(
        "apptainer/defs/build-args/multiple-stage-unit-test.def",
        &[
            ("DEVEL_IMAGE", "golang:1.12.3-alpine3.9"),
            ("FINAL_IMAGE", "alpine:3.9"),
        ],
    );
    assert_eq!(d.stages[0].from(), Some("golang:1.12.3-alpine3.9"));
    assert!(d.stages[0].sections.post.body.contains("export HOME=/root"));
    assert!(d.stages[0].sections.post.body.contains("cd /root"));
    assert_eq!(d.stages[1].from(), Some("alpine:3.9"));
    assert!(d.stages[1].sections.files[0].entries[0]
        .0
        .contains("/root/hello"));
    assert_eq!(
        d.stages[1].sections.arguments,
        labels(&[("FINAL_IMAGE", "alpine:3.17"), ("HOME", "/root")])
    );
}

#[test]
fn unprivileged_and_redhat_builds() {
    for rel in [
        "apptainer/defs/unprivileged_build.def",
        "apptainer/defs/unprivileged_build_2.def",
        "apptainer/defs/unprivileged_build_4.def",
    ] {
        let d = load(rel, build_args_for(rel));
        assert_eq!(d.stages[0].bootstrap, "localimage", "{rel}");
        assert_eq!(d.stages[0].from(), Some("/tmp/ubuntu.sif"), "{rel}");
        assert!(!d.stages[0].sections.post.body.is_empty(), "{rel}");
    }
    let d = load(
        "apptainer/defs/redhat_build.def",
        build_args_for("apptainer/defs/redhat_build.def"),
    );
    assert_eq!(d.stages[0].bootstrap, "docker");
    assert_eq!(d.stages[0].from(), Some("fedora:latest"));
    assert_eq!(
        d.stages[0].sections.post.body,
        "    dnf install -y openssh-clients\n"
    );
}

#[test]
fn inspector_container() {
    let d = load("apptainer/defs/inspector_container.def", &[]);
    let s = &d.stages[0];
    assert_eq!(s.bootstrap, "oras");
    assert_eq!(s.from(), Some("ghcr.io/apptainer/alpine:3.15.0"));
    // Quotes are kept and keys are case-sensitive (e2e/inspect/inspect.go).
    assert_eq!(
        s.sections.labels,
        labels(&[
            ("MAINTAINER", "\"WestleyK <westley@sylabs.io>\""),
            ("e2e", "awesome"),
            ("E2E", "AWESOME"),
            ("hi", "\"hello world\""),
            ("HI", "\"HELLO WORLD\""),
        ])
    );
    assert!(s
        .sections
        .help
        .starts_with("This is a e2e test container used for testing the 'inspect'\n"));
    assert_eq!(s.sections.startscript.body, "exec \"$@\"\n\n");
    assert_eq!(
        s.sections.runscript.body,
        "cat /.singularity.d/runscript.help\n\n"
    );
    assert_eq!(
        s.sections.environment,
        "export test=\"testing\"\nexport e2e=\"e2e testing\"\n\n"
    );
    assert!(s.sections.post.body.contains(">> $APPTAINER_LABELS\n"));
    assert_eq!(s.sections.test.body, "ls /\ntest -d /\ntest -d /etc\n\n");

    assert_eq!(s.app_order, vec!["hello", "world"]);
    let hello = &s.apps["hello"];
    assert_eq!(hello.run, "echo \"hello\"\n\n");
    assert_eq!(hello.start, "exec \"$@\"\n\n");
    assert_eq!(hello.help, "This is the help for hello!\n\n");
    assert_eq!(hello.labels, labels(&[("HELLOTHISIS", "hello")]));
    assert_eq!(hello.env, "HELLOTHISIS=hello\nexport HELLOTHISIS\n\n");
    assert_eq!(hello.test, "echo \"THIS IS A HELLO TEST\"\n\n");
    assert_eq!(s.apps["world"].run, "echo \"world\"\n");
}

#[test]
fn lowercase_headers_legacy() {
    let d = load("apptainer/defs/Singularity_legacy.def", &[]);
    let s = &d.stages[0];
    assert_eq!(s.header[0], ("bootstrap".to_string(), "docker".to_string()));
    assert_eq!(s.from(), Some("ubuntu:focal"));
    // No newline at the end of the file; the body still ends in one.
    assert!(s
        .sections
        .post
        .body
        .ends_with("rm singularity-ce_3.9.2-focal_amd64.deb\n"));
    assert!(s.sections.post.body.starts_with("    cd /\n"));
}

#[test]
fn issue_1704_comment_lines_in_setup() {
    let d = load("apptainer/defs/issue1704.def", &[]);
    assert_eq!(
        d.stages[0].sections.setup.body,
        "    #an\n    #abn\n    #nn\n    #ann\n    #nan\n    #anan\n"
    );
    assert_eq!(d.stages[0].from(), Some("ubuntu:22.04"));
}

#[test]
fn multi_stage_regressions() {
    let d = load("apptainer/defs/regressions/issue_2607.def", &[]);
    assert_eq!(d.stages.len(), 2);
    assert_eq!(d.stages[0].name.as_deref(), Some("one"));
    assert_eq!(
        d.stages[0].sections.post.body,
        "touch /bar\nmkdir -p /foo\nln -s ../bar /foo/bar\n\n\n"
    );
    assert_eq!(
        d.stages[1].sections.files,
        vec![files(Some("one"), &[("/foo", None)])]
    );

    let d = load("apptainer/defs/regressions/issue_4203.def", &[]);
    assert_eq!(d.stages.len(), 2);
    assert_eq!(d.stages[0].name.as_deref(), Some("build"));
    assert_eq!(d.stages[1].name.as_deref(), Some("final"));
    // Heredoc lines such as "passwd:         bad" stay in the %post body.
    assert!(d.stages[0]
        .sections
        .post
        .body
        .contains("\npasswd:         bad\n"));
    assert!(d.stages[0]
        .sections
        .post
        .body
        .contains("#include <stdio.h>\n"));
    assert_eq!(
        d.stages[1].sections.files,
        vec![files(
            Some("build"),
            &[
                ("/bad.so", Some("/lib/x86_64-linux-gnu/libnss_bad.so.2")),
                ("/nsswitch.conf", Some("/etc/nsswitch.conf")),
            ]
        )]
    );
    assert!(d.stages[1].sections.environment.contains("    cd /usr\n"));
    assert_eq!(d.stages[1].sections.post.body, "    true\n");

    let d = load("apptainer/defs/regressions/issue_4583.def", &[]);
    assert_eq!(d.stages.len(), 2);
    assert_eq!(
        d.stages[1].sections.files,
        vec![files(Some("one"), &[("/original", None), ("/copy", None)])]
    );
}

#[test]
fn scif_apps_issue_4820() {
    let d = load("apptainer/defs/regressions/issue_4820.def", &[]);
    let s = &d.stages[0];
    assert_eq!(s.from(), Some("ghcr.io/apptainer/alpine:latest"));
    assert_eq!(s.app_order, vec!["hdf5", "med"]);
    assert_eq!(
        s.apps["hdf5"].install,
        "echo \"installing hdf5...\"\necho \"hdf5 installed\" > done.hdf5\n\n"
    );
    assert!(s.apps["med"]
        .install
        .contains("cp /scif/apps/hdf5/done.hdf5 done.med"));
}

#[test]
fn post_interpreter_issue_4967() {
    let d = load("apptainer/defs/regressions/issue_4967.def", &[]);
    let post = &d.stages[0].sections.post;
    assert_eq!(post.args, "-c /bin/busybox sh");
    assert_eq!(post.interpreter.as_deref(), Some("/bin/busybox sh"));
    assert_eq!(post.body, "    cat /proc/$$/cmdline | tr '\\000' ' '\n");
}

#[test]
fn other_regressions() {
    let d = load("apptainer/defs/regressions/issue_1097.def", &[]);
    assert_eq!(
        d.stages[0].get("FROM"),
        Some("ghcr.io/apptainer/alpine:3.15.0")
    );
    assert!(d.stages[0]
        .sections
        .setup
        .body
        .starts_with("  mv  \"${APPTAINER_ROOTFS}/var/tmp\""));

    let d = load("apptainer/defs/regressions/issue_4969.def", &[]);
    assert!(d.stages[0]
        .sections
        .setup
        .body
        .contains("ln -s /a/fake/path ${root}/etc/hosts\n"));
    assert_eq!(d.stages[0].sections.post.body, "    echo \"TEST OK\"\n");

    let d = load("apptainer/defs/regressions/issue_5315.def", &[]);
    assert_eq!(d.stages[0].sections.test.body, "    echo \"TEST OK\"\n");
    assert!(d.stages[0].sections.post.is_empty());

    let d = load("apptainer/defs/regressions/issue_5399.def", &[]);
    assert!(d.stages[0].sections.post.body.starts_with("apk add attr\n"));
}

#[test]
fn heredoc_heavy_fixtures() {
    let d = load("apptainer/defs/sshfs.def", &[]);
    let s = &d.stages[0];
    assert!(s
        .sections
        .post
        .body
        .contains("\n#!/bin/sh\n# get mount point directory\n"));
    assert!(s
        .sections
        .runscript
        .body
        .contains("dropbear -R -E -s -p 127.0.0.1:2022"));

    let d = load("apptainer/defs/state-server.def", &[]);
    let s = &d.stages[0];
    assert_eq!(s.from(), Some("python:3.10-buster"));
    assert!(s
        .sections
        .post
        .body
        .contains("class handler(BaseHTTPRequestHandler):\n"));
    assert_eq!(
        s.sections.startscript.body,
        "    python3 /app/server.py $@\n"
    );
}

#[test]
fn singularity_34_localimage() {
    let d = load("singularity-3.4/busybox-localimage.def", &[]);
    let s = &d.stages[0];
    assert_eq!(s.bootstrap, "localimage");
    assert_eq!(s.from(), Some("busybox_amd64.sif"));
    assert_eq!(s.sections.labels, labels(&[("Maintainer", "peer-test")]));
    assert_eq!(s.sections.environment, "    export FOO=bar\n");
    assert_eq!(s.sections.post.body, "    echo built > /built.txt\n");
    assert_eq!(s.sections.runscript.body, "    echo \"run: $FOO $*\"\n");
    assert_eq!(s.sections.test.body, "    test -f /built.txt\n");
}
