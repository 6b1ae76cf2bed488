//! CDI, the Container Device Interface: devices named `vendor/class=name`
//! (`--device nvidia.com/gpu=0`), described by spec files that tools such
//! as `nvidia-ctk cdi generate` write into `/etc/cdi` and `/var/run/cdi`,
//! in JSON or YAML. A device's edits are its spec's common edits plus its
//! own: device nodes, bind mounts and variables. Hooks are programs a
//! runtime would run; Vessel runs none: the `update-ldcache` hook (make
//! the driver's library directories known to the linker) it does itself,
//! by putting those directories on `LD_LIBRARY_PATH`, and any other hook
//! is refused by name.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Where specs are looked for when `--cdi-dirs` names no directory.
pub const DEFAULT_DIRS: [&str; 2] = ["/etc/cdi", "/var/run/cdi"];

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Spec {
    #[allow(dead_code)]
    cdi_version: String,
    kind: String,
    #[serde(default)]
    devices: Vec<SpecDevice>,
    #[serde(default)]
    container_edits: Edits,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SpecDevice {
    name: String,
    #[serde(default)]
    container_edits: Edits,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Edits {
    #[serde(default)]
    env: Vec<String>,
    #[serde(default)]
    device_nodes: Vec<DeviceNode>,
    #[serde(default)]
    mounts: Vec<Mount>,
    #[serde(default)]
    hooks: Vec<Hook>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeviceNode {
    path: PathBuf,
    host_path: Option<PathBuf>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Mount {
    host_path: PathBuf,
    container_path: PathBuf,
    #[serde(default)]
    options: Vec<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Hook {
    hook_name: String,
    path: PathBuf,
    #[serde(default)]
    args: Vec<String>,
}

/// What the requested devices add to a container.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CdiEdits {
    /// Device nodes: the host's node, and where it appears.
    pub devices: Vec<(PathBuf, PathBuf)>,
    /// Binds: host path, container path, read-only.
    pub mounts: Vec<(PathBuf, PathBuf, bool)>,
    /// Variables, `NAME=VALUE`.
    pub env: Vec<(String, String)>,
    /// Library directories (from `update-ldcache` hooks) for
    /// `LD_LIBRARY_PATH`.
    pub library_dirs: Vec<PathBuf>,
}

/// Why a CDI device could not be given to the container.
#[derive(Debug, thiserror::Error)]
pub enum CdiError {
    #[error("--device {0:?} is not a CDI device name: expected VENDOR/CLASS=NAME, as in nvidia.com/gpu=0")]
    BadName(String),
    #[error("cannot read the CDI spec {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the CDI spec {path} is not valid: {problem}")]
    Invalid { path: PathBuf, problem: String },
    #[error("--device {name}: no CDI spec in {dirs} defines it{known}")]
    Unknown {
        name: String,
        dirs: String,
        known: String,
    },
    #[error("--device {name}: the CDI spec {path} asks for the {hook} hook {program}, which Vessel does not run (only update-ldcache hooks are supported)")]
    Hook {
        name: String,
        path: PathBuf,
        hook: String,
        program: String,
    },
}

/// The edits of the named devices, from the specs in `dirs`.
pub fn resolve(names: &[String], dirs: &[PathBuf]) -> Result<CdiEdits, CdiError> {
    let mut wanted = Vec::new();
    for name in names {
        let (kind, device) = name
            .split_once('=')
            .filter(|(k, d)| k.contains('/') && !d.is_empty())
            .ok_or_else(|| CdiError::BadName(name.clone()))?;
        wanted.push((name, kind, device));
    }
    let specs = load_specs(dirs)?;
    let mut edits = CdiEdits::default();
    let mut common_done: Vec<&Path> = Vec::new();
    for (name, kind, device) in wanted {
        let found = specs.iter().find_map(|(path, spec)| {
            (spec.kind == kind)
                .then(|| spec.devices.iter().find(|d| d.name == device))
                .flatten()
                .map(|d| (path, spec, d))
        });
        let Some((path, spec, dev)) = found else {
            let known: Vec<&str> = specs
                .iter()
                .filter(|(_, s)| s.kind == kind)
                .flat_map(|(_, s)| s.devices.iter().map(|d| d.name.as_str()))
                .collect();
            return Err(CdiError::Unknown {
                name: name.clone(),
                dirs: dirs
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                known: if known.is_empty() {
                    String::new()
                } else {
                    format!(" (its devices of kind {kind}: {})", known.join(", "))
                },
            });
        };
        if !common_done.contains(&path.as_path()) {
            apply(&mut edits, &spec.container_edits, name, path)?;
            common_done.push(path);
        }
        apply(&mut edits, &dev.container_edits, name, path)?;
    }
    Ok(edits)
}

/// Every spec file of `dirs` (`*.json`, `*.yaml`, `*.yml`), in name order
/// within each directory; a missing directory has none.
fn load_specs(dirs: &[PathBuf]) -> Result<Vec<(PathBuf, Spec)>, CdiError> {
    let mut specs = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("json" | "yaml" | "yml")
                )
            })
            .collect();
        files.sort();
        for path in files {
            let text = std::fs::read_to_string(&path).map_err(|source| CdiError::Read {
                path: path.clone(),
                source,
            })?;
            // JSON is YAML: one parser reads both.
            let spec: Spec = yaml_serde::from_str(&text).map_err(|e| CdiError::Invalid {
                path: path.clone(),
                problem: e.to_string(),
            })?;
            specs.push((path, spec));
        }
    }
    Ok(specs)
}

