//! Merging image layers into one file system tree, as a tar stream, without
//! unpacking anything to disk.
//!
//! Pass one reads every layer's headers and decides, path by path, which
//! entry survives (whiteouts and opaque directories remove what lower
//! layers had). Pass two re-reads the layers and writes the survivors, in
//! layer order, to the output. Nothing is ever extracted, so no entry can
//! write outside the root; entries that try (`..`, absolute paths, writes
//! through a symlink, hard links to outside) are refused with a clear error.
//! An entry naming the root itself (`/`, `./`, `.`, as `umoci insert DIR /`
//! writes) is valid and left out: the merged tree's root is the caller's.
//! No maintained crate applies OCI whiteouts to a stream, hence this code.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::PathBuf;

use tar::EntryType;

/// One layer blob, lowest first.
#[derive(Clone, Debug)]
pub struct Layer {
    pub digest: String,
    pub path: PathBuf,
}

/// A layer held in memory (tests, fuzzing, small generated layers).
#[derive(Clone, Copy, Debug)]
pub struct MemoryLayer<'a> {
    pub digest: &'a str,
    pub bytes: &'a [u8],
}

/// Where a layer's bytes come from. [`plan`] and [`write`] read every layer
/// twice, so each call must start again at the first byte.
pub trait LayerSource {
    /// The layer's digest, to name it in errors.
    fn digest(&self) -> &str;
    /// The layer's bytes from the start, compressed or not.
    fn reader(&self) -> io::Result<Box<dyn BufRead + '_>>;
}

impl LayerSource for Layer {
    fn digest(&self) -> &str {
        &self.digest
    }

    fn reader(&self) -> io::Result<Box<dyn BufRead + '_>> {
        Ok(Box::new(BufReader::with_capacity(
            1 << 20,
            File::open(&self.path)?,
        )))
    }
}

impl LayerSource for MemoryLayer<'_> {
    fn digest(&self) -> &str {
        self.digest
    }

    fn reader(&self) -> io::Result<Box<dyn BufRead + '_>> {
        Ok(Box::new(self.bytes))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("layer {layer} is unsafe: {entry:?} {reason}; the image was refused and nothing was written")]
    Hostile {
        layer: String,
        entry: String,
        reason: String,
    },
    #[error("layer {layer} is not a valid tar archive: {source}")]
    Corrupt {
        layer: String,
        #[source]
        source: io::Error,
    },
    #[error("writing the merged file system: {0}")]
    Output(#[source] io::Error),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Dir,
    Symlink,
    Other,
}

#[derive(Clone, Copy, Debug)]
struct Winner {
    layer: usize,
    index: usize,
    kind: Kind,
}

/// An entry's place in the input: (layer, index in the layer).
type At = (usize, usize);

/// A hard link as pass one met it.
#[derive(Clone, Debug)]
struct HardLink {
    /// The link entry itself.
    entry: At,
    /// The file entry whose data it shares (through other links if need be).
    source: At,
}

/// Which entry of which layer ends up at each path.
pub struct MergePlan {
    winners: BTreeMap<Vec<u8>, Winner>,
    /// Hard link path → the link as met; after all layers, the surviving
    /// links only.
    links: HashMap<Vec<u8>, HardLink>,
    /// Surviving hard link path → the path it is written as a link to
    /// (always one written before it).
    link_targets: HashMap<Vec<u8>, Vec<u8>>,
    /// File entries that lost their own path but whose data a surviving hard
    /// link still shares: written, at their place, under that link's path.
    promoted: HashMap<At, Vec<u8>>,
    pub skipped_devices: usize,
}

fn short(digest: &str) -> String {
    digest.chars().take(19).collect()
}

