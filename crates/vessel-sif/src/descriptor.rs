//! The 585-byte descriptors that describe each data object.

use crate::codec::{array_at, i32_at, i64_at, padded, put, u32_at, until_nul};
use crate::types::{
    Arch, DataType, FormatType, FsType, HashType, MessageType, PartType, SbomFormat,
};

/// Size of one encoded descriptor.
pub const DESCRIPTOR_LEN: usize = 585;
/// Size of the type-specific `Extra` field.
pub const EXTRA_LEN: usize = 384;
/// Size of the `Name` field.
pub const NAME_LEN: usize = 128;

/// Group and link fields carry this mask; a group link has it set in `LinkedID`.
pub(crate) const GROUP_MASK: u32 = 0xf000_0000;

/// What a descriptor's `LinkedID` refers to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Link {
    None,
    /// Another object, by ID.
    Object(u32),
    /// A whole object group, by group ID.
    Group(u32),
}

impl Link {
    pub(crate) fn decode(raw: u32) -> Link {
        if raw & GROUP_MASK == GROUP_MASK {
            Link::Group(raw & !GROUP_MASK)
        } else if raw == 0 {
            Link::None
        } else {
            Link::Object(raw)
        }
    }

    pub(crate) fn encode(self) -> u32 {
        match self {
            Link::None => 0,
            Link::Object(id) => id,
            Link::Group(g) => g | GROUP_MASK,
        }
    }
}

/// One descriptor, field for field as stored.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Descriptor {
    pub data_type: DataType,
    pub used: bool,
    pub id: u32,
    /// The raw group field: the group number with [`GROUP_MASK`] set.
    pub raw_group: u32,
    /// The raw link field; see [`Link`].
    pub raw_link: u32,
    pub offset: i64,
    pub size: i64,
    /// `size` plus the alignment padding placed before the object.
    pub size_with_padding: i64,
    pub created_at: i64,
    pub modified_at: i64,
    pub uid: i64,
    pub gid: i64,
    pub name: [u8; NAME_LEN],
    pub extra: [u8; EXTRA_LEN],
}

impl Descriptor {
    /// An unused slot, as the reference implementation writes it: all zeros.
    pub const UNUSED: Descriptor = Descriptor {
        data_type: DataType(0),
        used: false,
        id: 0,
        raw_group: 0,
        raw_link: 0,
        offset: 0,
        size: 0,
        size_with_padding: 0,
        created_at: 0,
        modified_at: 0,
        uid: 0,
        gid: 0,
        name: [0; NAME_LEN],
        extra: [0; EXTRA_LEN],
    };

    pub fn decode(b: &[u8; DESCRIPTOR_LEN]) -> Descriptor {
        Descriptor {
            data_type: DataType(i32_at(b, 0)),
            used: b[4] != 0,
            id: u32_at(b, 5),
            raw_group: u32_at(b, 9),
            raw_link: u32_at(b, 13),
            offset: i64_at(b, 17),
            size: i64_at(b, 25),
            size_with_padding: i64_at(b, 33),
            created_at: i64_at(b, 41),
            modified_at: i64_at(b, 49),
            uid: i64_at(b, 57),
            gid: i64_at(b, 65),
            name: array_at(b, 73),
            extra: array_at(b, 201),
        }
    }

    pub fn encode(&self) -> [u8; DESCRIPTOR_LEN] {
        let mut b = [0u8; DESCRIPTOR_LEN];
        put(&mut b, 0, &self.data_type.0.to_le_bytes());
        b[4] = u8::from(self.used);
        put(&mut b, 5, &self.id.to_le_bytes());
        put(&mut b, 9, &self.raw_group.to_le_bytes());
        put(&mut b, 13, &self.raw_link.to_le_bytes());
        let ints = [
            self.offset,
            self.size,
            self.size_with_padding,
            self.created_at,
            self.modified_at,
            self.uid,
            self.gid,
        ];
        for (i, v) in ints.iter().enumerate() {
            put(&mut b, 17 + 8 * i, &v.to_le_bytes());
        }
        put(&mut b, 73, &self.name);
        put(&mut b, 201, &self.extra);
        b
    }

    /// The object group, or `None` for an object outside any group (signatures).
    pub fn group(&self) -> Option<u32> {
        match self.raw_group & !GROUP_MASK {
            0 => None,
            g => Some(g),
        }
    }

    pub fn link(&self) -> Link {
        Link::decode(self.raw_link)
    }

    /// The object's name up to its first NUL.
    pub fn name(&self) -> &[u8] {
        until_nul(&self.name)
    }

    pub fn name_lossy(&self) -> String {
        String::from_utf8_lossy(self.name()).into_owned()
    }

    /// File system, role and architecture, when this is a partition.
    pub fn partition(&self) -> Option<Partition> {
        (self.data_type == DataType::PARTITION).then(|| Partition::decode(&self.extra))
    }

    /// Hash algorithm and signing entity, when this is a signature.
    pub fn signature(&self) -> Option<Signature> {
        (self.data_type == DataType::SIGNATURE).then(|| Signature {
            hash: HashType(i32_at(&self.extra, 0)),
            entity: array_at(&self.extra, 4),
        })
    }

