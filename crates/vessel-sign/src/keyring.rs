//! Apptainer's OpenPGP keyrings: `pgp-public` and `pgp-secret` in the key
//! directory (`~/.apptainer/keys`), each a plain concatenation of binary
//! transferable keys (no armor), as Go's `openpgp.ReadKeyRing` reads them.
//! A missing file is an empty keyring. The system-wide keyring holds only
//! public keys, in `global-pgp-public`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use pgp::composed::{
    ArmorOptions, KeyType, PublicOrSecret, SecretKeyParamsBuilder, SignedKeyDetails,
    SignedPublicKey, SignedSecretKey, SubkeyParamsBuilder,
};
use pgp::crypto::hash::HashAlgorithm;
use pgp::ser::Serialize;
use pgp::types::{EcdsaPublicParams, KeyDetails, Password, PublicKeyTrait, PublicParams};

use crate::atomic;
use crate::error::{hex_upper, Error, Result};

pub const PUBLIC_FILE: &str = "pgp-public";
pub const SECRET_FILE: &str = "pgp-secret";
pub const GLOBAL_PUBLIC_FILE: &str = "global-pgp-public";

/// What `key list` shows about one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyInfo {
    /// Primary key fingerprint, upper-case hex (40 digits for v4 keys).
    pub fingerprint: String,
    /// The 64-bit key ID, upper-case hex.
    pub key_id: String,
    /// User IDs in certificate order, e.g. `Name (comment) <email>`.
    pub user_ids: Vec<String>,
    /// Creation time of the primary key, Unix seconds.
    pub created: i64,
    /// Public-key algorithm, e.g. `RSA`.
    pub algorithm: String,
    /// Key size in bits (curve size for elliptic curves).
    pub bits: u32,
    /// Whether this entry carries secret key material.
    pub secret: bool,
    /// Whether that secret material is passphrase-protected.
    pub encrypted: bool,
}

/// Parameters of a new key pair (`key newpair`).
#[derive(Clone, Debug)]
pub struct NewKey {
    pub name: String,
    pub email: String,
    pub comment: String,
    /// Empty for an unprotected secret key.
    pub passphrase: String,
    /// RSA modulus size; Apptainer's default is 4096.
    pub bits: u32,
}

/// The user ID string Go's openpgp builds: `Name (comment) <email>`, each
/// part left out when empty. Characters that would make it ambiguous are
/// refused, as Go refuses them.
pub fn user_id(name: &str, comment: &str, email: &str) -> Result<String> {
    let bad = |s: &str, chars: &str| s.chars().any(|c| chars.contains(c));
    if bad(name, "()<>\0") || bad(comment, "()\0") || bad(email, "()<>\0") {
        return Err(Error::InvalidUserId(
            "the name, comment or email contains one of ( ) < > or NUL".into(),
        ));
    }
    let mut id = name.to_string();
    if !comment.is_empty() {
        if !id.is_empty() {
            id.push(' ');
        }
        id.push_str(&format!("({comment})"));
    }
    if !email.is_empty() {
        if !id.is_empty() {
            id.push(' ');
        }
        id.push_str(&format!("<{email}>"));
    }
    if id.is_empty() {
        return Err(Error::InvalidUserId("the user ID is empty".into()));
    }
    Ok(id)
}

/// Generates a key pair as Go's `openpgp.NewEntity` does for Apptainer: an
/// RSA primary key for certifying and signing and an RSA encryption
/// subkey, both of `bits` bits, locked with the passphrase if one is given.
pub fn generate(opts: &NewKey) -> Result<SignedSecretKey> {
    if !(2048..=16384).contains(&opts.bits) {
        return Err(Error::InvalidKey(format!(
            "an RSA key of {} bits is not supported (2048 to 16384)",
            opts.bits
        )));
    }
    let uid = user_id(&opts.name, &opts.comment, &opts.email)?;
    let passphrase = (!opts.passphrase.is_empty()).then(|| opts.passphrase.clone());
    let bad = |e: pgp::composed::SubkeyParamsBuilderError| Error::InvalidKey(e.to_string());
    let subkey = SubkeyParamsBuilder::default()
        .key_type(KeyType::Rsa(opts.bits))
        .can_encrypt(true)
        .passphrase(passphrase.clone())
        .build()
        .map_err(bad)?;
    let params = SecretKeyParamsBuilder::default()
        .key_type(KeyType::Rsa(opts.bits))
        .can_certify(true)
        .can_sign(true)
        .primary_user_id(uid)
        .preferred_hash_algorithms(
            [
                HashAlgorithm::Sha384,
                HashAlgorithm::Sha256,
                HashAlgorithm::Sha512,
            ]
            .into_iter()
            .collect(),
        )
        .passphrase(passphrase)
        .subkey(subkey)
        .build()
        .map_err(|e| Error::InvalidKey(e.to_string()))?;
    let mut rng = rand::thread_rng();
    let key = params.generate(&mut rng)?;
    Ok(key.sign(&mut rng, &Password::from(opts.passphrase.as_str()))?)
}