/// Opens a layer, decompressing gzip or zstd as its first bytes say.
fn open<L: LayerSource + ?Sized>(layer: &L) -> Result<Box<dyn Read + '_>, LayerError> {
    let corrupt = |source| LayerError::Corrupt {
        layer: short(layer.digest()),
        source,
    };
    let mut file = layer.reader().map_err(corrupt)?;
    let magic = file
        .fill_buf()
        .map_err(corrupt)?
        .get(..4)
        .map(|m| m.to_vec())
        .unwrap_or_default();
    Ok(if magic.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::bufread::MultiGzDecoder::new(file))
    } else if magic == [0x28, 0xb5, 0x2f, 0xfd] {
        Box::new(zstd::stream::read::Decoder::with_buffer(file).map_err(corrupt)?)
    } else {
        Box::new(file)
    })
}

/// The longest path Linux accepts (`PATH_MAX`, with its NUL).
const PATH_MAX: usize = 4096;

/// A path as stored in the merged tree: relative, without `.` parts; empty
/// for the root itself (`/`, `./`, `.`). `Err` names why the entry is unsafe.
fn normalize(raw: &[u8]) -> Result<Vec<u8>, &'static str> {
    let mut parts: Vec<&[u8]> = Vec::new();
    for part in raw.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return Err("climbs out of the root file system with '..'"),
            p => parts.push(p),
        }
    }
    if raw.starts_with(b"/") && !parts.is_empty() {
        return Err("is an absolute path");
    }
    let path = parts.join(&b'/');
    if path.len() >= PATH_MAX {
        return Err("is a path longer than Linux accepts (4095 bytes)");
    }
    Ok(path)
}

fn under(path: &[u8], dir: &[u8]) -> bool {
    dir.is_empty() || (path.len() > dir.len() && path.starts_with(dir) && path[dir.len()] == b'/')
}

impl MergePlan {
    /// Removes what lower layers (below `layer`) had at `path` (and, with
    /// `children`, below it).
    fn remove_lower(&mut self, layer: usize, path: &[u8], itself: bool) {
        let doomed: Vec<Vec<u8>> = self
            .winners
            .range(path.to_vec()..)
            .take_while(|(p, _)| p.as_slice() == path || under(p, path) || p.starts_with(path))
            .filter(|(p, w)| {
                w.layer < layer && ((itself && p.as_slice() == path) || under(p, path))
            })
            .map(|(p, _)| p.clone())
            .collect();
        for p in doomed {
            self.winners.remove(&p);
            self.links.remove(&p);
        }
    }

    /// The first proper prefix of `path` that is not a directory, if any.
    fn non_dir_parent(&self, path: &[u8]) -> Option<(Vec<u8>, Kind)> {
        let mut prefix = Vec::new();
        let parts: Vec<&[u8]> = path.split(|&b| b == b'/').collect();
        for part in &parts[..parts.len().saturating_sub(1)] {
            if !prefix.is_empty() {
                prefix.push(b'/');
            }
            prefix.extend_from_slice(part);
            if let Some(w) = self.winners.get(&prefix) {
                if w.kind != Kind::Dir {
                    return Some((prefix.clone(), w.kind));
                }
            }
        }
        None
    }
}

