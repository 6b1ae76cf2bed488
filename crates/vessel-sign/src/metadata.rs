//! The signed payload of the reference integrity package: a JSON document
//! with digests of the global header and of each signed object's
//! descriptor and data. Only fields that never change when objects are
//! added are hashed, so that adding a signature does not break the others.

use std::io::{Read, Seek};

use serde::{Deserialize, Serialize};
use vessel_sif::{Descriptor, Header, Sif};

use crate::digest::{Digest, DigestAlg};
use crate::error::{Error, Result};
use crate::select;

/// The only metadata version the reference writes.
const METADATA_VERSION: i64 = 1;

/// Field names and order are those of the reference (Go's encoding/json
/// writes struct fields in declaration order).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageMetadata {
    pub version: i64,
    pub header: HeaderMetadata,
    pub objects: Vec<ObjectMetadata>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderMetadata {
    pub digest: Digest,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMetadata {
    /// The object's ID minus the smallest ID in its group.
    #[serde(rename = "relativeId")]
    pub relative_id: u32,
    #[serde(rename = "descriptorDigest")]
    pub descriptor_digest: Digest,
    #[serde(rename = "objectDigest")]
    pub object_digest: Digest,
}

/// The header fields covered by a signature: launch script, magic, version
/// and image UUID. Times, counts and offsets change as objects are added.
pub fn header_integrity_bytes(h: &Header) -> Vec<u8> {
    let mut b = Vec::with_capacity(61);
    b.extend_from_slice(&h.launch_script);
    b.extend_from_slice(&h.magic);
    b.extend_from_slice(&h.version);
    b.extend_from_slice(&h.id);
    b
}

/// The descriptor fields covered by a signature, little-endian: type, used
/// flag, relative ID, link, size, creation time, UID, GID, name, extra. The
/// group, absolute ID, offsets and modification time are left out so that a
/// group can move within or between images.
pub fn descriptor_integrity_bytes(d: &Descriptor, relative_id: u32) -> Vec<u8> {
    let mut b = Vec::with_capacity(4 + 1 + 4 + 4 + 8 * 4 + d.name.len() + d.extra.len());
    b.extend_from_slice(&d.data_type.0.to_le_bytes());
    b.push(u8::from(d.used));
    b.extend_from_slice(&relative_id.to_le_bytes());
    b.extend_from_slice(&d.raw_link.to_le_bytes());
    for v in [d.size, d.created_at, d.uid, d.gid] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b.extend_from_slice(&d.name);
    b.extend_from_slice(&d.extra);
    b
}

fn object_digest<F: Read + Seek>(sif: &mut Sif<F>, id: u32, alg: DigestAlg) -> Result<Digest> {
    let mut r = sif.object_reader(id)?;
    Ok(Digest {
        alg,
        value: alg.hash_reader(&mut r)?,
    })
}

impl ImageMetadata {
    /// The metadata for objects `ids` of `group`, which must all belong to
    /// it; objects are listed in ID order.
    pub fn compute<F: Read + Seek>(
        sif: &mut Sif<F>,
        group: u32,
        ids: &[u32],
        alg: DigestAlg,
    ) -> Result<ImageMetadata> {
        let min_id = select::group_min_id(sif, group)?;
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        let header = HeaderMetadata {
            digest: Digest {
                alg,
                value: alg.hash(&header_integrity_bytes(sif.header())),
            },
        };
        let mut objects = Vec::with_capacity(ids.len());
        for id in ids {
            let d = *sif.descriptor(id)?;
            if d.group() != Some(group) {
                return Err(Error::ObjectNotInGroup(id));
            }
            let relative_id = id - min_id;
            objects.push(ObjectMetadata {
                relative_id,
                descriptor_digest: Digest {
                    alg,
                    value: alg.hash(&descriptor_integrity_bytes(&d, relative_id)),
                },
                object_digest: object_digest(sif, id, alg)?,
            });
        }
        Ok(ImageMetadata {
            version: METADATA_VERSION,
            header,
            objects,
        })
    }

    /// The JSON text that gets signed, byte for byte as the reference writes it.
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising plain structs of strings and integers cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn from_json(data: &[u8]) -> Result<ImageMetadata, serde_json::Error> {
        serde_json::from_slice(data)
    }

    /// Absolute IDs of the signed objects, given the group's smallest ID.
    pub fn object_ids(&self, min_id: u32) -> Vec<u32> {
        self.objects
            .iter()
            .map(|o| min_id.saturating_add(o.relative_id))
            .collect()
    }

    /// Checks the header and the objects `ods` against the signed digests,
    /// naming the first thing that differs. `sig` is the signature object,
    /// for messages.
    pub fn check<F: Read + Seek>(
        &self,
        sif: &mut Sif<F>,
        min_id: u32,
        ods: &[Descriptor],
        sig: u32,
    ) -> Result<()> {
        let hd = &self.header.digest;
        if hd.alg.hash(&header_integrity_bytes(sif.header())) != hd.value {
            return Err(Error::HeaderModified { sig });
        }
        for od in ods {
            let om = self
                .objects
                .iter()
                .find(|o| min_id.checked_add(o.relative_id) == Some(od.id))
                .ok_or(Error::ObjectNotSigned { sig, id: od.id })?;
            let dd = &om.descriptor_digest;
            let relative_id = od.id.saturating_sub(min_id);
            if dd.alg.hash(&descriptor_integrity_bytes(od, relative_id)) != dd.value {
                return Err(Error::DescriptorModified { sig, id: od.id });
            }
            if object_digest(sif, od.id, om.object_digest.alg)? != om.object_digest {
                return Err(Error::ObjectModified { sig, id: od.id });
            }
        }
        Ok(())
    }
}

/// The JSON payload a signature over `ids` of `group` carries (all of the
/// group's objects when `ids` is `None`), hashed with SHA-256 as the
/// reference does by default.
pub fn group_payload<F: Read + Seek>(
    sif: &mut Sif<F>,
    group: u32,
    ids: Option<&[u32]>,
) -> Result<Vec<u8>> {
    let ids: Vec<u32> = match ids {
        Some(ids) => ids.to_vec(),
        None => select::group_objects(sif, group)?
            .iter()
            .map(|d| d.id)
            .collect(),
    };
    Ok(ImageMetadata::compute(sif, group, &ids, DigestAlg::Sha256)?.to_json())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{fixture, open};

    /// The JSON between the clear-sign header and the signature armor.
    fn signed_json(signed: &str, sig_id: u32) -> Vec<u8> {
        let mut sif = open(signed);
        let data = sif.read_object(sig_id, 1 << 20).unwrap();
        let text = String::from_utf8(data).unwrap();
        let start = text.find("\n\n").unwrap() + 2;
        let end = text.find("\n-----BEGIN PGP SIGNATURE-----").unwrap();
        text.as_bytes()[start..end].to_vec()
    }

    #[test]
    fn payload_matches_the_reference_one_group() {
        let mut sif = open("one-group.sif");
        let ours = group_payload(&mut sif, 1, None).unwrap();
        assert_eq!(
            String::from_utf8(ours).unwrap(),
            String::from_utf8(signed_json("one-group-signed-pgp.sif", 3)).unwrap()
        );
    }

    #[test]
    fn payload_matches_the_reference_two_groups() {
        let mut sif = open("two-groups.sif");
        for (group, sig) in [(1, 4), (2, 5)] {
            let ours = group_payload(&mut sif, group, None).unwrap();
            assert_eq!(
                ours,
                signed_json("two-groups-signed-pgp.sif", sig),
                "group {group}"
            );
        }
    }

    #[test]
    fn json_round_trips() {
        let mut sif = open("two-groups.sif");
        let md = ImageMetadata::compute(&mut sif, 2, &[3], DigestAlg::Sha256).unwrap();
        assert_eq!(md.objects[0].relative_id, 0);
        let back = ImageMetadata::from_json(&md.to_json()).unwrap();
        assert_eq!(back, md);
        assert!(ImageMetadata::from_json(b"{\"version\":1}").is_err());
        let _ = fixture("one-group.sif");
    }
}
