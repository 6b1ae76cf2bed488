//! Adding signatures to an image, as the reference `integrity.Signer`
//! does: one signature object per object group (or per group of the
//! objects asked for), outside any group, linked to the group it covers,
//! its descriptor recording the hash (SHA-256) and, for PGP, the signing
//! key's fingerprint.

use std::collections::BTreeMap;
use std::io::{Read, Seek, Write};

use pgp::composed::SignedSecretKey;
use pgp::types::KeyDetails;
use vessel_sif::{DataType, HashType, Link, Metadata, ObjectInput, Sif, Signature};

use crate::clearsign;
use crate::digest::DigestAlg;
use crate::dsse::{self, DsseSigner};
use crate::error::{Error, Result};
use crate::keyring::check_passphrase;
use crate::metadata::ImageMetadata;
use crate::select;

/// The key material to sign with.
pub enum SignKey<'a> {
    /// An OpenPGP secret key and the passphrase that unlocks it (empty for
    /// an unprotected key): a clear-signed message.
    Pgp {
        key: &'a SignedSecretKey,
        passphrase: &'a str,
    },
    /// One or more PEM-loaded keys: one DSSE envelope signed by all.
    Dsse(&'a [DsseSigner]),
}

/// What to sign.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignScope {
    /// Every object group, one signature each (the default).
    AllGroups,
    /// One object group (`--group-id`).
    Group(u32),
    /// These objects (`--sif-id`): one signature per group they are in,
    /// covering only them, still linked to the group as the reference does.
    Objects(Vec<u32>),
}

/// The groups to sign and, for each, the IDs of the objects covered.
fn plan<F>(sif: &Sif<F>, scope: &SignScope) -> Result<Vec<(u32, Vec<u32>)>> {
    let whole = |g: u32| -> Result<(u32, Vec<u32>)> {
        Ok((
            g,
            select::group_objects(sif, g)?
                .iter()
                .map(|d| d.id)
                .collect(),
        ))
    };
    match scope {
        SignScope::AllGroups => {
            let groups = select::group_ids(sif);
            if groups.is_empty() {
                return Err(Error::NoGroups);
            }
            groups.into_iter().map(whole).collect()
        }
        SignScope::Group(g) => Ok(vec![whole(*g)?]),
        SignScope::Objects(ids) => {
            let mut by_group: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
            for &id in ids {
                let d = sif.descriptor(id)?;
                let g = d.group().ok_or(Error::ObjectNotInGroup(id))?;
                by_group.entry(g).or_default().push(id);
            }
            Ok(by_group.into_iter().collect())
        }
    }
}

