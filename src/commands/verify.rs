//! `verify`: checks a SIF image's signatures with the local and global
//! keyrings (PGP) or a PEM public key (DSSE), printing each signer and the
//! objects it covers, as Apptainer prints them, or the same as JSON.

use std::collections::BTreeSet;
use std::fs::File;

use anyhow::{anyhow, Context, Result};
use serde_json::json;
use vessel_config::{vars, Tool};
use vessel_sif::{Link, Sif};
use vessel_sign::{
    DssePublicKey, Error as SignError, Keyring, Report, SignatureResult, Signer, VerifyKeys,
    VerifyOptions, VerifyScope,
};
use vessel_sys::Hinted;

use crate::cli::VerifyArgs;

use super::key::keys_dir;
use super::pull::env_value;

pub fn run(tool: Tool, args: VerifyArgs) -> Result<u8> {
    let env = super::flags::Env::new(tool, "verify");
    for (flag, given, var) in [
        (
            "--certificate",
            args.certificate.is_some(),
            vars::VERIFY_CERTIFICATE,
        ),
        (
            "--certificate-intermediates",
            args.certificate_intermediates.is_some(),
            vars::VERIFY_INTERMEDIATES,
        ),
        (
            "--certificate-roots",
            args.certificate_roots.is_some(),
            vars::VERIFY_ROOTS,
        ),
    ] {
        env.refuse(flag, given, Some(var), false)?;
    }
    env.refuse(
        "--ocsp-verify",
        args.ocsp_verify,
        Some(vars::VERIFY_OCSP),
        true,
    )?;
    env.warn("--url", args.url.is_some(), None);
    // --local (APPTAINER_LOCAL_VERIFY) is what Vessel always does.
    let _ = env.flag(args.local, &[vars::LOCAL_VERIFY]);
    let image = &args.image;
    let mut sif = vessel_image::open_sif(image)?;
    let user = Keyring::new(keys_dir(tool, args.keysdir.clone()));
    let global = Keyring::global(vessel_config::conf::conf_dir()?);

    let mut global_fps = BTreeSet::new();
    let keys = match args
        .key
        .clone()
        .or_else(|| env_value(tool, vars::VERIFY_KEY).map(Into::into))
    {
        Some(pem_path) => {
            tracing::info!(
                "Verifying image with key material from '{}'",
                pem_path.display()
            );
            let pem = std::fs::read_to_string(&pem_path)
                .with_context(|| format!("cannot read the public key {}", pem_path.display()))?;
            let key = DssePublicKey::from_pem(&pem).with_context(|| {
                format!("failed to load key material from {}", pem_path.display())
            })?;
            VerifyKeys {
                pgp: None,
                dsse: vec![key],
            }
        }
        None => {
            tracing::info!("Verifying image with PGP key material");
            // Vessel never asks a key server: verification uses the user's
            // and the site's keyrings, as Apptainer's --local does.
            let mut keys = user.public_keys().context("reading your public keyring")?;
            let site = global
                .public_keys()
                .context("reading the global public keyring")?;
            for k in &site {
                global_fps.insert(vessel_sign::keyring::fingerprint(&k.primary_key));
            }
            keys.extend(site);
            VerifyKeys {
                pgp: Some(keys),
                dsse: Vec::new(),
            }
        }
    };
    // As Apptainer: `--all` means every object on its own only for legacy
    // signatures (current ones already cover every group), and legacy
    // verification with nothing chosen checks the primary partition, which
    // is what Singularity 3.x signed.
    let legacy = args.legacy_insecure;
    let default_legacy =
        args.objects.group_id.is_none() && args.objects.sif_id.is_none() && !args.all;
    let scope = match (args.objects.group_id, args.objects.sif_id) {
        (Some(g), _) => VerifyScope::Group(g),
        (_, Some(id)) => VerifyScope::Object(id),
        _ if legacy && args.all => VerifyScope::LegacyAll,
        _ if legacy => VerifyScope::Object(sif.primary_partition().map(|d| d.id).ok_or_else(|| {
            anyhow!("{} has no primary partition to verify legacy signatures of; choose objects with --sif-id or --group-id", image.display())
        })?),
        _ => VerifyScope::AllGroups,
    };
    let opts = VerifyOptions { legacy, scope };
    let report =
        vessel_sign::verify(&mut sif, &keys, &opts).context("failed to verify container")?;

    if args.json {
        let out = serde_json::to_string_pretty(&json_report(&sif, &report))?;
        super::write_stdout(format!("{out}\n").as_bytes())?;
    } else {
        let mut out = String::new();
        for r in &report.results {
            text_result(&mut out, &sif, r, &global_fps);
        }
        super::write_stdout(out.as_bytes())?;
    }
    match report.first_error() {
        None => {
            if !args.json {
                tracing::info!("Verified signature(s) from image '{}'", image.display());
            }
            Ok(0)
        }
        Some(e @ SignError::NoSignature(vessel_sign::Target::Object(_))) if legacy && default_legacy => Err(anyhow!(
            "failed to verify container: {e} (a legacy signature over a whole object group is checked with --group-id N)"
        )),
        Some(e @ SignError::UnknownKey { .. }) => Err(Hinted::new(
            format!("failed to verify container: {e}"),
            format!(
                "to trust the signer, import their public key with `{} key import KEY.asc`",
                tool.command()
            ),
        )
        .into()),
        Some(e) => Err(anyhow!("failed to verify container: {e}")),
    }
}

