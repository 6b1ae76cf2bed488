//! OpenPGP clear-signed messages (RFC 9580 §7), the signature format of
//! both the reference integrity package (JSON metadata, SHA-256) and of
//! Singularity 3.x legacy signatures (`SIFHASH:` plaintext).

use pgp::composed::{CleartextSignedMessage, SignedPublicKey, SignedSecretKey};
use pgp::crypto::hash::HashAlgorithm;
use pgp::packet::{Signature, SignatureConfig, SignatureType, Subpacket, SubpacketData};
use pgp::types::{KeyDetails, KeyVersion, Password, PublicKeyTrait};

use crate::error::{hex_upper, Error, Result};
use crate::keyring::{check_passphrase, primary_user_id};

const HEADER_LINE: &[u8] = b"-----BEGIN PGP SIGNED MESSAGE-----";

/// The plaintext of legacy signatures starts with this; JSON never does.
pub const LEGACY_PREFIX: &str = "SIFHASH:\n";

/// The hashes a signature may use: those of RFC 4880 that NIST still
/// recommends, as the reference accepts.
const ACCEPTED_HASHES: &[HashAlgorithm] = &[
    HashAlgorithm::Sha224,
    HashAlgorithm::Sha256,
    HashAlgorithm::Sha384,
    HashAlgorithm::Sha512,
];

/// Who made a PGP signature that verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgpSigner {
    /// The primary key's fingerprint, upper-case hex.
    pub fingerprint: String,
    /// The primary user ID, such as `Unit Test <unit@test.com>`.
    pub user_id: Option<String>,
}

/// Clear-signs `text` with the key's primary key and SHA-256, as the
/// reference does. The result ends with the armor's last line, without a
/// trailing newline, like the reference's signature objects.
pub fn sign(text: &str, key: &SignedSecretKey, passphrase: &str) -> Result<Vec<u8>> {
    let primary = &key.primary_key;
    let mut config = SignatureConfig::v4(
        SignatureType::Text,
        primary.algorithm(),
        HashAlgorithm::Sha256,
    );
    config.hashed_subpackets = vec![
        Subpacket::regular(SubpacketData::SignatureCreationTime(now()))?,
        Subpacket::regular(SubpacketData::IssuerFingerprint(primary.fingerprint()))?,
    ];
    if primary.version() <= KeyVersion::V4 {
        config.unhashed_subpackets =
            vec![Subpacket::regular(SubpacketData::Issuer(primary.key_id()))?];
    }
    // Checked first so that a wrong passphrase reads as such, not as a
    // checksum error deep in the secret key packet.
    check_passphrase(key, passphrase)?;
    let pw = Password::from(passphrase);
    let msg = CleartextSignedMessage::new(text, config, primary, &pw)?;
    let mut out = msg.to_armored_bytes(Default::default())?;
    while out.last() == Some(&b'\n') {
        out.pop();
    }
    Ok(out)
}

fn now() -> chrono::DateTime<chrono::Utc> {
    use chrono::SubsecRound;
    chrono::Utc::now().trunc_subsecs(0)
}

/// A parsed clear-signed message.
pub struct Message {
    inner: CleartextSignedMessage,
}

impl Message {
    /// Parses a clear-signed message; `None` when `data` is not one.
    pub fn decode(data: &[u8]) -> Option<Message> {
        let start = find(data, HEADER_LINE)?;
        let (inner, _) = CleartextSignedMessage::from_armor(&data[start..]).ok()?;
        Some(Message { inner })
    }

    /// The signed text with `\n` line endings, as the signer wrote it.
    pub fn plaintext(&self) -> String {
        self.inner.signed_text().replace("\r\n", "\n")
    }

    pub fn is_legacy(&self) -> bool {
        self.plaintext().starts_with(LEGACY_PREFIX)
    }

