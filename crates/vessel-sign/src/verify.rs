//! Verifying an image's signatures, with the reference `integrity.Verifier`
//! rules: by default one task per object group, each needing at least one
//! signature linked to the group, every one of which must verify and match
//! the group's current objects exactly. Legacy (Singularity 3.x) signatures
//! are considered only when asked for.

use std::collections::BTreeMap;
use std::io::{Read, Seek};

use pgp::composed::SignedPublicKey;
use vessel_sif::{DataType, Descriptor, Sif};

use crate::clearsign::{self, Message, PgpSigner};
use crate::digest::{Digest, DigestAlg};
use crate::dsse::{self, DssePublicKey};
use crate::error::{hex_decode, hex_upper, Error, Result, Target};
use crate::metadata::ImageMetadata;
use crate::select;

/// Signature objects are small; anything larger is refused unread.
const SIGNATURE_LIMIT: u64 = 16 << 20;

/// The keys to verify with.
#[derive(Clone, Debug, Default)]
pub struct VerifyKeys {
    /// OpenPGP public keys (the user's and the global keyring). `None`:
    /// PGP signatures cannot be checked (an error for each one found).
    pub pgp: Option<Vec<SignedPublicKey>>,
    /// Public keys for DSSE envelopes (`--key`). Empty: DSSE signatures
    /// cannot be checked.
    pub dsse: Vec<DssePublicKey>,
}

/// What to verify.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VerifyScope {
    /// Every object group (the default).
    AllGroups,
    /// One object group (`--group-id`).
    Group(u32),
    /// One object (`--sif-id`): checked against its group's signatures, or
    /// with `legacy`, against signatures linked to the object itself.
    Object(u32),
    /// Every grouped non-signature object on its own, with legacy
    /// signatures (`--all`); implies `legacy`.
    LegacyAll,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyOptions {
    pub scope: VerifyScope,
    /// Check legacy `SIFHASH:` signatures instead of current ones
    /// (`--legacy-insecure`).
    pub legacy: bool,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            scope: VerifyScope::AllGroups,
            legacy: false,
        }
    }
}

/// Who made a signature that verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Signer {
    Pgp(PgpSigner),
    /// The DSSE keys (by key ID, see [`DssePublicKey::keyid`]) that
    /// verified the envelope.
    Dsse {
        keyids: Vec<String>,
    },
}

/// The outcome for one signature object.
#[derive(Debug)]
pub struct SignatureResult {
    /// The signature object's ID.
    pub signature: u32,
    /// What the task checked: a group, or a single object.
    pub target: Target,
    pub legacy: bool,
    /// The fingerprint recorded in the signature's descriptor (PGP only),
    /// upper-case hex, whether or not the signature verified.
    pub fingerprint: Option<String>,
    /// The signer, when the signature itself verified.
    pub signer: Option<Signer>,
    /// The objects found intact under this signature, once it fully verified.
    pub objects: Vec<u32>,
    pub status: Result<()>,
}

/// Everything a verification found. It failed if any task found no
/// signature (`problems`) or any signature failed.
#[derive(Debug, Default)]
pub struct Report {
    pub results: Vec<SignatureResult>,
    /// Failures of a whole task, such as a group without signatures.
    pub problems: Vec<Error>,
}

impl Report {
    pub fn is_ok(&self) -> bool {
        self.first_error().is_none()
    }

    pub fn first_error(&self) -> Option<&Error> {
        self.problems
            .first()
            .or_else(|| self.results.iter().find_map(|r| r.status.as_ref().err()))
    }

    /// The report if everything verified, else the first failure.
    pub fn into_result(mut self) -> Result<Report> {
        if !self.problems.is_empty() {
            return Err(self.problems.remove(0));
        }
        if let Some(r) = self.results.iter_mut().find(|r| r.status.is_err()) {
            return Err(std::mem::replace(&mut r.status, Ok(())).unwrap_err());
        }
        Ok(self)
    }
}

/// One unit of verification.
enum Task {
    /// Current-format signatures of a group, over all its objects
    /// (`subset` false) or over some of them.
    Group {
        group: u32,
        target: Target,
        ods: Vec<Descriptor>,
        subset: bool,
    },
    /// Legacy signatures linked to a group: one digest over all its data.
    LegacyGroup { group: u32, ods: Vec<Descriptor> },
    /// Legacy signatures linked to one object.
    LegacyObject { od: Box<Descriptor> },
}

