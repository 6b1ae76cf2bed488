//! Trust, end to end: `key`, `sign` and `verify` against the reference
//! corpus (signed by the Go `integrity` package) and GnuPG, and the
//! administrator's execution control list refusing or allowing images at
//! run time, as an unprivileged user.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::*;

const FIXTURE_FP: &str = "12045C8C0B1004D058DE4BEDA20C27EE7FF7BA84";

fn image(name: &str) -> PathBuf {
    sif_fixtures().join("images").join(name)
}

fn key_file(name: &str) -> PathBuf {
    sif_fixtures().join("keys").join(name)
}

/// `vessel ARGS` with its keyrings in `keys`, standard input `input`.
fn with_keys(keys: &Path, args: &[&str], input: &str) -> Output {
    vessel()
        .env("APPTAINER_KEYSDIR", keys)
        .args(args)
        .write_stdin(input)
        .output()
        .unwrap()
}

/// A failure as users see it: exit 255 and a `FATAL:` line holding every
/// needle (after the commands' `INFO:` lines).
fn failed(out: &Output, needles: &[&str]) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(255), "{}{err}", stdout(out));
    let fatal: Vec<_> = err.lines().filter(|l| l.starts_with("FATAL:   ")).collect();
    assert_eq!(fatal.len(), 1, "{err}");
    for n in needles {
        assert!(fatal[0].contains(n), "{n:?} missing from: {err}");
    }
}

fn ok(out: Output) -> String {
    assert_ok(&out, "failed")
}

/// A key directory holding the reference corpus's public key.
fn fixture_keyring() -> tempfile::TempDir {
    let keys = tempfile::tempdir().unwrap();
    ok(with_keys(
        keys.path(),
        &[
            "key",
            "import",
            key_file("pgp-public.asc").to_str().unwrap(),
        ],
        "",
    ));
    keys
}

/// A new key pair in `keys`; returns its fingerprint.
fn newpair(keys: &Path, name: &str, passphrase: &str) -> String {
    new_key_with_passphrase(&|args| ok(with_keys(keys, args, "")), name, passphrase)
}

fn copy(from: &Path, dir: &Path, name: &str) -> PathBuf {
    let to = dir.join(name);
    std::fs::copy(from, &to).unwrap();
    to
}