/// Checks that `passphrase` unlocks the key's primary secret material (an
/// unprotected key accepts any passphrase).
pub fn check_passphrase(key: &SignedSecretKey, passphrase: &str) -> Result<()> {
    let pw = Password::from(passphrase);
    match key.primary_key.unlock(&pw, |_, _| Ok(())) {
        Ok(Ok(())) => Ok(()),
        _ => Err(Error::WrongPassphrase(fingerprint(&key.primary_key))),
    }
}

/// Removes the passphrase protection, or changes it: the key is unlocked
/// with `old` and, when `new` is not empty, locked again with it.
pub fn change_passphrase(key: &mut SignedSecretKey, old: &str, new: &str) -> Result<()> {
    check_passphrase(key, old)?;
    let old = Password::from(old);
    let mut rng = rand::thread_rng();
    key.primary_key.remove_password(&old)?;
    for sub in &mut key.secret_subkeys {
        sub.key.remove_password(&old)?;
    }
    if !new.is_empty() {
        let new = Password::from(new);
        key.primary_key.set_password(&mut rng, &new)?;
        for sub in &mut key.secret_subkeys {
            sub.key.set_password(&mut rng, &new)?;
        }
    }
    Ok(())
}

/// Upper-case hex fingerprint of a key.
pub fn fingerprint(key: &impl KeyDetails) -> String {
    hex_upper(key.fingerprint().as_bytes())
}

/// The primary user ID: the one flagged primary, else the first.
pub fn primary_user_id(details: &SignedKeyDetails) -> Option<String> {
    let users = &details.users;
    let primary = users
        .iter()
        .find(|u| u.signatures.iter().any(|s| s.is_primary()))
        .or_else(|| users.first())?;
    Some(String::from_utf8_lossy(primary.id.id()).into_owned())
}

fn info(key: &pgp::packet::PublicKey, details: &SignedKeyDetails) -> KeyInfo {
    let (algorithm, bits) = algorithm_and_bits(key.public_params());
    KeyInfo {
        fingerprint: fingerprint(key),
        key_id: hex_upper(key.key_id().as_ref()),
        user_ids: details
            .users
            .iter()
            .map(|u| String::from_utf8_lossy(u.id.id()).into_owned())
            .collect(),
        created: key.created_at().timestamp(),
        algorithm,
        bits,
        secret: false,
        encrypted: false,
    }
}

pub fn public_info(key: &SignedPublicKey) -> KeyInfo {
    info(&key.primary_key, &key.details)
}

pub fn secret_info(key: &SignedSecretKey) -> KeyInfo {
    KeyInfo {
        secret: true,
        encrypted: key.primary_key.secret_params().is_encrypted(),
        ..info(key.primary_key.public_key(), &key.details)
    }
}

fn algorithm_and_bits(p: &PublicParams) -> (String, u32) {
    use pgp::types::PublicParams as P;
    match p {
        P::RSA(r) => {
            use rsa::traits::PublicKeyParts;
            ("RSA".into(), r.key.n().bits() as u32)
        }
        P::DSA(_) => ("DSA".into(), 0),
        P::ECDSA(e) => (
            "ECDSA".into(),
            match e {
                EcdsaPublicParams::P256 { .. } | EcdsaPublicParams::Secp256k1 { .. } => 256,
                EcdsaPublicParams::P384 { .. } => 384,
                EcdsaPublicParams::P521 { .. } => 521,
                EcdsaPublicParams::Unsupported { .. } => 0,
            },
        ),
        P::ECDH(_) => ("ECDH".into(), 0),
        P::Elgamal(_) => ("ElGamal".into(), 0),
        P::EdDSALegacy(_) | P::Ed25519(_) => ("EdDSA".into(), 256),
        P::Ed448(_) => ("Ed448".into(), 448),
        P::X25519(_) => ("X25519".into(), 256),
        P::X448(_) => ("X448".into(), 448),
        _ => ("unknown".into(), 0),
    }
}

