//! DSSE envelopes (Dead Simple Signing Envelope) as the reference writes
//! them through sigstore: payload type
//! `application/vnd.sylabs.sif-metadata+json`, signatures over the PAE
//! encoding, key IDs as OpenSSH SHA-256 fingerprints. RSA signs with
//! PKCS#1 v1.5 and ECDSA with ASN.1 DER signatures, both over a SHA-256
//! digest (sigstore's default, whatever the curve); Ed25519 signs the PAE
//! bytes themselves.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::digest::DigestAlg;
use crate::error::{Error, Result};

/// The payload type of signed SIF metadata.
pub const PAYLOAD_TYPE: &str = "application/vnd.sylabs.sif-metadata+json";

/// The JSON envelope, fields in the reference's order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    /// Base64 (standard, padded) of the payload.
    pub payload: String,
    pub signatures: Vec<EnvelopeSignature>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopeSignature {
    #[serde(default)]
    pub keyid: String,
    pub sig: String,
}

/// DSSE's pre-authentication encoding: what is actually signed.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// A private key that signs envelopes.
pub enum DsseSigner {
    Ed25519(ed25519_dalek::SigningKey),
    Rsa(Box<rsa::RsaPrivateKey>),
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
}

/// A public key that verifies envelopes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DssePublicKey {
    Ed25519(ed25519_dalek::VerifyingKey),
    Rsa(rsa::RsaPublicKey),
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
}

/// The label of the first PEM block, e.g. `PRIVATE KEY`.
fn pem_label(pem: &str) -> Option<&str> {
    let start = pem.find("-----BEGIN ")? + 11;
    let len = pem[start..].find("-----")?;
    Some(&pem[start..start + len])
}

fn invalid(what: &str) -> Error {
    Error::InvalidKey(what.to_string())
}

impl DsseSigner {
    /// Reads a PEM private key: PKCS#8 (`PRIVATE KEY`: RSA, ECDSA P-256 or
    /// P-384, Ed25519), PKCS#1 (`RSA PRIVATE KEY`) or SEC1 (`EC PRIVATE
    /// KEY`). Encrypted PEM is not supported.
    pub fn from_pem(pem: &str) -> Result<Self> {
        use pkcs8::DecodePrivateKey;
        match pem_label(pem) {
            Some("PRIVATE KEY") => {
                if let Ok(k) = ed25519_dalek::SigningKey::from_pkcs8_pem(pem) {
                    return Ok(DsseSigner::Ed25519(k));
                }
                if let Ok(k) = rsa::RsaPrivateKey::from_pkcs8_pem(pem) {
                    return Ok(DsseSigner::Rsa(Box::new(k)));
                }
                if let Ok(k) = p256::ecdsa::SigningKey::from_pkcs8_pem(pem) {
                    return Ok(DsseSigner::P256(k));
                }
                if let Ok(k) = p384::ecdsa::SigningKey::from_pkcs8_pem(pem) {
                    return Ok(DsseSigner::P384(k));
                }
                Err(invalid(
                    "PKCS#8 private key of an unsupported type (RSA, ECDSA P-256/P-384 and Ed25519 are)",
                ))
            }
            Some("RSA PRIVATE KEY") => {
                use rsa::pkcs1::DecodeRsaPrivateKey;
                rsa::RsaPrivateKey::from_pkcs1_pem(pem)
                    .map(|k| DsseSigner::Rsa(Box::new(k)))
                    .map_err(|e| invalid(&format!("PKCS#1 RSA private key: {e}")))
            }
            Some("EC PRIVATE KEY") => {
                if let Ok(k) = p256::SecretKey::from_sec1_pem(pem) {
                    return Ok(DsseSigner::P256(k.into()));
                }
                if let Ok(k) = p384::SecretKey::from_sec1_pem(pem) {
                    return Ok(DsseSigner::P384(k.into()));
                }
                Err(invalid(
                    "EC private key on an unsupported curve (P-256 and P-384 are)",
                ))
            }
            Some("ENCRYPTED PRIVATE KEY") => {
                Err(invalid("encrypted PEM private keys are not supported"))
            }
            _ => Err(invalid("not a PEM private key")),
        }
    }

