//! `key`: the user's OpenPGP keyrings (`~/.apptainer/keys/pgp-public` and
//! `pgp-secret`) and the global public keyring beside `vessel.conf`, which
//! the run-time execution control list verifies with.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use vessel_config::Tool;
use vessel_sign::{KeyInfo, Keyring, NewKey};
use vessel_sys::Hinted;

use crate::cli::{KeyArgs, KeyCommand};
use crate::prompt::{answer, read_secret};

/// The user's key directory: `--keysdir`, `$APPTAINER_KEYSDIR`, else
/// `~/.apptainer/keys`.
pub fn keys_dir(tool: Tool, flag: Option<PathBuf>) -> PathBuf {
    vessel_config::paths::keys_dir(tool, flag, &vessel_config::process_var)
}

/// The keyring the command works on: the user's, or with `--global` the
/// system's public keyring.
fn keyring(tool: Tool, args: &KeyArgs) -> Result<Keyring> {
    Ok(if args.global {
        Keyring::global(vessel_config::conf::conf_dir()?)
    } else {
        Keyring::new(keys_dir(tool, args.keysdir.clone()))
    })
}

pub fn run(tool: Tool, args: KeyArgs) -> Result<u8> {
    let server = match &args.command {
        KeyCommand::Search { .. } => Some("search"),
        KeyCommand::Pull { .. } => Some("pull"),
        KeyCommand::Push { .. } => Some("push"),
        _ => None,
    };
    if let Some(sub) = server {
        let why = crate::compat::REFUSED_COMMANDS
            .iter()
            .find(|(c, _)| *c == format!("key {sub}"))
            .map_or(crate::compat::NOT_YET, |(_, why)| why);
        bail!("key {sub} {why}");
    }
    let ring = keyring(tool, &args)?;
    let global = args.global;
    match args.command {
        KeyCommand::Newpair {
            name,
            email,
            comment,
            password,
            bit_length,
            push,
        } => {
            if global {
                bail!("key newpair makes a key pair in your own keyrings; leave out --global");
            }
            if push {
                bail!(crate::compat::refusal("key newpair", "--push"));
            }
            let name = answer(name, "Enter your name (e.g., John Doe) : ", "--name")?;
            let email = answer(
                email,
                "Enter your email address (e.g., john.doe@example.com) : ",
                "--email",
            )?;
            let comment = answer(
                comment,
                "Enter optional comment (e.g., development keys) : ",
                "--comment",
            )?;
            let passphrase = match password {
                Some(p) => p,
                None => read_secret("Enter a passphrase : ", "--password")?,
            };
            if passphrase.is_empty() {
                tracing::warn!(
                    "the secret key has no passphrase: anyone who can read {} can sign as you",
                    ring.secret_path().display()
                );
            }
            print!("Generating Entity and OpenPGP Key Pair... ");
            std::io::stdout().flush()?;
            let key = ring.generate(&NewKey {
                name,
                email,
                comment,
                passphrase,
                bits: bit_length,
            });
            let key = match key {
                Ok(k) => k,
                Err(e) => {
                    println!("failed");
                    return Err(e).context("creating the key pair failed");
                }
            };
            println!("done");
            let info = vessel_sign::keyring::secret_info(&key);
            tracing::info!(
                "new key {} stored in {}",
                info.fingerprint,
                ring.dir().display()
            );
            Ok(0)
        }
        KeyCommand::List { secret } => {
            let (path, keys) = if secret {
                (ring.secret_path(), ring.list_secret())
            } else {
                (ring.public_path(), ring.list_public())
            };
            let keys = keys.context("while listing keys")?;
            let kind = if secret { "Private" } else { "Public" };
            let mut out = format!("{kind} key listing ({}):\n\n", path.display());
            for (i, k) in keys.iter().enumerate() {
                out.push_str(&describe(i, k));
            }
            super::write_stdout(out.as_bytes())?;
            Ok(0)
        }
        KeyCommand::Import { new_password, file } => {
            let data = std::fs::read(&file)
                .with_context(|| format!("cannot read the key file {}", file.display()))?;
            let data = if new_password {
                repassword(&data)?
            } else {
                data
            };
            let imported = ring
                .import(&data)
                .map_err(|e| match e {
                    vessel_sign::Error::Pgp(why) => anyhow::anyhow!(
                        "{} is not an OpenPGP key file, armored or binary ({why})",
                        file.display()
                    ),
                    other => global_hint(global, &ring, other),
                })
                .with_context(|| format!("key import from {} failed", file.display()))?;
            if imported.is_empty() {
                bail!("{} holds no OpenPGP key", file.display());
            }
            for k in imported {
                let what = if k.secret { "secret" } else { "public" };
                println!(
                    "Key with fingerprint {} successfully added to the {what} keyring",
                    k.fingerprint
                );
            }
            Ok(0)
        }
        KeyCommand::Export {
            secret,
            armor,
            fingerprint,
            file,
        } => {
            let data = if secret {
                ring.export_secret(&fingerprint, armor)
            } else {
                ring.export_public(&fingerprint, armor)
            }
            .context("key export failed")?;
            write_new_file(&file, &data, secret)?;
            let what = if secret { "Secret" } else { "Public" };
            println!(
                "{what} key with fingerprint {} correctly exported to file: {}",
                fingerprint.to_uppercase(),
                file.display()
            );
            Ok(0)
        }
        KeyCommand::Remove {
            public,
            secret,
            both,
            fingerprint,
        } => {
            if (secret || both) && global {
                bail!("the global keyring holds public keys only: leave out --secret/--both");
            }
            if both || (public && secret) {
                let p = ring.remove_public(&fingerprint);
                let s = ring.remove_secret(&fingerprint);
                if let (Err(p), Err(s)) = (&p, &s) {
                    bail!("unable to remove either the public key ({p}) or the secret key ({s})");
                }
            } else if secret {
                ring.remove_secret(&fingerprint)
                    .context("unable to remove the secret key")?;
            } else {
                ring.remove_public(&fingerprint)
                    .map_err(|e| global_hint(global, &ring, e))
                    .context("unable to remove the public key")?;
            }
            Ok(0)
        }
        KeyCommand::Search { .. } | KeyCommand::Pull { .. } | KeyCommand::Push { .. } => {
            unreachable!("refused above")
        }
    }
}

