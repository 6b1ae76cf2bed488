//! `sign`: adds a PGP clear-signed or DSSE signature per object group (or
//! over the chosen group or object) to a SIF image, in place.

use std::io::IsTerminal;

use anyhow::{bail, Context, Result};
use vessel_config::Tool;
use vessel_sign::{DsseSigner, Keyring, SignKey, SignScope};

use crate::cli::SignArgs;

use super::key::keys_dir;
use crate::prompt::{answer, read_secret};

pub fn run(tool: Tool, mut args: SignArgs) -> Result<u8> {
    let env = super::flags::Env::new(tool, "sign");
    args.key = env
        .value(
            args.key.map(|k| k.to_string_lossy().into_owned()),
            &[vessel_config::vars::SIGN_KEY],
        )
        .map(Into::into);
    let image = &args.image;
    let mut sif = vessel_image::open_sif_rw(image)?;
    let scope = match (args.objects.group_id, args.objects.sif_id) {
        (Some(g), _) => SignScope::Group(g),
        (_, Some(id)) => SignScope::Objects(vec![id]),
        _ => SignScope::AllGroups,
    };
    // Checked before any passphrase is asked for.
    match scope {
        SignScope::Group(g) if !sif.descriptors().any(|d| d.group() == Some(g)) => bail!(
            "{} has no object group {g} (see `{} sif list {0}`)",
            image.display(),
            tool.command()
        ),
        SignScope::Objects(ref ids) if sif.descriptor(ids[0]).is_err() => bail!(
            "{} has no object {} (see `{} sif list {0}`)",
            image.display(),
            ids[0],
            tool.command()
        ),
        _ => {}
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp();

    let made = if let Some(pem_path) = &args.key {
        tracing::info!(
            "Signing image with key material from '{}'",
            pem_path.display()
        );
        let pem = std::fs::read_to_string(pem_path)
            .with_context(|| format!("cannot read the private key {}", pem_path.display()))?;
        let signer = DsseSigner::from_pem(&pem)
            .with_context(|| format!("failed to load key material from {}", pem_path.display()))?;
        vessel_sign::sign(&mut sif, &SignKey::Dsse(&[signer]), &scope, now)
    } else {
        tracing::info!("Signing image with PGP key material");
        let ring = Keyring::new(keys_dir(tool, args.keysdir.clone()));
        let keys = ring.secret_keys()?;
        let infos: Vec<_> = keys.iter().map(vessel_sign::keyring::secret_info).collect();
        let index = match (args.keyidx, keys.len()) {
            (_, 0) => bail!(
                "no secret key in {}: create one with `{cmd} key newpair` or import one with `{cmd} key import FILE`",
                ring.secret_path().display(),
                cmd = tool.command()
            ),
            (Some(i), n) if i >= n => bail!(
                "--keyidx {i}: the secret keyring holds {n} key(s), numbered from 0 (see `{} key list --secret`)",
                tool.command()
            ),
            (Some(i), _) => i,
            (None, 1) => 0,
            (None, n) => choose(n, &infos, tool)?,
        };
        let key = &keys[index];
        let passphrase = if infos[index].encrypted {
            read_secret("Enter key passphrase : ", "the passphrase of the key")?
        } else {
            String::new()
        };
        vessel_sign::sign(
            &mut sif,
            &SignKey::Pgp {
                key,
                passphrase: &passphrase,
            },
            &scope,
            now,
        )
    };
    made.context("failed to sign the container")?;
    tracing::info!(
        "Signature created and applied to image '{}'",
        image.display()
    );
    Ok(0)
}

/// Asks which of several secret keys to use, as Apptainer does; without a
/// terminal the user must say with `--keyidx`.
fn choose(n: usize, infos: &[vessel_sign::KeyInfo], tool: Tool) -> Result<usize> {
    if !std::io::stdin().is_terminal() {
        bail!(
            "the secret keyring holds {n} keys: choose one with --keyidx N (N from `{} key list --secret`)",
            tool.command()
        );
    }
    for (i, k) in infos.iter().enumerate() {
        println!(
            "{i}) U: {}",
            k.user_ids
                .first()
                .map(String::as_str)
                .unwrap_or("(no user id)")
        );
        println!("   F: {}", k.fingerprint);
    }
    let answer = answer(
        None,
        &format!("Enter # of private key to use (0-{}) : ", n - 1),
        "--keyidx",
    )?;
    match answer.trim().parse::<usize>() {
        Ok(i) if i < n => Ok(i),
        _ => bail!(
            "`{}` is not a key number between 0 and {}",
            answer.trim(),
            n - 1
        ),
    }
}