    /// Format and kind, when this is a cryptographic message.
    pub fn crypto_message(&self) -> Option<CryptoMessage> {
        (self.data_type == DataType::CRYPTO_MESSAGE).then(|| CryptoMessage {
            format: FormatType(i32_at(&self.extra, 0)),
            message: MessageType(i32_at(&self.extra, 4)),
        })
    }

    /// The SBOM format, when this is an SBOM.
    pub fn sbom_format(&self) -> Option<SbomFormat> {
        (self.data_type == DataType::SBOM).then(|| SbomFormat(i32_at(&self.extra, 0)))
    }

    /// The content digest (`sha256:…`), when this is an OCI root index or blob.
    pub fn oci_digest(&self) -> Option<String> {
        matches!(
            self.data_type,
            DataType::OCI_ROOT_INDEX | DataType::OCI_BLOB
        )
        .then(|| String::from_utf8_lossy(until_nul(&self.extra)).into_owned())
    }

    /// The position just past the object's last byte.
    pub fn end(&self) -> i64 {
        self.offset.saturating_add(self.size)
    }
}

/// The `Extra` field of a partition.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Partition {
    pub fs: FsType,
    pub part: PartType,
    pub arch: Arch,
}

impl Partition {
    fn decode(extra: &[u8; EXTRA_LEN]) -> Partition {
        Partition {
            fs: FsType(i32_at(extra, 0)),
            part: PartType(i32_at(extra, 4)),
            arch: Arch(array_at(extra, 8)),
        }
    }

    pub fn encode(&self) -> [u8; EXTRA_LEN] {
        let mut e = [0u8; EXTRA_LEN];
        put(&mut e, 0, &self.fs.0.to_le_bytes());
        put(&mut e, 4, &self.part.0.to_le_bytes());
        put(&mut e, 8, &self.arch.0);
        e
    }
}

/// The `Extra` field of a signature.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Signature {
    pub hash: HashType,
    /// The signing key's fingerprint (20 bytes used for OpenPGP; zero for DSSE).
    pub entity: [u8; 256],
}

impl Signature {
    pub fn encode(&self) -> [u8; EXTRA_LEN] {
        let mut e = [0u8; EXTRA_LEN];
        put(&mut e, 0, &self.hash.0.to_le_bytes());
        put(&mut e, 4, &self.entity);
        e
    }

    /// The OpenPGP fingerprint: the entity's first 20 bytes, or `None` when
    /// they are all zero (DSSE signatures carry no entity).
    pub fn fingerprint(&self) -> Option<[u8; 20]> {
        let fp: [u8; 20] = array_at(&self.entity, 0);
        (fp != [0; 20]).then_some(fp)
    }
}

/// The `Extra` field of a cryptographic message.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct CryptoMessage {
    pub format: FormatType,
    pub message: MessageType,
}

impl CryptoMessage {
    pub fn encode(&self) -> [u8; EXTRA_LEN] {
        let mut e = [0u8; EXTRA_LEN];
        put(&mut e, 0, &self.format.0.to_le_bytes());
        put(&mut e, 4, &self.message.0.to_le_bytes());
        e
    }
}

/// The `Extra` field of an SBOM.
pub fn sbom_extra(format: SbomFormat) -> [u8; EXTRA_LEN] {
    let mut e = [0u8; EXTRA_LEN];
    put(&mut e, 0, &format.0.to_le_bytes());
    e
}

/// The `Extra` field of an OCI root index or blob: its digest as text.
pub fn oci_digest_extra(digest: &str) -> [u8; EXTRA_LEN] {
    padded(digest.as_bytes())
}

/// A `Name` field holding `name`, truncated to fit.
pub fn name_field(name: &str) -> [u8; NAME_LEN] {
    padded(name.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_round_trip() {
        let mut raw = [0u8; DESCRIPTOR_LEN];
        for (i, b) in raw.iter_mut().enumerate() {
            *b = (i * 7) as u8;
        }
        raw[4] = 1;
        assert_eq!(Descriptor::decode(&raw).encode(), raw);
    }

    #[test]
    fn links_and_groups() {
        assert_eq!(Link::decode(0), Link::None);
        assert_eq!(Link::decode(3), Link::Object(3));
        assert_eq!(Link::decode(0xf000_0002), Link::Group(2));
        for l in [Link::None, Link::Object(9), Link::Group(4)] {
            assert_eq!(Link::decode(l.encode()), l);
        }
        let mut d = Descriptor::UNUSED;
        d.raw_group = GROUP_MASK;
        assert_eq!(d.group(), None);
        d.raw_group = GROUP_MASK | 1;
        assert_eq!(d.group(), Some(1));
    }

    #[test]
    fn fingerprint_is_the_first_20_bytes() {
        let mut entity = [0u8; 256];
        assert_eq!(
            Signature {
                hash: HashType::SHA256,
                entity
            }
            .fingerprint(),
            None
        );
        entity[19] = 0x84;
        let fp = Signature {
            hash: HashType::SHA256,
            entity,
        }
        .fingerprint()
        .unwrap();
        assert_eq!(fp[19], 0x84);
    }
}
