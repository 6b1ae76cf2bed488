//! OpenPGP keyrings and SIF image signing and verification, compatible with
//! Apptainer (`internal/pkg/sypgp`) and the reference Go integrity package
//! (`github.com/sylabs/sif/v2/pkg/integrity`).
//!
//! - [`keyring`]: Apptainer's `pgp-public`/`pgp-secret` keyrings: list,
//!   import, export, remove, generate key pairs.
//! - [`metadata`]: the signed JSON payload (header, descriptor and object
//!   digests), byte-exact with the reference.
//! - [`sign`]: add PGP clear-signed or DSSE signatures to an image.
//! - [`verify`]: check them (and legacy `SIFHASH:` signatures on request),
//!   with per-signature results and errors naming what changed.
//! - [`policy`]: the run-time execution control list (`vessel.conf`).
//! - [`clearsign`], [`dsse`]: the two signature formats.

mod atomic;
pub mod clearsign;
pub mod digest;
pub mod dsse;
mod error;
pub mod keyring;
pub mod metadata;
pub mod policy;
mod select;
pub mod sign;
#[cfg(test)]
mod testutil;
pub mod verify;

pub use clearsign::{Message, PgpSigner};
pub use dsse::{DssePublicKey, DsseSigner};
pub use error::{Error, Result, Target};
pub use keyring::{KeyInfo, Keyring, NewKey};
pub use sign::{sign, SignKey, SignScope};
pub use verify::{
    signer_summary, verify, Report, SignatureResult, Signer, SignerSummary, VerifyKeys,
    VerifyOptions, VerifyScope,
};

/// Re-exported so that callers can hold keys without naming the `pgp`
/// crate's version themselves.
pub use pgp::composed::{PublicOrSecret, SignedPublicKey, SignedSecretKey};
