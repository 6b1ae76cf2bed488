//! `pull docker://…` and `exec docker://…` against real registries (Debian's
//! docker-registry on 127.0.0.1, plain HTTP and HTTPS with a private CA and
//! htpasswd), started by `scripts/test.sh` with `.ci/registry.sh` and filled
//! by `tests/oci/make-images.sh`. Runs as the unprivileged test user.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

struct Registry {
    http: String,
    tls: String,
    user: String,
    password: String,
    ca: String,
    state: PathBuf,
}

fn registry() -> Option<Registry> {
    let (state, get) = registry_env()?;
    Some(Registry {
        http: get("REGISTRY_HTTP"),
        tls: get("REGISTRY_TLS"),
        user: get("REGISTRY_USER"),
        password: get("REGISTRY_PASSWORD"),
        ca: get("REGISTRY_CA"),
        state,
    })
}

/// `unsquashfs -lln` of a SIF's root file system: mode, owner and path per line.
fn listing(sif: &Path) -> String {
    let out = std::process::Command::new("unsquashfs")
        .args(["-lln", "-offset", &primary_offset(sif)])
        .arg(sif)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn entry<'a>(listing: &'a str, path: &str) -> Option<&'a str> {
    listing.lines().find(|l| {
        l.ends_with(&format!("squashfs-root{path}"))
            || l.contains(&format!("squashfs-root{path} -> "))
    })
}

/// The pull flags workflow tools write (Snakemake, cwltool, spython and
/// Nextflow use `--name`).
#[test]
fn pull_name_dir_and_unsigned() {
    let Some(r) = registry() else { return };
    let s = Scratch::new();
    let uri = format!("docker://{}/busybox:latest", r.http);
    std::fs::create_dir(s.path().join("images")).unwrap();
    give_to_test_user(&s.path().join("images"));
    s.ok(
        &[
            "pull",
            "--no-https",
            "--name",
            "named.sif",
            "--dir",
            "images",
            &uri,
        ],
        &[],
    );
    assert!(s.path().join("images/named.sif").is_file());
    s.ok(
        &[
            "pull",
            "--no-https",
            "-U",
            "--no-cleanup",
            "--name",
            "n2.sif",
            &uri,
        ],
        &[],
    );
    assert!(s.path().join("n2.sif").is_file());
    let out = s.run(
        &["pull", "--no-https", "--name", "x.sif", "y.sif", &uri],
        &[],
    );
    assert_failed(&out, &["either as OUTPUT or with --name"]);
    // --sandbox: a directory, as `build --sandbox DIR SOURCE` makes.
    s.ok(
        &["pull", "--no-https", "--sandbox", "--name", "sb", &uri],
        &[],
    );
    assert!(s.path().join("sb/bin/sh").exists());
    let out = s.run(
        &["pull", "--no-https", "--sandbox", "--name", "sb", &uri],
        &[],
    );
    assert_failed(&out, &["already exists", "--force"]);
    s.ok(
        &[
            "pull",
            "--no-https",
            "--sandbox",
            "--force",
            "--name",
            "sb",
            &uri,
        ],
        &[],
    );
    assert!(s.path().join("sb/bin/sh").exists());
    // The variable forms: APPTAINER_PULL_NAME, APPTAINER_PULLDIR.
    s.ok(
        &["pull", "--no-https", &uri],
        &[
            ("APPTAINER_PULL_NAME", "env.sif"),
            ("APPTAINER_PULLDIR", "images"),
        ],
    );
    assert!(s.path().join("images/env.sif").is_file());
}

