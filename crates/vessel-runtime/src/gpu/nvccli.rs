//! `--nvccli`: NVIDIA's `nvidia-container-cli` (libnvidia-container) sets
//! the driver up in the assembled root, as Apptainer runs it: `configure`
//! without cgroups, the devices of `NVIDIA_VISIBLE_DEVICES` (all unless the
//! container is contained), the capabilities of
//! `NVIDIA_DRIVER_CAPABILITIES` (compute and utility by default), the
//! requirements of `NVIDIA_REQUIRE_*`, and the host's `ldconfig`; `--user`
//! for an unprivileged user, whose namespace it works in.

use std::path::{Path, PathBuf};

use super::driver::PROGRAM_DIRS;

/// The program and its arguments; the root's path goes last.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    pub program: PathBuf,
    pub args: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum NvccliError {
    #[error("--nvccli needs nvidia-container-cli, which is not installed in {dirs}")]
    Missing {
        dirs: String,
        #[source]
        hint: vessel_sys::Hint,
    },
    #[error("NVIDIA_DRIVER_CAPABILITIES names {0:?}, which nvidia-container-cli does not know (compute, compat32, graphics, utility, video, display, ngx, all)")]
    Capability(String),
}

const CAPABILITIES: [&str; 7] = [
    "compute", "compat32", "graphics", "utility", "video", "display", "ngx",
];

/// The call for a container (`contain`: a minimal `/dev`) of user `uid`,
/// with the job's variables from `get`.
pub fn call(
    contain: bool,
    uid: u32,
    get: &dyn Fn(&str) -> Option<String>,
) -> Result<Call, NvccliError> {
    let program = find_program(Path::new("/")).ok_or_else(|| NvccliError::Missing {
        dirs: PROGRAM_DIRS.join(", "),
        hint: vessel_sys::Hint::new(
            "install NVIDIA's libnvidia-container tools, or use --nv alone: Vessel then gives the container the host's driver itself",
        ),
    })?;
    let mut args = Vec::new();
    if uid != 0 {
        args.push("--user".to_string());
    }
    args.extend(["configure".to_string(), "--no-cgroups".to_string()]);
    // Apptainer's default: every GPU, unless the container is contained.
    let devices = get("NVIDIA_VISIBLE_DEVICES").or_else(|| (!contain).then(|| "all".into()));
    match devices.as_deref().map(str::trim) {
        None | Some("" | "none" | "void") => {}
        Some(d) => args.push(format!("--device={d}")),
    }
    let caps = get("NVIDIA_DRIVER_CAPABILITIES").unwrap_or_else(|| "compute,utility".into());
    for cap in caps.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        if cap == "all" {
            args.extend(CAPABILITIES.iter().map(|c| format!("--{c}")));
        } else if CAPABILITIES.contains(&cap) {
            args.push(format!("--{cap}"));
        } else {
            return Err(NvccliError::Capability(cap.to_string()));
        }
    }
    args.dedup();
    if get("NVIDIA_DISABLE_REQUIRE").is_none() {
        if let Some(req) = get("NVIDIA_REQUIRE_CUDA").filter(|r| !r.trim().is_empty()) {
            args.push(format!("--require={}", req.trim()));
        }
    }
    if let Some(ldconfig) = host_ldconfig(Path::new("/")) {
        // `@`: a path on the host, not in the container.
        args.push(format!("--ldconfig=@{}", ldconfig.display()));
    }
    Ok(Call { program, args })
}

fn find_program(root: &Path) -> Option<PathBuf> {
    PROGRAM_DIRS
        .iter()
        .map(|d| {
            root.join(d.trim_start_matches('/'))
                .join("nvidia-container-cli")
        })
        .find(|p| p.is_file())
}

/// The host's `ldconfig` (Debian's real one first, as Apptainer prefers).
fn host_ldconfig(root: &Path) -> Option<PathBuf> {
    [
        "/sbin/ldconfig.real",
        "/sbin/ldconfig",
        "/usr/sbin/ldconfig",
    ]
    .iter()
    .map(|p| root.join(p.trim_start_matches('/')))
    .find(|p| p.is_file())
    .map(|p| Path::new("/").join(p.strip_prefix(root).unwrap_or(&p)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_and_devices_as_apptainer_passes_them() {
        let vars = crate::gpu::tests::vars;
        // Without the program this host refuses; the arguments are the
        // same either way, so check them through a call that finds one.
        let args = |contain, uid, get: &dyn Fn(&str) -> Option<String>| -> Vec<String> {
            match call(contain, uid, get) {
                Ok(c) => c.args,
                Err(NvccliError::Missing { .. }) => Vec::new(),
                Err(e) => panic!("{e}"),
            }
        };
        let a = args(false, 1000, &vars(&[]));
        if !a.is_empty() {
            assert_eq!(
                &a[..5],
                [
                    "--user",
                    "configure",
                    "--no-cgroups",
                    "--device=all",
                    "--compute"
                ]
            );
            assert!(a.contains(&"--utility".to_string()));
            let contained = args(true, 0, &vars(&[]));
            assert!(!contained.iter().any(|x| x.starts_with("--device")));
            assert!(!contained.contains(&"--user".to_string()));
            let all = args(false, 1000, &vars(&[("NVIDIA_DRIVER_CAPABILITIES", "all")]));
            assert!(all.contains(&"--graphics".to_string()));
        }
        let bad = call(
            false,
            1000,
            &vars(&[("NVIDIA_DRIVER_CAPABILITIES", "warp")]),
        );
        assert!(matches!(
            bad,
            Err(NvccliError::Capability(_)) | Err(NvccliError::Missing { .. })
        ));
    }

    #[test]
    fn the_host_ldconfig_is_found_under_a_root() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("sbin")).unwrap();
        std::fs::write(tmp.path().join("sbin/ldconfig"), b"").unwrap();
        assert_eq!(
            host_ldconfig(tmp.path()),
            Some(PathBuf::from("/sbin/ldconfig"))
        );
        assert_eq!(find_program(tmp.path()), None);
    }
}
