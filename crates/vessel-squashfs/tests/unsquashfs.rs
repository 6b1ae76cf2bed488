//! Builds images with mksquashfs for every compressor and option set, opens
//! them at a nonzero offset and compares everything with unsquashfs.

mod common;

use std::fs::{self, File};
use std::path::Path;
use std::process::Command;

use common::*;
use vessel_squashfs::{Archive, Compressor, Kind};

/// Builds `img` from the corpus; None when this mksquashfs lacks the compressor.
fn mksquashfs(src: &Path, img: &Path, comp: &str, extra: &[&str]) -> Option<()> {
    let out = Command::new("mksquashfs")
        .arg(src)
        .arg(img)
        .args([
            "-noappend",
            "-quiet",
            "-no-progress",
            "-processors",
            "2",
            "-comp",
            comp,
        ])
        .args(extra)
        .output()
        .expect("spawn mksquashfs");
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("not supported")
            || err.contains("Unrecognised")
            || err.contains("not available")
        {
            skip(format_args!(
                "the {comp} images: mksquashfs cannot build them: {err}"
            ));
            return None;
        }
        panic!("mksquashfs {comp} {extra:?} failed: {err}");
    }
    Some(())
}

fn check_image(tmp: &Path, corpus: &Corpus, comp: &str, extra: &[&str]) {
    let tag = format!("{comp}{}", extra.join(""));
    let img = tmp.join(format!("{tag}.sqfs"));
    if mksquashfs(&corpus.root, &img, comp, extra).is_none() {
        return;
    }
    let wrapped = tmp.join(format!("{tag}.wrapped"));
    let len = wrap(&img, &wrapped);
    let arc = Archive::open(File::open(&wrapped).unwrap(), JUNK, len).unwrap();
    assert_eq!(arc.superblock().compressor.name(), comp);
    assert!(arc.superblock().bytes_used <= len); // images are padded to 4 KiB

    // 1. Metadata of every entry against `unsquashfs -lln`.
    let walked = walk(&arc);
    let theirs = unsquashfs_listing(&wrapped, JUNK).expect("unsquashfs -lln");
    assert_same_listing(&walked.listing, &theirs, &tag);
    assert_eq!(walked.inodes.len(), theirs.len());

    // 2. Contents against an extraction.
    let ex = tmp.join(format!("{tag}.extract"));
    run(Command::new("unsquashfs")
        .args(["-no-progress", "-d"])
        .arg(&ex)
        .args(["-o", &JUNK.to_string()])
        .arg(&wrapped));
    let mut files = 0;
    for (path, (_, ino)) in &walked.inodes {
        if ino.kind != Kind::File {
            continue;
        }
        files += 1;
        let want = fs::read(ex.join(path)).unwrap();
        // An odd chunk size makes reads straddle block boundaries.
        let chunk = if want.len() > 100_000 { 100_003 } else { 4096 };
        let got = read_all(&arc, ino, chunk);
        assert!(
            got == want,
            "{tag}: content of {path} differs ({} vs {} bytes)",
            got.len(),
            want.len()
        );
        // Past EOF and straddling EOF.
        let mut buf = [0u8; 16];
        assert_eq!(arc.read(ino, ino.size, &mut buf).unwrap(), 0);
        assert_eq!(arc.read(ino, ino.size + 1000, &mut buf).unwrap(), 0);
        if ino.size >= 5 {
            assert_eq!(arc.read(ino, ino.size - 5, &mut buf).unwrap(), 5);
            assert_eq!(&buf[..5], &want[want.len() - 5..]);
        }
    }
    assert!(files > 10_000);

    // 3. Random-offset reads of the big files.
    let mut rng = Rng(7);
    for path in ["big/random.bin", "big/text.txt", "sparse.bin"] {
        let ino = &walked.inodes[path].1;
        let want = fs::read(ex.join(path)).unwrap();
        for _ in 0..200 {
            let off = rng.next() % (want.len() as u64 + 10);
            let len = (rng.next() % 300_000) as usize;
            let mut buf = vec![0xAAu8; len];
            let n = arc.read(ino, off, &mut buf).unwrap();
            let start = (off as usize).min(want.len());
            let end = (start + len).min(want.len());
            assert_eq!(
                n,
                end - start,
                "{tag}: read length at {off}+{len} of {path}"
            );
            assert!(
                buf[..n] == want[start..end],
                "{tag}: read at {off}+{len} of {path}"
            );
        }
    }

    // 4. Hard links share one inode.
    let one = &walked.inodes["hard/one"];
    for other in ["hard/two", "hard/sub/three"] {
        let o = &walked.inodes[other];
        assert_eq!(one.0, o.0, "{tag}: hard link refs");
        assert_eq!(one.1.number, o.1.number);
    }
    assert_eq!(one.1.nlink, 3);

    // 5. lookup() for every entry of the 10k directory, and misses.
    let (_, many) = &walked.inodes["many"];
    let entries = arc.read_dir(many).unwrap();
    assert_eq!(entries.len(), 10_000);
    assert!(entries.windows(2).all(|w| w[0].name < w[1].name));
    for e in &entries {
        let hit = arc.lookup(many, &e.name).unwrap().expect("lookup hit");
        assert_eq!(hit.inode, e.inode);
        assert_eq!(hit.number, e.number);
    }
    for miss in [
        &b"entry_10000"[..],
        b"entry_0000",
        b"a",
        b"zzz",
        b"entry_04999x",
        b"",
    ] {
        assert!(arc.lookup(many, miss).unwrap().is_none(), "{tag}: {miss:?}");
    }
    // Every directory: lookup agrees with read_dir.
    for (path, (_, ino)) in &walked.inodes {
        if ino.kind == Kind::Dir && path != "many" {
            for e in arc.read_dir(ino).unwrap() {
                let hit = arc.lookup(ino, &e.name).unwrap().expect("lookup");
                assert_eq!(hit.inode, e.inode, "{tag}: lookup {path}/{:?}", e.name);
            }
        }
    }
    // Parent numbers and the export table.
    let root = &walked.inodes[""].1;
    assert_eq!(arc.parent(root), arc.superblock().inode_count + 1);
    let (_, deep) = &walked.inodes["a/b/c"];
    assert_eq!(arc.parent(deep), walked.inodes["a/b"].1.number);
    for (r, ino) in walked.inodes.values().take(500) {
        if let Some(found) = arc.inode_ref_by_number(ino.number).unwrap() {
            assert_eq!(found, *r);
        }
    }

    // 6. Extended attributes against the extracted files.
    if corpus.xattrs {
        if let Some(ext) = tree_xattrs(&ex) {
            for (path, (_, ino)) in &walked.inodes {
                let mut ours = arc.xattrs(ino).unwrap();
                ours.sort();
                let key = if path.is_empty() {
                    ".".to_string()
                } else {
                    path.clone()
                };
                let theirs = ext.get(&key).cloned().unwrap_or_default();
                assert_eq!(ours, theirs, "{tag}: xattrs of {path}");
            }
            let f00 = &walked.inodes["small/f00"].1;
            assert!(arc
                .xattrs(f00)
                .unwrap()
                .iter()
                .any(|(n, v)| n == b"user.x" && v == b"value"));
        }
    }
    println!(
        "{tag}: {} entries, {files} files match unsquashfs",
        theirs.len()
    );
    let _ = fs::remove_dir_all(&ex);
    let _ = fs::remove_file(&img);
}

#[test]
fn images_match_unsquashfs() {
    skip_unless!(
        have("mksquashfs") && have("unsquashfs"),
        "needs mksquashfs and unsquashfs (package squashfs-tools)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let corpus = build_corpus(tmp.path());
    for comp in ["gzip", "lzo", "lz4", "xz", "zstd"] {
        check_image(tmp.path(), &corpus, comp, &[]);
    }
    // Everything stored raw, and small blocks.
    check_image(
        tmp.path(),
        &corpus,
        "gzip",
        &["-noI", "-noD", "-noF", "-noX"],
    );
    check_image(tmp.path(), &corpus, "zstd", &["-b", "4096"]);
    // No fragments at all (tails in short full blocks), and xz with a BCJ filter.
    check_image(tmp.path(), &corpus, "lz4", &["-no-fragments", "-Xhc"]);
    check_image(tmp.path(), &corpus, "xz", &["-Xbcj", "x86", "-b", "65536"]);
}

#[test]
fn compressor_names() {
    assert_eq!(Compressor::Zstd.id(), 6);
    assert_eq!(Compressor::Lzo.name(), "lzo");
}