/// The bytes of object `id` of a SIF.
fn dump(image: &Path, id: u32) -> Vec<u8> {
    let out = run(&["sif", "dump", &id.to_string(), image.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    out.stdout
}

/// The clear-signed text (the JSON payload) of a signature object.
fn signed_text(signature: &[u8]) -> String {
    let text = String::from_utf8_lossy(signature);
    let body = text.split("\n\n").nth(1).expect("a clear-signed message");
    body.split("\n-----BEGIN PGP SIGNATURE-----")
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn reference_signatures_verify_with_the_fixture_keys() {
    let keys = fixture_keyring();
    let k = keys.path();
    for name in ["one-group-signed-pgp.sif", "two-groups-signed-pgp.sif"] {
        let out = ok(with_keys(k, &["verify", image(name).to_str().unwrap()], ""));
        assert!(
            out.contains("Signing entity: Unit Test <unit@test.com>"),
            "{out}"
        );
        assert!(out.contains(&format!("Fingerprint: {FIXTURE_FP}")), "{out}");
        assert!(out.contains("Objects verified:"), "{out}");
    }
    let json = ok(with_keys(
        k,
        &[
            "verify",
            "--json",
            image("two-groups-signed-pgp.sif").to_str().unwrap(),
        ],
        "",
    ));
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(doc["Signatures"], 2);
    assert_eq!(doc["SignerKeys"].as_array().unwrap().len(), 3, "{json}");
    assert_eq!(doc["SignerKeys"][0]["Signer"]["DataCheck"], true);

    // DSSE: each of the two keys that signed verifies; the spare one does not.
    for name in ["one-group-signed-dsse.sif", "two-groups-signed-dsse.sif"] {
        for key in ["ed25519-public.pem", "rsa-public.pem"] {
            let out = ok(with_keys(
                k,
                &[
                    "verify",
                    "--key",
                    key_file(key).to_str().unwrap(),
                    image(name).to_str().unwrap(),
                ],
                "",
            ));
            assert!(out.contains("Signing key: SHA256:"), "{out}");
        }
        let out = with_keys(
            k,
            &[
                "verify",
                "--key",
                key_file("ecdsa-public.pem").to_str().unwrap(),
                image(name).to_str().unwrap(),
            ],
            "",
        );
        assert_eq!(out.status.code(), Some(255), "{}", stdout(&out));
        assert!(
            stderr(&out).contains("FATAL:   failed to verify container: signature object"),
            "{}",
            stderr(&out)
        );
    }

    // Legacy signatures only with --legacy-insecure (group ones with -g).
    for (name, extra) in [
        ("one-group-signed-legacy.sif", &[][..]),
        ("one-group-signed-legacy-all.sif", &["--all"][..]),
        (
            "one-group-signed-legacy-group.sif",
            &["--group-id", "1"][..],
        ),
        ("two-groups-signed-legacy.sif", &[][..]),
        (
            "two-groups-signed-legacy-group.sif",
            &["--group-id", "1"][..],
        ),
        ("two-groups-signed-legacy-all.sif", &["--sif-id", "1"][..]),
    ] {
        let path = image(name);
        let refused = with_keys(k, &["verify", path.to_str().unwrap()], "");
        failed(&refused, &["only legacy signatures", "--legacy-insecure"]);
        let mut args = vec!["verify", "--legacy-insecure"];
        args.extend_from_slice(extra);
        args.push(path.to_str().unwrap());
        let out = ok(with_keys(k, &args, ""));
        assert!(
            out.contains("Signing entity: Unit Test <unit@test.com>"),
            "{name}: {out}"
        );
    }

    for name in ["one-group.sif", "two-groups.sif"] {
        let out = with_keys(k, &["verify", image(name).to_str().unwrap()], "");
        failed(&out, &["no signature found for object group 1"]);
    }
    // A key the keyring lacks is named.
    let empty = tempfile::tempdir().unwrap();
    let out = with_keys(
        empty.path(),
        &[
            "verify",
            image("one-group-signed-pgp.sif").to_str().unwrap(),
        ],
        "",
    );
    failed(&out, &["unknown key", FIXTURE_FP]);
}

#[test]
fn changed_bytes_fail_verification_naming_what_changed() {
    let keys = fixture_keyring();
    let dir = tempfile::tempdir().unwrap();
    let original = std::fs::read(image("one-group-signed-pgp.sif")).unwrap();
    // Header: the launch script (signed); descriptor 2 (4096 + 585): its
    // name; object 2's data at 36864.
    let descriptor_2_name = 4096 + 585 + 73;
    for (offset, needle) in [
        (3usize, "the SIF global header was modified"),
        (descriptor_2_name, "the descriptor of object 2 was modified"),
        (36864 + 100, "the data of object 2 was modified"),
        (32768 + 1, "the data of object 1 was modified"),
    ] {
        let mut bytes = original.clone();
        bytes[offset] ^= 0x20;
        let path = dir.path().join(format!("flip-{offset}.sif"));
        std::fs::write(&path, &bytes).unwrap();
        let out = with_keys(keys.path(), &["verify", path.to_str().unwrap()], "");
        assert_eq!(
            out.status.code(),
            Some(255),
            "offset {offset}: {}",
            stdout(&out)
        );
        assert!(
            stderr(&out).contains(needle),
            "offset {offset}: {}",
            stderr(&out)
        );
        assert!(
            stdout(&out).contains("Error encountered during signature verification"),
            "{}",
            stdout(&out)
        );
    }
}

#[test]
fn signatures_vessel_makes_verify_in_gnupg_and_match_the_reference_payload() {
    let keys = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fp = newpair(keys.path(), "Vessel Signer", "correct horse");
    let signed = copy(&image("one-group.sif"), dir.path(), "signed.sif");

    let wrong = with_keys(keys.path(), &["sign", signed.to_str().unwrap()], "wrong\n");
    failed(&wrong, &["wrong passphrase"]);
    assert_eq!(
        std::fs::read(&signed).unwrap(),
        std::fs::read(image("one-group.sif")).unwrap(),
        "a failed sign must leave the image as it was"
    );

    let out = with_keys(
        keys.path(),
        &["sign", signed.to_str().unwrap()],
        "correct horse\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Signature created and applied"),
        "{}",
        stderr(&out)
    );
    let verified = ok(with_keys(
        keys.path(),
        &["verify", signed.to_str().unwrap()],
        "",
    ));
    assert!(
        verified.contains(&format!("Fingerprint: {fp}")),
        "{verified}"
    );
    assert!(
        verified.contains("Signing entity: Vessel Signer (test key) <ci@example.org>"),
        "{verified}"
    );

    // The signature object carries the reference payload, byte for byte.
    let ours = dump(&signed, 3);
    let reference = dump(&image("one-group-signed-pgp.sif"), 3);
    assert_eq!(signed_text(&ours), signed_text(&reference));
    let listing = stdout(&run(&["sif", "list", signed.to_str().unwrap()]));
    assert!(
        listing.contains("|NONE    |1   (G) |") && listing.contains("Signature (SHA-256)"),
        "{listing}"
    );

    // GnuPG accepts it.
    let gnupg = tempfile::tempdir().unwrap();
    let public = dir.path().join("public.asc");
    ok(with_keys(
        keys.path(),
        &["key", "export", "--armor", &fp, public.to_str().unwrap()],
        "",
    ));
    let sig = dir.path().join("signature.asc");
    std::fs::write(&sig, &ours).unwrap();
    let gpg = |args: &[&str]| {
        Command::new("gpg")
            .env("GNUPGHOME", gnupg.path())
            .arg("--batch")
            .args(args)
            .output()
            .expect("gpg (apt-get install gnupg)")
    };
    assert!(gpg(&["--import", public.to_str().unwrap()])
        .status
        .success());
    let checked = gpg(&["--verify", sig.to_str().unwrap()]);
    assert!(checked.status.success(), "{}", stderr(&checked));
    assert!(
        stderr(&checked)
            .contains("Good signature from \"Vessel Signer (test key) <ci@example.org>\""),
        "{}",
        stderr(&checked)
    );

    // A signature over one object (--sif-id) verifies for that object.
    let one = copy(&image("two-groups.sif"), dir.path(), "one-object.sif");
    ok(with_keys(
        keys.path(),
        &["sign", "--sif-id", "3", one.to_str().unwrap()],
        "correct horse\n",
    ));
    ok(with_keys(
        keys.path(),
        &["verify", "--sif-id", "3", one.to_str().unwrap()],
        "",
    ));
}

#[test]
fn keyrings_import_export_and_remove() {
    let keys = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fp = newpair(keys.path(), "Round Trip", "pass");
    let secret = dir.path().join("secret.asc");
    ok(with_keys(
        keys.path(),
        &[
            "key",
            "export",
            "--secret",
            "--armor",
            &fp,
            secret.to_str().unwrap(),
        ],
        "",
    ));
    let text = std::fs::read_to_string(&secret).unwrap();
    assert!(
        text.starts_with("-----BEGIN PGP PRIVATE KEY BLOCK-----"),
        "{text}"
    );
    // Never overwrites.
    let again = with_keys(
        keys.path(),
        &["key", "export", &fp, secret.to_str().unwrap()],
        "",
    );
    failed(&again, &["never overwritten"]);

    let other = tempfile::tempdir().unwrap();
    let imported = ok(with_keys(
        other.path(),
        &["key", "import", secret.to_str().unwrap()],
        "",
    ));
    assert!(imported.contains(&fp), "{imported}");
    assert!(ok(with_keys(other.path(), &["key", "list"], "")).contains(&fp));
    assert!(
        ok(with_keys(other.path(), &["key", "list", "--secret"], ""))
            .contains("Round Trip (test key) <ci@example.org>")
    );
    // Signing with the imported, still protected key.
    let img = copy(&image("one-group.sif"), dir.path(), "x.sif");
    ok(with_keys(
        other.path(),
        &["sign", "--keyidx", "0", img.to_str().unwrap()],
        "pass\n",
    ));
    ok(with_keys(
        other.path(),
        &["verify", img.to_str().unwrap()],
        "",
    ));

    ok(with_keys(
        other.path(),
        &["key", "remove", "--both", &fp],
        "",
    ));
    assert!(!ok(with_keys(other.path(), &["key", "list"], "")).contains(&fp));
    let gone = with_keys(other.path(), &["key", "remove", &fp], "");
    failed(&gone, &["no key matching"]);
    let none = with_keys(other.path(), &["sign", img.to_str().unwrap()], "");
    failed(&none, &["no secret key", "key newpair"]);
}

#[test]
fn dsse_signatures_with_pem_keys() {
    let keys = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (name, genkey) in [
        (
            "rsa",
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ][..],
        ),
        (
            "ecdsa",
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ][..],
        ),
        ("ed25519", &["genpkey", "-algorithm", "ed25519"][..]),
    ] {
        let private = dir.path().join(format!("{name}.pem"));
        let public = dir.path().join(format!("{name}.pub.pem"));
        let made = Command::new("openssl")
            .args(genkey)
            .arg("-out")
            .arg(&private)
            .output()
            .unwrap();
        assert!(
            made.status.success(),
            "{}",
            String::from_utf8_lossy(&made.stderr)
        );
        let made = Command::new("openssl")
            .args(["pkey", "-pubout", "-in"])
            .arg(&private)
            .arg("-out")
            .arg(&public)
            .output()
            .unwrap();
        assert!(made.status.success());
        let img = copy(&image("two-groups.sif"), dir.path(), &format!("{name}.sif"));
        ok(with_keys(
            keys.path(),
            &[
                "sign",
                "--key",
                private.to_str().unwrap(),
                img.to_str().unwrap(),
            ],
            "",
        ));
        let out = ok(with_keys(
            keys.path(),
            &[
                "verify",
                "--key",
                public.to_str().unwrap(),
                img.to_str().unwrap(),
            ],
            "",
        ));
        assert_eq!(out.matches("Objects verified:").count(), 2, "{name}: {out}");
        // A PGP verify of a DSSE-only image says which key is missing.
        let out = with_keys(keys.path(), &["verify", img.to_str().unwrap()], "");
        failed(&out, &["DSSE"]);
    }
}

