//! Finding a GPU vendor's driver files on the host: the libraries of its
//! list in the linker cache (the host's architecture only, the 32-bit ones
//! apart), its programs, its ICD and profile files, and its device nodes,
//! narrowed to the devices of the job when the container gets a minimal
//! `/dev`. Nothing here runs a program or walks a directory tree.

use std::path::{Path, PathBuf};

use super::ldcache::{Abi, LdCache};
use super::liblist::{Entry, LibList, Vendor};

/// The system directories programs of a list are looked up in (never the
/// user's `PATH`: the same programs for every user of the node).
pub const PROGRAM_DIRS: [&str; 6] = [
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// A host library and the name it is bound under in `/.singularity.d/libs`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostLib {
    pub name: String,
    pub path: PathBuf,
}

/// What a GPU option makes visible.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DriverFiles {
    /// Libraries for the host's architecture, into `/.singularity.d/libs`.
    pub libs: Vec<HostLib>,
    /// 32-bit libraries (`--compat32`), into `/.singularity.d/libs32`.
    pub libs32: Vec<HostLib>,
    /// Programs, each bound at `/usr/bin/NAME`.
    pub programs: Vec<PathBuf>,
    /// Files and sockets bound at their own paths.
    pub files: Vec<PathBuf>,
    /// Device nodes (and device directories) for a minimal `/dev`.
    pub devices: Vec<PathBuf>,
}

impl DriverFiles {
    pub fn is_empty(&self) -> bool {
        self.libs.is_empty() && self.programs.is_empty() && self.devices.is_empty()
    }
}

/// Which of the host's GPUs the job may use, as the launcher says it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Visible {
    All,
    /// Device indices (`/dev/nvidiaN`).
    Only(Vec<u32>),
}

impl Visible {
    /// From the job's variables: Slurm's allocation (`SLURM_STEP_GPUS`,
    /// then `SLURM_JOB_GPUS`, which hold the host's device numbers), else
    /// `CUDA_VISIBLE_DEVICES`/`NVIDIA_VISIBLE_DEVICES` when they list
    /// numbers. UUIDs, `all` or nothing mean every device.
    pub fn from_vars(get: &dyn Fn(&str) -> Option<String>) -> Visible {
        for var in [
            "SLURM_STEP_GPUS",
            "SLURM_JOB_GPUS",
            "CUDA_VISIBLE_DEVICES",
            "NVIDIA_VISIBLE_DEVICES",
        ] {
            let Some(value) = get(var).filter(|v| !v.trim().is_empty()) else {
                continue;
            };
            let numbers: Option<Vec<u32>> = value
                .split(',')
                .map(|n| n.trim().parse::<u32>().ok())
                .collect();
            return match numbers {
                Some(n) => Visible::Only(n),
                None if value.trim() == "none" || value.trim() == "void" => {
                    Visible::Only(Vec::new())
                }
                None => Visible::All,
            };
        }
        Visible::All
    }

    fn allows(&self, index: u32) -> bool {
        match self {
            Visible::All => true,
            Visible::Only(list) => list.contains(&index),
        }
    }
}

/// Where to look: the host's root (a test gives a directory standing for
/// it) and its linker cache (`None` when it could not be read).
pub struct Host<'a> {
    pub root: &'a Path,
    pub ld_cache: Option<&'a LdCache>,
}

impl Host<'_> {
    fn at(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    /// The host path `p` (made under the test root) as the container
    /// names it.
    fn shown(&self, p: &Path) -> PathBuf {
        match p.strip_prefix(self.root) {
            Ok(rest) => Path::new("/").join(rest),
            Err(_) => p.to_path_buf(),
        }
    }
}