    /// Checks the message against a keyring and returns the signer. The
    /// issuer is looked up by fingerprint or key ID among primary keys and
    /// subkeys; `sig` (the signature object's ID) is only for messages.
    pub fn verify(&self, keyring: &[SignedPublicKey], sig: u32) -> Result<PgpSigner> {
        let text = self.inner.signed_text();
        let mut unknown = None;
        let mut failure = None;
        for s in self.inner.signatures() {
            let issuer = issuer_name(s);
            let Some((entity, subkey)) = find_issuer(keyring, s) else {
                unknown.get_or_insert(issuer);
                continue;
            };
            let checked = match subkey {
                None => check(s, &entity.primary_key, text.as_bytes()),
                Some(i) => check(s, &entity.public_subkeys[i].key, text.as_bytes()),
            };
            match checked {
                Ok(()) => {
                    return Ok(PgpSigner {
                        fingerprint: hex_upper(entity.primary_key.fingerprint().as_bytes()),
                        user_id: primary_user_id(&entity.details),
                    })
                }
                Err(reason) => failure = Some(reason),
            }
        }
        if let Some(reason) = failure {
            return Err(Error::BadSignature { sig, reason });
        }
        match unknown {
            Some(key) => Err(Error::UnknownKey { sig, key }),
            None => Err(Error::BadSignature {
                sig,
                reason: "the message holds no signature".into(),
            }),
        }
    }
}

fn check<K: PublicKeyTrait>(
    s: &Signature,
    key: &K,
    text: &[u8],
) -> std::result::Result<(), String> {
    let hash = s.hash_alg().ok_or("unknown signature format")?;
    if !ACCEPTED_HASHES.contains(&hash) {
        return Err(format!("hash algorithm {hash} is not accepted"));
    }
    if !matches!(s.typ(), Some(SignatureType::Text | SignatureType::Binary)) {
        return Err("not a document signature".into());
    }
    s.verify(key, text).map_err(|e| e.to_string())
}

/// The issuer as named in the signature: fingerprint when present, else key ID.
fn issuer_name(s: &Signature) -> String {
    if let Some(fp) = s.issuer_fingerprint().first() {
        return hex_upper(fp.as_bytes());
    }
    s.issuer()
        .first()
        .map(|id| hex_upper(id.as_ref()))
        .unwrap_or_else(|| "(unnamed)".into())
}

/// The certificate that made `s`, and which of its subkeys did (`None`: the
/// primary key).
fn find_issuer<'k>(
    keyring: &'k [SignedPublicKey],
    s: &Signature,
) -> Option<(&'k SignedPublicKey, Option<usize>)> {
    let fps = s.issuer_fingerprint();
    let ids = s.issuer();
    let matches = |k: &dyn PublicKeyTrait| {
        fps.iter().any(|fp| **fp == k.fingerprint()) || ids.iter().any(|id| **id == k.key_id())
    };
    for entity in keyring {
        if matches(&entity.primary_key) {
            return Some((entity, None));
        }
        if let Some(i) = entity
            .public_subkeys
            .iter()
            .position(|sub| matches(&sub.key))
        {
            return Some((entity, Some(i)));
        }
    }
    None
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{fixture_keyring, open};

    #[test]
    fn reference_message_verifies() {
        let mut sif = open("one-group-signed-pgp.sif");
        let data = sif.read_object(3, 1 << 20).unwrap();
        let msg = Message::decode(&data).unwrap();
        assert!(!msg.is_legacy());
        assert!(msg.plaintext().starts_with("{\"version\":1,"));
        let signer = msg.verify(&fixture_keyring(), 3).unwrap();
        assert_eq!(
            signer.fingerprint,
            "12045C8C0B1004D058DE4BEDA20C27EE7FF7BA84"
        );
        assert_eq!(signer.user_id.as_deref(), Some("Unit Test <unit@test.com>"));
    }

    #[test]
    fn unknown_key_is_reported() {
        let mut sif = open("one-group-signed-pgp.sif");
        let data = sif.read_object(3, 1 << 20).unwrap();
        let msg = Message::decode(&data).unwrap();
        let err = msg.verify(&[], 3).unwrap_err();
        assert!(
            matches!(err, Error::UnknownKey { sig: 3, ref key } if key.contains("7FF7BA84")),
            "{err}"
        );
    }

    #[test]
    fn legacy_plaintext_is_detected() {
        let mut sif = open("one-group-signed-legacy.sif");
        let data = sif.read_object(3, 1 << 20).unwrap();
        let msg = Message::decode(&data).unwrap();
        assert!(msg.is_legacy());
        msg.verify(&fixture_keyring(), 3).unwrap();
    }

    #[test]
    fn garbage_is_not_a_message() {
        assert!(Message::decode(b"").is_none());
        assert!(
            Message::decode(b"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nx\n").is_none()
        );
        assert!(Message::decode(b"{\"payloadType\":\"x\"}").is_none());
    }
}