#[test]
fn pull_inspect_and_run() {
    let Some(r) = registry() else { return };
    let s = Scratch::new();
    let uri = format!("docker://{}/busybox:latest", r.http);
    let err = stderr(&s.run(&["pull", "--no-https", &uri], &[]));
    assert!(err.contains("Pulled"), "{err}");
    let sif = s.path().join("busybox_latest.sif");
    assert!(sif.exists());
    // Refuses to overwrite without --force.
    let out = s.run(&["pull", "--no-https", &uri], &[]);
    assert_failed(&out, &["already exists", "--force"]);
    let img = sif.to_str().unwrap();
    // The image's Env and CMD, as Docker would run them.
    assert_eq!(
        s.ok(&["exec", img, "sh", "-c", "echo $FOO; echo $SPACED"], &[]),
        "bar\nhello world\n"
    );
    // CMD is ["sh"]: arguments replace it, as with `docker run`.
    assert_eq!(
        s.ok(&["run", img, "echo", "from-runscript"], &[]).trim(),
        "from-runscript"
    );
    let labels = s.ok(&["inspect", img], &[]);
    assert!(
        labels.contains(&format!(
            "org.opencontainers.image.base.name: {}/busybox:latest",
            r.http
        )),
        "{labels}"
    );
    assert!(labels.contains("org.vessel.ci.image: busybox"), "{labels}");
    let all = s.ok(&["inspect", "--all", img], &[]);
    assert!(
        all.contains("10-docker2singularity.sh")
            && all.contains("\"deffile\": \"bootstrap: docker"),
        "{all}"
    );
    let list = s.ok(&["sif", "list", img], &[]);
    for want in ["Def.FILE", "JSON.Generic", "FS (Squashfs/*System/amd64)"] {
        assert!(list.contains(want), "{want} missing:\n{list}");
    }
    // build IMAGE docker://… is the same conversion.
    s.ok(&["build", "--no-https", "built.sif", &uri], &[]);
    assert_eq!(
        s.ok(&["exec", "built.sif", "echo", "built"], &[]),
        "built\n"
    );
    // exec docker://… pulls into the cache once, then reuses it.
    let out = s.run(
        &[
            "exec",
            "--no-https",
            &uri,
            "cat",
            "/etc/hostname-missing-ok",
        ],
        &[],
    );
    assert!(
        !stderr(&out).contains("Downloading"),
        "the layer is already cached: {}",
        stderr(&out)
    );
    let out = s.run(&["exec", "--no-https", &uri, "echo", "cached"], &[]);
    assert_eq!(stdout(&out), "cached\n");
    assert!(!stderr(&out).contains("Converting"));
}

/// Layers with whiteouts, opaque directories, links, xattrs and files owned
/// by root and by uid 1000 (the tree is described in make-images.sh).
#[test]
fn layers_merge_with_real_ownership() {
    let Some(r) = registry() else { return };
    let s = Scratch::new();
    s.ok(
        &[
            "pull",
            "--no-https",
            "out.sif",
            &format!("docker://{}/layers:latest", r.http),
        ],
        &[],
    );
    let sif = s.path().join("out.sif");
    let l = listing(&sif);
    for (path, want) in [
        ("/data/userdir", "drwxr-x--- 1000/1000"),
        ("/data/userdir/user-file.txt", "-rw-r----- 1000/1000"),
        ("/data/root-only.txt", "-rw------- 0/0"),
        ("/data/replaced.txt", "-rw-r----- 0/0"),
        ("/data/sticky", "drwxrwxrwt 0/0"),
        ("/data/exec.sh", "-rwxr-xr-x 0/0"),
        ("/data/symlink", "lrwxrwxrwx"),
    ] {
        let line = entry(&l, path).unwrap_or_else(|| panic!("{path} missing:\n{l}"));
        assert!(line.starts_with(want), "{path}: {line}");
    }
    for gone in [
        "/data/deleted.txt",
        "/data/deleted-dir",
        "/data/opaque/lower.txt",
        "/data/opaque/lower-sub",
    ] {
        assert!(entry(&l, gone).is_none(), "{gone} should be gone:\n{l}");
    }
    assert!(!l.contains(".wh."), "whiteout files leaked into the image");
    let img = sif.to_str().unwrap();
    let out = s.ok(
        // As fake root: /data/replaced.txt is root's and not world-readable,
        // and the FUSE driver keeps it so for the user.
        &["exec", "--fakeroot", img, "sh", "-c", "cat /data/replaced.txt /data/kept.txt /data/opaque/upper.txt /data/type-change/inner.txt; stat -c %h /data/hardlink.txt; readlink /data/symlink; /data/exec.sh"],
        &[],
    );
    assert_eq!(
        out,
        "v2\nkept from layer 1\nupper\nnow a directory\n2\nkept.txt\nexec-ok\n"
    );
    // The xattr survives into the SquashFS.
    let x = tempfile::tempdir().unwrap();
    unsquash(&sif, &x.path().join("r"), &["/data/xattr.txt"]);
    let py = std::process::Command::new("python3")
        .args([
            "-c",
            "import os,sys; print(os.getxattr(sys.argv[1], 'user.vessel').decode())",
        ])
        .arg(x.path().join("r/data/xattr.txt"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&py.stdout).trim(), "hello");
}

