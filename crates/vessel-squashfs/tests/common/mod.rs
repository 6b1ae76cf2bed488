//! Shared helpers: a corpus builder, a tree walker over `Archive`, a
//! parser for `unsquashfs -lln` output, and, shared with the end-to-end
//! tests, the fixture corpus and visible skips (`tests/common/`).
#![allow(dead_code)]

#[path = "../../../../tests/common/fixtures.rs"]
pub mod fixtures;
#[path = "../../../../tests/common/skip.rs"]
mod skip;

pub use skip::*;

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use vessel_squashfs::{Archive, Inode, InodeRef, Kind};

pub const JUNK: u64 = 12345;

/// Deterministic xorshift PRNG so the corpus is the same on every run.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| (self.next() >> 24) as u8).collect()
    }
}

pub fn have(cmd: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {cmd}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.trim_ascii() == b"0")
        .unwrap_or(false)
}

pub fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Sets an xattr with setfattr, else python3. Returns false if neither works.
pub fn set_xattr(path: &Path, name: &str, value: &str) -> bool {
    if have("setfattr") {
        return Command::new("setfattr")
            .args(["-n", name, "-v", value])
            .arg(path)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
    }
    if have("python3") {
        return Command::new("python3")
            .arg("-c")
            .arg("import os,sys; os.setxattr(sys.argv[1], sys.argv[2], sys.argv[3].encode())")
            .arg(path)
            .arg(name)
            .arg(value)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
    }
    false
}

/// All xattrs of all files under `root` (not following symlinks), keyed by
/// path relative to root, via python3. None if python3 is missing.
/// Name/value pairs of one file.
pub type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;

pub fn tree_xattrs(root: &Path) -> Option<BTreeMap<String, Xattrs>> {
    if !have("python3") {
        return None;
    }
    let script = r#"
import os, sys
root = sys.argv[1]
paths = [root]
for d, dirs, files in os.walk(root):
    paths += [os.path.join(d, n) for n in dirs + files]
for p in paths:
    if True:
        try:
            names = os.listxattr(p, follow_symlinks=False)
        except OSError:
            continue
        for x in names:
            v = os.getxattr(p, x, follow_symlinks=False)
            print(os.path.relpath(p, root), x, v.hex() or '-')
"#;
    let out = run(Command::new("python3").arg("-c").arg(script).arg(root));
    let mut m: BTreeMap<String, Xattrs> = BTreeMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let mut it = line.split(' ');
        let (p, n, v) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
        let v = if v == "-" { Vec::new() } else { hex(v) };
        m.entry(p.to_string())
            .or_default()
            .push((n.as_bytes().to_vec(), v));
    }
    for v in m.values_mut() {
        v.sort();
    }
    Some(m)
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

pub struct Corpus {
    pub root: PathBuf,
    pub xattrs: bool,
}

