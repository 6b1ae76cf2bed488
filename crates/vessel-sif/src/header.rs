//! The 128-byte global header at the start of every SIF file.

use crate::codec::{array_at, i64_at, padded, put, until_nul};
use crate::types::Arch;

/// Size of the encoded header.
pub const HEADER_LEN: usize = 128;
/// The magic bytes that identify a SIF file.
pub const MAGIC: [u8; 10] = *b"SIF_MAGIC\0";
/// The only spec version this implementation reads and writes.
pub const SPEC_VERSION: [u8; 3] = *b"01\0";
/// The launch script Apptainer writes, so that `./image.sif` runs the container.
pub const APPTAINER_LAUNCH_SCRIPT: &str = "#!/usr/bin/env run-singularity\n";
/// The time the reference implementation stores for deterministic images:
/// Go's zero `time.Time` (year 1, January 1st, UTC) as Unix seconds.
pub const DETERMINISTIC_TIME: i64 = -62_135_596_800;

/// The global header, field for field as stored.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Header {
    pub launch_script: [u8; 32],
    pub magic: [u8; 10],
    pub version: [u8; 3],
    pub arch: Arch,
    pub id: [u8; 16],
    pub created_at: i64,
    pub modified_at: i64,
    pub descriptors_free: i64,
    pub descriptors_total: i64,
    pub descriptors_offset: i64,
    pub descriptors_size: i64,
    pub data_offset: i64,
    pub data_size: i64,
}

impl Header {
    pub fn decode(b: &[u8; HEADER_LEN]) -> Header {
        Header {
            launch_script: array_at(b, 0),
            magic: array_at(b, 32),
            version: array_at(b, 42),
            arch: Arch(array_at(b, 45)),
            id: array_at(b, 48),
            created_at: i64_at(b, 64),
            modified_at: i64_at(b, 72),
            descriptors_free: i64_at(b, 80),
            descriptors_total: i64_at(b, 88),
            descriptors_offset: i64_at(b, 96),
            descriptors_size: i64_at(b, 104),
            data_offset: i64_at(b, 112),
            data_size: i64_at(b, 120),
        }
    }

    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        put(&mut b, 0, &self.launch_script);
        put(&mut b, 32, &self.magic);
        put(&mut b, 42, &self.version);
        put(&mut b, 45, &self.arch.0);
        put(&mut b, 48, &self.id);
        let ints = [
            self.created_at,
            self.modified_at,
            self.descriptors_free,
            self.descriptors_total,
            self.descriptors_offset,
            self.descriptors_size,
            self.data_offset,
            self.data_size,
        ];
        for (i, v) in ints.iter().enumerate() {
            put(&mut b, 64 + 8 * i, &v.to_le_bytes());
        }
        b
    }

    /// The launch script up to its first NUL (empty when none is set).
    pub fn launch_script(&self) -> &[u8] {
        until_nul(&self.launch_script)
    }

    pub fn set_launch_script(&mut self, script: &str) {
        self.launch_script = padded(script.as_bytes());
    }

    /// The spec version as text, such as `01`.
    pub fn version_str(&self) -> String {
        String::from_utf8_lossy(until_nul(&self.version)).into_owned()
    }

    /// The image UUID, or `None` when it is all zeros (deterministic images).
    pub fn uuid(&self) -> Option<[u8; 16]> {
        (self.id != [0; 16]).then_some(self.id)
    }
}

/// Formats a UUID in its canonical hyphenated lower-case form.
pub fn format_uuid(id: &[u8; 16]) -> String {
    let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_round_trip() {
        let mut raw = [0u8; HEADER_LEN];
        for (i, b) in raw.iter_mut().enumerate() {
            *b = i as u8;
        }
        let h = Header::decode(&raw);
        assert_eq!(h.encode(), raw);
    }

    #[test]
    fn uuid_format() {
        let id = [
            0x3f, 0xa8, 0x02, 0xcc, 0x35, 0x8b, 0x45, 0xe3, 0xbc, 0xc0, 0x69, 0xdc, 0x7a, 0x45,
            0xf9, 0xf8,
        ];
        assert_eq!(format_uuid(&id), "3fa802cc-358b-45e3-bcc0-69dc7a45f9f8");
    }
}