    pub fn public_key(&self) -> DssePublicKey {
        match self {
            DsseSigner::Ed25519(k) => DssePublicKey::Ed25519(k.verifying_key()),
            DsseSigner::Rsa(k) => DssePublicKey::Rsa(k.to_public_key()),
            DsseSigner::P256(k) => DssePublicKey::P256(*k.verifying_key()),
            DsseSigner::P384(k) => DssePublicKey::P384(*k.verifying_key()),
        }
    }

    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>> {
        use p256::ecdsa::signature::hazmat::PrehashSigner;
        let digest = || DigestAlg::Sha256.hash(msg);
        let failed = |e: &dyn std::fmt::Display| Error::InvalidKey(format!("signing failed: {e}"));
        Ok(match self {
            DsseSigner::Ed25519(k) => {
                use ed25519_dalek::Signer;
                k.sign(msg).to_bytes().to_vec()
            }
            DsseSigner::Rsa(k) => k
                .sign(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &digest())
                .map_err(|e| failed(&e))?,
            DsseSigner::P256(k) => {
                let sig: p256::ecdsa::Signature =
                    k.sign_prehash(&digest()).map_err(|e| failed(&e))?;
                sig.to_der().as_bytes().to_vec()
            }
            DsseSigner::P384(k) => {
                let sig: p384::ecdsa::Signature =
                    k.sign_prehash(&digest()).map_err(|e| failed(&e))?;
                sig.to_der().as_bytes().to_vec()
            }
        })
    }
}

/// An SSH wire-format string: length-prefixed bytes.
fn ssh_string(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_be_bytes());
    out.extend_from_slice(b);
}

/// An SSH `mpint`: big-endian magnitude, with a zero byte first when the
/// top bit is set so that it does not read as negative.
fn ssh_mpint(out: &mut Vec<u8>, be: &[u8]) {
    let be: Vec<u8> = be.iter().copied().skip_while(|&b| b == 0).collect();
    let mut v = Vec::with_capacity(be.len() + 1);
    if be.first().is_some_and(|b| b & 0x80 != 0) {
        v.push(0);
    }
    v.extend_from_slice(&be);
    ssh_string(out, &v);
}

impl DssePublicKey {
    /// Reads a PEM public key: PKIX (`PUBLIC KEY`) or PKCS#1 (`RSA PUBLIC KEY`).
    pub fn from_pem(pem: &str) -> Result<Self> {
        use spki::DecodePublicKey;
        match pem_label(pem) {
            Some("PUBLIC KEY") => {
                if let Ok(k) = ed25519_dalek::VerifyingKey::from_public_key_pem(pem) {
                    return Ok(DssePublicKey::Ed25519(k));
                }
                if let Ok(k) = rsa::RsaPublicKey::from_public_key_pem(pem) {
                    return Ok(DssePublicKey::Rsa(k));
                }
                if let Ok(k) = p256::ecdsa::VerifyingKey::from_public_key_pem(pem) {
                    return Ok(DssePublicKey::P256(k));
                }
                if let Ok(k) = p384::ecdsa::VerifyingKey::from_public_key_pem(pem) {
                    return Ok(DssePublicKey::P384(k));
                }
                Err(invalid(
                    "public key of an unsupported type (RSA, ECDSA P-256/P-384 and Ed25519 are)",
                ))
            }
            Some("RSA PUBLIC KEY") => {
                use rsa::pkcs1::DecodeRsaPublicKey;
                rsa::RsaPublicKey::from_pkcs1_pem(pem)
                    .map(DssePublicKey::Rsa)
                    .map_err(|e| invalid(&format!("PKCS#1 RSA public key: {e}")))
            }
            _ => Err(invalid("not a PEM public key")),
        }
    }

