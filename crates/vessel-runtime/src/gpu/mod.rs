//! GPUs in the container: the host's driver libraries, programs and
//! devices, found without running anything (`--nv`, `--rocm`).

pub mod cdi;
pub mod driver;
pub mod ldcache;
pub mod liblist;
