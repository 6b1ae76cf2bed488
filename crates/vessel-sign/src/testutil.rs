//! Fixture access shared by the unit tests.

use std::fs::File;
use std::io::Cursor;
use std::sync::OnceLock;

use pgp::composed::{SignedPublicKey, SignedSecretKey};
use vessel_sif::Sif;

pub const IMAGES: &str = "/work/shared/fixtures/sif/images";
pub const KEYS: &str = "/work/shared/fixtures/sif/keys";

pub fn fixture(name: &str) -> String {
    format!("{IMAGES}/{name}")
}

/// A fixture image opened read-only.
pub fn open(name: &str) -> Sif<File> {
    Sif::load(File::open(fixture(name)).unwrap()).unwrap()
}

/// A fixture image copied into memory, to be changed.
pub fn open_copy(name: &str) -> Sif<Cursor<Vec<u8>>> {
    Sif::load(Cursor::new(std::fs::read(fixture(name)).unwrap())).unwrap()
}

/// The public key the reference corpus was signed with.
pub fn fixture_keyring() -> Vec<SignedPublicKey> {
    let data = std::fs::read(format!("{KEYS}/pgp-public.asc")).unwrap();
    crate::keyring::parse_keys(&data)
        .unwrap()
        .into_iter()
        .map(|k| SignedPublicKey::try_from(k).unwrap())
        .collect()
}

pub fn pem(name: &str) -> String {
    std::fs::read_to_string(format!("{KEYS}/{name}")).unwrap()
}

/// One passphrase-protected key pair for all tests: RSA key generation is
/// slow in debug builds, so it is made once, at the smallest size rPGP allows.
pub fn test_key() -> (&'static SignedSecretKey, &'static str) {
    static KEY: OnceLock<SignedSecretKey> = OnceLock::new();
    const PASS: &str = "correct horse";
    let key = KEY.get_or_init(|| {
        crate::keyring::generate(&crate::keyring::NewKey {
            name: "Test User".into(),
            email: "test@example.com".into(),
            comment: "vessel test".into(),
            passphrase: PASS.into(),
            bits: 2048,
        })
        .unwrap()
    });
    (key, PASS)
}

/// A fixture image in memory with one byte XOR-ed with 0x01; `None` when
/// the change makes the image unreadable (which is also a detection).
pub fn flipped(name: &str, offset: usize) -> Option<Sif<Cursor<Vec<u8>>>> {
    let mut data = std::fs::read(fixture(name)).unwrap();
    data[offset] ^= 0x01;
    Sif::load(Cursor::new(data)).ok()
}

/// The verification keys of the reference corpus.
pub fn fixture_keys() -> crate::verify::VerifyKeys {
    crate::verify::VerifyKeys {
        pgp: Some(fixture_keyring()),
        dsse: ["ed25519-public.pem", "rsa-public.pem"]
            .iter()
            .map(|n| crate::dsse::DssePublicKey::from_pem(&pem(n)).unwrap())
            .collect(),
    }
}