#[test]
fn multi_arch_index() {
    let Some(r) = registry() else { return };
    let s = Scratch::new();
    let uri = format!("docker://{}/multiarch:latest", r.http);
    s.ok(&["pull", "--no-https", "amd.sif", &uri], &[]);
    assert_eq!(
        s.ok(&["exec", "amd.sif", "cat", "/arch.txt"], &[]).trim(),
        "amd64"
    );
    s.ok(
        &["pull", "--no-https", "--arch", "arm64", "arm.sif", &uri],
        &[],
    );
    assert!(s
        .ok(&["sif", "list", "arm.sif"], &[])
        .contains("FS (Squashfs/*System/arm64)"));
    let out = s.run(
        &["pull", "--no-https", "--arch", "s390x", "x.sif", &uri],
        &[],
    );
    assert_failed(&out, &["s390x", "linux/amd64", "linux/arm64"]);
}

#[test]
fn tls_registry_with_authentication() {
    let Some(r) = registry() else { return };
    let s = Scratch::new();
    let uri = format!("docker://{}/private/busybox:latest", r.tls);
    let ca = [("SSL_CERT_FILE", r.ca.as_str())];
    // An untrusted certificate, then no credentials, then wrong ones.
    assert_failed(
        &s.run(&["pull", "a.sif", &uri], &[]),
        &["certificate", "SSL_CERT_FILE"],
    );
    assert_failed(
        &s.run(&["pull", "a.sif", &uri], &ca),
        &["refused access", "registry login"],
    );
    let wrong = [
        ca[0],
        ("APPTAINER_DOCKER_USERNAME", r.user.as_str()),
        ("APPTAINER_DOCKER_PASSWORD", "wrong"),
    ];
    assert_failed(
        &s.run(&["pull", "a.sif", &uri], &wrong),
        &["refused access"],
    );
    let right = [
        ca[0],
        ("APPTAINER_DOCKER_USERNAME", r.user.as_str()),
        ("APPTAINER_DOCKER_PASSWORD", r.password.as_str()),
    ];
    s.ok(&["pull", "a.sif", &uri], &right);
    // registry login stores the credentials for later pulls; logout removes them.
    let authfile = s.path().join("auth.json");
    let a = authfile.to_str().unwrap();
    let mut login = user_vessel(
        &[
            "registry",
            "login",
            "--authfile",
            a,
            "-u",
            &r.user,
            "--password-stdin",
            &format!("docker://{}", r.tls),
        ],
        &[],
        s.path(),
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    use std::io::Write;
    login
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{}\n", r.password).as_bytes())
        .unwrap();
    assert!(login.wait_with_output().unwrap().status.success());
    assert!(s
        .ok(&["registry", "list", "--authfile", a], &[])
        .contains(&r.tls));
    s.ok(&["pull", "--authfile", a, "b.sif", &uri], &ca);
    s.ok(&["registry", "logout", "--authfile", a, &r.tls], &[]);
    assert_failed(
        &s.run(
            &["pull", "--disable-cache", "--authfile", a, "c.sif", &uri],
            &ca,
        ),
        &["refused access"],
    );
}

#[test]
fn clear_errors() {
    let Some(r) = registry() else { return };
    let s = Scratch::new();
    assert_failed(
        &s.run(
            &[
                "pull",
                "--no-https",
                "x.sif",
                &format!("docker://{}/busybox:no-such-tag", r.http),
            ],
            &[],
        ),
        &["not found"],
    );
    assert_failed(
        &s.run(
            &[
                "pull",
                "--no-https",
                "x.sif",
                "docker://127.0.0.1:1/busybox:latest",
            ],
            &[],
        ),
        &["cannot reach", "127.0.0.1:1"],
    );
    assert_failed(
        &s.run(&["pull", "x.sif", "library://alpine:latest"], &[]),
        &["not implemented yet"],
    );
    assert_failed(
        &s.run(&["pull", "x.sif", "oci-archive:/nonexistent/x.tar"], &[]),
        &["/nonexistent/x.tar", "No such file"],
    );
    assert!(!s.path().join("x.sif").exists(), "no partial image is left");
}

/// Every hostile layer is refused (or, for a device node, left out), and
/// nothing lands outside.
#[test]
fn hostile_layers() {
    let Some(r) = registry() else { return };
    let s = Scratch::new();
    for (case, needle) in [
        ("dotdot", "'..'"),
        ("absolute", "absolute path"),
        ("symlink-escape", "writes through the symlink"),
        ("symlink-relative", "writes through the symlink"),
        ("hardlink-escape", "hard link"),
        ("hardlink-absolute", "hard link"),
    ] {
        let out = s.run(
            &[
                "pull",
                "--no-https",
                "h.sif",
                &format!("docker://{}/hostile/{case}:latest", r.http),
            ],
            &[],
        );
        assert_failed(&out, &["unsafe", needle]);
        assert!(!s.path().join("h.sif").exists());
    }
    assert!(!Path::new("/tmp/vessel-hostile-target").exists());
    assert!(!s.path().join("escape.txt").exists());
    let out = s.run(
        &[
            "pull",
            "--no-https",
            "dev.sif",
            &format!("docker://{}/hostile/chardev:latest", r.http),
        ],
        &[],
    );
    assert!(out.status.success());
    assert!(
        stderr(&out).contains("Skipped 1 device node"),
        "{}",
        stderr(&out)
    );
    digest_mismatch(&r);
}

/// A registry serving a blob that does not match its digest: the pull
/// fails, says so, and leaves nothing. (Called from `hostile_layers`, which
/// owns the image it corrupts for a moment.)
fn digest_mismatch(r: &Registry) {
    skip_unless!(
        running_as_root(),
        "the digest check (part of the test): corrupting the registry's storage needs root"
    );
    let raw = std::process::Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{}/hostile/chardev:latest", r.http))
        .output()
        .unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    let digest = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let hex = digest.trim_start_matches("sha256:");
    let blob = r
        .state
        .join("http/data/docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data");
    let original = std::fs::read(&blob).unwrap();
    let mut corrupt = original.clone();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    std::fs::write(&blob, &corrupt).unwrap();
    let fresh = Scratch::new();
    let uri = format!("docker://{}/hostile/chardev:latest", r.http);
    let out = fresh.run(&["pull", "--no-https", "bad.sif", &uri], &[]);
    std::fs::write(&blob, &original).unwrap();
    assert_failed(&out, &["does not match its digest", &digest]);
    assert!(!fresh.path().join("bad.sif").exists());
}

/// 20 pulls of one image at once: one download, one conversion, 20 images.
#[test]
fn concurrent_pulls_share_one_download() {
    let Some(r) = registry() else { return };
    let s = Scratch::new();
    let uri = format!("docker://{}/layers:latest", r.http);
    let cache = s.cache();
    let children: Vec<_> = (0..20)
        .map(|i| {
            user_vessel(
                &["pull", "--no-https", &format!("out{i}.sif"), &uri],
                &[("APPTAINER_CACHEDIR", &cache)],
                s.path(),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    let (mut downloads, mut conversions) = (0, 0);
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        downloads += stderr(&out).matches("Downloading").count();
        conversions += stderr(&out).matches("Converting").count();
    }
    assert_eq!((downloads, conversions), (1, 1));
    for i in 0..20 {
        assert!(s.path().join(format!("out{i}.sif")).exists());
    }
}

/// A pull killed with SIGKILL leaves no corrupt entry: the next one works.
#[test]
fn killed_pull_recovers() {
    let Some(r) = registry() else { return };
    let s = Scratch::new();
    let uri = format!("docker://{}/debian:bookworm", r.http);
    let cache = s.cache();
    let mut child = user_vessel(
        &["pull", "--no-https", "d.sif", &uri],
        &[("APPTAINER_CACHEDIR", &cache)],
        s.path(),
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    // Kill it in the middle: once it is converting (or after a while).
    let deadline = Instant::now() + Duration::from_secs(60);
    let stderr_pipe = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr_pipe).lines() {
            if line.unwrap_or_default().contains("Converting") {
                return true;
            }
        }
        false
    });
    while !reader.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    std::process::Command::new("kill")
        .args(["-9", &child.id().to_string()])
        .status()
        .unwrap();
    let _ = child.wait();
    assert!(!s.path().join("d.sif").exists());
    // The next pull succeeds and cleans up what the killed one left.
    s.ok(&["pull", "--no-https", "d.sif", &uri], &[]);
    let leftovers: Vec<_> = walk(&PathBuf::from(&cache))
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    assert_eq!(
        s.ok(
            &[
                "exec",
                "d.sif",
                "python3",
                "-c",
                "import json, sqlite3; print('debian ok')"
            ],
            &[]
        )
        .trim(),
        "debian ok"
    );
    let l = listing(&s.path().join("d.sif"));
    let shadow = entry(&l, "/etc/shadow").expect("/etc/shadow");
    assert!(
        shadow.starts_with("-rw-r----- 0/42"),
        "real ownership kept: {shadow}"
    );
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn cache_list_and_clean() {
    let Some(r) = registry() else { return };
    let s = Scratch::new();
    s.ok(
        &[
            "pull",
            "--no-https",
            "b.sif",
            &format!("docker://{}/busybox:latest", r.http),
        ],
        &[],
    );
    let list = s.ok(&["cache", "list"], &[]);
    assert!(
        list.contains("There are 1 OCI images converted to SIF"),
        "{list}"
    );
    assert!(list.contains("There are 1 blobs"), "{list}");
    let dry = s.ok(&["cache", "clean", "--dry-run"], &[]);
    assert_eq!(dry.matches("would remove").count(), 2, "{dry}");
    s.ok(&["cache", "clean", "--force", "--days", "1"], &[]);
    assert!(s.ok(&["cache", "list"], &[]).contains("There are 1 blobs"));
    s.ok(&["cache", "clean", "--force", "--type", "blob"], &[]);
    let after = s.ok(&["cache", "list"], &[]);
    assert!(
        after.contains("There are 0 blobs") && after.contains("There are 1 OCI"),
        "{after}"
    );
    s.ok(&["cache", "clean", "-f"], &[]);
    assert!(s.ok(&["cache", "list"], &[]).contains("There are 0 OCI"));
    // --disable-cache leaves the cache empty.
    s.ok(
        &[
            "pull",
            "--no-https",
            "--disable-cache",
            "c.sif",
            &format!("docker://{}/busybox:latest", r.http),
        ],
        &[],
    );
    assert!(s.ok(&["cache", "list"], &[]).contains("There are 0 OCI"));
}

/// A SIF pushed to `oras://` and pulled back is the same file, and runs.
#[test]
fn oras_push_and_pull() {
    let Some(r) = registry() else { return };
    let s = Scratch::new();
    s.ok(
        &[
            "pull",
            "--no-https",
            "b.sif",
            &format!("docker://{}/busybox:latest", r.http),
        ],
        &[],
    );
    let uri = format!("oras://{}/sifs/busybox:{}", r.http, std::process::id());
    s.ok(&["push", "--no-https", "b.sif", &uri], &[]);
    s.ok(&["pull", "--no-https", "back.sif", &uri], &[]);
    assert_eq!(
        std::fs::read(s.path().join("back.sif")).unwrap(),
        std::fs::read(s.path().join("b.sif")).unwrap()
    );
    assert_eq!(
        s.ok(&["exec", "--no-https", &uri, "echo", "from oras"], &[]),
        "from oras\n"
    );
    // An image that is not a SIF artifact, and one that does not exist.
    let out = s.run(
        &[
            "pull",
            "--no-https",
            "x.sif",
            &format!("oras://{}/busybox:latest", r.http),
        ],
        &[],
    );
    assert_failed(&out, &["not a SIF image", "docker://"]);
    let out = s.run(
        &[
            "pull",
            "--no-https",
            "y.sif",
            &format!("oras://{}/sifs/none:1", r.http),
        ],
        &[],
    );
    assert_failed(&out, &["not found"]);
    // Pushing to the authenticated registry needs the credentials.
    let tls = format!("oras://{}/private/sif:{}", r.tls, std::process::id());
    let ca = ("SSL_CERT_FILE", r.ca.as_str());
    assert_failed(&s.run(&["push", "b.sif", &tls], &[ca]), &["refused access"]);
    let creds = [
        ca,
        ("APPTAINER_DOCKER_USERNAME", r.user.as_str()),
        ("APPTAINER_DOCKER_PASSWORD", r.password.as_str()),
    ];
    s.ok(&["push", "b.sif", &tls], &creds);
    s.ok(&["pull", "tls.sif", &tls], &creds);
}

/// Local image files: an OCI layout, an OCI archive and a `docker save`
/// archive (made with skopeo from the registry's image).
#[test]
fn local_sources() {
    let Some(r) = registry() else { return };
    let s = Scratch::new();
    let src = format!("docker://{}/busybox:latest", r.http);
    let d = s.path();
    for dest in [
        format!("oci:{}:v1", d.join("layout").display()),
        format!("oci-archive:{}:v1", d.join("image.oci.tar").display()),
        format!(
            "docker-archive:{}:busybox:v1",
            d.join("image.docker.tar").display()
        ),
    ] {
        let status = std::process::Command::new("skopeo")
            .args(["copy", "-q", "--src-tls-verify=false", &src, &dest])
            .status()
            .expect("skopeo is needed for this test");
        assert!(status.success(), "skopeo copy to {dest}");
    }
    if running_as_root() {
        let u = test_user();
        chown_tree(d, u.uid, u.gid);
    }
    for (source, out) in [
        (
            format!("oci:{}:v1", d.join("layout").display()),
            "layout.sif",
        ),
        (
            format!("oci-archive:{}:v1", d.join("image.oci.tar").display()),
            "ociarch.sif",
        ),
        (
            format!("docker-archive:{}", d.join("image.docker.tar").display()),
            "dockarch.sif",
        ),
    ] {
        s.ok(&["pull", out, &source], &[]);
        assert_eq!(
            s.ok(&["exec", out, "sh", "-c", "echo $FOO"], &[]),
            "bar\n",
            "{source}"
        );
        let def = s.ok(&["inspect", "--deffile", out], &[]);
        assert!(def.starts_with("bootstrap: "), "{def}");
    }
    let out = s.run(
        &[
            "pull",
            "x.sif",
            &format!("oci:{}:nope", d.join("layout").display()),
        ],
        &[],
    );
    assert_failed(&out, &["no image \"nope\"", "v1"]);
    assert_eq!(
        s.ok(
            &[
                "exec",
                &format!("oci:{}:v1", d.join("layout").display()),
                "echo",
                "direct"
            ],
            &[]
        ),
        "direct\n"
    );
}
