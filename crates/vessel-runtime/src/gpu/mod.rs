//! GPUs in the container: the host's driver libraries, programs and
//! devices, found without running anything (`--nv`, `--rocm`), and CDI
//! devices (`--device vendor/class=name`).

pub mod cdi;
pub mod driver;
pub mod ldcache;
pub mod liblist;
pub mod nvccli;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::options::GpuOptions;
use driver::{DriverFiles, Visible};
use ldcache::LdCache;
use liblist::{LibList, Vendor};

/// Where the 32-bit libraries of `--compat32` go (Apptainer 1.6's place).
pub const LIBS32_DIR: &str = "/.singularity.d/libs32";

/// What the GPU options add to a container, decided from the host.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GpuFiles {
    /// Libraries for `/.singularity.d/libs` and `/.singularity.d/libs32`:
    /// the host file and the name programs load it by.
    pub libs: Vec<(PathBuf, String)>,
    pub libs32: Vec<(PathBuf, String)>,
    /// Binds: host path, container path, read-only.
    pub binds: Vec<(PathBuf, PathBuf, bool)>,
    /// Device nodes, bound only into a minimal `/dev` (`--contain`): with
    /// the host's `/dev` they are there already.
    pub devices: Vec<(PathBuf, PathBuf)>,
    /// Devices a CDI spec names: bound whatever `/dev` is (they may appear
    /// under another name).
    pub cdi_devices: Vec<(PathBuf, PathBuf)>,
    /// Library directories for `LD_LIBRARY_PATH`, besides the two above.
    pub library_dirs: Vec<String>,
    pub env: Vec<(String, String)>,
    /// `--nvccli`: the program and its arguments, run with the root's
    /// path last once the root is assembled.
    pub nvccli: Option<nvccli::Call>,
    pub warnings: Vec<String>,
}

/// Why the GPUs asked for could not be given.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    #[error(transparent)]
    Conf(#[from] vessel_config::conf::ConfError),
    #[error(transparent)]
    List(#[from] liblist::LibListError),
    #[error(transparent)]
    Cdi(#[from] cdi::CdiError),
    #[error(transparent)]
    Nvccli(#[from] nvccli::NvccliError),
}

/// The host's driver files for `opts`, with the job's variables (`env`)
/// choosing the devices (`contain`: the container gets a minimal `/dev`).
/// Reads the linker cache once, the lists from the site's configuration
/// directory, and `/dev`.
pub fn find(
    opts: &GpuOptions,
    contain: bool,
    uid: u32,
    env: &[(OsString, OsString)],
) -> Result<GpuFiles, GpuError> {
    let mut files = GpuFiles::default();
    if !opts.any() {
        return Ok(files);
    }
    let get = |name: &str| {
        env.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.to_string_lossy().into_owned())
    };
    let visible = Visible::from_vars(&get);
    if opts.nvccli {
        files.nvccli = Some(nvccli::call(contain, uid, &get)?);
    }
    // With --nvccli, NVIDIA's tool sets the driver up, not the list.
    let nv_list = opts.nv && !opts.nvccli;
    let vendors: Vec<Vendor> = [(nv_list, Vendor::Nvidia), (opts.rocm, Vendor::Amd)]
        .into_iter()
        .filter_map(|(on, v)| on.then_some(v))
        .collect();
    if !vendors.is_empty() {
        let conf_dir = vessel_config::conf::conf_dir()?;
        let cache = LdCache::read(Path::new("/etc/ld.so.cache"));
        if let Err(e) = &cache {
            tracing::debug!("{}", vessel_sys::error_chain(e));
        }
        let host = driver::Host {
            root: Path::new("/"),
            ld_cache: cache.as_ref().ok(),
        };
        for vendor in vendors {
            let list = LibList::load(vendor, &conf_dir)?;
            let found = driver::find(vendor, &list, &host, opts.compat32, &visible);
            if found.is_empty() {
                files
                    .warnings
                    .push(driver::nothing_found_warning(vendor, &list, cache.is_ok()));
            }
            add_driver(&mut files, found);
        }
    }
    if !opts.devices.is_empty() {
        let edits = cdi::resolve(&opts.devices, &opts.cdi_dirs)?;
        files.cdi_devices.extend(edits.devices);
        files.binds.extend(edits.mounts);
        files.env.extend(edits.env);
        for dir in edits.library_dirs {
            let dir = dir.to_string_lossy().into_owned();
            if !files.library_dirs.contains(&dir) {
                files.library_dirs.push(dir);
            }
        }
    }
    Ok(files)
}

fn add_driver(files: &mut GpuFiles, found: DriverFiles) {
    // A stale cache entry (a driver removed without ldconfig) is left out
    // when the plan links the libraries, not an error: the rest of the
    // driver still works.
    let pair = |l: driver::HostLib| (l.path, l.name);
    files.libs.extend(found.libs.into_iter().map(pair));
    files.libs32.extend(found.libs32.into_iter().map(pair));
    for program in found.programs {
        if let Some(name) = program.file_name() {
            let dst = Path::new("/usr/bin").join(name);
            files.binds.push((program, dst, true));
        }
    }
    for f in found.files {
        files.binds.push((f.clone(), f, true));
    }
    for d in found.devices {
        files.devices.push((d.clone(), d));
    }
}

#[cfg(test)]
pub(crate) mod tests {
    /// A variable lookup over fixed pairs, as the job's environment.
    pub(crate) fn vars(
        pairs: &'static [(&'static str, &'static str)],
    ) -> impl Fn(&str) -> Option<String> {
        move |name: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        }
    }
}
