//! `build`: from a definition file (through `vessel-build`), or from an
//! image source (a pull to a chosen file).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use vessel_config::{vars, Tool};
use vessel_sys::Hinted;

use crate::cli::BuildArgs;
use crate::commands::flags::Env;
use crate::commands::pull::{fetch, install, is_uri, refuse_docker_host, Source};

/// Refuses the flags (and variables) Vessel does not honour, warns about
/// `--no-cleanup`, and folds the variables of the others into `args`.
fn decide(tool: Tool, mut args: BuildArgs) -> Result<BuildArgs> {
    let env = Env::new(tool, "build");
    let refused_bools = [
        ("--json", args.json, Some(vars::JSON)),
        ("--data", args.data, Some(vars::DATA)),
        ("--encrypt", args.encrypt, None),
        (
            "--passphrase",
            args.passphrase,
            Some(vars::ENCRYPTION_PASSPHRASE),
        ),
        ("--nvccli", args.nvccli, Some(vars::NVCCLI)),
        (
            "--reproducible",
            args.reproducible,
            Some(vars::REPRODUCIBLE),
        ),
        (
            "--ignore-subuid",
            args.ignore_subuid,
            Some(vars::IGNORE_SUBUID),
        ),
        (
            "--ignore-userns",
            args.ignore_userns,
            Some(vars::IGNORE_USERNS),
        ),
        ("--remote", args.remote, None),
    ];
    for (flag, given, var) in refused_bools {
        env.refuse(flag, given, var, true)?;
    }
    env.refuse(
        "--pem-path",
        args.pem_path.is_some(),
        Some(vars::ENCRYPTION_PEM_PATH),
        false,
    )?;
    env.refuse("--pem-path", false, Some(vars::ENCRYPTION_PEM_DATA), false)?;
    super::pull::refuse_library(&env, &args.library)?;
    // The bare BUILDKIT_HOST, like DOCKER_HOST, belongs to its own tool.
    env.refuse(
        "--buildkit-host",
        args.buildkit_host.is_some(),
        Some(vars::BUILDKIT_HOST),
        false,
    )?;
    refuse_docker_host(&env, &args.extra)?;
    env.warn("--no-cleanup", args.no_cleanup, Some(vars::NO_CLEANUP));
    // What Vessel always does: builds run unprivileged, in a user
    // namespace, as fake root, without fakeroot(1) or PRoot.
    let _ = env.flag(
        args.userns || args.fakeroot || args.ignore_fakeroot_command || args.ignore_proot,
        &[
            vars::FAKEROOT,
            vars::IGNORE_FAKEROOT_COMMAND,
            vars::IGNORE_PROOT,
        ],
    );
    args.force = env.flag(args.force, &[vars::FORCE]);
    args.sandbox = env.flag(args.sandbox, &[vars::SANDBOX]);
    args.update = env.flag(args.update, &[vars::UPDATE]);
    args.notest = env.flag(args.notest, &[vars::NOTEST]);
    args.fix_perms = env.flag(args.fix_perms, &[vars::FIXPERMS]);
    args.writable_tmpfs = env.flag(args.writable_tmpfs, &[vars::WRITABLE_TMPFS]);
    args.registry.disable_cache = env.flag(args.registry.disable_cache, &[vars::DISABLE_CACHE]);
    if args.section.is_empty() {
        if let Some(s) = env.value(None, &[vars::SECTION]) {
            args.section = s.split(',').map(|s| s.trim().to_string()).collect();
        }
    }
    args.mksquashfs_args = env.value(args.mksquashfs_args, &[vars::MKSQUASHFS_ARGS]);
    args.arch = env.value(args.arch, &[vars::BUILD_ARCH]);
    args.arch_variant = env.value(args.arch_variant, &[vars::BUILD_ARCH_VARIANT]);
    // As Apptainer's MOUNT, added to the flag's.
    if let Some(m) = env.value(None, &[vars::MOUNT]) {
        args.mount.push(m);
    }
    Ok(args)
}

