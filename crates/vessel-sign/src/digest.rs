//! Digests as the reference integrity package writes them in its JSON:
//! `"<alg>:<lower-case hex>"`, with Go's `crypto.Hash` names.

use std::io::{self, Read};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::digest::DynDigest;
use vessel_sif::HashType;

use crate::error::{hex_decode, hex_lower};

/// The hash algorithms the reference accepts in signed metadata.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DigestAlg {
    Sha224,
    Sha256,
    Sha384,
    Sha512,
    Sha512_224,
    Sha512_256,
}

const NAMES: &[(DigestAlg, &str)] = &[
    (DigestAlg::Sha224, "sha224"),
    (DigestAlg::Sha256, "sha256"),
    (DigestAlg::Sha384, "sha384"),
    (DigestAlg::Sha512, "sha512"),
    (DigestAlg::Sha512_224, "sha512_224"),
    (DigestAlg::Sha512_256, "sha512_256"),
];

impl DigestAlg {
    pub fn name(self) -> &'static str {
        NAMES
            .iter()
            .find(|(a, _)| *a == self)
            .map(|(_, n)| *n)
            .unwrap_or("unknown")
    }

    pub fn from_name(name: &str) -> Option<Self> {
        NAMES.iter().find(|(_, n)| *n == name).map(|(a, _)| *a)
    }

    /// The algorithm a SIF signature descriptor names, if it is one of ours.
    pub fn from_sif(h: HashType) -> Option<Self> {
        match h {
            HashType::SHA256 => Some(DigestAlg::Sha256),
            HashType::SHA384 => Some(DigestAlg::Sha384),
            HashType::SHA512 => Some(DigestAlg::Sha512),
            _ => None,
        }
    }

    pub fn hasher(self) -> Box<dyn DynDigest> {
        match self {
            DigestAlg::Sha224 => Box::new(sha2::Sha224::default()),
            DigestAlg::Sha256 => Box::new(sha2::Sha256::default()),
            DigestAlg::Sha384 => Box::new(sha2::Sha384::default()),
            DigestAlg::Sha512 => Box::new(sha2::Sha512::default()),
            DigestAlg::Sha512_224 => Box::new(sha2::Sha512_224::default()),
            DigestAlg::Sha512_256 => Box::new(sha2::Sha512_256::default()),
        }
    }

    pub fn output_len(self) -> usize {
        match self {
            DigestAlg::Sha224 | DigestAlg::Sha512_224 => 28,
            DigestAlg::Sha256 | DigestAlg::Sha512_256 => 32,
            DigestAlg::Sha384 => 48,
            DigestAlg::Sha512 => 64,
        }
    }

    pub fn hash(self, data: &[u8]) -> Vec<u8> {
        let mut h = self.hasher();
        h.update(data);
        h.finalize().into_vec()
    }

    /// Hashes everything `r` yields.
    pub fn hash_reader(self, r: &mut dyn Read) -> io::Result<Vec<u8>> {
        let mut h = self.hasher();
        feed(h.as_mut(), r)?;
        Ok(h.finalize().into_vec())
    }
}

/// A digest value with its algorithm.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Digest {
    pub alg: DigestAlg,
    pub value: Vec<u8>,
}

impl Digest {
    /// Parses `"<alg>:<hex>"`; `None` when malformed or of the wrong length.
    pub fn parse(s: &str) -> Option<Digest> {
        let (name, hex) = s.split_once(':')?;
        let alg = DigestAlg::from_name(name)?;
        let value = hex_decode(hex)?;
        (value.len() == alg.output_len()).then_some(Digest { alg, value })
    }
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.alg.name(), hex_lower(&self.value))
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Digest::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("malformed digest {s:?}")))
    }
}

/// Adds everything `r` yields to `h`, streaming (partitions can be
/// gigabytes).
pub(crate) fn feed(h: &mut dyn DynDigest, r: &mut dyn Read) -> io::Result<()> {
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        h.update(&buf[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_format_round_trip() {
        let d = Digest {
            alg: DigestAlg::Sha256,
            value: DigestAlg::Sha256.hash(b""),
        };
        let s = d.to_string();
        assert_eq!(
            s,
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(Digest::parse(&s), Some(d));
    }

    #[test]
    fn malformed_digests_are_rejected() {
        for bad in ["sha256", "md5:00", "sha256:zz", "sha256:00", "sha256:0"] {
            assert_eq!(Digest::parse(bad), None, "{bad}");
        }
    }
}
