//! The Singularity Image Format (SIF, spec version 01): one file holding a
//! container's root file system, its definition file, metadata and
//! signatures, as written by Apptainer, SingularityCE and Go's reference
//! `sif` package.
//!
//! The crate is pure: it works over any `Read + Seek` (and `Write` to change
//! an image) and never touches paths, clocks or randomness, which callers
//! pass in. Everything read from a file is validated against the file's real
//! size before use, so a hostile file cannot cause large allocations or
//! panics.
//!
//! ```
//! use std::io::Cursor;
//! use vessel_sif::{CreateOptions, DataType, ObjectInput, Sif};
//!
//! let mut sif = Sif::create(Cursor::new(Vec::new()), &CreateOptions::deterministic())?;
//! let mut input = ObjectInput::new(DataType::GENERIC_JSON);
//! input.name = "data.json".into();
//! let id = sif.add_object(&input, &mut &b"{}"[..], 0)?;
//! assert_eq!(sif.read_object(id, 1024)?, b"{}");
//! # Ok::<(), vessel_sif::Error>(())
//! ```

mod codec;
mod descriptor;
mod edit;
mod error;
mod header;
mod image;
pub mod report;
mod types;

pub use descriptor::{
    name_field, oci_digest_extra, sbom_extra, CryptoMessage, Descriptor, Link, Partition,
    Signature, DESCRIPTOR_LEN, EXTRA_LEN, NAME_LEN,
};
pub use edit::{
    CreateOptions, DeleteOptions, Metadata, ObjectInput, SetLen, DEFAULT_GROUP, PARTITION_ALIGNMENT,
};
pub use error::{Error, Result};
pub use header::{
    format_uuid, Header, APPTAINER_LAUNCH_SCRIPT, DETERMINISTIC_TIME, HEADER_LEN, MAGIC,
    SPEC_VERSION,
};
pub use image::Sif;
pub use types::{Arch, DataType, FormatType, FsType, HashType, MessageType, PartType, SbomFormat};

/// Everything a reader does with an untrusted file, in one call: the fuzz
/// target and its regression tests share it. Returns whether the file loaded.
#[doc(hidden)]
pub fn exercise_untrusted(data: &[u8]) -> bool {
    let Ok(mut sif) = Sif::load(std::io::Cursor::new(data)) else {
        return false;
    };
    let _ = report::header(sif.header());
    let _ = report::list(&sif);
    let ids: Vec<u32> = sif.descriptors().map(|d| d.id).collect();
    for id in ids {
        let _ = report::info(&sif, id);
        let object = sif.read_object(id, 1 << 20);
        if let Ok(bytes) = object {
            assert_eq!(bytes.len() as i64, sif.descriptor(id).unwrap().size);
        }
    }
    let _ = sif.primary_partition();
    true
}
