//! Merging image layers into one file system tree, as a tar stream, without
//! unpacking anything to disk.
//!
//! Pass one reads every layer's headers and decides, path by path, which
//! entry survives (whiteouts and opaque directories remove what lower
//! layers had). Pass two re-reads the layers and writes the survivors, in
//! layer order, to the output. Nothing is ever extracted, so no entry can
//! write outside the root; entries that try (`..`, absolute paths, writes
//! through a symlink, hard links to outside) are refused with a clear error.
//! No maintained crate applies OCI whiteouts to a stream, hence this code.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::PathBuf;

use tar::EntryType;

/// One layer blob, lowest first.
#[derive(Clone, Debug)]
pub struct Layer {
    pub digest: String,
    pub path: PathBuf,
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

/// Which entry of which layer ends up at each path.
pub struct MergePlan {
    winners: BTreeMap<Vec<u8>, Winner>,
    /// Hard link path → target path, checked again after all layers.
    links: HashMap<Vec<u8>, Vec<u8>>,
    pub skipped_devices: usize,
}

fn short(digest: &str) -> String {
    digest.chars().take(19).collect()
}

/// Opens a layer, decompressing gzip or zstd as its first bytes say.
fn open(layer: &Layer) -> Result<Box<dyn Read>, LayerError> {
    let corrupt = |source| LayerError::Corrupt {
        layer: short(&layer.digest),
        source,
    };
    let mut file = BufReader::with_capacity(1 << 20, File::open(&layer.path).map_err(corrupt)?);
    let magic = {
        use std::io::BufRead;
        file.fill_buf()
            .map_err(corrupt)?
            .get(..4)
            .map(|m| m.to_vec())
            .unwrap_or_default()
    };
    Ok(if magic.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::bufread::MultiGzDecoder::new(file))
    } else if magic == [0x28, 0xb5, 0x2f, 0xfd] {
        Box::new(zstd::stream::read::Decoder::with_buffer(file).map_err(corrupt)?)
    } else {
        Box::new(file)
    })
}

/// A path as stored in the merged tree: relative, without `.` parts.
/// `Err` names why the entry is unsafe.
fn normalize(raw: &[u8]) -> Result<Vec<u8>, &'static str> {
    if raw.starts_with(b"/") {
        return Err("is an absolute path");
    }
    let mut parts: Vec<&[u8]> = Vec::new();
    for part in raw.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return Err("climbs out of the root file system with '..'"),
            p => parts.push(p),
        }
    }
    Ok(parts.join(&b'/'))
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
pub fn plan(layers: &[Layer], keep_devices: bool) -> Result<MergePlan, LayerError> {
    let mut plan = MergePlan {
        winners: BTreeMap::new(),
        links: HashMap::new(),
        skipped_devices: 0,
    };
    for (li, layer) in layers.iter().enumerate() {
        let corrupt = |source| LayerError::Corrupt {
            layer: short(&layer.digest),
            source,
        };
        let hostile = |entry: &[u8], reason: &str| LayerError::Hostile {
            layer: short(&layer.digest),
            entry: String::from_utf8_lossy(entry).into_owned(),
            reason: reason.to_string(),
        };
        let mut archive = tar::Archive::new(open(layer)?);
        for (index, entry) in archive.entries().map_err(corrupt)?.enumerate() {
            let entry = entry.map_err(corrupt)?;
            let raw = entry.path_bytes().into_owned();
            let path = normalize(&raw).map_err(|r| hostile(&raw, r))?;
            if path.is_empty() {
                continue; // the root itself
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
                    match plan.winners.get(&target) {
                        Some(w) if w.kind == Kind::Other => {}
                        Some(_) => {
                            return Err(hostile(&raw, "is a hard link to a directory or symlink"))
                        }
                        None => {
                            return Err(hostile(
                                &raw,
                                "is a hard link to a file that is not in the image",
                            ))
                        }
                    }
                    plan.links.insert(path.clone(), target);
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
    // A hard link whose target a later layer removed has nothing to share.
    let dangling: Vec<Vec<u8>> = plan
        .links
        .iter()
        .filter(|(_, t)| !plan.winners.contains_key(*t))
        .map(|(p, _)| p.clone())
        .collect();
    for p in dangling {
        tracing::warn!(
            "dropping hard link {} whose target a later layer removed",
            String::from_utf8_lossy(&p)
        );
        plan.winners.remove(&p);
    }
    Ok(plan)
}

/// Pass two: writes the surviving entries, in layer order, as a tar stream,
/// leaving out the paths `replaced` says the caller writes itself.
pub fn write<W: Write>(
    layers: &[Layer],
    plan: &MergePlan,
    replaced: impl Fn(&[u8]) -> bool,
    out: &mut tar::Builder<W>,
) -> Result<(), LayerError> {
    for (li, layer) in layers.iter().enumerate() {
        let corrupt = |source| LayerError::Corrupt {
            layer: short(&layer.digest),
            source,
        };
        let mut archive = tar::Archive::new(open(layer)?);
        for (index, entry) in archive.entries().map_err(corrupt)?.enumerate() {
            let mut entry = entry.map_err(corrupt)?;
            let Ok(path) = normalize(&entry.path_bytes()) else {
                continue;
            };
            if replaced(&path) {
                continue;
            }
            let Some(w) = plan.winners.get(&path) else {
                continue;
            };
            if w.layer != li || w.index != index {
                continue;
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
                    let target = plan.links.get(&path).cloned().unwrap_or_default();
                    out.append_link(&mut header, &path_os, bytes_path(&target))
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
}
