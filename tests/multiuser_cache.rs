//! A pull cache shared by a group (a world-writable `APPTAINER_CACHEDIR`,
//! setgid, no sticky bit), with two real users on the real binary: the
//! attacker (`vattack`) plants links at the lock and temporary names, a SIF
//! and a blob of its own for the image, and takes over the victim's SIF
//! directory; the victim (`vtest`) pulls and runs the image from the local
//! registry. Nothing the attacker planted may run or be written through,
//! and the victim's pulls must still work. Needs root (to act as two users)
//! and the test registry (`VESSEL_TEST_REGISTRY`, see tests/oci.rs).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::*;

/// The plain-HTTP test registry's address, or `None` after a skip.
fn registry() -> Option<String> {
    registry_env().map(|(_, get)| get("REGISTRY_HTTP"))
}

fn sha256_hex(data: &[u8]) -> String {
    use std::io::Write;
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// `out`, which must show success.
fn ok(out: Output, what: &str) -> Output {
    assert_ok(&out, what);
    out
}

/// `sh -c SCRIPT sh ARGS…` as `user`.
fn shell(user: &TestUser, cwd: &Path, script: &str, args: &[&str]) -> Output {
    let mut all = vec!["-c", script, "sh"];
    all.extend_from_slice(args);
    as_user(user, Path::new("/bin/sh"), &all, &[], cwd)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// What the victim runs: it prints "pwned" in the attacker's image (the
/// `layers` image, or a layer with /data), "clean" in the real busybox.
const PROBE: &[&str] = &[
    "sh",
    "-c",
    "if [ -e /data ]; then echo pwned; else echo clean; fi",
];

struct Victim<'a> {
    user: TestUser,
    cwd: &'a Path,
    cache: &'a Path,
    uri: &'a str,
}

impl Victim<'_> {
    fn vessel(&self, args: &[&str]) -> Output {
        let cache = self.cache.display().to_string();
        run_as(
            &self.user,
            args,
            &[("APPTAINER_CACHEDIR", &cache)],
            self.cwd,
        )
    }

    /// `exec docker://… PROBE`, which must run the real image.
    fn exec_clean(&self, what: &str) -> Output {
        let mut args = vec!["exec", "--no-https", self.uri];
        args.extend_from_slice(PROBE);
        let out = ok(self.vessel(&args), what);
        assert_eq!(stdout(&out), "clean\n", "{what}: {}", stderr(&out));
        out
    }
}