/// The vendor's driver files on `host`, per `list`.
pub fn find(
    vendor: Vendor,
    list: &LibList,
    host: &Host<'_>,
    compat32: bool,
    visible: &Visible,
) -> DriverFiles {
    let mut found = DriverFiles::default();
    let native = Abi::native();
    for entry in &list.entries {
        match entry {
            Entry::Library(name) => {
                let Some(cache) = host.ld_cache else { continue };
                add_libs(&mut found.libs, cache, name, native);
                if compat32 && native != Abi::BASE32 {
                    add_libs(&mut found.libs32, cache, name, Abi::BASE32);
                }
            }
            Entry::Program(name) => {
                let program = PROGRAM_DIRS
                    .iter()
                    .map(|dir| host.at(dir).join(name))
                    .find(|p| is_executable(p));
                if let Some(p) = program {
                    if !found
                        .programs
                        .iter()
                        .any(|q| q.file_name() == p.file_name())
                    {
                        found.programs.push(p);
                    }
                }
            }
            Entry::File(path) => {
                let p = host.at(&path.to_string_lossy());
                if p.exists() {
                    found.files.push(p);
                }
            }
        }
    }
    match vendor {
        Vendor::Nvidia => {
            nvidia_devices(host, visible, &mut found.devices);
            let socket = host.at("/var/run/nvidia-persistenced/socket");
            if socket.exists() {
                found.files.push(socket);
            }
        }
        Vendor::Amd => {
            for dev in ["/dev/kfd", "/dev/dri"] {
                let p = host.at(dev);
                if p.exists() {
                    found.devices.push(p);
                }
            }
        }
    }
    // The paths as the container sees them (the same as the host's, the
    // test root aside).
    let shown = |p: &PathBuf| host.shown(p);
    found.programs = found.programs.iter().map(shown).collect();
    found.files = found.files.iter().map(shown).collect();
    found.devices = found.devices.iter().map(shown).collect();
    found
}

/// Every library of the cache for `abi` that `name` names, once per name.
fn add_libs(into: &mut Vec<HostLib>, cache: &LdCache, name: &str, abi: Abi) {
    for lib in cache.find(name, abi) {
        if !into.iter().any(|l| l.name == lib.name) {
            into.push(HostLib {
                name: lib.name.clone(),
                path: lib.path.clone(),
            });
        }
    }
}