fn write(path: &Path, data: &[u8]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    File::create(path).unwrap().write_all(data).unwrap();
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Builds the test tree under `dir/src`.
pub fn build_corpus(dir: &Path) -> Corpus {
    let root = dir.join("src");
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for i in 0..40 {
        let n = (rng.next() % 6000) as usize;
        write(&root.join(format!("small/f{i:02}")), &rng.bytes(n));
    }
    // Bigger than several blocks, size not a multiple of any block size.
    write(
        &root.join("big/random.bin"),
        &rng.bytes(3 * 1024 * 1024 + 777),
    );
    let text: Vec<u8> = b"squashfs compresses this line well. "
        .iter()
        .cycle()
        .take(2 * 1024 * 1024 + 13)
        .copied()
        .collect();
    write(&root.join("big/text.txt"), &text);
    write(&root.join("empty1"), b"");
    write(&root.join("dir/empty2"), b"");
    for i in 0..10_000 {
        write(
            &root.join(format!("many/entry_{i:05}")),
            format!("{i}\n").as_bytes(),
        );
    }
    write(&root.join("a/b/c/d/e/f/deep.txt"), b"deep\n");
    fs::create_dir_all(root.join("links")).unwrap();
    std::os::unix::fs::symlink("../small/f01", root.join("links/rel")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", root.join("links/abs")).unwrap();
    let long: String = (0..100).map(|i| format!("seg{i:03}/")).collect::<String>() + "end";
    std::os::unix::fs::symlink(&long, root.join("links/long")).unwrap();
    std::os::unix::fs::symlink("nowhere", root.join("links/dangling")).unwrap();
    write(&root.join("hard/one"), b"hard link content\n");
    fs::create_dir_all(root.join("hard/sub")).unwrap();
    fs::hard_link(root.join("hard/one"), root.join("hard/two")).unwrap();
    fs::hard_link(root.join("hard/one"), root.join("hard/sub/three")).unwrap();
    // Sparse: 10 MiB of holes with a few bytes in the middle and at the end.
    {
        use std::os::unix::fs::FileExt;
        let f = File::create(root.join("sparse.bin")).unwrap();
        f.set_len(10 * 1024 * 1024 + 5).unwrap();
        f.write_all_at(b"hello in the middle", 5 * 1024 * 1024 + 100)
            .unwrap();
        f.write_all_at(b"end", 10 * 1024 * 1024 + 2).unwrap();
    }
    run(Command::new("mkfifo").arg(root.join("fifo")));
    for (name, mode) in [
        ("setuid", 0o4755),
        ("setgid", 0o2711),
        ("none", 0o000),
        ("private", 0o600),
    ] {
        write(&root.join(format!("modes/{name}")), name.as_bytes());
        chmod(&root.join(format!("modes/{name}")), mode);
    }
    fs::create_dir_all(root.join("modes/sticky")).unwrap();
    chmod(&root.join("modes/sticky"), 0o1777);
    let long_name = "n".repeat(200) + &"L".repeat(55);
    write(&root.join("long").join(&long_name), b"long name\n");
    if is_root() {
        std::os::unix::fs::chown(root.join("small/f03"), Some(1234), Some(5678)).unwrap();
        std::os::unix::fs::lchown(root.join("links/rel"), Some(42), Some(43)).unwrap();
        run(Command::new("mknod")
            .arg(root.join("chardev"))
            .args(["c", "1", "3"]));
        run(Command::new("mknod")
            .arg(root.join("blockdev"))
            .args(["b", "8", "17"])); // unsquashfs 4.5 misprints minors > 255
    }
    let mut xattrs = set_xattr(&root.join("small/f00"), "user.x", "value");
    if xattrs {
        xattrs &= set_xattr(&root.join("small/f00"), "user.second", "another value");
        xattrs &= set_xattr(&root.join("dir"), "user.dirattr", "d");
        // The same value on several files: mksquashfs stores it out of line.
        for i in 1..6 {
            xattrs &= set_xattr(
                &root.join(format!("small/f{i:02}")),
                "user.shared",
                &"s".repeat(300),
            );
        }
        if is_root() {
            xattrs &= set_xattr(&root.join("small/f00"), "trusted.t", "tv");
            xattrs &= set_xattr(&root.join("small/f00"), "security.s", "sv");
        }
    } else {
        skip("the xattr checks: no user xattrs here (neither setfattr nor python3 can set one)");
    }
    Corpus { root, xattrs }
}

/// Puts `img` at offset JUNK inside a bigger file, like a SIF partition.
pub fn wrap(img: &Path, out: &Path) -> u64 {
    let data = fs::read(img).unwrap();
    let mut rng = Rng(99);
    let mut f = File::create(out).unwrap();
    f.write_all(&rng.bytes(JUNK as usize)).unwrap();
    f.write_all(&data).unwrap();
    f.write_all(&rng.bytes(4321)).unwrap();
    data.len() as u64
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Listed {
    pub mode: String,
    pub owner: String,
    pub size: String,
    pub time: String,
    pub target: Option<String>,
}

pub fn mode_string(ino: &Inode) -> String {
    let t = match ino.kind {
        Kind::Dir => 'd',
        Kind::File => '-',
        Kind::Symlink => 'l',
        Kind::BlockDev => 'b',
        Kind::CharDev => 'c',
        Kind::Fifo => 'p',
        Kind::Socket => 's',
    };
    let m = u32::from(ino.mode);
    let mut s = String::from(t);
    for (shift, special, lower, upper) in [
        (6, 0o4000, 's', 'S'),
        (3, 0o2000, 's', 'S'),
        (0, 0o1000, 't', 'T'),
    ] {
        let bits = (m >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        let x = bits & 1 != 0;
        s.push(match (m & special != 0, x) {
            (true, true) => lower,
            (true, false) => upper,
            (false, true) => 'x',
            (false, false) => '-',
        });
    }
    s
}

/// "YYYY-MM-DD HH:MM" in UTC.
pub fn fmt_time(t: u32) -> String {
    let days = i64::from(t) / 86400;
    let secs = i64::from(t) % 86400;
    // Civil-from-days (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        secs / 3600,
        (secs % 3600) / 60
    )
}

pub struct Walked {
    pub listing: BTreeMap<String, Listed>,
    /// path (relative, "" for root) -> (ref, inode)
    pub inodes: BTreeMap<String, (InodeRef, Inode)>,
}

/// Walks the whole archive depth-first; paths are prefixed "squashfs-root".
pub fn walk(arc: &Archive) -> Walked {
    let mut listing = BTreeMap::new();
    let mut inodes = BTreeMap::new();
    let mut visited = HashSet::new();
    let root = arc.inode(arc.root()).expect("root inode");
    let mut stack = vec![(String::new(), arc.root(), root)];
    while let Some((path, r, ino)) = stack.pop() {
        let full = if path.is_empty() {
            "squashfs-root".to_string()
        } else {
            format!("squashfs-root/{path}")
        };
        let size = match ino.kind {
            Kind::BlockDev | Kind::CharDev => {
                let (ma, mi) = ino.rdev_major_minor();
                format!("{ma}, {mi}")
            }
            _ => ino.size.to_string(),
        };
        let target = (ino.kind == Kind::Symlink)
            .then(|| String::from_utf8(arc.read_link(&ino).unwrap()).unwrap());
        listing.insert(
            full,
            Listed {
                mode: mode_string(&ino),
                owner: format!("{}/{}", ino.uid, ino.gid),
                size,
                time: fmt_time(ino.mtime),
                target,
            },
        );
        if ino.kind == Kind::Dir {
            assert!(visited.insert(r), "directory cycle at {path}");
            for e in arc.read_dir(&ino).unwrap() {
                let child = arc.inode(e.inode).unwrap();
                assert_eq!(child.kind, e.kind, "entry kind of {:?}", e.name);
                assert_eq!(child.number, e.number);
                let name = String::from_utf8(e.name.clone()).unwrap();
                let p = if path.is_empty() {
                    name
                } else {
                    format!("{path}/{name}")
                };
                stack.push((p, e.inode, child));
            }
        }
        inodes.insert(path, (r, ino));
    }
    Walked { listing, inodes }
}

/// Parses `unsquashfs -lln` output (names in the corpus have no spaces).
pub fn parse_listing(out: &str) -> BTreeMap<String, Listed> {
    let mut m = BTreeMap::new();
    for line in out.lines() {
        let t: Vec<&str> = line.split_whitespace().collect();
        if t.len() < 6 || !t[1].contains('/') {
            continue;
        }
        let dev = t[0].starts_with('b') || t[0].starts_with('c');
        let (size, rest) = if dev {
            (format!("{} {}", t[2], t[3]), &t[4..])
        } else {
            (t[2].to_string(), &t[3..])
        };
        let target = (rest.len() > 3 && rest[3] == "->").then(|| rest[4..].join(" "));
        m.insert(
            rest[2].to_string(),
            Listed {
                mode: t[0].to_string(),
                owner: t[1].to_string(),
                size,
                time: format!("{} {}", rest[0], rest[1]),
                target,
            },
        );
    }
    m
}

pub fn unsquashfs_listing(img: &Path, offset: u64) -> Option<BTreeMap<String, Listed>> {
    let out = Command::new("unsquashfs")
        .env("TZ", "UTC")
        .args(["-lln", "-o", &offset.to_string()])
        .arg(img)
        .output()
        .expect("unsquashfs");
    out.status
        .success()
        .then(|| parse_listing(&String::from_utf8_lossy(&out.stdout)))
}

/// Compares two listings, reporting the first few differences.
pub fn assert_same_listing(
    ours: &BTreeMap<String, Listed>,
    theirs: &BTreeMap<String, Listed>,
    what: &str,
) {
    let mut diffs = Vec::new();
    for (k, v) in theirs {
        match ours.get(k) {
            Some(o) if o == v => {}
            o => diffs.push(format!("{k}: unsquashfs {v:?} vs ours {o:?}")),
        }
    }
    for k in ours.keys() {
        if !theirs.contains_key(k) {
            diffs.push(format!("{k}: only in ours"));
        }
    }
    assert!(
        diffs.is_empty(),
        "{what}: {} differences, first: {:#?}",
        diffs.len(),
        &diffs[..diffs.len().min(10)]
    );
}

pub fn read_all(arc: &Archive, ino: &Inode, chunk: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; chunk];
    loop {
        let n = arc.read(ino, out.len() as u64, &mut buf).unwrap();
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    out
}
