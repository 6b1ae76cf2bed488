use anyhow::{anyhow, Context, Result};
use vessel_image::inspect::{self, Request};

use crate::cli::InspectArgs;

pub fn run(args: InspectArgs) -> Result<u8> {
    let req = Request {
        labels: args.labels,
        deffile: args.deffile,
        runscript: args.runscript,
        startscript: args.startscript,
        test: args.test,
        environment: args.environment,
        helpfile: args.helpfile,
        list_apps: args.list_apps,
        app: args.app,
        all: args.all,
        json: args.json,
    }
    .normalized();
    let mut image =
        vessel_image::open_image(&args.image).map_err(|e| anyhow!("Failed to open image {e}"))?;
    let meta = inspect::inspect(&mut image, &req)
        .with_context(|| format!("could not inspect {}", args.image.display()))?;
    let text = if req.json {
        inspect::render_json(&meta)
    } else {
        inspect::render_text(&meta, &req)
    };
    super::write_stdout(text.as_bytes())?;
    Ok(0)
}

/// `run-help`: the author's help text (`%help`), or a note that there is none.
pub fn run_help(args: crate::cli::RunHelpArgs) -> Result<u8> {
    let req = Request {
        helpfile: true,
        app: args.app,
        ..Request::default()
    }
    .normalized();
    let mut image =
        vessel_image::open_image(&args.image).map_err(|e| anyhow!("Failed to open image {e}"))?;
    let meta = inspect::inspect(&mut image, &req)
        .with_context(|| format!("could not read the help of {}", args.image.display()))?;
    let text = inspect::render_text(&meta, &req);
    if text.is_empty() {
        super::write_stdout(b"No help sections were defined for this image\n")?;
    } else {
        super::write_stdout(text.as_bytes())?;
    }
    Ok(0)
}