impl Task {
    fn target(&self) -> Target {
        match self {
            Task::Group { target, .. } => *target,
            Task::LegacyGroup { group, .. } => Target::Group(*group),
            Task::LegacyObject { od } => Target::Object(od.id),
        }
    }
}

fn tasks<F>(sif: &Sif<F>, opts: &VerifyOptions) -> Result<Vec<Task>> {
    let legacy = opts.legacy || opts.scope == VerifyScope::LegacyAll;
    let groups = match opts.scope {
        VerifyScope::AllGroups => {
            let g = select::group_ids(sif);
            if g.is_empty() {
                return Err(Error::NoGroups);
            }
            g
        }
        VerifyScope::Group(g) => vec![g],
        VerifyScope::Object(_) | VerifyScope::LegacyAll => Vec::new(),
    };
    let objects: Vec<Descriptor> = match opts.scope {
        VerifyScope::Object(id) => vec![*sif.descriptor(id)?],
        VerifyScope::LegacyAll => sif
            .descriptors()
            .filter(|d| d.data_type != DataType::SIGNATURE && d.group().is_some())
            .copied()
            .collect(),
        _ => Vec::new(),
    };
    let mut out = Vec::new();
    for group in groups {
        let ods = select::group_objects(sif, group)?;
        out.push(if legacy {
            Task::LegacyGroup { group, ods }
        } else {
            Task::Group {
                group,
                target: Target::Group(group),
                ods,
                subset: false,
            }
        });
    }
    for od in objects {
        if legacy {
            out.push(Task::LegacyObject { od: Box::new(od) });
        } else {
            let group = od.group().ok_or(Error::ObjectNotInGroup(od.id))?;
            out.push(Task::Group {
                group,
                target: Target::Object(od.id),
                ods: vec![od],
                subset: true,
            });
        }
    }
    Ok(out)
}

/// A signature object's bytes and format.
enum Decoded {
    Dsse(Vec<u8>),
    Pgp(Message),
}

fn decode<F: Read + Seek>(sif: &mut Sif<F>, sig: u32) -> Result<Decoded> {
    let data = sif.read_object(sig, SIGNATURE_LIMIT)?;
    if dsse::is_envelope(&data) {
        return Ok(Decoded::Dsse(data));
    }
    Message::decode(&data)
        .map(Decoded::Pgp)
        .ok_or(Error::UnknownFormat { sig })
}

/// Whether a signature object holds a legacy clear-signed `SIFHASH:`.
fn is_legacy<F: Read + Seek>(sif: &mut Sif<F>, sig: u32) -> bool {
    matches!(decode(sif, sig), Ok(Decoded::Pgp(m)) if m.is_legacy())
}

/// The signatures a task checks. Current-format group tasks skip legacy
/// signatures and legacy group tasks skip current ones, as the reference
/// does; legacy object tasks take whatever is linked to the object.
fn signatures<F: Read + Seek>(sif: &mut Sif<F>, task: &Task) -> Vec<Descriptor> {
    let (sigs, want_legacy) = match task {
        Task::Group { group, .. } => (select::group_signatures(sif, *group), Some(false)),
        Task::LegacyGroup { group, .. } => (select::group_signatures(sif, *group), Some(true)),
        Task::LegacyObject { od } => (select::object_signatures(sif, od.id), None),
    };
    match want_legacy {
        None => sigs,
        Some(want) => sigs
            .into_iter()
            .filter(|s| is_legacy(sif, s.id) == want)
            .collect(),
    }
}

/// Whether legacy signatures exist for what a current-format task checks,
/// to tell the user they need the legacy option.
fn has_legacy_signatures<F: Read + Seek>(sif: &mut Sif<F>, group: u32, ods: &[Descriptor]) -> bool {
    let mut sigs = select::group_signatures(sif, group);
    let members: Vec<Descriptor> = if ods.len() == 1 {
        ods.to_vec()
    } else {
        select::group_objects(sif, group).unwrap_or_default()
    };
    for od in &members {
        sigs.extend(select::object_signatures(sif, od.id));
    }
    sigs.iter().any(|s| is_legacy(sif, s.id))
}