pub fn run(tool: Tool, args: BuildArgs) -> Result<u8> {
    let args = decide(tool, args)?;
    const SECTIONS: [&str; 9] = [
        "setup",
        "files",
        "post",
        "environment",
        "labels",
        "runscript",
        "test",
        "none",
        "all",
    ];
    if let Some(bad) = args
        .section
        .iter()
        .find(|s| !SECTIONS.contains(&s.as_str()))
    {
        bail!(
            "--section {bad}: not a section that can be selected (use {})",
            SECTIONS.join(", ")
        );
    }
    if args.update {
        if !args.sandbox || !args.output.is_dir() {
            return Err(Hinted::new(
                format!(
                    "--update runs a definition over an existing sandbox, and {} is not a sandbox directory",
                    args.output.display()
                ),
                "build with --sandbox into an existing directory",
            )
            .into());
        }
        return from_definition(tool, &args);
    }
    if args.output.exists() && !args.force {
        return Err(Hinted::new(
            format!("{} already exists", args.output.display()),
            "use --force to overwrite it",
        )
        .into());
    }
    if args.sandbox && args.output.exists() {
        let vessel = std::env::current_exe().context("cannot find the vessel executable")?;
        vessel_build::engine::remove_sandbox(&args.output, &vessel)?;
    }
    let spec = Path::new(&args.spec);
    if !is_uri(&args.spec) && spec.is_file() && !looks_like_image(spec) {
        return from_definition(tool, &args);
    }
    // A local image: a SIF or SquashFS file, or a sandbox directory.
    if !is_uri(&args.spec) && spec.exists() {
        if spec.is_dir() {
            if args.sandbox {
                bail!("{} is already a sandbox directory", spec.display());
            }
            let vessel = std::env::current_exe().context("cannot find the vessel executable")?;
            vessel_build::engine::pack_sandbox(
                spec,
                &args.output,
                &tmp_dir(tool, &args),
                &vessel,
                &squash_options(tool, &args)?,
            )?;
        } else if args.sandbox {
            vessel_build::engine::unpack_to_sandbox(spec, &args.output)?;
            fix_perms_if_asked(&args)?;
        } else {
            install(spec, &args.output)?;
        }
        tracing::info!("Build complete: {}", args.output.display());
        return Ok(0);
    }
    Source::parse(&args.spec)?;
    let fetched = fetch(
        tool,
        &args.registry,
        &args.extra,
        args.arch.as_deref(),
        args.arch_variant.as_deref(),
        &args.spec,
    )?;
    if args.sandbox {
        vessel_build::engine::unpack_to_sandbox(fetched.path(), &args.output)?;
        fix_perms_if_asked(&args)?;
    } else {
        install(fetched.path(), &args.output)?;
    }
    tracing::info!("Build complete: {}", args.output.display());
    Ok(0)
}

/// `--tmpdir`, else `APPTAINER_TMPDIR`, `TMPDIR`, `/tmp`.
fn tmp_dir(tool: Tool, args: &BuildArgs) -> std::path::PathBuf {
    args.extra
        .tmpdir
        .clone()
        .unwrap_or_else(|| vessel_config::paths::tmp_dir(tool, &vessel_config::process_var))
}

fn fix_perms_if_asked(args: &BuildArgs) -> Result<()> {
    if args.fix_perms {
        vessel_build::engine::fix_perms(&args.output)?;
    }
    Ok(())
}

/// The user's `--mksquashfs-args`, and the site's `mksquashfs procs|mem`.
fn squash_options(tool: Tool, args: &BuildArgs) -> Result<vessel_build::engine::SquashOptions> {
    let mksquashfs_args = match &args.mksquashfs_args {
        Some(text) => vessel_build::engine::split_mksquashfs_args(text).map_err(|e| anyhow!(e))?,
        None => Vec::new(),
    };
    let conf = vessel_config::conf::Conf::load_site(tool)?;
    for w in &conf.warnings {
        tracing::warn!("{w}");
    }
    Ok(vessel_build::engine::SquashOptions {
        mksquashfs_args,
        processors: conf.mksquashfs_procs,
        mem: conf.mksquashfs_mem,
    })
}

/// A SIF or SquashFS file given as the spec (a local image to convert).
fn looks_like_image(path: &Path) -> bool {
    vessel_image::open_image(path).is_ok()
}