/// Signs the image and returns the IDs of the signature objects added.
/// `now` is the time of the change in Unix seconds (ignored for
/// deterministic images). Nothing is written unless every signature could
/// be made (a wrong passphrase leaves the image as it was).
pub fn sign<F: Read + Write + Seek>(
    sif: &mut Sif<F>,
    key: &SignKey<'_>,
    scope: &SignScope,
    now: i64,
) -> Result<Vec<u32>> {
    let tasks = plan(sif, scope)?;
    if let SignKey::Pgp { key, passphrase } = key {
        check_passphrase(key, passphrase)?;
    }
    let mut made = Vec::with_capacity(tasks.len());
    for (group, ids) in tasks {
        let payload = ImageMetadata::compute(sif, group, &ids, DigestAlg::Sha256)?.to_json();
        let mut entity = [0u8; 256];
        let data = match key {
            SignKey::Pgp { key, passphrase } => {
                let fp = key.primary_key.fingerprint();
                let fp = fp.as_bytes();
                entity[..fp.len().min(256)].copy_from_slice(&fp[..fp.len().min(256)]);
                // The payload is JSON of ASCII digests, always valid UTF-8.
                let text = String::from_utf8_lossy(&payload);
                clearsign::sign(&text, key, passphrase)?
            }
            SignKey::Dsse(signers) => dsse::sign_envelope(&payload, signers)?,
        };
        made.push((group, data, entity));
    }
    let mut ids = Vec::with_capacity(made.len());
    for (group, data, entity) in made {
        let mut input = ObjectInput::new(DataType::SIGNATURE);
        input.group = None;
        input.link = Link::Group(group);
        input.metadata = Metadata::Signature(Signature {
            hash: HashType::SHA256,
            entity,
        });
        ids.push(sif.add_object(&input, &mut data.as_slice(), now)?);
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{open_copy, test_key};

    #[test]
    fn plan_follows_the_reference() {
        let sif = open_copy("two-groups.sif");
        assert_eq!(
            plan(&sif, &SignScope::AllGroups).unwrap(),
            [(1, vec![1, 2]), (2, vec![3])]
        );
        assert_eq!(plan(&sif, &SignScope::Group(2)).unwrap(), [(2, vec![3])]);
        assert_eq!(
            plan(&sif, &SignScope::Objects(vec![3, 2])).unwrap(),
            [(1, vec![2]), (2, vec![3])]
        );
        assert!(matches!(
            plan(&sif, &SignScope::Group(7)),
            Err(Error::GroupNotFound(7))
        ));
        assert!(plan(&sif, &SignScope::Objects(vec![9])).is_err());
        let empty = open_copy("empty.sif");
        assert!(matches!(
            plan(&empty, &SignScope::AllGroups),
            Err(Error::NoGroups)
        ));
    }

    #[test]
    fn wrong_passphrase_leaves_the_image_alone() {
        let (key, _) = test_key();
        let mut sif = open_copy("one-group.sif");
        let before = sif.descriptors().count();
        let err = sign(
            &mut sif,
            &SignKey::Pgp {
                key,
                passphrase: "bad",
            },
            &SignScope::AllGroups,
            0,
        )
        .unwrap_err();
        assert!(matches!(err, Error::WrongPassphrase(_)), "{err}");
        assert_eq!(sif.descriptors().count(), before);
    }
}

#[cfg(test)]
mod roundtrip {
    use super::*;
    use crate::dsse::DssePublicKey;
    use crate::error::Target;
    use crate::testutil::{fixture_keys, open, open_copy, test_key};
    use crate::verify::{verify, Signer, VerifyKeys, VerifyOptions, VerifyScope};
    use crate::Message;

    fn own_keys() -> VerifyKeys {
        let (key, _) = test_key();
        VerifyKeys {
            pgp: Some(vec![key.signed_public_key()]),
            dsse: Vec::new(),
        }
    }

    /// The clear-signed JSON of a signature object.
    fn signed_json<F: Read + Seek>(sif: &mut Sif<F>, id: u32) -> String {
        let data = sif.read_object(id, 1 << 20).unwrap();
        Message::decode(&data).unwrap().plaintext()
    }

    #[test]
    fn pgp_sign_then_verify() {
        let (key, pass) = test_key();
        let mut sif = open_copy("one-group.sif");
        let ids = sign(
            &mut sif,
            &SignKey::Pgp {
                key,
                passphrase: pass,
            },
            &SignScope::AllGroups,
            1_700_000_000,
        )
        .unwrap();
        assert_eq!(ids, [3]);

        // Descriptor as the reference writes it.
        let d = *sif.descriptor(3).unwrap();
        assert_eq!(d.group(), None);
        assert_eq!(d.link(), Link::Group(1));
        let meta = d.signature().unwrap();
        assert_eq!(meta.hash, HashType::SHA256);
        assert_eq!(
            crate::error::hex_upper(&meta.fingerprint().unwrap()),
            crate::keyring::fingerprint(&key.primary_key)
        );

        // Same payload as the reference signed.
        let theirs = signed_json(&mut open("one-group-signed-pgp.sif"), 3);
        assert_eq!(signed_json(&mut sif, 3), theirs);
        let raw = sif.read_object(3, 1 << 20).unwrap();
        assert!(raw.starts_with(b"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n{"));
        assert!(raw.ends_with(b"-----END PGP SIGNATURE-----"));

        let r = verify(&mut sif, &own_keys(), &VerifyOptions::default()).unwrap();
        assert!(r.is_ok(), "{:?}", r.first_error());
        let Some(Signer::Pgp(p)) = &r.results[0].signer else {
            panic!()
        };
        assert_eq!(
            p.user_id.as_deref(),
            Some("Test User (vessel test) <test@example.com>")
        );
        // Someone else's keyring does not know the key.
        let r = verify(&mut sif, &fixture_keys(), &VerifyOptions::default()).unwrap();
        assert!(matches!(
            r.first_error(),
            Some(Error::UnknownKey { sig: 3, .. })
        ));
    }

    #[test]
    fn sign_two_groups_and_objects() {
        let (key, pass) = test_key();
        let k = SignKey::Pgp {
            key,
            passphrase: pass,
        };
        let mut sif = open_copy("two-groups.sif");
        assert_eq!(
            sign(&mut sif, &k, &SignScope::AllGroups, 0).unwrap(),
            [4, 5]
        );
        let reference = &mut open("two-groups-signed-pgp.sif");
        assert_eq!(signed_json(&mut sif, 4), signed_json(reference, 4));
        assert_eq!(signed_json(&mut sif, 5), signed_json(reference, 5));
        assert!(verify(&mut sif, &own_keys(), &VerifyOptions::default())
            .unwrap()
            .is_ok());

        // --sif-id: covers only the object, linked to its group.
        let mut sif = open_copy("one-group.sif");
        sign(&mut sif, &k, &SignScope::Objects(vec![2]), 0).unwrap();
        let scope = |scope| VerifyOptions {
            scope,
            legacy: false,
        };
        let r = verify(&mut sif, &own_keys(), &scope(VerifyScope::Object(2))).unwrap();
        assert!(r.is_ok(), "{:?}", r.first_error());
        let r = verify(&mut sif, &own_keys(), &scope(VerifyScope::AllGroups)).unwrap();
        assert!(matches!(
            r.first_error(),
            Some(Error::ObjectNotSigned { id: 1, .. })
        ));
        let r = verify(&mut sif, &own_keys(), &scope(VerifyScope::Object(1))).unwrap();
        assert!(matches!(
            r.first_error(),
            Some(Error::ObjectNotSigned { id: 1, .. })
        ));
        assert_eq!(r.results[0].target, Target::Object(1));
    }

    #[test]
    fn unprotected_key_signs_with_empty_passphrase() {
        let (key, pass) = test_key();
        let mut open_key = key.clone();
        crate::keyring::change_passphrase(&mut open_key, pass, "").unwrap();
        let mut sif = open_copy("one-group.sif");
        sign(
            &mut sif,
            &SignKey::Pgp {
                key: &open_key,
                passphrase: "",
            },
            &SignScope::Group(1),
            0,
        )
        .unwrap();
        assert!(verify(&mut sif, &own_keys(), &VerifyOptions::default())
            .unwrap()
            .is_ok());
    }

    fn dsse_round_trip(private_pem: &str, public_pem: &str) {
        let signer = DsseSigner::from_pem(private_pem).unwrap();
        let public = DssePublicKey::from_pem(public_pem).unwrap();
        assert_eq!(signer.public_key(), public);
        let mut sif = open_copy("one-group.sif");
        let ids = sign(
            &mut sif,
            &SignKey::Dsse(std::slice::from_ref(&signer)),
            &SignScope::AllGroups,
            0,
        )
        .unwrap();
        let meta = sif.descriptor(ids[0]).unwrap().signature().unwrap();
        assert_eq!((meta.hash, meta.fingerprint()), (HashType::SHA256, None));
        let keys = VerifyKeys {
            pgp: None,
            dsse: vec![public.clone()],
        };
        let r = verify(&mut sif, &keys, &VerifyOptions::default()).unwrap();
        assert!(r.is_ok(), "{}: {:?}", public.algorithm(), r.first_error());
        assert_eq!(
            r.results[0].signer,
            Some(Signer::Dsse {
                keyids: vec![public.keyid()]
            })
        );
        // The fixture keys did not sign it.
        let r = verify(&mut sif, &fixture_keys(), &VerifyOptions::default()).unwrap();
        assert!(
            matches!(r.first_error(), Some(Error::BadSignature { .. })),
            "{}",
            public.algorithm()
        );
    }

    #[test]
    fn dsse_ed25519() {
        use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
        let k = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        let private = k.to_pkcs8_pem(Default::default()).unwrap();
        let public = k
            .verifying_key()
            .to_public_key_pem(Default::default())
            .unwrap();
        dsse_round_trip(&private, &public);
    }

    #[test]
    fn dsse_ecdsa() {
        use p256::pkcs8::{EncodePrivateKey, EncodePublicKey};
        let k = p256::SecretKey::random(&mut rand::rngs::OsRng);
        let private = k.to_pkcs8_pem(Default::default()).unwrap();
        let public = k
            .public_key()
            .to_public_key_pem(Default::default())
            .unwrap();
        dsse_round_trip(&private, &public);
        let sec1 = k.to_sec1_pem(Default::default()).unwrap();
        dsse_round_trip(&sec1, &public);
        let k = p384::SecretKey::random(&mut rand::rngs::OsRng);
        let private = k.to_pkcs8_pem(Default::default()).unwrap();
        let public = k
            .public_key()
            .to_public_key_pem(Default::default())
            .unwrap();
        dsse_round_trip(&private, &public);
    }

    #[test]
    fn dsse_rsa_and_multiple_signers() {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey};
        let k = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
        let public = k
            .to_public_key()
            .to_public_key_pem(Default::default())
            .unwrap();
        dsse_round_trip(&k.to_pkcs8_pem(Default::default()).unwrap(), &public);
        dsse_round_trip(&k.to_pkcs1_pem(Default::default()).unwrap(), &public);

        // One envelope, two signers; either key alone verifies it.
        let ed = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        let signers = [DsseSigner::Rsa(Box::new(k)), DsseSigner::Ed25519(ed)];
        let mut sif = open_copy("two-groups.sif");
        assert_eq!(
            sign(&mut sif, &SignKey::Dsse(&signers), &SignScope::AllGroups, 0).unwrap(),
            [4, 5]
        );
        for s in &signers {
            let keys = VerifyKeys {
                pgp: None,
                dsse: vec![s.public_key()],
            };
            let r = verify(&mut sif, &keys, &VerifyOptions::default()).unwrap();
            assert!(r.is_ok(), "{:?}", r.first_error());
        }
    }
}