/// Whether `selector` names this key: its full fingerprint or its 64-bit
/// key ID, in hex of either case, with or without a `0x` prefix.
pub fn matches(key: &impl KeyDetails, selector: &str) -> bool {
    let sel = selector.trim();
    let sel = sel
        .strip_prefix("0x")
        .or_else(|| sel.strip_prefix("0X"))
        .unwrap_or(sel)
        .to_ascii_uppercase();
    !sel.is_empty() && (sel == fingerprint(key) || sel == hex_upper(key.key_id().as_ref()))
}

/// Parses keys from armored or binary data, public or secret, as `key
/// import` accepts them. Any malformed key is an error.
pub fn parse_keys(data: &[u8]) -> Result<Vec<PublicOrSecret>> {
    if data.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    // Armored input may carry several blocks (public and private); read
    // them all, where the binary parser would stop at the first armor.
    if data.trim_ascii_start().starts_with(b"-----BEGIN ") {
        let mut keys = Vec::new();
        let text = String::from_utf8_lossy(data);
        for block in armor_blocks(&text) {
            let (iter, _) = PublicOrSecret::from_armor_many(block.as_bytes())?;
            for k in iter {
                keys.push(k?);
            }
        }
        if !keys.is_empty() {
            return Ok(keys);
        }
    }
    let (iter, _) = PublicOrSecret::from_reader_many(data)?;
    let keys = iter.collect::<std::result::Result<Vec<_>, _>>()?;
    if keys.is_empty() {
        return Err(Error::Pgp("no OpenPGP key found".into()));
    }
    Ok(keys)
}

/// The `-----BEGIN …` to `-----END …-----` blocks of an armored text.
fn armor_blocks(text: &str) -> Vec<&str> {
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start..];
        let Some(end_marker) = after.find("-----END ") else {
            break;
        };
        let tail = &after[end_marker + 9..];
        let end = tail
            .find("-----")
            .map(|i| end_marker + 9 + i + 5)
            .unwrap_or(after.len());
        blocks.push(&after[..end]);
        rest = &after[end..];
    }
    blocks
}

/// Binary serialization of several keys, concatenated (the keyring format).
fn to_bytes<K: Serialize>(keys: &[K]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for k in keys {
        k.to_writer(&mut out)?;
    }
    Ok(out)
}

