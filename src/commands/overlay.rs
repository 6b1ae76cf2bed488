//! `overlay create`: a writable ext3 overlay image, or an overlay partition
//! added to a SIF, made by `vessel_image::overlay_image`.

use anyhow::Result;
use vessel_config::{vars, Tool};
use vessel_image::overlay_image::{self, CreateOptions, Created};

use super::flags::Env;
use crate::cli::{OverlayArgs, OverlayCommand};

pub fn run(tool: Tool, args: OverlayArgs) -> Result<u8> {
    match args.command {
        OverlayCommand::Create {
            size,
            create_dir,
            fakeroot,
            sparse,
            tmpdir,
            image,
        } => {
            let env = Env::new(tool, "overlay create");
            let opts = CreateOptions {
                size_mib: size,
                sparse,
                create_dirs: create_dir,
                fakeroot: env.flag(fakeroot, &[vars::FAKEROOT]),
                tmp_dir: tmpdir.unwrap_or_else(|| {
                    vessel_config::paths::tmp_dir(tool, &vessel_config::process_var)
                }),
                search_path: vessel_config::process_var_os("PATH"),
                program: tool.command().to_string(),
            };
            match overlay_image::create(&image, &opts)? {
                Created::ImageFile => {
                    tracing::debug!("made the overlay image {}", image.display());
                }
                Created::SifPartition { id } => {
                    if opts.sparse {
                        tracing::info!(
                            "--sparse applies to overlay image files: the partition added to {} is allocated",
                            image.display()
                        );
                    }
                    tracing::debug!("added the overlay partition {id} to {}", image.display());
                }
            }
            Ok(0)
        }
    }
}