    /// Algorithm name for messages, e.g. `ECDSA P-256`.
    pub fn algorithm(&self) -> &'static str {
        match self {
            DssePublicKey::Ed25519(_) => "Ed25519",
            DssePublicKey::Rsa(_) => "RSA",
            DssePublicKey::P256(_) => "ECDSA P-256",
            DssePublicKey::P384(_) => "ECDSA P-384",
        }
    }

    /// The key ID sigstore writes: `SHA256:` and the unpadded base64 of the
    /// SHA-256 of the key in OpenSSH wire format.
    pub fn keyid(&self) -> String {
        let mut w = Vec::new();
        match self {
            DssePublicKey::Ed25519(k) => {
                ssh_string(&mut w, b"ssh-ed25519");
                ssh_string(&mut w, k.as_bytes());
            }
            DssePublicKey::Rsa(k) => {
                use rsa::traits::PublicKeyParts;
                ssh_string(&mut w, b"ssh-rsa");
                ssh_mpint(&mut w, &k.e().to_bytes_be());
                ssh_mpint(&mut w, &k.n().to_bytes_be());
            }
            DssePublicKey::P256(k) => {
                ssh_string(&mut w, b"ecdsa-sha2-nistp256");
                ssh_string(&mut w, b"nistp256");
                ssh_string(&mut w, k.to_encoded_point(false).as_bytes());
            }
            DssePublicKey::P384(k) => {
                ssh_string(&mut w, b"ecdsa-sha2-nistp384");
                ssh_string(&mut w, b"nistp384");
                ssh_string(&mut w, k.to_encoded_point(false).as_bytes());
            }
        }
        format!(
            "SHA256:{}",
            STANDARD_NO_PAD.encode(DigestAlg::Sha256.hash(&w))
        )
    }

    /// Whether `sig` is this key's signature over `msg`; RSA and ECDSA
    /// verify a digest made with `hash` (the signature descriptor's).
    pub fn verify(&self, msg: &[u8], sig: &[u8], hash: DigestAlg) -> bool {
        use p256::ecdsa::signature::hazmat::PrehashVerifier;
        let digest = || hash.hash(msg);
        match self {
            DssePublicKey::Ed25519(k) => ed25519_dalek::Signature::from_slice(sig)
                .is_ok_and(|s| k.verify_strict(msg, &s).is_ok()),
            DssePublicKey::Rsa(k) => {
                let scheme = match hash {
                    DigestAlg::Sha224 => rsa::Pkcs1v15Sign::new::<sha2::Sha224>(),
                    DigestAlg::Sha256 => rsa::Pkcs1v15Sign::new::<sha2::Sha256>(),
                    DigestAlg::Sha384 => rsa::Pkcs1v15Sign::new::<sha2::Sha384>(),
                    DigestAlg::Sha512 => rsa::Pkcs1v15Sign::new::<sha2::Sha512>(),
                    DigestAlg::Sha512_224 => rsa::Pkcs1v15Sign::new::<sha2::Sha512_224>(),
                    DigestAlg::Sha512_256 => rsa::Pkcs1v15Sign::new::<sha2::Sha512_256>(),
                };
                k.verify(scheme, &digest(), sig).is_ok()
            }
            DssePublicKey::P256(k) => p256::ecdsa::Signature::from_der(sig)
                .is_ok_and(|s| k.verify_prehash(&digest(), &s).is_ok()),
            DssePublicKey::P384(k) => p384::ecdsa::Signature::from_der(sig)
                .is_ok_and(|s| k.verify_prehash(&digest(), &s).is_ok()),
        }
    }
}

/// Signs `payload` with every signer into one envelope (JSON bytes).
pub fn sign_envelope(payload: &[u8], signers: &[DsseSigner]) -> Result<Vec<u8>> {
    if signers.is_empty() {
        return Err(invalid("no DSSE signing key given"));
    }
    let msg = pae(PAYLOAD_TYPE, payload);
    let mut signatures = Vec::with_capacity(signers.len());
    for s in signers {
        signatures.push(EnvelopeSignature {
            keyid: s.public_key().keyid(),
            sig: STANDARD.encode(s.sign(&msg)?),
        });
    }
    let env = Envelope {
        payload_type: PAYLOAD_TYPE.into(),
        payload: STANDARD.encode(payload),
        signatures,
    };
    Ok(serde_json::to_vec(&env).unwrap_or_default())
}

/// Whether `data` is a DSSE envelope of SIF metadata (the test the
/// reference uses to pick a decoder).
pub fn is_envelope(data: &[u8]) -> bool {
    serde_json::from_slice::<Envelope>(data).is_ok_and(|e| e.payload_type == PAYLOAD_TYPE)
}

/// DSSE allows standard or URL-safe base64, padded or not.
fn decode_b64(s: &str) -> Option<Vec<u8>> {
    [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD]
        .iter()
        .find_map(|e| e.decode(s).ok())
}

/// An envelope's payload, once at least one of its signatures verified.
#[derive(Clone, Debug)]
pub struct Opened {
    pub payload: Vec<u8>,
    /// The keys that verified a signature, by [`DssePublicKey::keyid`].
    pub keyids: Vec<String>,
}

