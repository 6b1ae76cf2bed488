//! `build` from definition files, as an unprivileged user: bootstrap from a
//! local image (SIF or sandbox), scratch or a registry, `%setup`, `%files`,
//! `%post` as fake root, metadata, `%test`, SIF and sandbox outputs, build
//! arguments, and clear errors for malformed files.

// The tests read their own settings (VESSEL_TEST_*, VESSEL_FIXTURES, CI),
// not Vessel's variables, so not through vessel-config's registry.
#![allow(clippy::disallowed_methods)]

mod common;

use std::path::Path;
use std::process::Stdio;

use common::*;

#[test]
fn every_section_from_a_local_image() {
    let dir = user_dir();
    let d = dir.path();
    write_for_user(d, "data.txt", "from the host\n");
    let def = write_for_user(
        d,
        "app.def",
        &format!(
            "Bootstrap: localimage\nFrom: {}\n\n%setup\n    echo setup > $APPTAINER_ROOTFS/setup.txt\n\n%files\n    {}/data.txt /opt/data.txt\n\n%environment\n    export GREETING=hello\n\n%post\n    echo built > /built.txt\n    id -u > /post-uid\n    echo 'export FROM_POST=yes' >> $APPTAINER_ENVIRONMENT\n\n%runscript\n    echo \"run: $GREETING $FROM_POST $*\"\n\n%test\n    test -f /built.txt\n\n%labels\n    Author vessel-test\n    Version 1.0\n\n%help\n    How to use this image.\n",
            busybox().display(),
            d.display()
        ),
    );
    ok_in(d, &["build", "app.sif", &def]);
    assert_eq!(
        ok_in(d, &["run", "app.sif", "a", "b"]),
        "run: hello yes a b\n"
    );
    ok_in(d, &["test", "app.sif"]);
    assert_eq!(
        ok_in(
            d,
            &[
                "exec",
                "app.sif",
                "cat",
                "/setup.txt",
                "/opt/data.txt",
                "/post-uid"
            ]
        ),
        "setup\nfrom the host\n0\n"
    );
    let labels = ok_in(d, &["inspect", "app.sif"]);
    assert!(
        labels.contains("Author: vessel-test") && labels.contains("Version: 1.0"),
        "{labels}"
    );
    assert!(ok_in(d, &["run-help", "app.sif"]).contains("How to use this image."));
    assert!(ok_in(d, &["inspect", "--deffile", "app.sif"]).contains("%post"));
    // What %post made belongs to root in the image.
    let out = std::process::Command::new("unsquashfs")
        .args(["-lln", "-offset", &primary_offset(&d.join("app.sif"))])
        .arg(d.join("app.sif"))
        .arg("/built.txt")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("-rw-r--r-- 0/0"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let list = ok_in(d, &["sif", "list", "app.sif"]);
    assert!(
        list.contains("Def.FILE") && list.contains("JSON.Generic") && list.contains("*System"),
        "{list}"
    );
}

#[test]
fn sandbox_output_and_build_args() {
    let dir = user_dir();
    let d = dir.path();
    let def = write_for_user(
        d,
        "args.def",
        &format!(
            "Bootstrap: localimage\nFrom: {}\n\n%arguments\n    NAME=default\n\n%post\n    echo {{{{ NAME }}}} > /name.txt\n",
            busybox().display()
        ),
    );
    ok_in(d, &["build", "--sandbox", "box", &def]);
    assert_eq!(
        std::fs::read_to_string(d.join("box/name.txt")).unwrap(),
        "default\n"
    );
    ok_in(d, &["build", "--build-arg", "NAME=given", "args.sif", &def]);
    assert_eq!(
        ok_in(d, &["exec", "args.sif", "cat", "/name.txt"]),
        "given\n"
    );
    // An argument the file does not use is an error, or a warning when asked.
    assert_failed(
        &run_in(d, &["build", "--build-arg", "OTHER=1", "x.sif", &def]),
        &["OTHER"],
    );
    let out = run_in(
        d,
        &[
            "build",
            "--warn-unused-build-args",
            "--build-arg",
            "OTHER=1",
            "y.sif",
            &def,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // A sandbox can itself be the base of another build.
    let def2 = write_for_user(
        d,
        "from-sandbox.def",
        &format!(
            "Bootstrap: localimage\nFrom: {}\n\n%post\n    cat /name.txt > /copied.txt\n",
            d.join("box").display()
        ),
    );
    ok_in(d, &["build", "copy.sif", &def2]);
    assert_eq!(
        ok_in(d, &["exec", "copy.sif", "cat", "/copied.txt"]),
        "default\n"
    );
}

#[test]
fn failures_leave_no_image() {
    let dir = user_dir();
    let d = dir.path();
    let post = write_for_user(
        d,
        "post.def",
        &format!(
            "Bootstrap: localimage\nFrom: {}\n\n%post\n    exit 3\n",
            busybox().display()
        ),
    );
    assert_failed(&run_in(d, &["build", "p.sif", &post]), &["%post failed"]);
    assert!(!d.join("p.sif").exists());
    let test = write_for_user(
        d,
        "test.def",
        &format!(
            "Bootstrap: localimage\nFrom: {}\n\n%test\n    false\n",
            busybox().display()
        ),
    );
    assert_failed(
        &run_in(d, &["build", "t.sif", &test]),
        &["%test failed", "--notest"],
    );
    assert!(!d.join("t.sif").exists());
    ok_in(d, &["build", "--notest", "t.sif", &test]);
    // Refuses to overwrite without --force.
    assert_failed(
        &run_in(d, &["build", "t.sif", &test]),
        &["already exists", "--force"],
    );
}

#[test]
fn malformed_definitions_name_the_line() {
    let dir = user_dir();
    let d = dir.path();
    let unknown = write_for_user(d, "unknown.def", "Bootstrap: scratch\n\n%postt\n    true\n");
    assert_failed(
        &run_in(d, &["build", "x.sif", &unknown]),
        &["unknown.def:3", "%postt"],
    );
    let missing = write_for_user(d, "missing.def", "From: busybox\n\n%post\n    true\n");
    assert_failed(
        &run_in(d, &["build", "x.sif", &missing]),
        &["missing.def", "Bootstrap"],
    );
    let braces = write_for_user(
        d,
        "braces.def",
        "Bootstrap: scratch\n\n%post\n    echo {{ NAME\n",
    );
    assert_failed(
        &run_in(d, &["build", "x.sif", &braces]),
        &["braces.def:4", "{{"],
    );
    let agent = write_for_user(d, "agent.def", "Bootstrap: yum\nOSVersion: 9\n");
    assert_failed(
        &run_in(d, &["build", "x.sif", &agent]),
        &["yum", "not supported"],
    );
}

#[test]
fn scratch_with_files() {
    let dir = user_dir();
    let d = dir.path();
    let sh = Path::new("/bin/busybox");
    skip_unless!(sh.exists(), "needs /bin/busybox (package busybox-static)");
    let def = write_for_user(d, "scratch.def", "Bootstrap: scratch\n\n%files\n    /bin/busybox /bin/busybox\n\n%runscript\n    echo from scratch\n");
    ok_in(d, &["build", "--notest", "scratch.sif", &def]);
    let list = ok_in(d, &["sif", "list", "scratch.sif"]);
    assert!(list.contains("*System"), "{list}");
}

/// Every definition file of the shared fixtures that can build offline
/// here: the ones bootstrapping from a local image built by this test.
#[test]
fn docker_bootstrap_from_the_local_registry() {
    let Some((_, get)) = registry_env() else {
        return;
    };
    let http = get("REGISTRY_HTTP");
    let dir = user_dir();
    let d = dir.path();
    let def = write_for_user(d, "docker.def", &format!("Bootstrap: docker\nFrom: {http}/busybox:latest\n\n%post\n    echo from-docker > /marker\n\n%runscript\n    cat /marker\n"));
    ok_in(d, &["build", "--no-https", "d.sif", &def]);
    assert_eq!(ok_in(d, &["run", "d.sif"]), "from-docker\n");
}

/// SIF → sandbox → SIF, keeping the runscript and the definition file.
#[test]
fn conversions() {
    let dir = user_dir();
    let d = dir.path();
    let img = busybox();
    ok_in(d, &["build", "--sandbox", "sb", img.to_str().unwrap()]);
    assert!(d.join("sb/bin/busybox").exists());
    ok_in(d, &["build", "back.sif", "sb"]);
    assert_eq!(
        ok_in(d, &["exec", "back.sif", "echo", "converted"]),
        "converted\n"
    );
    assert!(ok_in(d, &["inspect", "--deffile", "back.sif"]).contains("busybox"));
    ok_in(d, &["build", "copy.sif", img.to_str().unwrap()]);
    assert_eq!(
        ok_in(d, &["exec", "copy.sif", "echo", "copied"]),
        "copied\n"
    );
}

/// What `%post` makes unreadable (as root may) still goes into the image.
#[test]
fn unreadable_files_made_in_post() {
    let dir = user_dir();
    let d = dir.path();
    let def = write_for_user(d, "mode0.def", &format!("Bootstrap: localimage\nFrom: {}\n\n%post\n    mkdir -m 0 /etc/denied\n    echo s > /secret && chmod 0 /secret\n", busybox().display()));
    ok_in(d, &["build", "m.sif", &def]);
    assert_eq!(
        ok_in(
            d,
            &[
                "exec",
                "m.sif",
                "stat",
                "-c",
                "%a",
                "/etc/denied",
                "/secret"
            ]
        ),
        "0\n0\n"
    );
    // --fix-perms gives the owner access again in a sandbox of it.
    ok_in(d, &["build", "--sandbox", "--fix-perms", "fixed", "m.sif"]);
    assert_eq!(ok_in(d, &["exec", "fixed", "cat", "/secret"]), "s\n");
    assert_eq!(
        ok_in(d, &["exec", "fixed", "stat", "-c", "%a", "/etc/denied"]),
        "700\n"
    );
}

/// Multi-stage: `%files from NAME` copies out of an earlier stage, resolving
/// its symlinks inside that stage; only the last stage becomes the image.
#[test]
fn files_from_an_earlier_stage() {
    let dir = user_dir();
    let d = dir.path();
    let img = busybox().display().to_string();
    let def = write_for_user(
        d,
        "stages.def",
        &format!(
            "Bootstrap: localimage\nFrom: {img}\nStage: builder\n\n%post\n    mkdir /out\n    echo built > /out/result.txt\n    echo a > /out/a.bin\n    echo b > /out/b.bin\n    echo inside > /etc/vessel-stage-only\n    ln -s /etc /hop\n\n\
             Bootstrap: localimage\nFrom: {img}\nStage: final\n\n%files from builder\n    /out/result.txt /result.txt\n    /out/*.bin\n    /hop/vessel-stage-only /via-link\n\n%runscript\n    cat /result.txt /out/a.bin /out/b.bin /via-link\n"
        ),
    );
    ok_in(d, &["build", "s.sif", &def]);
    assert_eq!(ok_in(d, &["run", "s.sif"]), "built\na\nb\ninside\n");
    assert_eq!(
        ok_in(
            d,
            &[
                "exec",
                "s.sif",
                "sh",
                "-c",
                "test -e /out/result.txt || echo only-what-was-asked"
            ]
        ),
        "only-what-was-asked\n"
    );
    let missing = write_for_user(
        d,
        "missing.def",
        &format!("Bootstrap: localimage\nFrom: {img}\nStage: one\n\nBootstrap: localimage\nFrom: {img}\n\n%files from one\n    /nowhere\n"),
    );
    assert_failed(
        &run_in(d, &["build", "m.sif", &missing]),
        &["/nowhere", "stage one"],
    );
    assert!(!d.join("m.sif").exists());
}

/// SCIF apps: the `/scif` layout, `%appinstall` after `%post`, and
/// `run`/`exec`/`test`/`inspect` with `--app`.
#[test]
fn scif_apps() {
    let dir = user_dir();
    let d = dir.path();
    write_for_user(d, "tool.txt", "app file\n");
    let def = write_for_user(
        d,
        "apps.def",
        &format!(
            "Bootstrap: localimage\nFrom: {}\n\n%post\n    echo global > /post-ran\n\n\
             %appinstall foo\n    test -e /post-ran\n    printf '#!/bin/sh\\necho foo-bin $SCIF_APPNAME \"$@\"\\n' > bin/foo-bin\n    chmod +x bin/foo-bin\n\n\
             %appenv foo\n    FOO_SETTING=on\n    export FOO_SETTING\n\n\
             %apprun foo\n    foo-bin \"$@\" $FOO_SETTING\n\n\
             %appfiles foo\n    {}/tool.txt share/tool.txt\n\n\
             %applabels foo\n    Owner team-a\n\n\
             %apphelp foo\n    foo does things\n\n\
             %apptest foo\n    test -e $SCIF_APPROOT/share/tool.txt\n\n\
             %apprun bar\n    echo bar $SCIF_APPDATA\n",
            busybox().display(),
            d.display()
        ),
    );
    ok_in(d, &["build", "a.sif", &def]);
    assert_eq!(ok_in(d, &["inspect", "--list-apps", "a.sif"]), "bar\nfoo\n");
    assert_eq!(
        ok_in(d, &["run", "--app", "foo", "a.sif", "x"]),
        "foo-bin foo x on\n"
    );
    assert_eq!(
        ok_in(d, &["run", "--app", "bar", "a.sif"]),
        "bar /scif/data/bar\n"
    );
    assert_eq!(
        ok_in(
            d,
            &[
                "exec",
                "--app",
                "foo",
                "a.sif",
                "cat",
                "/scif/apps/foo/share/tool.txt"
            ]
        ),
        "app file\n"
    );
    assert_eq!(
        ok_in(d, &["exec", "a.sif", "sh", "-c", "echo $SCIF_APPRUN_bar"]),
        "/scif/apps/bar/scif/runscript\n"
    );
    ok_in(d, &["test", "--app", "foo", "a.sif"]);
    let labels = ok_in(d, &["inspect", "--app", "foo", "--labels", "a.sif"]);
    assert!(
        labels.contains("team-a") && labels.contains("SCIF_APP_NAME"),
        "{labels}"
    );
    assert_failed(
        &run_in(d, &["run", "--app", "nope", "a.sif"]),
        &["nope", "--list-apps"],
    );
}

/// `--update` runs a definition over an existing sandbox without
/// bootstrapping; `--section` limits which sections run.
#[test]
fn update_a_sandbox_with_chosen_sections() {
    let dir = user_dir();
    let d = dir.path();
    let first = write_for_user(
        d,
        "first.def",
        &format!(
            "Bootstrap: localimage\nFrom: {}\n\n%post\n    echo one > /first\n\n%runscript\n    cat /first /second\n",
            busybox().display()
        ),
    );
    ok_in(d, &["build", "--sandbox", "sb", &first]);
    let second = write_for_user(
        d,
        "second.def",
        "Bootstrap: localimage\nFrom: /nonexistent.sif\n\n%post\n    echo two > /second\n\n%environment\n    export SKIPPED=yes\n",
    );
    ok_in(
        d,
        &[
            "build",
            "--update",
            "--sandbox",
            "--section",
            "post",
            "sb",
            &second,
        ],
    );
    assert_eq!(ok_in(d, &["run", "sb"]), "one\ntwo\n");
    assert_eq!(
        ok_in(d, &["exec", "sb", "sh", "-c", "echo ${SKIPPED:-not-set}"]),
        "not-set\n"
    );
    assert_failed(
        &run_in(d, &["build", "--update", "x.sif", &second]),
        &["--update", "sandbox"],
    );
    assert_failed(
        &run_in(
            d,
            &[
                "build",
                "--sandbox",
                "--update",
                "--section",
                "bogus",
                "sb",
                &second,
            ],
        ),
        &["--section bogus"],
    );
}

/// `Bootstrap: debootstrap` from the host's Debian mirror, built by the
/// unprivileged user, with real `apt-get install` in `%post` (fake root
/// with the user's subordinate ids: apt switches to `_apt`), then `run`,
/// `test`, `inspect` and `run-help` on the result, owners kept in the image.
#[test]
fn debootstrap_with_apt_get_as_fake_root() {
    let (Ok(suite), Ok(mirror)) = (
        std::env::var("VESSEL_TEST_DEBIAN_SUITE"),
        std::env::var("VESSEL_TEST_DEBIAN_MIRROR"),
    ) else {
        skip("VESSEL_TEST_DEBIAN_SUITE and VESSEL_TEST_DEBIAN_MIRROR are not set (scripts/test.sh sets them from scripts/debian-mirror.sh)");
        return;
    };
    let dir = user_dir();
    let d = dir.path();
    let def = write_for_user(
        d,
        "deb.def",
        &format!(
            "Bootstrap: debootstrap\nOSVersion: {suite}\nMirrorURL: {mirror}\n\n\
             %post\n    apt-get update -q\n    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends hello\n    \
             useradd -u 2000 -m builder\n    rm -rf /var/lib/apt/lists/*\n\n\
             %environment\n    export GREETING=\"from debootstrap\"\n\n\
             %runscript\n    hello -g \"$GREETING $*\"\n\n\
             %test\n    hello | grep -q 'Hello, world'\n\n\
             %labels\n    Maintainer vessel-tests\n\n\
             %help\n    Prints a greeting with GNU hello.\n"
        ),
    );
    let tmp_dir = user_dir();
    let tmp = tmp_dir.path();
    let out = user_vessel(
        &["build", "deb.sif", &def],
        &[("APPTAINER_TMPDIR", tmp.to_str().unwrap())],
        d,
    )
    .stdin(Stdio::null())
    .output()
    .unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{}{err}", stdout(&out));
    assert!(
        err.contains("Fake root: root-mapped user namespace with your subordinate ids"),
        "{err}"
    );
    assert_eq!(ok_in(d, &["run", "deb.sif", "x"]), "from debootstrap x\n");
    ok_in(d, &["test", "deb.sif"]);
    assert!(ok_in(d, &["inspect", "deb.sif"]).contains("Maintainer: vessel-tests"));
    assert!(ok_in(d, &["inspect", "--deffile", "deb.sif"]).contains("Bootstrap: debootstrap"));
    assert_eq!(
        ok_in(d, &["run-help", "deb.sif"]).trim(),
        "Prints a greeting with GNU hello."
    );
    // Owners as they were inside the build: apt's _apt directory, the new
    // user's home, root's files.
    let sif = d.join("deb.sif");
    let listing = std::process::Command::new("unsquashfs")
        .args(["-lln", "-offset", &primary_offset(&sif)])
        .arg(&sif)
        .output()
        .expect("unsquashfs (squashfs-tools) is needed for this test");
    let owner = |path: &str| -> String {
        let text = String::from_utf8_lossy(&listing.stdout);
        let line = text
            .lines()
            .find(|l| l.ends_with(&format!("squashfs-root{path}")))
            .unwrap_or_else(|| panic!("{path} not in the image"));
        line.split_whitespace().nth(1).unwrap().to_string()
    };
    let passwd = ok_in(d, &["exec", "deb.sif", "cat", "/etc/passwd"]);
    let apt_uid = passwd
        .lines()
        .find(|l| l.starts_with("_apt:"))
        .and_then(|l| l.split(':').nth(2))
        .expect("_apt in /etc/passwd")
        .to_string();
    assert_eq!(
        owner("/var/cache/apt/archives/partial"),
        format!("{apt_uid}/0")
    );
    assert_eq!(owner("/home/builder"), "2000/2000");
    assert_eq!(owner("/usr/bin/hello"), "0/0");
    // Nothing of the build is left behind in the temporary directory.
    let left: Vec<_> = std::fs::read_dir(tmp)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// Apptainer's `unprivileged_build.def` and `unprivileged_build_4.def`
/// (`apt-get install` in `%post` of a local Debian SIF), built by the
/// unprivileged user with fake root and subordinate ids.
#[test]
fn fixture_apt_builds_from_a_debian_image() {
    let Some(debian) = debian_sif() else { return };
    let debian = debian.display().to_string();
    let dir = user_dir();
    let d = dir.path();
    let defs = sif_fixtures().join("apptainer/defs");
    let from = format!("FROMSIF={debian}");
    let def = defs.join("unprivileged_build.def").display().to_string();
    ok_in(d, &["build", "--build-arg", &from, "apt.sif", &def]);
    let out = run_in(d, &["exec", "apt.sif", "ssh", "-V"]);
    assert!(out.status.success(), "{def}: {}", stderr(&out));

    // As a sandbox: files of the user's subordinate ids (apt's _apt) are in
    // it, and --force still replaces it.
    let def = defs.join("unprivileged_build_4.def").display().to_string();
    ok_in(
        d,
        &["build", "--sandbox", "--build-arg", &from, "apt-sb", &def],
    );
    assert!(ok_in(d, &["exec", "apt-sb", "cpio", "--version"]).contains("cpio"));
    let small = write_for_user(
        d,
        "small.def",
        &format!("Bootstrap: localimage\nFrom: {}\n", busybox().display()),
    );
    ok_in(d, &["build", "--force", "--sandbox", "apt-sb", &small]);
    assert!(!d.join("apt-sb/usr/bin/cpio").exists());
}

/// gzip by default; zstd (or any mksquashfs option) through
/// `--mksquashfs-args`, and the image still runs.
#[test]
fn compression_through_mksquashfs_args() {
    let dir = user_dir();
    let d = dir.path();
    let def = write_for_user(
        d,
        "z.def",
        &format!(
            "Bootstrap: localimage\nFrom: {}\n\n%runscript\n    echo compressed\n",
            busybox().display()
        ),
    );
    let compression = |img: &str| {
        let sif = d.join(img);
        let out = std::process::Command::new("unsquashfs")
            .args(["-s", "-offset", &primary_offset(&sif)])
            .arg(&sif)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines()
            .find_map(|l| l.strip_prefix("Compression "))
            .unwrap_or_else(|| panic!("no compression in:\n{text}"))
            .to_string()
    };
    ok_in(d, &["build", "gz.sif", &def]);
    assert_eq!(compression("gz.sif"), "gzip");
    ok_in(
        d,
        &[
            "build",
            "--mksquashfs-args",
            "-comp zstd -b 1M",
            "zs.sif",
            &def,
        ],
    );
    assert_eq!(compression("zs.sif"), "zstd");
    assert_eq!(ok_in(d, &["run", "zs.sif"]), "compressed\n");
    assert_failed(
        &run_in(
            d,
            &["build", "--mksquashfs-args", "-comp nope", "bad.sif", &def],
        ),
        &["SquashFS"],
    );
    assert!(!d.join("bad.sif").exists());
}

/// The fixtures that bootstrap from Docker Hub or ghcr.io cannot be fetched
/// on a machine without internet access: they fail with one clear line
/// naming the registry, and leave no image.
#[test]
fn fixtures_from_unreachable_registries_fail_clearly() {
    let dir = user_dir();
    let d = dir.path();
    let defs = sif_fixtures().join("apptainer/defs");
    for (def, registry) in [
        ("regressions/issue_4820.def", "ghcr.io"),
        ("issue1704.def", "index.docker.io"),
    ] {
        let path = defs.join(def).display().to_string();
        let out = run_in(d, &["build", "--notest", "net.sif", &path]);
        if out.status.success() {
            // This machine reaches the internet: the build simply worked.
            std::fs::remove_file(d.join("net.sif")).unwrap();
            continue;
        }
        assert_failed(&out, &["cannot reach the registry", registry]);
        assert!(!d.join("net.sif").exists(), "{def}");
    }
}

/// A definition without %runscript keeps its base's runscript, as
/// Apptainer does: a local image's own, and a registry image's OCI one
/// (ENTRYPOINT and CMD); only a root without one gets the default.
#[test]
fn base_runscript_kept_without_one_in_the_definition() {
    let dir = user_dir();
    let d = dir.path();
    let local = write_for_user(
        d,
        "local.def",
        &format!(
            "Bootstrap: localimage\nFrom: {}\n\n%post\n    true\n",
            sif_fixtures()
                .join("singularity-3.4/busybox-localimage.sif")
                .display()
        ),
    );
    ok_in(d, &["build", "local.sif", &local]);
    assert_eq!(ok_in(d, &["run", "local.sif", "a", "b"]), "run: bar a b\n");
    let scratch = write_for_user(d, "scratch.def", "Bootstrap: scratch\n");
    ok_in(d, &["build", "--notest", "scratch.sif", &scratch]);
    let runscript = ok_in(d, &["inspect", "--runscript", "scratch.sif"]);
    assert!(
        runscript.contains("There is no runscript defined for this container"),
        "{runscript}"
    );
    let Some((_, get)) = registry_env() else {
        return;
    };
    let docker = write_for_user(
        d,
        "docker.def",
        &format!(
            "Bootstrap: docker\nFrom: {}/busybox:latest\n\n%post\n    true\n",
            get("REGISTRY_HTTP")
        ),
    );
    ok_in(d, &["build", "--no-https", "docker.sif", &docker]);
    // The image's CMD is sh: arguments replace it.
    assert_eq!(
        ok_in(d, &["run", "docker.sif", "echo", "from", "cmd"]),
        "from cmd\n"
    );
}