/// One signature in Apptainer's text layout: signer, then the table of
/// objects it verified, then its error if any.
fn text_result(out: &mut String, sif: &Sif<File>, r: &SignatureResult, global: &BTreeSet<String>) {
    match &r.signer {
        Some(Signer::Pgp(p)) => {
            let prefix = if global.contains(&p.fingerprint) {
                "[GLOBAL]"
            } else {
                "[LOCAL]"
            };
            let name = p.user_id.as_deref().unwrap_or("(no user ID)");
            out.push_str(&format!("{prefix:<18} Signing entity: {name}\n"));
            out.push_str(&format!("{prefix:<18} Fingerprint: {}\n", p.fingerprint));
        }
        Some(Signer::Dsse { keyids }) => {
            for k in keyids {
                out.push_str(&format!("{:<18} Signing key: {k}\n", "[KEY]"));
            }
        }
        None => {}
    }
    if !r.objects.is_empty() {
        out.push_str("Objects verified:\n");
        out.push_str(&format!(
            "{:<4}|{:<8}|{:<8}|{}\n",
            "ID", "GROUP", "LINK", "TYPE"
        ));
        out.push_str("------------------------------------------------\n");
        for &id in &r.objects {
            let Ok(d) = sif.descriptor(id) else { continue };
            let group = d.group().map_or("NONE".to_string(), |g| g.to_string());
            let link = match d.link() {
                Link::None => "NONE".to_string(),
                Link::Group(g) => format!("{g} (G)"),
                Link::Object(o) => o.to_string(),
            };
            out.push_str(&format!("{id:<4}|{group:<8}|{link:<8}|{}\n", d.data_type));
        }
    }
    if let Err(e) = &r.status {
        out.push_str(&format!(
            "\nError encountered during signature verification: {e}\n"
        ));
    }
}

/// Apptainer's `verify --json` document: the number of signatures and one
/// entry per object checked, with whether its data verified.
fn json_report(sif: &Sif<File>, report: &Report) -> serde_json::Value {
    let mut keys = Vec::new();
    for r in &report.results {
        let (name, fp, key_check) = match &r.signer {
            Some(Signer::Pgp(p)) => (
                p.user_id.clone().unwrap_or_else(|| "unknown".into()),
                p.fingerprint.to_lowercase(),
                true,
            ),
            Some(Signer::Dsse { keyids }) => ("unknown".into(), keyids.join(","), true),
            None => ("unknown".into(), String::new(), false),
        };
        let entry = |id: u32, data_check: bool| {
            let partition = sif
                .descriptor(id)
                .map(|d| d.data_type.to_string())
                .unwrap_or_default();
            json!({ "Signer": {
                "Partition": partition,
                "Name": name,
                "Fingerprint": fp,
                "KeyLocal": key_check,
                "KeyCheck": key_check,
                "DataCheck": data_check,
            }})
        };
        for &id in &r.objects {
            keys.push(entry(id, true));
        }
        if let Err(
            SignError::ObjectModified { id, .. } | SignError::DescriptorModified { id, .. },
        ) = &r.status
        {
            keys.push(entry(*id, false));
        }
    }
    json!({ "Signatures": report.results.len(), "SignerKeys": keys })
}