#[test]
fn adding_objects_invalidates_only_their_group() {
    let keys = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    newpair(keys.path(), "Group Signer", "");
    let data = dir.path().join("extra.bin");
    std::fs::write(&data, b"added after signing").unwrap();
    for (group, should_fail) in [("1", true), ("2", false)] {
        let img = copy(
            &image("one-group.sif"),
            dir.path(),
            &format!("g{group}.sif"),
        );
        ok(with_keys(keys.path(), &["sign", img.to_str().unwrap()], ""));
        ok(run(&[
            "sif",
            "add",
            "--datatype",
            "7",
            "--groupid",
            group,
            img.to_str().unwrap(),
            data.to_str().unwrap(),
        ]));
        let out = with_keys(
            keys.path(),
            &["verify", "--group-id", "1", img.to_str().unwrap()],
            "",
        );
        if should_fail {
            failed(&out, &["object 4 is in the signed group but not covered"]);
        } else {
            assert!(out.status.success(), "{}", stderr(&out));
            // The new group itself is unsigned.
            let all = with_keys(keys.path(), &["verify", img.to_str().unwrap()], "");
            failed(&all, &["no signature found for object group 2"]);
        }
    }
}

#[test]
fn execution_control_list_refuses_unsigned_and_unlisted_images() {
    let user = test_user();
    let conf = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let other_keys = tempfile::tempdir().unwrap();
    let allowed = newpair(keys.path(), "Site Admin", "");
    newpair(other_keys.path(), "Someone Else", "");

    // The images, in a directory the policy names, readable by the user.
    let images = user_dir();
    let dir = std::fs::canonicalize(images.path()).unwrap();
    let unsigned = dir.join("unsigned.sif");
    unsigned_copy(&busybox(), &unsigned);
    let good = copy(&unsigned, &dir, "good.sif");
    let stranger = copy(&unsigned, &dir, "stranger.sif");
    ok(with_keys(
        keys.path(),
        &["sign", good.to_str().unwrap()],
        "",
    ));
    ok(with_keys(
        other_keys.path(),
        &["sign", stranger.to_str().unwrap()],
        "",
    ));
    for f in [&unsigned, &good, &stranger] {
        chown_tree(f, user.uid, user.gid);
    }

    // The site: the allowed key in the global keyring, a whitelist group.
    let public = keys.path().join("allowed.asc");
    ok(with_keys(
        keys.path(),
        &["key", "export", &allowed, public.to_str().unwrap()],
        "",
    ));
    let imported = vessel()
        .env("VESSEL_CONF_DIR", conf.path())
        .args(["key", "import", "--global", public.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(imported.status.success(), "{}", stderr(&imported));
    // VESSEL_CONF_DIR moves the configuration only for root, or for an
    // installation the user owns: the site's Vessel refuses it to users.
    let conf_env = [("VESSEL_CONF_DIR", conf.path().to_str().unwrap())];
    let bypass = user_run(
        &dir,
        &["exec", unsigned.to_str().unwrap(), "true"],
        &conf_env,
    );
    failed(
        &bypass,
        &[
            "VESSEL_CONF_DIR",
            "honoured only for root or for a Vessel installation you own",
        ],
    );
    // The policy itself is checked through a copy of Vessel the user owns.
    let (_install, own_vessel) = user_owned_vessel(&user);
    let own_run = |args: &[&str], cwd: &Path| {
        as_user(&user, &own_vessel, args, &conf_env, cwd)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    // Users cannot change it.
    let refused = own_run(
        &[
            "key",
            "import",
            "--global",
            key_file("pgp-public.asc").to_str().unwrap(),
        ],
        &dir,
    );
    failed(
        &refused,
        &["only an administrator can change the global keyring"],
    );
    std::fs::write(
        conf.path().join("vessel.conf"),
        format!(
            "# test site\nexecution control = yes\nexecution group = whitelist {} {allowed}\n",
            dir.display()
        ),
    )
    .unwrap();
    let mut perms = std::fs::metadata(conf.path()).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(conf.path(), perms).unwrap();

    let exec = |img: &Path| own_run(&["exec", img.to_str().unwrap(), "echo", "ran"], &dir);
    let out = exec(&good);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "ran");
    failed(
        &exec(&unsigned),
        &[
            "execution control",
            "no valid signature",
            "no signature found for object group 1",
        ],
    );
    failed(
        &exec(&stranger),
        &[
            "execution control",
            "not signed by any of the keys",
            &allowed,
        ],
    );

    // An image outside every group's directory does not run either.
    let elsewhere = user_dir();
    let moved = copy(&good, elsewhere.path(), "good.sif");
    chown_tree(&moved, user.uid, user.gid);
    let out = own_run(&["exec", moved.to_str().unwrap(), "true"], elsewhere.path());
    failed(&out, &["no execution group"]);

    // A broken configuration is named, line and all.
    std::fs::write(
        conf.path().join("vessel.conf"),
        "execution control = perhaps\n",
    )
    .unwrap();
    failed(
        &exec(&good),
        &["vessel.conf, line 1: execution control: `perhaps` is not allowed: use yes or no"],
    );
}

#[test]
fn the_reference_integrity_package_and_vessel_verify_each_other() {
    let Some(oracle) = go_oracle("VESSEL_SIFINTEGRITY") else {
        return;
    };
    let keys = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fp = newpair(keys.path(), "Interop Signer", "");
    let public = dir.path().join("public.asc");
    let secret = dir.path().join("secret.asc");
    ok(with_keys(
        keys.path(),
        &["key", "export", "--armor", &fp, public.to_str().unwrap()],
        "",
    ));
    ok(with_keys(
        keys.path(),
        &[
            "key",
            "export",
            "--secret",
            "--armor",
            &fp,
            secret.to_str().unwrap(),
        ],
        "",
    ));
    let reference = |args: &[&Path]| {
        let out = Command::new(&oracle).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "sifintegrity {args:?}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        stdout(&out)
    };

    // Signed by Vessel, verified by Go.
    let ours = copy(&image("two-groups.sif"), dir.path(), "ours.sif");
    ok(with_keys(
        keys.path(),
        &["sign", ours.to_str().unwrap()],
        "",
    ));
    let out = reference(&[Path::new("verify"), &ours, &public]);
    assert_eq!(out.matches(&format!("by {fp}")).count(), 2, "{out}");

    // Signed by Go, verified by Vessel.
    let theirs = copy(&image("two-groups.sif"), dir.path(), "theirs.sif");
    reference(&[Path::new("sign"), &theirs, &secret]);
    let out = ok(with_keys(
        keys.path(),
        &["verify", theirs.to_str().unwrap()],
        "",
    ));
    assert_eq!(
        out.matches(&format!("Fingerprint: {fp}")).count(),
        2,
        "{out}"
    );
}