/// Pass one: decides the surviving entry of every path.
pub fn plan<L: LayerSource>(layers: &[L], keep_devices: bool) -> Result<MergePlan, LayerError> {
    let mut plan = MergePlan {
        winners: BTreeMap::new(),
        links: HashMap::new(),
        link_targets: HashMap::new(),
        promoted: HashMap::new(),
        skipped_devices: 0,
    };
    for (li, layer) in layers.iter().enumerate() {
        let corrupt = |source| LayerError::Corrupt {
            layer: short(layer.digest()),
            source,
        };
        let hostile = |entry: &[u8], reason: &str| LayerError::Hostile {
            layer: short(layer.digest()),
            entry: String::from_utf8_lossy(entry).into_owned(),
            reason: reason.to_string(),
        };
        let mut archive = tar::Archive::new(open(layer)?);
        for (index, entry) in archive.entries().map_err(corrupt)?.enumerate() {
            let entry = entry.map_err(corrupt)?;
            let raw = entry.path_bytes().into_owned();
            let path = normalize(&raw).map_err(|r| hostile(&raw, r))?;
            if path.is_empty() {
                // The root itself (`/`, `./`, `.`): its mode and owner are
                // the caller's to decide, so the entry is left out.
                continue;
            }
            let name_start = path.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1);
            let (dir, name) = (&path[..name_start.saturating_sub(1)], &path[name_start..]);
            if name == b".wh..wh..opq" {
                plan.remove_lower(li, dir, false);
                continue;
            }
            if let Some(hidden) = name.strip_prefix(b".wh.") {
                let mut target = dir.to_vec();
                if !target.is_empty() {
                    target.push(b'/');
                }
                target.extend_from_slice(hidden);
                plan.remove_lower(li, &target, true);
                continue;
            }
            if let Some((prefix, kind)) = plan.non_dir_parent(&path) {
                let what = if kind == Kind::Symlink {
                    "the symlink"
                } else {
                    "the file"
                };
                return Err(hostile(
                    &raw,
                    &format!(
                        "writes through {what} {:?}",
                        String::from_utf8_lossy(&prefix)
                    ),
                ));
            }
            let kind = match entry.header().entry_type() {
                EntryType::Directory => Kind::Dir,
                EntryType::Symlink => Kind::Symlink,
                EntryType::Char | EntryType::Block if !keep_devices => {
                    plan.skipped_devices += 1;
                    continue;
                }
                EntryType::Link => {
                    let target_raw = entry
                        .link_name_bytes()
                        .map(|l| l.into_owned())
                        .unwrap_or_default();
                    let target = normalize(&target_raw)
                        .map_err(|r| hostile(&raw, &format!("is a hard link whose target {r}")))?;
                    let source = match plan.winners.get(&target) {
                        Some(w) if w.kind == Kind::Other => match plan.links.get(&target) {
                            // A link to a link shares the first one's file.
                            Some(l) if l.entry == (w.layer, w.index) => l.source,
                            _ => (w.layer, w.index),
                        },
                        Some(_) => {
                            return Err(hostile(&raw, "is a hard link to a directory or symlink"))
                        }
                        None => {
                            return Err(hostile(
                                &raw,
                                "is a hard link to a file that is not in the image",
                            ))
                        }
                    };
                    plan.links.insert(
                        path.clone(),
                        HardLink {
                            entry: (li, index),
                            source,
                        },
                    );
                    Kind::Other
                }
                EntryType::Regular
                | EntryType::Continuous
                | EntryType::Fifo
                | EntryType::Char
                | EntryType::Block => Kind::Other,
                // Extension headers are consumed by the tar reader; anything
                // else is not a file system object.
                _ => continue,
            };
            if kind != Kind::Dir {
                plan.remove_lower(li, &path, false);
            }
            plan.winners.insert(
                path,
                Winner {
                    layer: li,
                    index,
                    kind,
                },
            );
        }
    }
    plan.resolve_links();
    Ok(plan)
}

impl MergePlan {
    /// Decides what each surviving hard link is written as. A later layer
    /// may have removed or replaced its target, and the link keeps the data
    /// it shared (as after extracting the layers one by one): it is then a
    /// link to another surviving path of that data, or, for the first such
    /// link, a file carrying the data itself.
    fn resolve_links(&mut self) {
        let winners = &self.winners;
        self.links.retain(|path, l| {
            winners
                .get(path)
                .is_some_and(|w| (w.layer, w.index) == l.entry)
        });
        let mut written: HashMap<At, Vec<u8>> = winners
            .iter()
            .filter(|(_, w)| w.kind == Kind::Other)
            .map(|(p, w)| ((w.layer, w.index), p.clone()))
            .collect();
        let mut links: Vec<(&Vec<u8>, &HardLink)> = self.links.iter().collect();
        links.sort_by_key(|(_, l)| l.entry);
        for (path, l) in links {
            match written.get(&l.source) {
                Some(target) => {
                    self.link_targets.insert(path.clone(), target.clone());
                }
                None => {
                    written.insert(l.source, path.clone());
                    self.promoted.insert(l.source, path.clone());
                }
            }
        }
        for path in self.promoted.values() {
            self.winners.remove(path);
        }
    }
}