/// Interoperability with GnuPG, both ways. Skipped (with a note) where no
/// `gpg` binary is installed.
#[cfg(test)]
mod gnupg {
    use std::path::Path;
    use std::process::{Command, Output};

    use super::*;
    use crate::testutil::test_key;

    fn gpg(home: &Path, args: &[&str], stdin: Option<&[u8]>) -> Option<Output> {
        use std::io::Write;
        let mut cmd = Command::new("gpg");
        cmd.arg("--homedir")
            .arg(home)
            .args([
                "--batch",
                "--no-tty",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
            ])
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().ok()?;
        let mut input = child.stdin.take()?;
        input.write_all(stdin.unwrap_or_default()).ok()?;
        drop(input);
        child.wait_with_output().ok()
    }

    /// A private GNUPGHOME, its agent stopped when dropped.
    struct Home(tempfile::TempDir);

    impl Drop for Home {
        fn drop(&mut self) {
            let _ = Command::new("gpgconf")
                .arg("--homedir")
                .arg(self.0.path())
                .args(["--kill", "gpg-agent"])
                .output();
        }
    }

    fn home() -> Option<Home> {
        if Command::new("gpg").arg("--version").output().is_err() {
            eprintln!("note: gpg is not installed; GnuPG interoperability not tested");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("gpg")
            .tempdir_in("/tmp")
            .ok()?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).ok()?;
        Some(Home(dir))
    }

    #[test]
    fn gpg_accepts_our_signature() {
        let Some(home) = home() else { return };
        let (key, pass) = test_key();
        let public = crate::keyring::armor_public(&key.signed_public_key()).unwrap();
        let out = gpg(home.0.path(), &["--import"], Some(&public)).unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let signed = sign("{\"version\":1,\"objects\":[]}", key, pass).unwrap();
        let file = home.0.path().join("sig.asc");
        std::fs::write(&file, &signed).unwrap();
        let out = gpg(home.0.path(), &["--verify", file.to_str().unwrap()], None).unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && err.contains("Good signature"),
            "{err}"
        );
    }

    #[test]
    fn we_accept_gpg_signatures() {
        let Some(home) = home() else { return };
        let h = home.0.path();
        let out = gpg(
            h,
            &[
                "--quick-gen-key",
                "GnuPG Test <gpg@example.com>",
                "rsa2048",
                "sign",
                "never",
            ],
            None,
        )
        .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let public = gpg(h, &["--armor", "--export"], None).unwrap().stdout;
        let keyring = crate::keyring::parse_keys(&public).unwrap();
        let keyring: Vec<SignedPublicKey> = keyring
            .into_iter()
            .map(|k| SignedPublicKey::try_from(k).unwrap())
            .collect();
        let text = b"{\"version\":1}";
        let signed = gpg(h, &["--clearsign", "--digest-algo", "SHA256"], Some(text))
            .unwrap()
            .stdout;
        let msg = Message::decode(&signed).unwrap();
        assert_eq!(msg.plaintext(), "{\"version\":1}");
        let signer = msg.verify(&keyring, 1).unwrap();
        assert_eq!(
            signer.user_id.as_deref(),
            Some("GnuPG Test <gpg@example.com>")
        );

        // Its secret key, imported into a keyring of ours, signs for gpg.
        let secret = gpg(h, &["--armor", "--export-secret-keys"], None)
            .unwrap()
            .stdout;
        let dir = tempfile::tempdir().unwrap();
        let kr = crate::Keyring::new(dir.path().join("keys"));
        let done = kr.import(&secret).unwrap();
        assert!(done[0].secret && done[0].public);
        let key = kr.find_secret(&done[0].fingerprint).unwrap();
        let ours = sign("{\"version\":2}", &key, "").unwrap();
        let file = h.join("ours.asc");
        std::fs::write(&file, &ours).unwrap();
        let out = gpg(h, &["--verify", file.to_str().unwrap()], None).unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
