//! Hidden commands that other parts of Vessel, its tests and benchmarks
//! run as separate processes, because they create namespaces, which only a
//! single-threaded process may do.
//!
//! `vessel __fakeroot CMD…` runs a host program as fake root, for the build
//! steps that need root's view of the files without a container
//! (debootstrap; packing, unpacking and removing trees whose files belong
//! to the user's subordinate ids). Real root runs it directly.
//!
//! `vessel __mount-image IMAGE DIR CMD…` serves an image's SquashFS
//! through Vessel's FUSE server at DIR while CMD runs.

use anyhow::{anyhow, Context, Result};

use crate::cli::{FakerootRunArgs, MountImageArgs};

pub fn fakeroot(args: FakerootRunArgs) -> Result<u8> {
    let status = vessel_runtime::fakeroot::run_on_host(&args.command).with_context(|| {
        format!(
            "could not run {} as fake root",
            args.command[0].to_string_lossy()
        )
    })?;
    Ok(status.clamp(0, 255) as u8)
}

pub fn mount_image(args: MountImageArgs) -> Result<u8> {
    let image = vessel_image::open_image(&args.image)?;
    let root = image
        .squashfs_root()?
        .ok_or_else(|| anyhow!("{} is a directory, not an image", args.image.display()))?;
    let (offset, size) = (root.offset, root.size);
    let file = std::fs::File::open(&args.image)
        .with_context(|| format!("could not open {}", args.image.display()))?;
    let status = vessel_runtime::fuse::run_mounted(&file, offset, size, &args.dir, &args.command)
        .with_context(|| format!("could not serve {}", args.image.display()))?;
    Ok(status.clamp(0, 255) as u8)
}