/// NVIDIA's control devices, then the GPUs the job may use.
fn nvidia_devices(host: &Host<'_>, visible: &Visible, into: &mut Vec<PathBuf>) {
    for dev in [
        "/dev/nvidiactl",
        "/dev/nvidia-uvm",
        "/dev/nvidia-uvm-tools",
        "/dev/nvidia-modeset",
        "/dev/nvidia-caps",
    ] {
        let p = host.at(dev);
        if p.exists() {
            into.push(p);
        }
    }
    let Ok(dir) = std::fs::read_dir(host.at("/dev")) else {
        return;
    };
    let mut gpus: Vec<(u32, PathBuf)> = dir
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let index = name.strip_prefix("nvidia")?.parse::<u32>().ok()?;
            Some((index, e.path()))
        })
        .filter(|(index, _)| visible.allows(*index))
        .collect();
    gpus.sort();
    into.extend(gpus.into_iter().map(|(_, p)| p));
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The one warning for a GPU option that found nothing to give the
/// container, naming what was looked for.
pub fn nothing_found_warning(vendor: Vendor, list: &LibList, cache_ok: bool) -> String {
    let (what, device) = match vendor {
        Vendor::Nvidia => ("NVIDIA", "/dev/nvidiactl"),
        Vendor::Amd => ("AMD ROCm", "/dev/kfd"),
    };
    let first_lib = list
        .entries
        .iter()
        .find_map(|e| match e {
            Entry::Library(name) => Some(name.as_str()),
            _ => None,
        })
        .unwrap_or("no library");
    let cache = if cache_ok {
        "in the linker cache"
    } else {
        "(the linker cache /etc/ld.so.cache could not be read)"
    };
    format!(
        "{}: no {what} driver on this host: none of the libraries of {} ({first_lib}, …) {cache}, none of its programs, no {device}; the container runs without {what} GPUs",
        vendor.option(),
        list.origin
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::liblist::parse;

    fn cache_of(libs: &[(i32, &str, &str)]) -> LdCache {
        LdCache::parse(&crate::gpu::ldcache::tests::cache(libs)).unwrap()
    }

    fn touch(root: &Path, path: &str, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        let p = root.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, b"").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn fake_host(root: &Path) {
        for dev in [
            "/dev/nvidiactl",
            "/dev/nvidia-uvm",
            "/dev/nvidia0",
            "/dev/nvidia1",
            "/dev/nvidia-modeset",
        ] {
            touch(root, dev, 0o666);
        }
        touch(root, "/usr/bin/nvidia-smi", 0o755);
        touch(root, "/usr/local/bin/nvidia-debugdump", 0o644); // not executable
        touch(root, "/etc/vulkan/icd.d/nvidia_icd.json", 0o644);
    }

    #[test]
    fn finds_libraries_programs_files_and_devices() {
        let tmp = tempfile::tempdir().unwrap();
        fake_host(tmp.path());
        let native = Abi::native();
        let flag = 0x0003 | if native == Abi::X86_64 { 0x0300 } else { 0 };
        let cache = cache_of(&[
            (flag, "libcuda.so.1", "/usr/lib/nv/libcuda.so.1"),
            (0x0003, "libcuda.so.1", "/usr/lib/i386/libcuda.so.1"),
            (flag, "libnvidia-ml.so.1", "/usr/lib/nv/libnvidia-ml.so.1"),
            (flag, "libz.so.1", "/usr/lib/libz.so.1"),
        ]);
        let list = LibList {
            origin: "test".into(),
            entries: parse(
                "nvidia-smi\nnvidia-debugdump\nlibcuda.so\nlibnvidia-ml.so\n/etc/vulkan/icd.d/nvidia_icd.json\n/usr/share/none.json\n",
            ),
        };
        let host = Host {
            root: tmp.path(),
            ld_cache: Some(&cache),
        };
        let found = find(Vendor::Nvidia, &list, &host, false, &Visible::All);
        let names: Vec<_> = found.libs.iter().map(|l| l.name.as_str()).collect();
        if native == Abi::X86_64 {
            assert_eq!(names, ["libcuda.so.1", "libnvidia-ml.so.1"]);
            assert_eq!(found.libs[0].path, Path::new("/usr/lib/nv/libcuda.so.1"));
        }
        assert!(found.libs32.is_empty());
        assert_eq!(found.programs, [PathBuf::from("/usr/bin/nvidia-smi")]);
        assert_eq!(
            found.files,
            [PathBuf::from("/etc/vulkan/icd.d/nvidia_icd.json")]
        );
        assert_eq!(
            found.devices,
            [
                "/dev/nvidiactl",
                "/dev/nvidia-uvm",
                "/dev/nvidia-modeset",
                "/dev/nvidia0",
                "/dev/nvidia1"
            ]
            .map(PathBuf::from)
        );
        if native == Abi::X86_64 {
            let with32 = find(Vendor::Nvidia, &list, &host, true, &Visible::All);
            assert_eq!(
                with32.libs32,
                [HostLib {
                    name: "libcuda.so.1".into(),
                    path: "/usr/lib/i386/libcuda.so.1".into()
                }]
            );
        }
        let one = find(Vendor::Nvidia, &list, &host, false, &Visible::Only(vec![1]));
        assert!(one.devices.contains(&PathBuf::from("/dev/nvidia1")));
        assert!(!one.devices.contains(&PathBuf::from("/dev/nvidia0")));
    }

    #[test]
    fn the_job_s_devices_come_from_slurm_then_cuda() {
        let vars = crate::gpu::tests::vars;
        assert_eq!(Visible::from_vars(&vars(&[])), Visible::All);
        assert_eq!(
            Visible::from_vars(&vars(&[("CUDA_VISIBLE_DEVICES", "1")])),
            Visible::Only(vec![1])
        );
        assert_eq!(
            Visible::from_vars(&vars(&[
                ("CUDA_VISIBLE_DEVICES", "0"),
                ("SLURM_STEP_GPUS", "2,3")
            ])),
            Visible::Only(vec![2, 3])
        );
        assert_eq!(
            Visible::from_vars(&vars(&[("CUDA_VISIBLE_DEVICES", "GPU-8f6c2e1a")])),
            Visible::All
        );
        assert_eq!(
            Visible::from_vars(&vars(&[("NVIDIA_VISIBLE_DEVICES", "none")])),
            Visible::Only(vec![])
        );
    }

    #[test]
    fn nothing_found_is_one_warning_naming_the_list() {
        let tmp = tempfile::tempdir().unwrap();
        let list = LibList {
            origin: "Vessel's default nvliblist.conf".into(),
            entries: parse("nvidia-smi\nlibcuda.so\n"),
        };
        let empty = LdCache::default();
        let host = Host {
            root: tmp.path(),
            ld_cache: Some(&empty),
        };
        let found = find(Vendor::Nvidia, &list, &host, false, &Visible::All);
        assert!(found.is_empty());
        let w = nothing_found_warning(Vendor::Nvidia, &list, true);
        assert!(w.starts_with("--nv: no NVIDIA driver on this host"), "{w}");
        assert!(
            w.contains("libcuda.so") && w.contains("/dev/nvidiactl"),
            "{w}"
        );
    }
}