fn from_definition(tool: Tool, args: &BuildArgs) -> Result<u8> {
    let spec = Path::new(&args.spec);
    let text = std::fs::read_to_string(spec)
        .with_context(|| format!("could not read {}", spec.display()))?;
    let mut build_args = BTreeMap::new();
    if let Some(f) = &args.build_arg_file {
        let t = std::fs::read_to_string(f)
            .with_context(|| format!("could not read {}", f.display()))?;
        build_args.extend(vessel_build::parse_build_arg_file(&t)?);
    }
    for kv in &args.build_arg {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| anyhow!("--build-arg {kv:?}: expected KEY=VALUE"))?;
        build_args.insert(k.to_string(), v.to_string());
    }
    let name = spec.display().to_string();
    let (text, warnings) =
        vessel_build::apply_build_args_in(&name, &text, &build_args, args.warn_unused_build_args)?;
    for w in warnings {
        tracing::warn!("{w}");
    }
    let def = vessel_build::parse(&name, &text)?;
    // Fetched images (temporary ones included) live until the build ends.
    let kept = std::cell::RefCell::new(Vec::new());
    let fetch_source = |uri: &str| -> Result<std::path::PathBuf, String> {
        let fetched = fetch(
            tool,
            &args.registry,
            &args.extra,
            args.arch.as_deref(),
            args.arch_variant.as_deref(),
            uri,
        )
        .map_err(|e| format!("{e:#}"))?;
        let path = fetched.path().to_path_buf();
        kept.borrow_mut().push(fetched);
        Ok(path)
    };
    let tmpdir = tmp_dir(tool, args);
    let opts = vessel_build::engine::BuildOptions {
        output: args.output.clone(),
        sandbox: args.sandbox,
        notest: args.notest,
        update: args.update,
        sections: args.section.clone(),
        fix_perms: args.fix_perms,
        squash: squash_options(tool, args)?,
        tmpdir,
        product: tool.product().to_string(),
        stamp: vessel_build::engine::BuildStamp {
            date: apptainer_date(time::OffsetDateTime::now_utc()),
            // What `--version` says as `apptainer`, whichever name ran the
            // build: the label tells which Apptainer the image was made for.
            version: super::version(Tool::Apptainer),
        },
        binds: args.bind.clone(),
        mounts: args.mount.clone(),
        writable_tmpfs: args.writable_tmpfs,
        gpu_flags: [
            (args.nv, "--nv"),
            (args.rocm, "--rocm"),
            (args.compat32, "--compat32"),
        ]
        .into_iter()
        .filter(|(on, _)| *on)
        .map(|(_, flag)| flag.to_string())
        .collect(),
    };
    let verify = move |image: &Path, wanted: &[String]| verify_fingerprints(tool, image, wanted);
    let tools = vessel_build::engine::Tools {
        vessel: std::env::current_exe().context("cannot find the vessel executable")?,
        fetch: &fetch_source,
        verify: &verify,
    };
    vessel_build::engine::build(&def, &opts, &tools)?;
    tracing::info!("Build complete: {}", args.output.display());
    Ok(0)
}

/// `Fingerprints:`: the base image is signed, verifiably with the user's
/// and the site's public keyrings (no key server is asked), by at least one
/// of `wanted` in every object group; the error says why not.
fn verify_fingerprints(tool: Tool, image: &Path, wanted: &[String]) -> Result<(), String> {
    use vessel_sign::{Keyring, VerifyKeys, VerifyOptions, VerifyScope};
    let summary = (|| -> Result<vessel_sign::SignerSummary> {
        let mut sif = vessel_image::open_sif(image)?;
        let mut keys = Keyring::new(super::key::keys_dir(tool, None)).public_keys()?;
        keys.extend(Keyring::global(vessel_config::conf::conf_dir()?).public_keys()?);
        let keys = VerifyKeys {
            pgp: Some(keys),
            dsse: Vec::new(),
        };
        let opts = VerifyOptions {
            scope: VerifyScope::AllGroups,
            legacy: false,
        };
        Ok(vessel_sign::signer_summary(&mut sif, &keys, &opts)?)
    })()
    .map_err(|e| crate::logging::error_chain(e.as_ref()))?;
    let signed: Vec<&String> = summary
        .all
        .iter()
        .filter(|fp| !summary.unvalidated.contains(fp))
        .collect();
    if signed.iter().any(|fp| wanted.contains(fp)) {
        return Ok(());
    }
    Err(format!(
        "it is signed by {}, none of {}",
        if signed.is_empty() {
            "no key in your or the global keyring".to_string()
        } else {
            signed
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        },
        wanted.join(", ")
    ))
}

/// A time in Apptainer's label format, `Tuesday_1_December_2026_16:02:00_UTC`
/// (`org.label-schema.build-date`). `pull` formats its date inline the same
/// way; it can call this one.
pub(crate) fn apptainer_date(t: time::OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(time::macros::format_description!(
            "[weekday]_[day padding:none]_[month repr:long]_[year]_[hour padding:none]:[minute padding:none]:[second padding:none]_UTC"
        ))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn build_date_in_apptainers_format() {
        let t = time::macros::datetime!(2026-12-01 16:02:05 UTC);
        assert_eq!(
            super::apptainer_date(t),
            "Tuesday_1_December_2026_16:2:5_UTC"
        );
    }
}