fn apply(into: &mut CdiEdits, edits: &Edits, name: &str, path: &Path) -> Result<(), CdiError> {
    for hook in &edits.hooks {
        match ldcache_folders(hook) {
            Some(folders) => {
                for f in folders {
                    if !into.library_dirs.contains(&f) {
                        into.library_dirs.push(f);
                    }
                }
            }
            None => {
                return Err(CdiError::Hook {
                    name: name.to_string(),
                    path: path.to_path_buf(),
                    hook: hook.hook_name.clone(),
                    program: std::iter::once(hook.path.display().to_string())
                        .chain(hook.args.iter().skip(1).cloned())
                        .collect::<Vec<_>>()
                        .join(" "),
                })
            }
        }
    }
    for node in &edits.device_nodes {
        let host = node.host_path.clone().unwrap_or_else(|| node.path.clone());
        let entry = (host, node.path.clone());
        if !into.devices.contains(&entry) {
            into.devices.push(entry);
        }
    }
    for m in &edits.mounts {
        let ro = m.options.iter().any(|o| o == "ro" || o == "readonly");
        let entry = (m.host_path.clone(), m.container_path.clone(), ro);
        if !into.mounts.contains(&entry) {
            into.mounts.push(entry);
        }
    }
    let mut env: BTreeMap<String, String> = into.env.iter().cloned().collect();
    for kv in &edits.env {
        if let Some((k, v)) = kv.split_once('=') {
            if env.insert(k.to_string(), v.to_string()).is_none() {
                into.env.push((k.to_string(), v.to_string()));
            } else if let Some(slot) = into.env.iter_mut().find(|(n, _)| n == k) {
                slot.1 = v.to_string();
            }
        }
    }
    Ok(())
}

/// The `--folder` arguments of an `update-ldcache` hook (`nvidia-ctk hook
/// update-ldcache --folder DIR…`, or `nvidia-cdi-hook update-ldcache`);
/// `None` for any other hook.
fn ldcache_folders(hook: &Hook) -> Option<Vec<PathBuf>> {
    if !hook.args.iter().any(|a| a == "update-ldcache") {
        return None;
    }
    let mut folders = Vec::new();
    let mut args = hook.args.iter();
    while let Some(a) = args.next() {
        if a == "--folder" {
            folders.extend(args.next().map(PathBuf::from));
        } else if let Some(f) = a.strip_prefix("--folder=") {
            folders.push(PathBuf::from(f));
        }
    }
    Some(folders)
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = r#"
cdiVersion: 0.5.0
kind: example.com/gpu
containerEdits:
  env:
  - FAKE_DRIVER=1
  deviceNodes:
  - path: /dev/nvidiactl
  hooks:
  - hookName: createContainer
    path: /usr/bin/nvidia-ctk
    args: [nvidia-ctk, hook, update-ldcache, --folder, /usr/lib/fake]
  mounts:
  - hostPath: /usr/lib/fake/libcuda.so.1
    containerPath: /usr/lib/fake/libcuda.so.1
    options: [ro, nosuid, nodev, bind]
devices:
- name: "0"
  containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
- name: "1"
  containerEdits:
    deviceNodes:
    - path: /dev/gpu1
      hostPath: /dev/nvidia1
"#;

    const JSON: &str = r#"{"cdiVersion":"0.6.0","kind":"example.com/nic",
      "devices":[{"name":"eth","containerEdits":{"env":["NIC=1"]}}],
      "containerEdits":{"hooks":[{"hookName":"createContainer","path":"/bin/evil","args":["evil","--now"]}]}}"#;

    fn dirs() -> (tempfile::TempDir, Vec<PathBuf>) {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("gpu.yaml"), YAML).unwrap();
        std::fs::write(tmp.path().join("nic.json"), JSON).unwrap();
        std::fs::write(tmp.path().join("README"), "not a spec").unwrap();
        let dirs = vec![tmp.path().to_path_buf(), tmp.path().join("missing")];
        (tmp, dirs)
    }

    #[test]
    fn a_device_gets_its_spec_s_edits_and_its_own() {
        let (_tmp, dirs) = dirs();
        let e = resolve(&["example.com/gpu=1".into()], &dirs).unwrap();
        assert_eq!(
            e.devices,
            [
                ("/dev/nvidiactl".into(), "/dev/nvidiactl".into()),
                ("/dev/nvidia1".into(), "/dev/gpu1".into())
            ]
        );
        assert_eq!(
            e.mounts,
            [(
                "/usr/lib/fake/libcuda.so.1".into(),
                "/usr/lib/fake/libcuda.so.1".into(),
                true
            )]
        );
        assert_eq!(e.env, [("FAKE_DRIVER".into(), "1".into())]);
        assert_eq!(e.library_dirs, [PathBuf::from("/usr/lib/fake")]);
        let both = resolve(
            &["example.com/gpu=0".into(), "example.com/gpu=1".into()],
            &dirs,
        )
        .unwrap();
        assert_eq!(both.devices.len(), 3, "{:?}", both.devices);
    }

    #[test]
    fn unknown_devices_bad_names_and_other_hooks_are_refused_by_name() {
        let (_tmp, dirs) = dirs();
        let e = resolve(&["example.com/gpu=7".into()], &dirs)
            .unwrap_err()
            .to_string();
        assert!(e.contains("example.com/gpu=7") && e.contains("0, 1"), "{e}");
        let e = resolve(&["gpu0".into()], &dirs).unwrap_err().to_string();
        assert!(e.contains("VENDOR/CLASS=NAME"), "{e}");
        let e = resolve(&["example.com/nic=eth".into()], &dirs)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/bin/evil --now") && e.contains("createContainer"),
            "{e}"
        );
    }

    #[test]
    fn a_broken_spec_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("bad.yaml"), "kind: [").unwrap();
        let e = resolve(&["a.b/c=d".into()], &[tmp.path().to_path_buf()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("bad.yaml") && e.contains("not valid"), "{e}");
    }
}