/// Checks the cryptographic signature and returns its plaintext and signer.
fn open_signature(
    decoded: &Decoded,
    keys: &VerifyKeys,
    sig: &Descriptor,
) -> Result<(Vec<u8>, Signer)> {
    let meta = sig.signature();
    match decoded {
        Decoded::Dsse(data) => {
            if keys.dsse.is_empty() {
                return Err(Error::NoKeyMaterial {
                    sig: sig.id,
                    kind: "DSSE",
                });
            }
            let hash = meta
                .and_then(|m| DigestAlg::from_sif(m.hash))
                .ok_or_else(|| Error::BadSignature {
                    sig: sig.id,
                    reason: "unsupported hash type in the signature descriptor".into(),
                })?;
            let opened = dsse::open_envelope(data, &keys.dsse, hash).map_err(|reason| {
                Error::BadSignature {
                    sig: sig.id,
                    reason,
                }
            })?;
            Ok((
                opened.payload,
                Signer::Dsse {
                    keyids: opened.keyids,
                },
            ))
        }
        Decoded::Pgp(msg) => {
            let keyring = keys.pgp.as_deref().ok_or(Error::NoKeyMaterial {
                sig: sig.id,
                kind: "PGP",
            })?;
            let signer = msg.verify(keyring, sig.id)?;
            let recorded = meta.and_then(|m| m.fingerprint()).map(|fp| hex_upper(&fp));
            if recorded.as_deref() != Some(signer.fingerprint.as_str()) {
                return Err(Error::FingerprintMismatch {
                    sig: sig.id,
                    actual: signer.fingerprint,
                    recorded: recorded.unwrap_or_else(|| "(none)".into()),
                });
            }
            Ok((msg.plaintext().into_bytes(), Signer::Pgp(signer)))
        }
    }
}

/// The digest a legacy signature carries: `SIFHASH:\n<hex>\n`, the hash
/// named by the signature descriptor (SHA-384 in practice).
fn legacy_digest(plaintext: &[u8], sig: &Descriptor) -> Result<Digest> {
    let bad = |reason: &str| Error::BadSignature {
        sig: sig.id,
        reason: reason.into(),
    };
    let text = std::str::from_utf8(plaintext).map_err(|_| bad("legacy digest is not text"))?;
    let hex = text.strip_prefix(clearsign::LEGACY_PREFIX).unwrap_or(text);
    let hex = hex.strip_suffix('\n').unwrap_or(hex);
    let alg = sig
        .signature()
        .and_then(|m| DigestAlg::from_sif(m.hash))
        .ok_or_else(|| bad("unsupported hash type in the signature descriptor"))?;
    let value = hex_decode(hex).ok_or_else(|| bad("malformed legacy digest"))?;
    if value.len() != alg.output_len() {
        return Err(bad("legacy digest has the wrong length for its hash type"));
    }
    Ok(Digest { alg, value })
}

/// Hash of the data of `ods`, concatenated in order.
fn data_digest<F: Read + Seek>(
    sif: &mut Sif<F>,
    ods: &[Descriptor],
    alg: DigestAlg,
) -> Result<Vec<u8>> {
    let mut h = alg.hasher();
    for od in ods {
        crate::digest::feed(h.as_mut(), &mut sif.object_reader(od.id)?)?;
    }
    Ok(h.finalize().into_vec())
}