/// A refused change of the global keyring says who may make it.
fn global_hint(global: bool, ring: &Keyring, e: vessel_sign::Error) -> anyhow::Error {
    match e {
        vessel_sign::Error::Io(io)
            if global && io.kind() == std::io::ErrorKind::PermissionDenied =>
        {
            Hinted::new(
                format!(
                    "only an administrator can change the global keyring {} ({io})",
                    ring.public_path().display()
                ),
                "run the command as root",
            )
            .into()
        }
        other => other.into(),
    }
}

/// One entry of `key list`, laid out as Apptainer lays it out.
fn describe(index: usize, k: &KeyInfo) -> String {
    let label = format!("{index})");
    let pad = " ".repeat(label.len());
    let mut rows: Vec<(&str, String)> = k.user_ids.iter().map(|u| ("User:", u.clone())).collect();
    rows.push(("Creation time:", go_time(k.created)));
    rows.push(("Fingerprint:", k.fingerprint.clone()));
    rows.push(("Length (in bits):", k.bits.to_string()));
    let width = rows.iter().map(|(l, _)| l.len()).max().unwrap_or(0) + 2;
    let mut out = String::new();
    for (i, (l, v)) in rows.iter().enumerate() {
        let first = if i == 0 { &label } else { &pad };
        out.push_str(&format!("{first}  {l:width$}{v}\n"));
    }
    out.push('\n');
    out
}

/// A time as Go's `time.Time` prints it (UTC).
fn go_time(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| {
            d.format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second] +0000 UTC"
            ))
            .ok()
        })
        .unwrap_or_else(|| t.to_string())
}

/// Re-protects the secret keys in `data` with a new passphrase asked for
/// on the terminal (or standard input): `key import --new-password`.
fn repassword(data: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for key in vessel_sign::keyring::parse_keys(data)? {
        match key {
            vessel_sign::PublicOrSecret::Secret(mut k) => {
                let info = vessel_sign::keyring::secret_info(&k);
                let old = if info.encrypted {
                    read_secret(
                        &format!("Enter the passphrase of key {} : ", info.fingerprint),
                        "standard input",
                    )?
                } else {
                    String::new()
                };
                let new = read_secret("Enter a new passphrase : ", "standard input")?;
                vessel_sign::keyring::change_passphrase(&mut k, &old, &new)?;
                out.extend(vessel_sign::keyring::armor_secret(&k)?);
            }
            vessel_sign::PublicOrSecret::Public(k) => {
                out.extend(vessel_sign::keyring::armor_public(&k)?)
            }
        }
    }
    Ok(out)
}

/// Writes an exported key to a file that must not exist yet (as Apptainer
/// refuses to overwrite), private to the user for secret keys.
fn write_new_file(path: &Path, data: &[u8], secret: bool) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(if secret { 0o600 } else { 0o644 })
        .open(path)
        .with_context(|| {
            format!(
                "cannot create {} (an existing file is never overwritten)",
                path.display()
            )
        })?;
    f.write_all(data)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}