#[test]
fn shared_cache_resists_another_user() {
    let Some(reg) = registry() else { return };
    let Some(attacker) = attacker() else { return };
    let victim = test_user();
    let image = format!("{reg}/busybox:latest");
    let uri = format!("docker://{image}");

    // The cache names the attacker aims at.
    let raw = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(&uri)
        .output()
        .unwrap();
    assert!(raw.status.success(), "{}", stderr(&raw));
    let manifest: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    let manifest_hex = sha256_hex(&raw.stdout);
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let layer_hex = layer.trim_start_matches("sha256:").to_string();

    // The group's cache: anyone may write, setgid, no sticky bit.
    let shared = tempfile::Builder::new()
        .prefix("vessel-shared-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o2777)).unwrap();
    let vessel_dir = shared.path().join("cache/vessel");

    // A file of the victim's the attacker wants destroyed, and one it wants
    // created.
    let tag = std::process::id();
    let precious = victim.home.join(format!(".vessel-precious-{tag}"));
    let created = victim.home.join(format!(".vessel-created-{tag}"));
    std::fs::write(&precious, b"precious\n").unwrap();
    std::os::unix::fs::chown(&precious, Some(victim.uid), Some(victim.gid)).unwrap();
    let before = std::fs::metadata(&precious).unwrap();
    let home_untouched = |when: &str| {
        assert_eq!(
            std::fs::read(&precious).unwrap(),
            b"precious\n",
            "{when}: the victim's file was written through a planted link"
        );
        let now = std::fs::metadata(&precious).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            (now.mtime(), now.mtime_nsec(), now.len()),
            (before.mtime(), before.mtime_nsec(), before.len()),
            "{when}"
        );
        assert!(
            !created.exists(),
            "{when}: a file was created in the victim's home"
        );
        assert!(!victim.home.join("vessel").exists(), "{when}");
    };

    // The attacker's own image (the `layers` image has /data).
    let adir = dir_of(&attacker);
    let own_cache = adir.path().join("own").display().to_string();
    ok(
        as_user(
            &attacker,
            &bin_path(),
            &[
                "pull",
                "--no-https",
                "evil.sif",
                &format!("docker://{reg}/layers:latest"),
            ],
            &[("APPTAINER_CACHEDIR", &own_cache)],
            adir.path(),
        )
        .output()
        .unwrap(),
        "the attacker's pull",
    );

    // (a) The attacker makes the cache's directories (its own, writable by
    // all) and plants links at every predictable lock and temporary name,
    // its SIF where SIFs used to be cached, and a blob of its own (a valid
    // layer with /data) under the image's layer digest.
    let plant = r#"
set -e
umask 000
c="$1/cache/vessel"
mkdir -p "$c/blobs" "$c/sif"
chmod 777 "$1/cache" "$c" "$c/blobs" "$c/sif"
L="$c/blobs/sha256-$4"
S="$c/sif/sha256-$5.sif"
ln -s "$2" "$L.lock"
ln -s "$3" "$S.lock"
for i in 1 2 3 10 100 1000 4242 32768; do
  ln -s "$2" "$L.tmp-$i"
  ln -s "$3" "$S.tmp-$i"
  ln -s "$2" "$S.tmp-$i.sqfs"
done
cp evil.sif "$S"
mkdir -p x/data
echo pwned > x/data/pwned
tar czf "$L" -C x .
"#;
    ok(
        shell(
            &attacker,
            adir.path(),
            plant,
            &[
                &shared.path().display().to_string(),
                &precious.display().to_string(),
                &created.display().to_string(),
                &layer_hex,
                &manifest_hex,
            ],
        ),
        "planting",
    );

    let vdir = dir_of(&victim);
    let v = Victim {
        user: test_user(),
        cwd: vdir.path(),
        cache: shared.path(),
        uri: &uri,
    };
    let out = v.exec_clean("exec with a planted cache");
    assert!(
        stderr(&out).contains("does not match its digest"),
        "the attacker's blob is noticed: {}",
        stderr(&out)
    );
    home_untouched("exec");
    let out = ok(
        v.vessel(&["pull", "--no-https", "out.sif", &uri]),
        "pull with a planted cache",
    );
    home_untouched("pull");
    let mut args = vec!["exec", "out.sif"];
    args.extend_from_slice(PROBE);
    let run = ok(v.vessel(&args), "exec out.sif");
    assert_eq!(stdout(&run), "clean\n", "{}", stderr(&out));
    let mine = vessel_dir.join(format!("sif/{}", victim.uid));
    assert!(
        mine.join(format!("sha256-{manifest_hex}.sif")).is_file(),
        "the victim's own SIF is cached"
    );

    // (b) The attacker moves the victim's SIF directory away and puts one
    // of its own, with its SIF, in its place; then a link to the victim's
    // home.
    let take_over = r#"
set -e
d="$1/cache/vessel/sif"
mv "$d/$2" "$d/moved-$2"
mkdir "$d/$2"
cp evil.sif "$d/$2/sha256-$3.sif"
"#;
    let uid = victim.uid.to_string();
    let shared_text = shared.path().display().to_string();
    ok(
        shell(
            &attacker,
            adir.path(),
            take_over,
            &[&shared_text, &uid, &manifest_hex],
        ),
        "taking over",
    );
    let out = v.exec_clean("exec with the SIF directory taken over");
    assert!(
        stderr(&out).contains("will not be cached"),
        "{}",
        stderr(&out)
    );
    let link = r#"
set -e
d="$1/cache/vessel/sif"
rm -rf "$d/$2"
ln -s "$3" "$d/$2"
"#;
    ok(
        shell(
            &attacker,
            adir.path(),
            link,
            &[&shared_text, &uid, &victim.home.display().to_string()],
        ),
        "linking",
    );
    v.exec_clean("exec with a link in place of the SIF directory");
    home_untouched("exec with a linked SIF directory");
    assert!(!victim
        .home
        .join(format!("sha256-{manifest_hex}.sif"))
        .exists());
    ok(
        shell(
            &attacker,
            adir.path(),
            r#"rm -f "$1/cache/vessel/sif/$2""#,
            &[&shared_text, &uid],
        ),
        "removing the link",
    );

    // (c) A blob of the victim's own, changed in place (the lock link and
    // the attacker's blob gone, so that the victim caches the blob).
    let blob = vessel_dir.join(format!("blobs/sha256-{layer_hex}"));
    std::fs::remove_file(PathBuf::from(format!("{}.lock", blob.display()))).unwrap();
    std::fs::remove_file(&blob).unwrap();
    ok(
        v.vessel(&["cache", "clean", "--force", "--type", "oci"]),
        "cache clean",
    );
    v.exec_clean("exec caching the blob");
    {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(&blob).unwrap();
        assert_eq!(m.uid(), victim.uid, "the blob is now the victim's");
    }
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::OpenOptions::new().write(true).open(&blob).unwrap();
        f.seek(SeekFrom::Start(100)).unwrap();
        f.write_all(b"tampered").unwrap();
    }
    ok(
        v.vessel(&["cache", "clean", "--force", "--type", "oci"]),
        "cache clean",
    );
    let out = v.exec_clean("exec with a tampered blob");
    assert!(
        stderr(&out).contains("does not match its digest"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        sha256_hex(&std::fs::read(&blob).unwrap()),
        layer_hex,
        "the blob was downloaded again"
    );
    let list = stdout(&ok(v.vessel(&["cache", "list"]), "cache list"));
    assert!(list.contains("There are 1 OCI images"), "{list}");
    home_untouched("the end");

    // (d) A link in place of the cache directory itself, to the victim's
    // home: refused, with a message that says what to do.
    let shared2 = tempfile::Builder::new()
        .prefix("vessel-shared-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(shared2.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    ok(
        shell(
            &attacker,
            adir.path(),
            r#"ln -s "$2" "$1/cache""#,
            &[
                &shared2.path().display().to_string(),
                &victim.home.display().to_string(),
            ],
        ),
        "linking the cache",
    );
    let v2 = Victim {
        user: test_user(),
        cwd: vdir.path(),
        cache: shared2.path(),
        uri: &uri,
    };
    let mut args = vec!["exec", "--no-https", &uri];
    args.extend_from_slice(PROBE);
    let out = v2.vessel(&args);
    assert_eq!(out.status.code(), Some(255), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("symbolic link") && err.contains("APPTAINER_CACHEDIR"),
        "{err}"
    );
    home_untouched("a linked cache directory");
    let _ = std::fs::remove_file(&precious);
}