/// Pass two: writes the surviving entries, in layer order, as a tar stream,
/// leaving out the paths `replaced` says the caller writes itself.
pub fn write<L: LayerSource, W: Write>(
    layers: &[L],
    plan: &MergePlan,
    replaced: impl Fn(&[u8]) -> bool,
    out: &mut tar::Builder<W>,
) -> Result<(), LayerError> {
    for (li, layer) in layers.iter().enumerate() {
        let corrupt = |source| LayerError::Corrupt {
            layer: short(layer.digest()),
            source,
        };
        let mut archive = tar::Archive::new(open(layer)?);
        for (index, entry) in archive.entries().map_err(corrupt)?.enumerate() {
            let mut entry = entry.map_err(corrupt)?;
            let path = match plan.promoted.get(&(li, index)) {
                Some(link) => link.clone(),
                None => {
                    let Ok(path) = normalize(&entry.path_bytes()) else {
                        continue;
                    };
                    match plan.winners.get(&path) {
                        Some(w) if (w.layer, w.index) == (li, index) => path,
                        _ => continue,
                    }
                }
            };
            if replaced(&path) {
                continue;
            }
            let link_target = plan.link_targets.get(&path);
            if entry.header().entry_type() == EntryType::Link && link_target.is_none() {
                continue; // every surviving link has one; never write a bad one
            }
            let pax: Vec<(String, Vec<u8>)> = match entry.pax_extensions().map_err(corrupt)? {
                Some(exts) => exts
                    .filter_map(|e| e.ok())
                    .filter_map(|e| {
                        let key = e.key().ok()?;
                        key.starts_with("SCHILY.xattr.")
                            .then(|| (key.to_string(), e.value_bytes().to_vec()))
                    })
                    .collect(),
                None => Vec::new(),
            };
            if !pax.is_empty() {
                out.append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                    .map_err(LayerError::Output)?;
            }
            let mut header = entry.header().clone();
            let path_os = bytes_path(&path);
            match header.entry_type() {
                EntryType::Link => {
                    let target = link_target.expect("checked above");
                    out.append_link(&mut header, &path_os, bytes_path(target))
                        .map_err(LayerError::Output)?;
                }
                EntryType::Symlink => {
                    let target = entry
                        .link_name_bytes()
                        .map(|l| l.into_owned())
                        .unwrap_or_default();
                    out.append_link(&mut header, &path_os, bytes_path(&target))
                        .map_err(LayerError::Output)?;
                }
                _ => {
                    out.append_data(&mut header, &path_os, &mut entry)
                        .map_err(LayerError::Output)?;
                }
            }
        }
    }
    Ok(())
}

fn bytes_path(bytes: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    PathBuf::from(std::ffi::OsStr::from_bytes(bytes))
}

/// What separates layers in [`exercise_untrusted`]'s input.
#[doc(hidden)]
pub const FUZZ_LAYER_SEPARATOR: &[u8] = b"--vessel-next-layer--";

