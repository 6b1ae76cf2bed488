//! The run-time execution control list: whether an administrator's
//! `execution group` rules (Apptainer's `ecl.toml` semantics) let a SIF
//! image run, decided from who verifiably signed it.

use std::io::{Read, Seek};
use std::path::{Path, PathBuf};

use pgp::composed::SignedPublicKey;
use vessel_config::conf::{ExecutionControl, ListMode};
use vessel_sif::Sif;

use crate::verify::{signer_summary, VerifyKeys, VerifyOptions, VerifyScope};

/// Why an image may not run.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error(
        "execution control: {image} lies in no execution group's directory; only images in \
         the directories an administrator listed may run"
    )]
    NoGroup { image: PathBuf },
    #[error(
        "execution control: {image} has no valid signature ({reason}); sign it with a key the \
         administrator lists (`vessel sign`), or ask them to add yours"
    )]
    NotVerified { image: PathBuf, reason: String },
    #[error(
        "execution control: {image} is not signed by {needed} of the keys its {mode} group \
         lists ({keys}); signed by: {signers}"
    )]
    NotSignedByRequired {
        image: PathBuf,
        mode: &'static str,
        needed: &'static str,
        keys: String,
        signers: String,
    },
    #[error("execution control: {image} is signed by {fingerprint}, which the blacklist forbids")]
    SignedByForbidden { image: PathBuf, fingerprint: String },
}

/// Decides whether the SIF image `sif`, whose file is `image` (absolute,
/// symlinks resolved), may run, verifying with `keys` (the global keyring).
pub fn check<F: Read + Seek>(
    ecl: &ExecutionControl,
    image: &Path,
    sif: &mut Sif<F>,
    keys: &[SignedPublicKey],
) -> Result<(), Refusal> {
    if !ecl.activated {
        return Ok(());
    }
    let group = ecl.group_for(image).ok_or_else(|| Refusal::NoGroup {
        image: image.to_path_buf(),
    })?;
    let not_verified = |reason: String| Refusal::NotVerified {
        image: image.to_path_buf(),
        reason,
    };
    let scope = if ecl.legacy_insecure {
        // Legacy signatures cover the primary partition on its own.
        let primary = sif
            .primary_partition()
            .map(|d| d.id)
            .ok_or_else(|| not_verified("the image has no primary partition".into()))?;
        VerifyScope::Object(primary)
    } else {
        VerifyScope::AllGroups
    };
    let opts = VerifyOptions {
        scope,
        legacy: ecl.legacy_insecure,
    };
    let verify_keys = VerifyKeys {
        pgp: Some(keys.to_vec()),
        dsse: Vec::new(),
    };
    let summary =
        signer_summary(sif, &verify_keys, &opts).map_err(|e| not_verified(e.to_string()))?;
    let valid = |fp: &String| !summary.unvalidated.contains(fp);
    let signed_all: Vec<&String> = summary.all.iter().filter(|fp| valid(fp)).collect();
    let listed = |fp: &str| {
        group
            .fingerprints
            .iter()
            .any(|g| g.eq_ignore_ascii_case(fp))
    };
    let refuse = |needed: &'static str| Refusal::NotSignedByRequired {
        image: image.to_path_buf(),
        mode: group.mode.name(),
        needed,
        keys: group.fingerprints.join(", "),
        signers: if signed_all.is_empty() {
            "no key in the global keyring".into()
        } else {
            signed_all
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        },
    };
    match group.mode {
        ListMode::Whitelist => {
            if signed_all.iter().any(|fp| listed(fp)) {
                Ok(())
            } else {
                Err(refuse("any"))
            }
        }
        ListMode::Whitestrict => {
            let all_present = group
                .fingerprints
                .iter()
                .all(|want| signed_all.iter().any(|fp| fp.eq_ignore_ascii_case(want)));
            if all_present {
                Ok(())
            } else {
                Err(refuse("all"))
            }
        }
        ListMode::Blacklist => match summary.any.iter().find(|fp| listed(fp)) {
            Some(fp) => Err(Refusal::SignedByForbidden {
                image: image.to_path_buf(),
                fingerprint: fp.clone(),
            }),
            None => Ok(()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{fixture_keyring, open};
    use vessel_config::conf::ExecGroup;

    const FP: &str = "12045C8C0B1004D058DE4BEDA20C27EE7FF7BA84";
    const OTHER: &str = "0123456789ABCDEF0123456789ABCDEF01234567";

    fn ecl(mode: ListMode, fps: &[&str]) -> ExecutionControl {
        ExecutionControl {
            activated: true,
            legacy_insecure: false,
            groups: vec![ExecGroup {
                mode,
                dir: None,
                fingerprints: fps.iter().map(|s| s.to_string()).collect(),
            }],
        }
    }

    fn decide(ecl: &ExecutionControl, name: &str) -> Result<(), Refusal> {
        check(
            ecl,
            Path::new("/images/x.sif"),
            &mut open(name),
            &fixture_keyring(),
        )
    }

    #[test]
    fn whitelist_runs_only_images_signed_by_a_listed_key() {
        let e = ecl(ListMode::Whitelist, &[OTHER, FP]);
        decide(&e, "two-groups-signed-pgp.sif").unwrap();
        let err = decide(&e, "one-group.sif").unwrap_err().to_string();
        assert!(err.contains("no valid signature"), "{err}");
        let e = ecl(ListMode::Whitelist, &[OTHER]);
        let err = decide(&e, "one-group-signed-pgp.sif")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not signed by any of the keys"), "{err}");
    }

    #[test]
    fn whitestrict_needs_every_key_and_blacklist_none() {
        decide(
            &ecl(ListMode::Whitestrict, &[FP]),
            "one-group-signed-pgp.sif",
        )
        .unwrap();
        assert!(decide(
            &ecl(ListMode::Whitestrict, &[FP, OTHER]),
            "one-group-signed-pgp.sif"
        )
        .is_err());
        let err = decide(&ecl(ListMode::Blacklist, &[FP]), "one-group-signed-pgp.sif")
            .unwrap_err()
            .to_string();
        assert!(err.contains("forbids"), "{err}");
        decide(
            &ecl(ListMode::Blacklist, &[OTHER]),
            "one-group-signed-pgp.sif",
        )
        .unwrap();
    }

    #[test]
    fn legacy_signatures_count_only_when_the_list_accepts_them() {
        let mut e = ecl(ListMode::Whitelist, &[FP]);
        let err = decide(&e, "one-group-signed-legacy.sif")
            .unwrap_err()
            .to_string();
        assert!(err.contains("legacy"), "{err}");
        e.legacy_insecure = true;
        decide(&e, "one-group-signed-legacy.sif").unwrap();
        decide(&e, "one-group-signed-legacy-all.sif").unwrap();
        assert!(decide(&e, "one-group.sif").is_err());
    }

    #[test]
    fn unknown_keys_do_not_count_and_inactive_lists_allow_everything() {
        let e = ecl(ListMode::Whitelist, &[FP]);
        let err = check(
            &e,
            Path::new("/i/x.sif"),
            &mut open("one-group-signed-pgp.sif"),
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("not signed by any"), "{err}");
        let mut off = e.clone();
        off.activated = false;
        check(&off, Path::new("/i/x.sif"), &mut open("one-group.sif"), &[]).unwrap();
        let mut placed = e;
        placed.groups[0].dir = Some("/elsewhere".into());
        let err = decide(&placed, "one-group-signed-pgp.sif")
            .unwrap_err()
            .to_string();
        assert!(err.contains("no execution group"), "{err}");
    }
}
