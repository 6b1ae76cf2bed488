//! `cache list|clean`.

use std::io::IsTerminal;

use anyhow::Result;
use vessel_config::Tool;
use vessel_oci::cache::{older_than, Kind};
use vessel_oci::Cache;
use vessel_sys::Hinted;

use crate::cli::{CacheArgs, CacheCommand};

fn kinds(names: &[String]) -> Result<Vec<Kind>> {
    let mut out = Vec::new();
    for n in names {
        match n.as_str() {
            "all" => out.extend([Kind::Blob, Kind::Sif]),
            "blob" | "blobs" => out.push(Kind::Blob),
            "oci" | "sif" => out.push(Kind::Sif),
            "library" | "shub" | "net" | "oras" => {}
            other => {
                return Err(Hinted::new(
                    format!("unknown cache type {other:?}"),
                    "use blob, oci or all",
                )
                .into())
            }
        }
    }
    Ok(out)
}

fn label(k: Kind) -> &'static str {
    match k {
        Kind::Blob => "blob",
        Kind::Sif => "oci",
    }
}

pub fn run(tool: Tool, args: CacheArgs) -> Result<u8> {
    let root = super::pull::cache_root(tool);
    let cache = Cache::new(&root)?;
    match args.command {
        CacheCommand::List { kinds: k, verbose } => {
            let wanted = kinds(&k)?;
            let entries: Vec<_> = cache
                .entries()
                .into_iter()
                .filter(|e| wanted.contains(&e.kind))
                .collect();
            let mut out = String::new();
            if verbose {
                out.push_str(&format!("{:<76} {:>12} {}\n", "NAME", "SIZE", "TYPE"));
                for e in &entries {
                    let name = e.path.file_name().unwrap_or_default().to_string_lossy();
                    out.push_str(&format!("{name:<76} {:>12} {}\n", e.size, label(e.kind)));
                }
            }
            for k in [Kind::Sif, Kind::Blob] {
                if !wanted.contains(&k) {
                    continue;
                }
                let of: Vec<_> = entries.iter().filter(|e| e.kind == k).collect();
                let bytes: u64 = of.iter().map(|e| e.size).sum();
                let what = if k == Kind::Sif {
                    "OCI images converted to SIF"
                } else {
                    "blobs"
                };
                out.push_str(&format!(
                    "There are {} {what} using {:.2} MiB of space\n",
                    of.len(),
                    bytes as f64 / 1048576.0
                ));
            }
            out.push_str(&format!("Cache directory: {}\n", cache.root().display()));
            super::write_stdout(out.as_bytes())?;
        }
        CacheCommand::Clean {
            kinds: k,
            days,
            dry_run,
            force,
        } => {
            let wanted = kinds(&k)?;
            let doomed: Vec<_> = cache
                .entries()
                .into_iter()
                .filter(|e| wanted.contains(&e.kind) && days.is_none_or(|d| older_than(e, d)))
                .collect();
            if !dry_run && !force && std::io::stdin().is_terminal() {
                let question =
                    format!("This will delete {} cache entries. Continue?", doomed.len());
                if !crate::prompt::confirm(&question)? {
                    tracing::info!("Cache clean cancelled");
                    return Ok(0);
                }
            }
            let mut removed = 0;
            for e in &doomed {
                if dry_run {
                    println!("would remove {} ({} bytes)", e.path.display(), e.size);
                } else if cache.remove(e)? {
                    removed += 1;
                } else {
                    tracing::warn!("{} is in use by another pull, kept", e.path.display());
                }
            }
            if !dry_run {
                tracing::info!("Removed {removed} cache entries");
            }
        }
    }
    Ok(0)
}