/// Everything the merge does with untrusted layers, in one call: the
/// `tar_merge` fuzz target and its regression test share it. `data` holds up
/// to 8 layers separated by [`FUZZ_LAYER_SEPARATOR`]; the first byte's low
/// bit says whether device nodes are kept. Panics if the merged output holds
/// a path that could leave the root. Returns whether the layers merged.
#[doc(hidden)]
pub fn exercise_untrusted(data: &[u8]) -> bool {
    let mut blobs: Vec<&[u8]> = Vec::new();
    let mut rest = data;
    while blobs.len() < 7 {
        let Some(at) = rest
            .windows(FUZZ_LAYER_SEPARATOR.len())
            .position(|w| w == FUZZ_LAYER_SEPARATOR)
        else {
            break;
        };
        blobs.push(&rest[..at]);
        rest = &rest[at + FUZZ_LAYER_SEPARATOR.len()..];
    }
    blobs.push(rest);
    let layers: Vec<MemoryLayer<'_>> = blobs
        .iter()
        .map(|bytes| MemoryLayer {
            digest: "sha256:fuzz",
            bytes,
        })
        .collect();
    let keep_devices = data.first().is_some_and(|b| b & 1 == 1);
    let Ok(plan) = plan(&layers, keep_devices) else {
        return false;
    };
    // Compressed layers can expand a lot: keep at most 64 MiB of output.
    let mut out = tar::Builder::new(Capped(Vec::new(), 64 << 20));
    if write(&layers, &plan, |_| false, &mut out).is_err() || out.finish().is_err() {
        return false;
    }
    let Ok(merged) = out.into_inner() else {
        return false;
    };
    // Path → whether it is a directory, for the paths written so far.
    let mut seen: HashMap<Vec<u8>, bool> = HashMap::new();
    let mut archive = tar::Archive::new(&merged.0[..]);
    for entry in archive.entries().expect("the merged stream reads back") {
        let entry = entry.expect("the merged stream reads back");
        let path = entry.path_bytes().into_owned();
        assert_eq!(normalize(&path).as_ref(), Ok(&path), "unsafe output path");
        assert!(!path.is_empty(), "the root was written");
        let kind = entry.header().entry_type();
        if kind == EntryType::Link {
            let target = entry.link_name_bytes().unwrap_or_default().into_owned();
            assert_eq!(
                seen.get(&target),
                Some(&false),
                "hard link to a path not written before, or to a directory"
            );
        }
        seen.insert(path, kind == EntryType::Directory);
    }
    true
}

/// A `Vec` writer that fails once it would hold more than `.1` bytes.
struct Capped(Vec<u8>, usize);

