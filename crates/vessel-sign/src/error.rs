//! The one error type of the crate. Verification failures are distinct
//! variants so that a caller (the CLI, the run-time ECL policy) can tell a
//! tampered image from an unknown key or a missing signature.

use std::fmt;

/// What a signature or a verification covers.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Target {
    Group(u32),
    Object(u32),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Group(g) => write!(f, "object group {g}"),
            Target::Object(id) => write!(f, "object {id}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Sif(#[from] vessel_sif::Error),
    /// An OpenPGP packet or armor could not be parsed or produced.
    #[error("OpenPGP: {0}")]
    Pgp(String),
    #[error("keyring {path}: {reason}")]
    Keyring { path: String, reason: String },
    #[error("no key matching {0} in the keyring")]
    KeyNotFound(String),
    #[error("the key with fingerprint {0} already belongs to the keyring")]
    KeyExists(String),
    #[error("wrong passphrase for key {0}")]
    WrongPassphrase(String),
    #[error("invalid user ID: {0}")]
    InvalidUserId(String),
    #[error("invalid key: {0}")]
    InvalidKey(String),
    #[error("object group {0} does not exist or is empty")]
    GroupNotFound(u32),
    #[error("the image has no object groups")]
    NoGroups,
    #[error("object {0} is not in an object group")]
    ObjectNotInGroup(u32),
    #[error("non-signature object {0} is not in any object group")]
    UngroupedObject(u32),

    // --- Verification outcomes ---
    #[error("no signature found for {0}")]
    NoSignature(Target),
    #[error(
        "{0} has only legacy signatures, which are verified only when asked for \
         (--legacy-insecure)"
    )]
    LegacyOnly(Target),
    #[error("signature object {sig} was made by unknown key {key} (not in the keyring)")]
    UnknownKey { sig: u32, key: String },
    #[error("signature object {sig} is not valid: {reason}")]
    BadSignature { sig: u32, reason: String },
    #[error(
        "signature object {sig}: the signing key {actual} does not match the fingerprint \
         {recorded} recorded in its descriptor"
    )]
    FingerprintMismatch {
        sig: u32,
        actual: String,
        recorded: String,
    },
    #[error("signature object {sig} is a {kind} signature, but no {kind} key was given")]
    NoKeyMaterial { sig: u32, kind: &'static str },
    #[error("signature object {sig} is in no format known here (PGP clear-sign or DSSE)")]
    UnknownFormat { sig: u32 },
    #[error("the SIF global header was modified after signing (signature object {sig})")]
    HeaderModified { sig: u32 },
    #[error("the descriptor of object {id} was modified after signing (signature object {sig})")]
    DescriptorModified { sig: u32, id: u32 },
    #[error("the data of object {id} was modified after signing (signature object {sig})")]
    ObjectModified { sig: u32, id: u32 },
    #[error("the data of object group {group} was modified after signing (legacy signature object {sig})")]
    GroupDataModified { sig: u32, group: u32 },
    #[error(
        "object {id} is in the signed group but not covered by signature object {sig} \
         (added after signing?)"
    )]
    ObjectNotSigned { sig: u32, id: u32 },
    #[error("object {id} is covered by signature object {sig} but is no longer in its group")]
    SignedObjectMissing { sig: u32, id: u32 },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<pgp::errors::Error> for Error {
    fn from(e: pgp::errors::Error) -> Self {
        Error::Pgp(e.to_string())
    }
}

impl Error {
    /// Whether this is a failure of the signature itself (unknown key, bad
    /// signature, unreadable signed metadata) rather than of the image or
    /// of the request: the run-time ECL policy, like the reference, records
    /// such signatures as "not validated" and goes on; anything else fails.
    pub fn is_signature_invalid(&self) -> bool {
        matches!(self, Error::UnknownKey { .. } | Error::BadSignature { .. })
    }
}

/// Upper-case hex, as Apptainer prints fingerprints.
pub(crate) fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

pub(crate) fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}