/// Verifies one signature for a task, filling in `result`.
fn verify_one<F: Read + Seek>(
    sif: &mut Sif<F>,
    task: &Task,
    sig: &Descriptor,
    keys: &VerifyKeys,
    result: &mut SignatureResult,
) -> Result<()> {
    let decoded = decode(sif, sig.id)?;
    let (plaintext, signer) = open_signature(&decoded, keys, sig)?;
    result.signer = Some(signer);
    match task {
        Task::Group {
            group, ods, subset, ..
        } => {
            let im = ImageMetadata::from_json(&plaintext).map_err(|e| Error::BadSignature {
                sig: sig.id,
                reason: format!("signed metadata is not valid: {e}"),
            })?;
            let min_id = select::group_min_id(sif, *group)?;
            if !subset {
                let signed = im.object_ids(min_id);
                if let Some(od) = ods.iter().find(|od| !signed.contains(&od.id)) {
                    return Err(Error::ObjectNotSigned {
                        sig: sig.id,
                        id: od.id,
                    });
                }
                if let Some(&id) = signed.iter().find(|id| !ods.iter().any(|od| od.id == **id)) {
                    return Err(Error::SignedObjectMissing { sig: sig.id, id });
                }
            }
            im.check(sif, min_id, ods, sig.id)?;
            result.objects = ods.iter().map(|d| d.id).collect();
        }
        Task::LegacyGroup { group, ods } => {
            let d = legacy_digest(&plaintext, sig)?;
            if data_digest(sif, ods, d.alg)? != d.value {
                return Err(Error::GroupDataModified {
                    sig: sig.id,
                    group: *group,
                });
            }
            result.objects = ods.iter().map(|d| d.id).collect();
        }
        Task::LegacyObject { od } => {
            let d = legacy_digest(&plaintext, sig)?;
            if data_digest(sif, std::slice::from_ref(od), d.alg)? != d.value {
                return Err(Error::ObjectModified {
                    sig: sig.id,
                    id: od.id,
                });
            }
            result.objects = vec![od.id];
        }
    }
    Ok(())
}

/// Verifies the image. `Err` is for an image or request that cannot be
/// checked at all (unreadable image, unknown group or object, an object
/// outside any group); everything else is in the [`Report`].
pub fn verify<F: Read + Seek>(
    sif: &mut Sif<F>,
    keys: &VerifyKeys,
    opts: &VerifyOptions,
) -> Result<Report> {
    // Every non-signature object must be in a group, or it could be
    // changed without any signature noticing.
    if let Some(d) = sif
        .descriptors()
        .find(|d| d.data_type != DataType::SIGNATURE && d.group().is_none())
    {
        return Err(Error::UngroupedObject(d.id));
    }
    let legacy = opts.legacy || opts.scope == VerifyScope::LegacyAll;
    let mut report = Report::default();
    for task in tasks(sif, opts)? {
        let sigs = signatures(sif, &task);
        if sigs.is_empty() {
            let only_legacy = match &task {
                Task::Group { group, ods, .. } => has_legacy_signatures(sif, *group, ods),
                _ => false,
            };
            report.problems.push(if only_legacy {
                Error::LegacyOnly(task.target())
            } else {
                Error::NoSignature(task.target())
            });
            continue;
        }
        for sig in sigs {
            let mut result = SignatureResult {
                signature: sig.id,
                target: task.target(),
                legacy,
                fingerprint: sig
                    .signature()
                    .and_then(|m| m.fingerprint())
                    .map(|fp| hex_upper(&fp)),
                signer: None,
                objects: Vec::new(),
                status: Ok(()),
            };
            result.status = verify_one(sif, &task, &sig, keys, &mut result);
            if result.status.is_err() {
                result.objects.clear();
            }
            report.results.push(result);
        }
    }
    Ok(report)
}

/// Signers as the run-time execution control list (ECL) needs them,
/// upper-case hex fingerprints as recorded in the signature descriptors.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SignerSummary {
    /// Fingerprints with a signature in every task (every group).
    pub all: Vec<String>,
    /// Fingerprints with a signature in at least one task.
    pub any: Vec<String>,
    /// Fingerprints of signatures that could not be validated (unknown key,
    /// bad signature): a policy must not count them as signers.
    pub unvalidated: Vec<String>,
}