impl Write for Capped {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.0.len() + buf.len() > self.1 {
            return Err(io::Error::other("output limit reached"));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone)]
    enum E {
        File(&'static str, &'static str),
        Dir(&'static str),
        Sym(&'static str, &'static str),
        Hard(&'static str, &'static str),
        Dev(&'static str),
    }

    fn layer(dir: &std::path::Path, n: usize, entries: &[E]) -> Layer {
        let path = dir.join(format!("l{n}.tar"));
        let mut b = tar::Builder::new(File::create(&path).unwrap());
        for e in entries {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            match e {
                E::File(p, data) => {
                    h.set_entry_type(EntryType::Regular);
                    h.set_size(data.len() as u64);
                    b.append_data(&mut h, p, data.as_bytes()).unwrap();
                }
                E::Dir(p) => {
                    h.set_entry_type(EntryType::Directory);
                    h.set_size(0);
                    b.append_data(&mut h, p, &[][..]).unwrap();
                }
                E::Sym(p, t) | E::Hard(p, t) => {
                    h.set_entry_type(if matches!(e, E::Sym(..)) {
                        EntryType::Symlink
                    } else {
                        EntryType::Link
                    });
                    h.set_size(0);
                    b.append_link(&mut h, p, t).unwrap();
                }
                E::Dev(p) => {
                    h.set_entry_type(EntryType::Char);
                    h.set_size(0);
                    b.append_data(&mut h, p, &[][..]).unwrap();
                }
            }
        }
        b.finish().unwrap();
        Layer {
            digest: format!("sha256:layer{n}"),
            path,
        }
    }

    fn merged(layers: &[Layer]) -> Result<Vec<String>, LayerError> {
        let p = plan(layers, false)?;
        let mut out = tar::Builder::new(Vec::new());
        write(layers, &p, |_| false, &mut out)?;
        let bytes = out.into_inner().unwrap();
        let mut a = tar::Archive::new(&bytes[..]);
        Ok(a.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let mut s = String::new();
                e.read_to_string(&mut s).unwrap();
                format!("{}={s}", e.path().unwrap().display())
            })
            .collect())
    }

    #[test]
    fn whiteouts_and_opaque_directories() {
        let d = tempfile::tempdir().unwrap();
        let l0 = layer(
            d.path(),
            0,
            &[
                E::Dir("etc"),
                E::File("etc/a", "1"),
                E::File("etc/b", "1"),
                E::Dir("opt"),
                E::File("opt/x", "1"),
                E::File("keep", "k"),
            ],
        );
        let l1 = layer(
            d.path(),
            1,
            &[
                E::File("etc/.wh.a", ""),
                E::File("etc/b", "2"),
                E::File("opt/.wh..wh..opq", ""),
                E::File("opt/y", "2"),
            ],
        );
        let got = merged(&[l0, l1]).unwrap();
        assert_eq!(got, vec!["etc=", "opt=", "keep=k", "etc/b=2", "opt/y=2"]);
    }

    #[test]
    fn a_file_replacing_a_directory_hides_its_contents() {
        let d = tempfile::tempdir().unwrap();
        let l0 = layer(d.path(), 0, &[E::Dir("d"), E::File("d/x", "1")]);
        let l1 = layer(d.path(), 1, &[E::File("d", "now a file")]);
        assert_eq!(merged(&[l0, l1]).unwrap(), vec!["d=now a file"]);
    }

    #[test]
    fn links_and_devices() {
        let d = tempfile::tempdir().unwrap();
        let l0 = layer(
            d.path(),
            0,
            &[
                E::File("a", "data"),
                E::Hard("b", "a"),
                E::Sym("s", "/etc/passwd"),
                E::Dev("dev/null"),
            ],
        );
        let p = plan(std::slice::from_ref(&l0), false).unwrap();
        assert_eq!(p.skipped_devices, 1);
        assert_eq!(merged(&[l0]).unwrap(), vec!["a=data", "b=", "s="]);
    }

    /// A layer with raw names, as an attacker writes them: `tar::Builder`
    /// itself refuses `..` and absolute paths.
    fn forged(dir: &std::path::Path, entries: &[(&str, EntryType, &str)]) -> Layer {
        let path = dir.join("forged.tar");
        let mut b = tar::Builder::new(File::create(&path).unwrap());
        for (name, kind, link) in entries {
            let mut h = tar::Header::new_old();
            h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
            h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
            h.set_entry_type(*kind);
            let data: &[u8] = if *kind == EntryType::Regular {
                b"x"
            } else {
                b""
            };
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append(&h, data).unwrap();
        }
        b.finish().unwrap();
        Layer {
            digest: "sha256:forged".into(),
            path,
        }
    }

    fn refused(entries: &[(&str, EntryType, &str)]) -> String {
        let d = tempfile::tempdir().unwrap();
        match plan(&[forged(d.path(), entries)], false) {
            Err(e @ LayerError::Hostile { .. }) => e.to_string(),
            other => panic!("not refused: {:?}", other.map(|p| p.winners.len())),
        }
    }

    #[test]
    fn hostile_layers_are_refused() {
        use EntryType::*;
        assert!(refused(&[("../escape", Regular, "")]).contains("'..'"));
        assert!(refused(&[("a/../../escape", Regular, "")]).contains("'..'"));
        assert!(refused(&[("/abs.txt", Regular, "")]).contains("absolute path"));
        let through = refused(&[("evil", Symlink, "/tmp"), ("evil/pwned", Regular, "")]);
        assert!(through.contains("symlink \"evil\""), "{through}");
        assert!(refused(&[("hl", Link, "../../etc/passwd")]).contains("hard link"));
        assert!(refused(&[("hl", Link, "/etc/passwd")]).contains("hard link"));
        assert!(refused(&[("hl", Link, "etc/passwd")]).contains("not in the image"));
    }

    #[test]
    fn root_entries_are_the_root_itself() {
        use EntryType::*;
        // `umoci insert DIR /` and `tar -C DIR .` write entries for the root.
        let d = tempfile::tempdir().unwrap();
        let l0 = forged(
            d.path(),
            &[
                ("./", Directory, ""),
                ("/", Directory, ""),
                (".", Directory, ""),
                ("./etc/", Directory, ""),
                ("./etc/motd", Regular, ""),
                ("top", Regular, ""),
            ],
        );
        assert_eq!(merged(&[l0]).unwrap(), vec!["etc=", "etc/motd=x", "top=x"]);
        // Still refused: a name that leaves the root after it.
        assert!(refused(&[("/etc/passwd", Regular, "")]).contains("absolute path"));
        assert!(refused(&[("./../x", Regular, "")]).contains("'..'"));
        assert!(refused(&[("x", Link, "/")]).contains("not in the image"));
    }

    #[test]
    fn memory_layers_and_fuzz_entry_point() {
        let d = tempfile::tempdir().unwrap();
        let l0 = layer(d.path(), 0, &[E::Dir("d"), E::File("d/x", "1")]);
        let l1 = layer(d.path(), 1, &[E::File("d/.wh.x", ""), E::File("y", "2")]);
        let b0 = std::fs::read(&l0.path).unwrap();
        let b1 = std::fs::read(&l1.path).unwrap();
        let mem = [
            MemoryLayer {
                digest: "sha256:m0",
                bytes: &b0,
            },
            MemoryLayer {
                digest: "sha256:m1",
                bytes: &b1,
            },
        ];
        let p = plan(&mem, false).unwrap();
        let mut out = tar::Builder::new(Vec::new());
        write(&mem, &p, |_| false, &mut out).unwrap();
        assert_eq!(
            merged(&[l0, l1]).unwrap().len(),
            tar::Archive::new(&out.into_inner().unwrap()[..])
                .entries()
                .unwrap()
                .count()
        );
        let both = [&b0[..], FUZZ_LAYER_SEPARATOR, &b1[..]].concat();
        assert!(exercise_untrusted(&both));
        assert!(!exercise_untrusted(b"not a tar archive at all"));
    }

    /// Every input the `tar_merge` fuzz target crashed on, replayed.
    #[test]
    fn past_fuzz_crashes_stay_fixed() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/regressions/tar_merge");
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "md") {
                continue;
            }
            exercise_untrusted(&std::fs::read(&path).unwrap());
        }
    }

    #[test]
    fn hard_links_keep_their_data_when_the_target_goes() {
        let d = tempfile::tempdir().unwrap();
        let l0 = layer(
            d.path(),
            0,
            &[E::File("a", "old"), E::Hard("b", "a"), E::Hard("c", "b")],
        );
        // Replaced by a directory, by a new file, or removed: `b` and `c`
        // still share the old data (the first as a file written where `a`
        // was, so that every link follows its target).
        let dir = layer(d.path(), 1, &[E::Dir("a")]);
        let file = layer(d.path(), 2, &[E::File("a", "new")]);
        let gone = layer(d.path(), 3, &[E::File(".wh.a", "")]);
        assert_eq!(
            merged(&[l0.clone(), dir]).unwrap(),
            vec!["b=old", "c=", "a="]
        );
        assert_eq!(
            merged(&[l0.clone(), file]).unwrap(),
            vec!["b=old", "c=", "a=new"]
        );
        assert_eq!(merged(&[l0.clone(), gone]).unwrap(), vec!["b=old", "c="]);
        // A link to a link is written as a link to the file.
        let p = plan(std::slice::from_ref(&l0), false).unwrap();
        assert_eq!(p.link_targets[&b"c".to_vec()], b"a");
        assert!(exercise_untrusted(&std::fs::read(&l0.path).unwrap()));
    }
}
