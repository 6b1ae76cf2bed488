//! `vessel __fakeroot CMD…`: runs a host program as fake root, for the
//! build steps that need root's view of the files without a container
//! (debootstrap; packing, unpacking and removing trees whose files belong
//! to the user's subordinate ids). Real root runs it directly.

use anyhow::{Context, Result};

use crate::cli::FakerootRunArgs;

pub fn run(args: FakerootRunArgs) -> Result<u8> {
    let status = vessel_runtime::fakeroot::run_on_host(&args.command).with_context(|| {
        format!(
            "could not run {} as fake root",
            args.command[0].to_string_lossy()
        )
    })?;
    Ok(status.clamp(0, 255) as u8)
}