/// The reference ECL check: verifies the image, tolerating signatures that
/// fail only as signatures (unknown key, bad signature),
/// which are listed in `unvalidated`; a missing signature or a modified
/// image is an error.
pub fn signer_summary<F: Read + Seek>(
    sif: &mut Sif<F>,
    keys: &VerifyKeys,
    opts: &VerifyOptions,
) -> Result<SignerSummary> {
    let mut report = verify(sif, keys, opts)?;
    if !report.problems.is_empty() {
        return Err(report.problems.remove(0));
    }
    let mut summary = SignerSummary::default();
    let mut per_task: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut tasks_seen: Vec<String> = Vec::new();
    for r in report.results {
        let task = format!("{:?}", r.target);
        if !tasks_seen.contains(&task) {
            tasks_seen.push(task.clone());
        }
        match r.status {
            Ok(()) => {}
            Err(e) if e.is_signature_invalid() => {
                if let Some(fp) = &r.fingerprint {
                    summary.unvalidated.push(fp.clone());
                }
            }
            Err(e) => return Err(e),
        }
        if let Some(fp) = r.fingerprint {
            let tasks = per_task.entry(fp).or_default();
            if !tasks.contains(&task) {
                tasks.push(task);
            }
        }
    }
    for (fp, tasks) in per_task {
        if tasks.len() == tasks_seen.len() {
            summary.all.push(fp.clone());
        }
        summary.any.push(fp);
    }
    summary.unvalidated.sort();
    summary.unvalidated.dedup();
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{fixture_keyring, fixture_keys, flipped, open, open_copy, pem};
    use vessel_sif::{ObjectInput, DESCRIPTOR_LEN};

    const FP: &str = "12045C8C0B1004D058DE4BEDA20C27EE7FF7BA84";

    fn run<F: Read + Seek>(
        sif: &mut Sif<F>,
        keys: &VerifyKeys,
        scope: VerifyScope,
        legacy: bool,
    ) -> Report {
        verify(sif, keys, &VerifyOptions { scope, legacy }).unwrap()
    }

    fn default_report(name: &str) -> Report {
        run(
            &mut open(name),
            &fixture_keys(),
            VerifyScope::AllGroups,
            false,
        )
    }

    #[test]
    fn pgp_fixtures_verify() {
        let r = default_report("one-group-signed-pgp.sif");
        assert!(r.is_ok(), "{:?}", r.first_error());
        assert_eq!(r.results.len(), 1);
        let s = &r.results[0];
        assert_eq!(
            (s.signature, s.target, s.legacy),
            (3, Target::Group(1), false)
        );
        assert_eq!(s.objects, [1, 2]);
        assert_eq!(s.fingerprint.as_deref(), Some(FP));
        let Some(Signer::Pgp(p)) = &s.signer else {
            panic!("{:?}", s.signer)
        };
        assert_eq!(p.fingerprint, FP);
        assert_eq!(p.user_id.as_deref(), Some("Unit Test <unit@test.com>"));

        let r = default_report("two-groups-signed-pgp.sif");
        assert!(r.is_ok(), "{:?}", r.first_error());
        let got: Vec<_> = r
            .results
            .iter()
            .map(|s| (s.signature, s.target, s.objects.clone()))
            .collect();
        assert_eq!(
            got,
            [
                (4, Target::Group(1), vec![1, 2]),
                (5, Target::Group(2), vec![3])
            ]
        );
    }

    #[test]
    fn pgp_fixture_scopes() {
        let keys = fixture_keys();
        let mut sif = open("two-groups-signed-pgp.sif");
        let r = run(&mut sif, &keys, VerifyScope::Group(2), false);
        assert!(r.is_ok());
        assert_eq!(r.results.len(), 1);
        let r = run(&mut sif, &keys, VerifyScope::Object(2), false);
        assert!(r.is_ok());
        assert_eq!(r.results[0].objects, [2]);
        assert_eq!(r.results[0].target, Target::Object(2));
        assert!(matches!(
            verify(
                &mut sif,
                &keys,
                &VerifyOptions {
                    scope: VerifyScope::Group(9),
                    legacy: false
                }
            ),
            Err(Error::GroupNotFound(9))
        ));
        assert!(verify(
            &mut sif,
            &keys,
            &VerifyOptions {
                scope: VerifyScope::Object(9),
                legacy: false
            }
        )
        .is_err());
    }

    #[test]
    fn pgp_without_the_key() {
        let keys = VerifyKeys {
            pgp: Some(Vec::new()),
            dsse: Vec::new(),
        };
        let r = run(
            &mut open("one-group-signed-pgp.sif"),
            &keys,
            VerifyScope::AllGroups,
            false,
        );
        let e = r.first_error().unwrap();
        assert!(matches!(e, Error::UnknownKey { sig: 3, .. }), "{e}");
        assert!(e.to_string().contains("7FF7BA84"), "{e}");
        let r = run(
            &mut open("one-group-signed-pgp.sif"),
            &VerifyKeys::default(),
            VerifyScope::AllGroups,
            false,
        );
        assert!(matches!(
            r.first_error(),
            Some(Error::NoKeyMaterial { kind: "PGP", .. })
        ));
    }

    #[test]
    fn dsse_fixtures_verify_with_either_key() {
        for name in ["one-group-signed-dsse.sif", "two-groups-signed-dsse.sif"] {
            for pems in [
                &["ed25519-public.pem"][..],
                &["rsa-public.pem"],
                &["ed25519-public.pem", "rsa-public.pem"],
            ] {
                let keys = VerifyKeys {
                    pgp: None,
                    dsse: pems
                        .iter()
                        .map(|p| DssePublicKey::from_pem(&pem(p)).unwrap())
                        .collect(),
                };
                let r = run(&mut open(name), &keys, VerifyScope::AllGroups, false);
                assert!(r.is_ok(), "{name} {pems:?}: {:?}", r.first_error());
                let Some(Signer::Dsse { keyids }) = &r.results[0].signer else {
                    panic!()
                };
                assert_eq!(keyids.len(), pems.len());
                assert_eq!(r.results[0].fingerprint, None);
            }
        }
        let ec = VerifyKeys {
            pgp: None,
            dsse: vec![DssePublicKey::from_pem(&pem("ecdsa-public.pem")).unwrap()],
        };
        let r = run(
            &mut open("one-group-signed-dsse.sif"),
            &ec,
            VerifyScope::AllGroups,
            false,
        );
        assert!(matches!(
            r.first_error(),
            Some(Error::BadSignature { sig: 3, .. })
        ));
        let r = run(
            &mut open("one-group-signed-dsse.sif"),
            &VerifyKeys {
                pgp: Some(fixture_keyring()),
                dsse: vec![],
            },
            VerifyScope::AllGroups,
            false,
        );
        assert!(matches!(
            r.first_error(),
            Some(Error::NoKeyMaterial { kind: "DSSE", .. })
        ));
    }

    #[test]
    fn unsigned_images_have_no_signature() {
        let r = default_report("one-group.sif");
        assert!(matches!(
            r.problems[..],
            [Error::NoSignature(Target::Group(1))]
        ));
        let r = default_report("two-groups.sif");
        assert_eq!(r.problems.len(), 2);
        assert!(matches!(
            verify(
                &mut open("empty.sif"),
                &fixture_keys(),
                &VerifyOptions::default()
            ),
            Err(Error::NoGroups)
        ));
    }

    #[test]
    fn legacy_needs_the_flag() {
        let keys = fixture_keys();
        for name in [
            "one-group-signed-legacy.sif",
            "one-group-signed-legacy-group.sif",
            "one-group-signed-legacy-all.sif",
        ] {
            let r = default_report(name);
            assert!(
                matches!(r.problems[..], [Error::LegacyOnly(Target::Group(1))]),
                "{name}: {:?}",
                r.problems
            );
            assert!(r.problems[0].to_string().contains("--legacy-insecure"));
        }
        let r = run(
            &mut open("one-group-signed-legacy.sif"),
            &keys,
            VerifyScope::Object(2),
            false,
        );
        assert!(
            matches!(r.problems[..], [Error::LegacyOnly(Target::Object(2))]),
            "{:?}",
            r.problems
        );
    }

    #[test]
    fn legacy_fixtures_verify_with_the_flag() {
        let keys = fixture_keys();
        let ok = |name: &str, scope: VerifyScope, objects: &[&[u32]]| {
            let r = run(&mut open(name), &keys, scope.clone(), true);
            assert!(r.is_ok(), "{name} {scope:?}: {:?}", r.first_error());
            let got: Vec<Vec<u32>> = r.results.iter().map(|s| s.objects.clone()).collect();
            assert_eq!(got, objects, "{name} {scope:?}");
            assert!(r
                .results
                .iter()
                .all(|s| s.legacy && s.fingerprint.as_deref() == Some(FP)));
        };
        ok(
            "one-group-signed-legacy.sif",
            VerifyScope::Object(2),
            &[&[2]],
        );
        ok(
            "one-group-signed-legacy-group.sif",
            VerifyScope::AllGroups,
            &[&[1, 2]],
        );
        ok(
            "one-group-signed-legacy-group.sif",
            VerifyScope::Group(1),
            &[&[1, 2]],
        );
        ok(
            "one-group-signed-legacy-all.sif",
            VerifyScope::LegacyAll,
            &[&[1], &[2]],
        );
        ok(
            "two-groups-signed-legacy.sif",
            VerifyScope::Object(2),
            &[&[2]],
        );
        ok(
            "two-groups-signed-legacy-group.sif",
            VerifyScope::Group(1),
            &[&[1, 2]],
        );

        // Group 2 of the two-group legacy images was never signed.
        let r = run(
            &mut open("two-groups-signed-legacy-all.sif"),
            &keys,
            VerifyScope::LegacyAll,
            true,
        );
        assert!(
            matches!(r.problems[..], [Error::NoSignature(Target::Object(3))]),
            "{:?}",
            r.problems
        );
        assert!(r.results.iter().all(|s| s.status.is_ok()));
        // Legacy mode does not look at current-format signatures.
        let r = run(
            &mut open("one-group-signed-pgp.sif"),
            &keys,
            VerifyScope::AllGroups,
            true,
        );
        assert!(matches!(
            r.problems[..],
            [Error::NoSignature(Target::Group(1))]
        ));
    }

    #[test]
    fn legacy_data_flip_is_detected() {
        let keys = fixture_keys();
        // Object 2's data starts at 36864 in the legacy images.
        let mut sif = flipped("one-group-signed-legacy-group.sif", 36864).unwrap();
        let r = run(&mut sif, &keys, VerifyScope::AllGroups, true);
        assert!(
            matches!(
                r.first_error(),
                Some(Error::GroupDataModified { group: 1, .. })
            ),
            "{:?}",
            r.first_error()
        );
        let mut sif = flipped("one-group-signed-legacy.sif", 36864).unwrap();
        let r = run(&mut sif, &keys, VerifyScope::Object(2), true);
        assert!(matches!(
            r.first_error(),
            Some(Error::ObjectModified { id: 2, .. })
        ));
    }

    /// The first failure after flipping one byte of the signed PGP fixture.
    fn flip_error(name: &str, offset: usize) -> Option<String> {
        let Some(mut sif) = flipped(name, offset) else {
            return Some("unreadable".into());
        };
        match verify(&mut sif, &fixture_keys(), &VerifyOptions::default()) {
            Err(e) => Some(e.to_string()),
            Ok(r) => r.first_error().map(|e| e.to_string()),
        }
    }

    #[test]
    fn header_flips_are_detected_and_named() {
        // Signed: launch script, magic, version, UUID. Not signed: the rest.
        for off in (0..45).chain(48..64) {
            let e = flip_error("one-group-signed-pgp.sif", off)
                .unwrap_or_else(|| panic!("offset {off} undetected"));
            assert!(
                e == "unreadable" || e.contains("global header was modified"),
                "offset {off}: {e}"
            );
        }
        // The modification time may change (adding a signature changes it).
        assert_eq!(flip_error("one-group-signed-pgp.sif", 72), None);
    }

    #[test]
    fn descriptor_flips_are_detected_and_named() {
        let base = 4096 + DESCRIPTOR_LEN; // object 2's descriptor
        let signed = (0..4)
            .chain(13..17)
            .chain(25..33)
            .chain(41..49)
            .chain(57..73);
        let mut named = 0;
        for field in signed.chain((73..585).step_by(7)) {
            let e = flip_error("one-group-signed-pgp.sif", base + field)
                .unwrap_or_else(|| panic!("descriptor byte {field} undetected"));
            assert!(
                e == "unreadable" || e.contains("descriptor of object 2 was modified"),
                "descriptor byte {field}: {e}"
            );
            named += usize::from(e != "unreadable");
        }
        assert!(named > 100, "only {named} flips got past loading");
        // The used flag: the object disappears from its group.
        let e = flip_error("one-group-signed-pgp.sif", base + 4).unwrap();
        assert!(e.contains("object 2"), "{e}");
        // Modification time is not signed.
        assert_eq!(flip_error("one-group-signed-pgp.sif", base + 49), None);
    }

    #[test]
    fn data_flips_are_detected_and_named() {
        for off in 32768..32772 {
            let e = flip_error("one-group-signed-pgp.sif", off).unwrap();
            assert!(e.contains("data of object 1 was modified"), "{e}");
        }
        for off in [36864, 38000, 40959] {
            let e = flip_error("one-group-signed-pgp.sif", off).unwrap();
            assert!(e.contains("data of object 2 was modified"), "{e}");
        }
        // Same for DSSE.
        let e = flip_error("one-group-signed-dsse.sif", 36864).unwrap();
        assert!(e.contains("data of object 2 was modified"), "{e}");
        // And for the signature itself (inside the PGP armor's base64).
        let e = flip_error("one-group-signed-pgp.sif", 41900).unwrap();
        assert!(e.contains("signature object 3"), "{e}");
    }

    fn add_json<F: Read + std::io::Write + Seek>(sif: &mut Sif<F>, group: u32) -> u32 {
        let mut input = ObjectInput::new(DataType::GENERIC_JSON);
        input.group = Some(group);
        sif.add_object(&input, &mut &b"{}"[..], 0).unwrap()
    }

    #[test]
    fn adding_an_object_to_a_signed_group_invalidates_it() {
        let keys = fixture_keys();
        let mut sif = open_copy("two-groups-signed-pgp.sif");
        let id = add_json(&mut sif, 2);
        let r = run(&mut sif, &keys, VerifyScope::AllGroups, false);
        assert!(r.results[0].status.is_ok(), "group 1 still verifies");
        let e = r.results[1].status.as_ref().unwrap_err();
        assert!(
            matches!(e, Error::ObjectNotSigned { sig: 5, id: i } if *i == id),
            "{e}"
        );
        // The object not in the signature, but the others still check out.
        assert!(run(&mut sif, &keys, VerifyScope::Object(3), false).is_ok());
    }

    #[test]
    fn adding_an_object_to_another_group_does_not() {
        let keys = fixture_keys();
        let mut sif = open_copy("one-group-signed-pgp.sif");
        add_json(&mut sif, 2);
        let r = run(&mut sif, &keys, VerifyScope::Group(1), false);
        assert!(r.is_ok(), "{:?}", r.first_error());
        // The new group itself is unsigned.
        let r = run(&mut sif, &keys, VerifyScope::AllGroups, false);
        assert!(matches!(
            r.problems[..],
            [Error::NoSignature(Target::Group(2))]
        ));
    }

    #[test]
    fn ecl_summary() {
        let keys = fixture_keys();
        let s = signer_summary(
            &mut open("two-groups-signed-pgp.sif"),
            &keys,
            &VerifyOptions::default(),
        )
        .unwrap();
        assert_eq!(s.all, [FP]);
        assert_eq!(s.any, [FP]);
        assert!(s.unvalidated.is_empty());
        // Unknown key: not an error, but not validated either.
        let none = VerifyKeys {
            pgp: Some(Vec::new()),
            dsse: Vec::new(),
        };
        let s = signer_summary(
            &mut open("two-groups-signed-pgp.sif"),
            &none,
            &VerifyOptions::default(),
        )
        .unwrap();
        assert_eq!(s.unvalidated, [FP]);
        // Tampering and missing signatures are errors.
        let mut sif = flipped("one-group-signed-pgp.sif", 32768).unwrap();
        assert!(signer_summary(&mut sif, &keys, &VerifyOptions::default()).is_err());
        assert!(
            signer_summary(&mut open("one-group.sif"), &keys, &VerifyOptions::default()).is_err()
        );
    }

    #[test]
    fn into_result_gives_the_first_failure() {
        assert!(default_report("one-group-signed-pgp.sif")
            .into_result()
            .is_ok());
        let e = default_report("one-group.sif").into_result().unwrap_err();
        assert!(matches!(e, Error::NoSignature(Target::Group(1))));
    }
}