/// Verifies an envelope: it is accepted when any signature in it verifies
/// with any of `keys` (the reference's threshold of one); signatures by
/// other keys are ignored. The error is a reason, for messages.
pub fn open_envelope(
    data: &[u8],
    keys: &[DssePublicKey],
    hash: DigestAlg,
) -> std::result::Result<Opened, String> {
    let env: Envelope =
        serde_json::from_slice(data).map_err(|e| format!("malformed DSSE envelope: {e}"))?;
    if env.payload_type != PAYLOAD_TYPE {
        return Err(format!("unexpected payload type {:?}", env.payload_type));
    }
    let payload = decode_b64(&env.payload).ok_or("payload is not valid base64")?;
    let msg = pae(&env.payload_type, &payload);
    let mut keyids: Vec<String> = Vec::new();
    for s in &env.signatures {
        let Some(sig) = decode_b64(&s.sig) else {
            continue;
        };
        if let Some(k) = keys.iter().find(|k| k.verify(&msg, &sig, hash)) {
            let id = k.keyid();
            if !keyids.contains(&id) {
                keyids.push(id);
            }
        }
    }
    if keyids.is_empty() {
        return Err(format!(
            "none of the {} signature(s) in the envelope verifies with the {} key(s) given",
            env.signatures.len(),
            keys.len()
        ));
    }
    Ok(Opened { payload, keyids })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{open, pem};

    fn fixture_envelope() -> Vec<u8> {
        let mut sif = open("one-group-signed-dsse.sif");
        sif.read_object(3, 1 << 20).unwrap()
    }

    #[test]
    fn fixture_keyids_match_sigstore() {
        let ed = DssePublicKey::from_pem(&pem("ed25519-public.pem")).unwrap();
        let rsa = DssePublicKey::from_pem(&pem("rsa-public.pem")).unwrap();
        assert_eq!(
            ed.keyid(),
            "SHA256:x6l8ZblpSSXGaPMCzySedWg88BwIFcz8jlPb6el0mFs"
        );
        assert_eq!(
            rsa.keyid(),
            "SHA256:BhCwr7qZulYcOMSl2Jt2DuYHxHNnN6th4NdMqR/PGa4"
        );
        let ec = DssePublicKey::from_pem(&pem("ecdsa-public.pem")).unwrap();
        assert!(ec.algorithm().starts_with("ECDSA"));
    }

    #[test]
    fn fixture_envelope_verifies_with_either_key() {
        let env = fixture_envelope();
        assert!(is_envelope(&env));
        for name in ["ed25519-public.pem", "rsa-public.pem"] {
            let k = DssePublicKey::from_pem(&pem(name)).unwrap();
            let opened = open_envelope(&env, std::slice::from_ref(&k), DigestAlg::Sha256).unwrap();
            assert_eq!(opened.keyids, [k.keyid()]);
            assert!(opened.payload.starts_with(b"{\"version\":1,"));
        }
        let ec = DssePublicKey::from_pem(&pem("ecdsa-public.pem")).unwrap();
        assert!(open_envelope(&env, &[ec], DigestAlg::Sha256).is_err());
    }

    #[test]
    fn tampered_envelope_fails() {
        let env = fixture_envelope();
        let mut e: Envelope = serde_json::from_slice(&env).unwrap();
        let mut payload = STANDARD.decode(&e.payload).unwrap();
        payload[20] ^= 1;
        e.payload = STANDARD.encode(payload);
        let k = DssePublicKey::from_pem(&pem("ed25519-public.pem")).unwrap();
        assert!(open_envelope(
            &serde_json::to_vec(&e).unwrap(),
            std::slice::from_ref(&k),
            DigestAlg::Sha256
        )
        .is_err());
        assert!(open_envelope(b"{", std::slice::from_ref(&k), DigestAlg::Sha256).is_err());
        assert!(!is_envelope(b"-----BEGIN PGP SIGNED MESSAGE-----"));
    }

    #[test]
    fn bad_pem_is_an_error() {
        assert!(DssePublicKey::from_pem("").is_err());
        assert!(DssePublicKey::from_pem(
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"
        )
        .is_err());
        assert!(DsseSigner::from_pem(
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
        )
        .is_err());
    }
}
