//! Image sources fetched for a run: `http(s)://` URLs (served here by
//! Python's `http.server`) downloaded into the pull cache, checked and
//! taken from it the second time; `oras://` SIFs cached by manifest digest
//! (with the test registry).

mod common;
use common::*;

use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// `python3 -m http.server` serving a directory on 127.0.0.1, killed when
/// dropped.
struct Server {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    /// Its standard output, kept open while it runs.
    _out: std::io::BufReader<std::process::ChildStdout>,
}

impl Server {
    /// Serves a new directory holding `busybox.sif` and `notes.txt`, or
    /// `None` (after a skip) without Python.
    #[track_caller]
    fn start() -> Option<Server> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(busybox(), dir.path().join("busybox.sif")).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not an image\n").unwrap();
        // Port 0: the server binds a port of the kernel's choice and says
        // which. A port picked here and bound later could be taken in
        // between by another test's server, which then answers in its
        // place and goes away with that test.
        let mut child = match Command::new("python3")
            .args(["-u", "-m", "http.server", "--bind", "127.0.0.1", "0"])
            .arg("--directory")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                skip(format!("python3 (for its http.server) cannot run: {e}"));
                return None;
            }
        };
        // "Serving HTTP on 127.0.0.1 port 45678 (http://…) ...", once it
        // listens.
        let mut line = String::new();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        std::io::BufRead::read_line(&mut out, &mut line).unwrap();
        let port = line
            .split_whitespace()
            .skip_while(|w| *w != "port")
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("http.server said {line:?}"));
        let server = Server {
            child,
            port,
            dir,
            _out: out,
        };
        Some(server)
    }

    fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on (bound by the kernel's choice, then freed).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The test user's cached images: `sif/<uid>/` of the pull cache.
fn cached_images(s: &Scratch) -> Vec<PathBuf> {
    let dir = s
        .path()
        .join("cachedir/cache/vessel/sif")
        .join(test_user().uid.to_string());
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    out.retain(|p| p.extension().is_some_and(|e| e == "sif"));
    out
}

/// Runs `exec IMAGE echo` twice: the first run leaves the image (the
/// busybox fixture) in the user's cache, the second takes that very entry
/// (a download would have put a new file in place).
fn exec_twice(s: &Scratch, exec: &[&str]) {
    let mut entries = Vec::new();
    for word in ["hi", "again"] {
        let out = s.run(&[exec, &["echo", word]].concat(), &[]);
        assert_eq!(
            assert_ok(&out, format_args!("{exec:?}")),
            format!("{word}\n")
        );
        let cached = cached_images(s);
        assert_eq!(cached.len(), 1, "{cached:?}");
        let inode = std::fs::metadata(&cached[0]).unwrap().ino();
        entries.push((cached[0].clone(), inode));
    }
    assert_eq!(entries[0], entries[1], "the second run replaced the entry");
    assert_eq!(
        std::fs::read(&entries[0].0).unwrap(),
        std::fs::read(busybox()).unwrap()
    );
}

#[test]
fn http_images_run_from_the_cache() {
    let Some(server) = Server::start() else {
        return;
    };
    let s = Scratch::new();
    let url = server.url("busybox.sif");
    exec_twice(&s, &["exec", &url]);
    // A changed file (new Last-Modified and length) is downloaded again.
    let served = server.dir.path().join("busybox.sif");
    let mut bytes = std::fs::read(&served).unwrap();
    bytes.extend_from_slice(&[0; 4096]);
    std::fs::write(&served, &bytes).unwrap();
    let later = std::time::SystemTime::now() + Duration::from_secs(5);
    std::fs::File::options()
        .write(true)
        .open(&served)
        .unwrap()
        .set_modified(later)
        .unwrap();
    assert_ok(
        &s.run(&["exec", &url, "true"], &[]),
        "exec of the changed file",
    );
    assert_eq!(cached_images(&s).len(), 2);
}

#[test]
fn http_pull_writes_the_file() {
    let Some(server) = Server::start() else {
        return;
    };
    let s = Scratch::new();
    let url = server.url("busybox.sif");
    assert_ok(&s.run(&["pull", "out.sif", &url], &[]), "pull OUTPUT");
    assert_eq!(
        std::fs::read(s.path().join("out.sif")).unwrap(),
        std::fs::read(busybox()).unwrap()
    );
    // The default name is the URL's file name.
    assert_ok(&s.run(&["pull", &url], &[]), "pull");
    assert!(s.path().join("busybox.sif").is_file());
}

#[test]
fn http_errors_name_the_url() {
    let Some(server) = Server::start() else {
        return;
    };
    let s = Scratch::new();
    let missing = server.url("missing.sif");
    assert_fatal(
        &s.run(&["exec", &missing, "true"], &[]),
        &[&missing, "404 Not Found"],
    );
    let nowhere = format!("http://127.0.0.1:{}/busybox.sif", free_port());
    assert_fatal(
        &s.run(&["exec", &nowhere, "true"], &[]),
        &[&nowhere, "cannot download"],
    );
    let notes = server.url("notes.txt");
    assert_failed(
        &s.run(&["exec", &notes, "true"], &[]),
        &[&notes, "not a SIF or SquashFS image"],
    );
    assert!(cached_images(&s).is_empty(), "{:?}", cached_images(&s));
}

#[test]
fn oras_images_run_from_the_cache() {
    let Some((_state, get)) = registry_env() else {
        return;
    };
    let registry = get("REGISTRY_HTTP");
    let s = Scratch::new();
    std::fs::copy(busybox(), s.path().join("b.sif")).unwrap();
    give_to_test_user(&s.path().join("b.sif"));
    let uri = format!("oras://{registry}/sifs/sources:{}", std::process::id());
    assert_ok(&s.run(&["push", "--no-https", "b.sif", &uri], &[]), "push");
    exec_twice(&s, &["exec", "--no-https", &uri]);
}