fn read_or_empty(path: &Path) -> Result<Vec<u8>> {
    match fs::read(path) {
        Ok(d) => Ok(d),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

fn keyring_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Keyring {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// Reads the public keys of a keyring file (a missing file is empty). A
/// secret key found in it counts by its public part.
pub fn read_public_file(path: &Path) -> Result<Vec<SignedPublicKey>> {
    let data = read_or_empty(path)?;
    let keys = parse_keys(&data).map_err(|e| keyring_error(path, e))?;
    Ok(keys
        .into_iter()
        .map(|k| match k {
            PublicOrSecret::Public(p) => p,
            PublicOrSecret::Secret(s) => s.signed_public_key(),
        })
        .collect())
}

/// Reads the secret keys of a keyring file (a missing file is empty).
pub fn read_secret_file(path: &Path) -> Result<Vec<SignedSecretKey>> {
    let data = read_or_empty(path)?;
    let keys = parse_keys(&data).map_err(|e| keyring_error(path, e))?;
    keys.into_iter()
        .map(|k| match k {
            PublicOrSecret::Secret(s) => Ok(s),
            PublicOrSecret::Public(p) => Err(keyring_error(
                path,
                format!(
                    "holds public key {} without its secret part",
                    fingerprint(&p.primary_key)
                ),
            )),
        })
        .collect()
}

/// ASCII-armored form of a public key (`PUBLIC KEY BLOCK`).
pub fn armor_public(key: &SignedPublicKey) -> Result<Vec<u8>> {
    Ok(key.to_armored_bytes(ArmorOptions::default())?)
}

/// ASCII-armored form of a secret key (`PRIVATE KEY BLOCK`).
pub fn armor_secret(key: &SignedSecretKey) -> Result<Vec<u8>> {
    Ok(key.to_armored_bytes(ArmorOptions::default())?)
}

/// What importing one key did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Imported {
    pub fingerprint: String,
    /// Added to the secret keyring.
    pub secret: bool,
    /// Added to the public keyring.
    pub public: bool,
}

/// A user's (or the system's) key directory.
#[derive(Clone, Debug)]
pub struct Keyring {
    dir: PathBuf,
    global: bool,
}

impl Keyring {
    /// The keyrings in a user's key directory (`~/.apptainer/keys`).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Keyring {
            dir: dir.into(),
            global: false,
        }
    }

    /// The system-wide public keyring in `dir` (`global-pgp-public`, mode
    /// 0644, no secret keys).
    pub fn global(dir: impl Into<PathBuf>) -> Self {
        Keyring {
            dir: dir.into(),
            global: true,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn public_path(&self) -> PathBuf {
        self.dir.join(if self.global {
            GLOBAL_PUBLIC_FILE
        } else {
            PUBLIC_FILE
        })
    }

    pub fn secret_path(&self) -> PathBuf {
        self.dir.join(SECRET_FILE)
    }

    pub fn public_keys(&self) -> Result<Vec<SignedPublicKey>> {
        read_public_file(&self.public_path())
    }

    pub fn secret_keys(&self) -> Result<Vec<SignedSecretKey>> {
        if self.global {
            return Ok(Vec::new());
        }
        read_secret_file(&self.secret_path())
    }

    pub fn list_public(&self) -> Result<Vec<KeyInfo>> {
        Ok(self.public_keys()?.iter().map(public_info).collect())
    }

    pub fn list_secret(&self) -> Result<Vec<KeyInfo>> {
        Ok(self.secret_keys()?.iter().map(secret_info).collect())
    }

    /// The public key named by fingerprint or key ID.
    pub fn find_public(&self, selector: &str) -> Result<SignedPublicKey> {
        self.public_keys()?
            .into_iter()
            .find(|k| matches(&k.primary_key, selector))
            .ok_or_else(|| Error::KeyNotFound(selector.to_string()))
    }

    /// The secret key named by fingerprint or key ID.
    pub fn find_secret(&self, selector: &str) -> Result<SignedSecretKey> {
        self.secret_keys()?
            .into_iter()
            .find(|k| matches(&k.primary_key, selector))
            .ok_or_else(|| Error::KeyNotFound(selector.to_string()))
    }

    fn public_mode(&self) -> u32 {
        if self.global {
            0o644
        } else {
            0o600
        }
    }

    fn prepare_dir(&self) -> Result<()> {
        if self.global {
            fs::create_dir_all(&self.dir)?;
        } else {
            atomic::ensure_private_dir(&self.dir)?;
        }
        Ok(())
    }

    fn store_public(&self, keys: &[SignedPublicKey]) -> Result<()> {
        self.prepare_dir()?;
        atomic::write(&self.public_path(), &to_bytes(keys)?, self.public_mode())?;
        Ok(())
    }

    fn store_secret(&self, keys: &[SignedSecretKey]) -> Result<()> {
        if self.global {
            return Err(Error::Keyring {
                path: self.secret_path().display().to_string(),
                reason: "the global keyring cannot hold secret keys".into(),
            });
        }
        self.prepare_dir()?;
        atomic::write(&self.secret_path(), &to_bytes(keys)?, 0o600)?;
        Ok(())
    }

    /// Adds a public key; an error if one with its fingerprint is there.
    pub fn add_public(&self, key: SignedPublicKey) -> Result<()> {
        let mut keys = self.public_keys()?;
        let fp = fingerprint(&key.primary_key);
        if keys.iter().any(|k| fingerprint(&k.primary_key) == fp) {
            return Err(Error::KeyExists(fp));
        }
        keys.push(key);
        self.store_public(&keys)
    }

    /// Adds a secret key; an error if one with its fingerprint is there.
    pub fn add_secret(&self, key: SignedSecretKey) -> Result<()> {
        let mut keys = self.secret_keys()?;
        let fp = fingerprint(&key.primary_key);
        if keys.iter().any(|k| fingerprint(&k.primary_key) == fp) {
            return Err(Error::KeyExists(fp));
        }
        keys.push(key);
        self.store_secret(&keys)
    }

    /// Imports every key in `data` (armored or binary). A secret key goes
    /// into the secret keyring and, as in Apptainer, its public part into
    /// the public keyring as well (skipped if already there). A key already
    /// in the keyring it would be added to is an error, as in Apptainer.
    pub fn import(&self, data: &[u8]) -> Result<Vec<Imported>> {
        let keys = parse_keys(data)?;
        if keys.is_empty() {
            return Err(Error::Pgp("no OpenPGP key found".into()));
        }
        let mut out = Vec::new();
        for key in keys {
            match key {
                PublicOrSecret::Secret(s) => {
                    let fp = fingerprint(&s.primary_key);
                    let public = s.signed_public_key();
                    self.add_secret(s)?;
                    let public = match self.add_public(public) {
                        Ok(()) => true,
                        Err(Error::KeyExists(_)) => false,
                        Err(e) => return Err(e),
                    };
                    out.push(Imported {
                        fingerprint: fp,
                        secret: true,
                        public,
                    });
                }
                PublicOrSecret::Public(p) => {
                    let fp = fingerprint(&p.primary_key);
                    self.add_public(p)?;
                    out.push(Imported {
                        fingerprint: fp,
                        secret: false,
                        public: true,
                    });
                }
            }
        }
        Ok(out)
    }

    /// A public key, armored or binary.
    pub fn export_public(&self, selector: &str, armor: bool) -> Result<Vec<u8>> {
        let key = self.find_public(selector)?;
        if armor {
            armor_public(&key)
        } else {
            to_bytes(&[key])
        }
    }

    /// A secret key, armored or binary, still locked by its passphrase.
    pub fn export_secret(&self, selector: &str, armor: bool) -> Result<Vec<u8>> {
        let key = self.find_secret(selector)?;
        if armor {
            armor_secret(&key)
        } else {
            to_bytes(&[key])
        }
    }

    /// Removes the public key with this fingerprint (or key ID).
    pub fn remove_public(&self, selector: &str) -> Result<()> {
        let mut keys = self.public_keys()?;
        let before = keys.len();
        keys.retain(|k| !matches(&k.primary_key, selector));
        if keys.len() == before {
            return Err(Error::KeyNotFound(selector.to_string()));
        }
        self.store_public(&keys)
    }

    /// Removes the secret key with this fingerprint (or key ID).
    pub fn remove_secret(&self, selector: &str) -> Result<()> {
        let mut keys = self.secret_keys()?;
        let before = keys.len();
        keys.retain(|k| !matches(&k.primary_key, selector));
        if keys.len() == before {
            return Err(Error::KeyNotFound(selector.to_string()));
        }
        self.store_secret(&keys)
    }

    /// Generates a key pair and stores it in both keyrings.
    pub fn generate(&self, opts: &NewKey) -> Result<SignedSecretKey> {
        let key = generate(opts)?;
        self.add_secret(key.clone())?;
        self.add_public(key.signed_public_key())?;
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{fixture_keyring, test_key, KEYS};

    #[test]
    fn user_id_like_go() {
        assert_eq!(user_id("A B", "c", "a@b").unwrap(), "A B (c) <a@b>");
        assert_eq!(user_id("A", "", "a@b").unwrap(), "A <a@b>");
        assert_eq!(user_id("A", "", "").unwrap(), "A");
        assert_eq!(user_id("", "", "a@b").unwrap(), "<a@b>");
        assert!(user_id("A <x>", "", "").is_err());
        assert!(user_id("", "", "").is_err());
    }

    #[test]
    fn fixture_key_lists() {
        let keys = fixture_keyring();
        assert_eq!(keys.len(), 1);
        let info = public_info(&keys[0]);
        assert_eq!(info.fingerprint, "12045C8C0B1004D058DE4BEDA20C27EE7FF7BA84");
        assert_eq!(info.key_id, "A20C27EE7FF7BA84");
        assert_eq!(info.user_ids, ["Unit Test <unit@test.com>"]);
        assert_eq!(info.algorithm, "RSA");
        assert!(info.bits >= 1024);
        assert!(matches(&keys[0].primary_key, "0xa20c27ee7ff7ba84"));
        assert!(!matches(&keys[0].primary_key, ""));
    }

    #[test]
    fn missing_keyring_is_empty_and_garbage_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let kr = Keyring::new(dir.path().join("keys"));
        assert!(kr.list_public().unwrap().is_empty());
        assert!(kr.list_secret().unwrap().is_empty());
        fs::create_dir_all(kr.dir()).unwrap();
        fs::write(kr.public_path(), b"\x99\x01\x0dgarbage").unwrap();
        assert!(kr.list_public().is_err());
        fs::write(
            kr.public_path(),
            b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nxx\n",
        )
        .unwrap();
        assert!(kr.list_public().is_err());
    }

    #[test]
    fn import_fixture_armored_then_binary_format_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let kr = Keyring::new(dir.path().join("keys"));
        let asc = fs::read(format!("{KEYS}/pgp-public.asc")).unwrap();
        let done = kr.import(&asc).unwrap();
        assert_eq!(
            done[0].fingerprint,
            "12045C8C0B1004D058DE4BEDA20C27EE7FF7BA84"
        );
        assert!(matches!(kr.import(&asc), Err(Error::KeyExists(_))));
        // The file is binary packets, as Go's ReadKeyRing expects.
        let raw = fs::read(kr.public_path()).unwrap();
        assert_eq!(raw[0] & 0x80, 0x80, "binary OpenPGP packet");
        let bin = kr
            .export_public("12045C8C0B1004D058DE4BEDA20C27EE7FF7BA84", false)
            .unwrap();
        assert_eq!(bin, raw);
        let armored = kr.export_public("A20C27EE7FF7BA84", true).unwrap();
        assert!(armored.starts_with(b"-----BEGIN PGP PUBLIC KEY BLOCK-----"));
        kr.remove_public("12045c8c0b1004d058de4beda20c27ee7ff7ba84")
            .unwrap();
        assert!(kr.list_public().unwrap().is_empty());
        assert!(matches!(
            kr.remove_public("A20C27EE7FF7BA84"),
            Err(Error::KeyNotFound(_))
        ));
    }

    #[test]
    fn secret_key_round_trip_with_passphrase() {
        let (key, pass) = test_key();
        let fp = fingerprint(&key.primary_key);
        let info = secret_info(key);
        assert!(info.secret && info.encrypted);
        assert_eq!(
            info.user_ids,
            ["Test User (vessel test) <test@example.com>"]
        );
        assert_eq!(info.algorithm, "RSA");
        check_passphrase(key, pass).unwrap();
        assert!(matches!(
            check_passphrase(key, "wrong"),
            Err(Error::WrongPassphrase(_))
        ));
        assert!(matches!(
            check_passphrase(key, ""),
            Err(Error::WrongPassphrase(_))
        ));

        // Export armored from one keyring, import into a fresh one.
        let dir = tempfile::tempdir().unwrap();
        let a = Keyring::new(dir.path().join("a"));
        a.add_secret(key.clone()).unwrap();
        a.add_public(key.signed_public_key()).unwrap();
        let armored = a.export_secret(&fp, true).unwrap();
        assert!(armored.starts_with(b"-----BEGIN PGP PRIVATE KEY BLOCK-----"));
        let b = Keyring::new(dir.path().join("b"));
        let done = b.import(&armored).unwrap();
        assert_eq!(
            done,
            [Imported {
                fingerprint: fp.clone(),
                secret: true,
                public: true
            }]
        );
        assert_eq!(b.list_public().unwrap()[0].fingerprint, fp);
        let s = b.find_secret(&fp).unwrap();
        check_passphrase(&s, pass).unwrap();
        assert!(check_passphrase(&s, "nope").is_err());
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&b.secret_path()), 0o600);
        assert_eq!(mode(b.dir()), 0o700);
        b.remove_secret(&fp).unwrap();
        assert!(b.list_secret().unwrap().is_empty());
        assert_eq!(b.list_public().unwrap().len(), 1);

        // Changing the passphrase.
        let mut k = key.clone();
        change_passphrase(&mut k, pass, "").unwrap();
        check_passphrase(&k, "").unwrap();
        assert!(!secret_info(&k).encrypted);
    }
}
