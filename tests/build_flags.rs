//! `build` behaviour that workflow tools rely on (issue 14): the build
//! labels set afresh, `$APPTAINER_LABELS` in `%post`, `%pre` on the host,
//! `--bind`/`--mount`/`--writable-tmpfs` for `%post` and `%test`, and the
//! `Fingerprints:` header of a `localimage` bootstrap. Run as the
//! unprivileged test user.

// The tests read their own settings (VESSEL_TEST_*, VESSEL_FIXTURES, CI),
// not Vessel's variables, so not through vessel-config's registry.
#![allow(clippy::disallowed_methods)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::*;

/// A sandbox's `labels.json`.
fn labels_of(sandbox: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(sandbox.join(".singularity.d/labels.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// What `apptainer --version` prints after "apptainer version ".
fn apptainer_version(dir: &Path) -> String {
    let link = dir.join("apptainer");
    std::os::unix::fs::symlink(bin_path(), &link).unwrap();
    let out = std::process::Command::new(&link)
        .arg("--version")
        .output()
        .unwrap();
    stdout(&out)
        .trim()
        .strip_prefix("apptainer version ")
        .expect("apptainer version …")
        .to_string()
}

#[test]
fn build_labels_are_set_afresh_not_inherited() {
    let dir = user_dir();
    let d = dir.path();
    // A base whose labels are stale: another build's date, arch, version
    // and definition.
    let base_def = write_for_user(
        d,
        "base.def",
        &format!("Bootstrap: localimage\nFrom: {}\n", busybox().display()),
    );
    ok_in(d, &["build", "--sandbox", "base", &base_def]);
    let base = d.join("base");
    let stale = serde_json::json!({
        "org.label-schema.build-date": "Monday_1_January_2024_1:2:3_UTC",
        "org.label-schema.build-arch": "ppc64le",
        "org.label-schema.usage.apptainer.version": "1.0.0",
        "org.label-schema.usage.singularity.deffile.bootstrap": "docker",
        "org.label-schema.usage.singularity.deffile.from": "alpine:3",
        "org.label-schema.usage.singularity.deffile.osversion": "9",
        "Maintainer": "base",
    });
    std::fs::write(
        base.join(".singularity.d/labels.json"),
        serde_json::to_string(&stale).unwrap(),
    )
    .unwrap();
    let def = write_for_user(
        d,
        "app.def",
        &format!("Bootstrap: localimage\nFrom: {}\n", base.display()),
    );
    ok_in(d, &["build", "--sandbox", "app", &def]);
    let labels = labels_of(&d.join("app"));
    let get = |k: &str| labels.get(k).map(String::as_str).unwrap_or("");
    let date = get("org.label-schema.build-date");
    assert!(
        date.ends_with("_UTC") && date.split('_').count() == 6 && !date.contains("2024"),
        "{labels:?}"
    );
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    assert_eq!(get("org.label-schema.build-arch"), arch);
    assert_eq!(
        get("org.label-schema.usage.apptainer.version"),
        apptainer_version(d)
    );
    let deffile = "org.label-schema.usage.singularity.deffile.";
    assert_eq!(get(&format!("{deffile}bootstrap")), "localimage");
    assert_eq!(
        get(&format!("{deffile}from")),
        base.display().to_string().as_str()
    );
    assert!(!labels.contains_key(&format!("{deffile}osversion")));
    assert_eq!(get("Maintainer"), "base");
}

#[test]
fn labels_written_by_post_are_added() {
    let dir = user_dir();
    let d = dir.path();
    let def = write_for_user(
        d,
        "app.def",
        &format!(
            "Bootstrap: localimage\nFrom: {}\n\n%labels\n    Author def\n    Kept yes\n\n%post\n    echo \"Author post\" >> $APPTAINER_LABELS\n    echo \"Built-With two words\" >> $SINGULARITY_LABELS\n",
            busybox().display()
        ),
    );
    ok_in(d, &["build", "--sandbox", "app", &def]);
    let app = d.join("app");
    let labels = labels_of(&app);
    let get = |k: &str| labels.get(k).map(String::as_str);
    assert_eq!(get("Author"), Some("post"), "{labels:?}");
    assert_eq!(get("Built-With"), Some("two words"), "{labels:?}");
    assert_eq!(get("Kept"), Some("yes"), "{labels:?}");
    assert!(!app.join(".build.labels").exists());
}

#[test]
fn pre_runs_on_the_host_before_the_bootstrap() {
    let dir = user_dir();
    let d = dir.path();
    let def = write_for_user(
        d,
        "app.def",
        &format!(
            "Bootstrap: localimage\nFrom: {}\n\n%pre\n    test ! -e \"$APPTAINER_ROOTFS/bin\"\n    id -u > {}/pre-uid\n",
            busybox().display(),
            d.display()
        ),
    );
    ok_in(d, &["build", "--sandbox", "app", &def]);
    let uid = std::fs::read_to_string(d.join("pre-uid")).unwrap();
    assert_eq!(uid.trim(), test_user().uid.to_string());
    assert!(!d.join("app/pre-uid").exists());

    let def = write_for_user(
        d,
        "bad.def",
        &format!(
            "Bootstrap: localimage\nFrom: {}\n\n%pre\n    exit 3\n",
            busybox().display()
        ),
    );
    let out = run_in(d, &["build", "bad.sif", &def]);
    assert_failed(&out, &["%pre failed"]);
    assert!(!d.join("bad.sif").exists());
}

#[test]
fn bind_mount_and_writable_tmpfs_reach_post_and_test() {
    let dir = user_dir();
    let d = dir.path();
    let input = d.join("input");
    std::fs::create_dir(&input).unwrap();
    give_to_test_user(&input);
    write_for_user(&input, "data.txt", "from the host\n");
    let other = d.join("other");
    std::fs::create_dir(&other).unwrap();
    give_to_test_user(&other);
    write_for_user(&other, "more.txt", "more\n");
    let def = write_for_user(
        d,
        "app.def",
        &format!(
            "Bootstrap: localimage\nFrom: {}\n\n%post\n    cp /mnt/data.txt /opt-data.txt\n    cat /srv/more.txt >> /opt-data.txt\n\n%test\n    test -f /mnt/data.txt\n    test -f /srv/more.txt\n    touch /written-by-test\n",
            busybox().display()
        ),
    );
    let bind = format!("{}:/mnt", input.display());
    let mount = format!("type=bind,src={},dst=/srv", other.display());
    // Without --writable-tmpfs, %test cannot write to the image.
    let out = run_in(
        d,
        &["build", "--bind", &bind, "--mount", &mount, "a.sif", &def],
    );
    assert_failed(&out, &["%test"]);
    ok_in(
        d,
        &[
            "build",
            "-B",
            &bind,
            "--mount",
            &mount,
            "--writable-tmpfs",
            "app.sif",
            &def,
        ],
    );
    assert_eq!(
        ok_in(d, &["exec", "app.sif", "cat", "/opt-data.txt"]),
        "from the host\nmore\n"
    );
    // What %test wrote was discarded.
    let out = run_in(d, &["exec", "app.sif", "test", "-e", "/written-by-test"]);
    assert_eq!(out.status.code(), Some(1));
}

/// `Fingerprints:` for a `localimage` base: the build goes on only when the
/// base is signed, verifiably with the user's keyring, by a listed key.
#[test]
fn fingerprints_bind_a_localimage_base_to_its_signers() {
    let dir = user_dir();
    let d = dir.path();
    let keys = d.join("keys");
    std::fs::create_dir(&keys).unwrap();
    give_to_test_user(&keys);
    let keys_env = [("APPTAINER_KEYSDIR", keys.to_str().unwrap())];
    let with_keys =
        |args: &[&str]| assert_ok(&user_run(d, args, &keys_env), format_args!("{args:?}"));
    let fp = new_key(&with_keys, "Builder");
    // Unsigned and signed copies of busybox.
    let unsigned = d.join("unsigned.sif");
    unsigned_copy(&busybox(), &unsigned);
    let signed = d.join("signed.sif");
    std::fs::copy(&unsigned, &signed).unwrap();
    for f in [&unsigned, &signed] {
        std::fs::set_permissions(f, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
        give_to_test_user(f);
    }
    with_keys(&["sign", signed.to_str().unwrap()]);
    let def = |base: &Path, fps: &str| {
        write_for_user(
            d,
            "fp.def",
            &format!(
                "Bootstrap: localimage\nFrom: {}\nFingerprints: {fps}\n",
                base.display()
            ),
        )
    };
    let build = |def: &str, out: &str| user_run(d, &["build", "--force", out, def], &keys_env);
    let spaced: String = fp
        .chars()
        .collect::<Vec<_>>()
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join(" ");
    let out = build(
        &def(
            &signed,
            &format!("0000000000000000000000000000000000000000, {spaced}"),
        ),
        "ok.sif",
    );
    assert_ok(&out, "build from a base signed by a listed key");
    let out = build(
        &def(&signed, "0000000000000000000000000000000000000000"),
        "no.sif",
    );
    assert_failed(
        &out,
        &[
            "Fingerprints:",
            "not signed as the definition requires",
            &fp,
        ],
    );
    let out = build(&def(&unsigned, &fp), "no.sif");
    assert_failed(
        &out,
        &["Fingerprints:", "not signed as the definition requires"],
    );
    assert!(!d.join("no.sif").exists());
}
