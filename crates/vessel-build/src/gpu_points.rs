//! `build --nv/--rocm`: `%post` runs on the sandbox being built, mounted
//! writable, so the mount points the GPU binds need (`/usr/bin/nvidia-smi`,
//! `/.singularity.d/libs`, `/.singularity.d/hostlibs/N`, the driver's ICD
//! files) are made in the image itself. Those that were not there before
//! and are still empty afterwards are removed, so that the image keeps
//! nothing of the build host's driver.

use std::path::Path;

use vessel_runtime::gpu::liblist::{Entry, LibList, Vendor};

use crate::engine::BuildError;
use crate::in_root::BuildRoot;

/// The container paths a GPU run may make, that the image lacked.
pub(crate) struct GpuMountPoints {
    missing: Vec<String>,
}

impl GpuMountPoints {
    /// Notes which of the GPU mount points `rootfs` lacks, for the vendors
    /// that `flags` (the nested run's flags) ask for.
    pub(crate) fn before(rootfs: &Path, flags: &[String]) -> Result<Self, BuildError> {
        let vendors: Vec<Vendor> = [("--nv", Vendor::Nvidia), ("--rocm", Vendor::Amd)]
            .into_iter()
            .filter(|(flag, _)| flags.iter().any(|f| f == flag))
            .map(|(_, v)| v)
            .collect();
        if vendors.is_empty() {
            return Ok(GpuMountPoints {
                missing: Vec::new(),
            });
        }
        let mut candidates: Vec<String> = vec![
            "/.singularity.d/libs".into(),
            "/.singularity.d/libs32".into(),
            "/.singularity.d/hostlibs".into(),
        ];
        // The driver's directories, numbered as the plan binds them.
        candidates.extend((0..8).map(|i| format!("/.singularity.d/hostlibs/{i}")));
        let conf_dir = vessel_config::conf::conf_dir().unwrap_or_default();
        for vendor in vendors {
            let Ok(list) = LibList::load(vendor, &conf_dir) else {
                continue;
            };
            for entry in list.entries {
                match entry {
                    Entry::Program(name) => candidates.push(format!("/usr/bin/{name}")),
                    Entry::File(path) => candidates.push(path.to_string_lossy().into_owned()),
                    Entry::Library(_) => {}
                }
            }
        }
        let root = BuildRoot::open(rootfs)?;
        let missing = candidates.into_iter().filter(|p| !root.exists(p)).collect();
        Ok(GpuMountPoints { missing })
    }

    /// Removes the noted mount points the run left empty, deepest first.
    pub(crate) fn clean(&self, rootfs: &Path) -> Result<(), BuildError> {
        if self.missing.is_empty() {
            return Ok(());
        }
        let root = BuildRoot::open(rootfs)?;
        let mut paths = self.missing.clone();
        paths.sort_by_key(|p| std::cmp::Reverse(p.matches('/').count()));
        for p in &paths {
            if root.remove_if_empty(p) {
                tracing::debug!("removed the empty GPU mount point {p} from the image");
            }
        }
        Ok(())
    }
}
