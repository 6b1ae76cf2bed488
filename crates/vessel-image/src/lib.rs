//! Container images as users name them: a SIF file, a bare SquashFS file or
//! a sandbox directory. This crate opens them with clear errors for
//! everything that is not an image, and reads the `/.singularity.d`
//! metadata that `inspect` shows.

mod extract;
mod open;
mod rootfs;
mod squashfs;

pub mod inspect;
pub mod overlay_image;

pub use extract::{extract, ExtractError, ExtractOptions, ExtractStats, MAX_DEPTH};
pub use open::{
    check_regular_file, open_image, open_sif, open_sif_rw, Image, OpenError, SquashfsRoot,
};
pub use rootfs::RootDir;
