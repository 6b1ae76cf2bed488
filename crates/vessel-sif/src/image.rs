//! A SIF image opened for reading: its header and descriptor table, checked
//! against the file's real size before anything is trusted.

use std::io::{self, Read, Seek, SeekFrom};

use crate::descriptor::{Descriptor, DESCRIPTOR_LEN};
use crate::error::{Error, Result};
use crate::header::{Header, HEADER_LEN, MAGIC, SPEC_VERSION};
use crate::types::{DataType, PartType};

/// An opened SIF image over any seekable byte source.
///
/// Loading reads only the header and the descriptor table, whose size is
/// checked against the file's length first: a hostile file can never make
/// this allocate more than the file holds.
#[derive(Debug)]
pub struct Sif<F> {
    pub(crate) file: F,
    pub(crate) len: u64,
    pub(crate) header: Header,
    /// Every descriptor slot, used or not, in file order.
    pub(crate) slots: Vec<Descriptor>,
}

impl<F: Read + Seek> Sif<F> {
    /// Reads and validates the header and descriptors.
    pub fn load(mut file: F) -> Result<Self> {
        let len = file.seek(SeekFrom::End(0))?;
        if len < HEADER_LEN as u64 {
            return Err(Error::TooShort { len });
        }
        let mut raw = [0u8; HEADER_LEN];
        file.seek(SeekFrom::Start(0))?;
        file.read_exact(&mut raw)?;
        let header = Header::decode(&raw);
        if header.magic != MAGIC {
            return Err(Error::BadMagic);
        }
        if header.version != SPEC_VERSION {
            return Err(Error::UnsupportedVersion {
                found: String::from_utf8_lossy(&header.version)
                    .trim_end_matches('\0')
                    .escape_debug()
                    .to_string(),
            });
        }
        let table = descriptor_table(&header, len)?;
        file.seek(SeekFrom::Start(table.start))?;
        // `table` was checked to lie inside the file, so this is bounded by its size.
        let mut bytes = vec![0u8; (table.end - table.start) as usize];
        file.read_exact(&mut bytes)?;
        let slots = bytes
            .chunks_exact(DESCRIPTOR_LEN)
            .map(|c| Descriptor::decode(c.try_into().expect("exact chunk")))
            .collect();
        let sif = Sif {
            file,
            len,
            header,
            slots,
        };
        sif.validate_objects()?;
        Ok(sif)
    }

    /// A reader over one object's bytes, positioned at its start. Large
    /// objects are streamed, never loaded whole.
    pub fn object_reader(&mut self, id: u32) -> Result<io::Take<&mut F>> {
        let d = *self.descriptor(id)?;
        self.file.seek(SeekFrom::Start(d.offset as u64))?;
        Ok((&mut self.file).take(d.size as u64))
    }

    /// An object's bytes in memory, refused when larger than `limit`: for the
    /// small metadata objects (JSON, definition files).
    pub fn read_object(&mut self, id: u32, limit: u64) -> Result<Vec<u8>> {
        let size = self.descriptor(id)?.size as u64;
        if size > limit {
            return Err(Error::ObjectTooLarge { id, size, limit });
        }
        let mut out = Vec::with_capacity(size as usize);
        self.object_reader(id)?.read_to_end(&mut out)?;
        Ok(out)
    }
}

impl<F> Sif<F> {
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The length of the underlying file in bytes.
    pub fn file_len(&self) -> u64 {
        self.len
    }

    /// The used descriptors, in table order.
    pub fn descriptors(&self) -> impl Iterator<Item = &Descriptor> {
        self.slots.iter().filter(|d| d.used)
    }

    /// The used descriptor with this object ID.
    pub fn descriptor(&self, id: u32) -> Result<&Descriptor> {
        self.descriptors()
            .find(|d| d.id == id)
            .ok_or(Error::NoSuchObject(id))
    }

    /// The primary system partition: the container's root file system.
    pub fn primary_partition(&self) -> Option<&Descriptor> {
        self.descriptors().find(|d| {
            d.partition()
                .is_some_and(|p| p.part == PartType::PRIMARY_SYSTEM)
        })
    }

    /// The first object of a type with a given name, such as the
    /// `JSON.Generic` object `inspect-metadata.json`.
    pub fn find_named(&self, data_type: DataType, name: &str) -> Option<&Descriptor> {
        self.descriptors()
            .find(|d| d.data_type == data_type && d.name() == name.as_bytes())
    }

    pub fn into_inner(self) -> F {
        self.file
    }

    /// The byte source the image was loaded from.
    pub fn get_ref(&self) -> &F {
        &self.file
    }

    fn validate_objects(&self) -> Result<()> {
        let h = &self.header;
        let table_end = (h.descriptors_offset + h.descriptors_size) as u64;
        let mut ids = Vec::new();
        let mut extents = Vec::new();
        for (slot, d) in self.slots.iter().enumerate() {
            if !d.used {
                continue;
            }
            let bad = |reason: String| Error::BadDescriptor { slot, reason };
            if d.id == 0 {
                return Err(bad("object ID 0 is not allowed".into()));
            }
            if ids.contains(&d.id) {
                return Err(bad(format!("object ID {} is used twice", d.id)));
            }
            ids.push(d.id);
            let end = checked_end(d.offset, d.size).ok_or_else(|| {
                bad(format!(
                    "object {} has an impossible offset ({}) or size ({})",
                    d.id, d.offset, d.size
                ))
            })?;
            if d.size_with_padding < d.size || d.size_with_padding - d.size > d.offset {
                return Err(bad(format!(
                    "object {} has an impossible padded size ({})",
                    d.id, d.size_with_padding
                )));
            }
            if end > self.len {
                return Err(Error::Truncated {
                    what: format!("object {}", d.id),
                    end,
                    len: self.len,
                });
            }
            if d.size > 0 && (d.offset as u64) < table_end {
                return Err(bad(format!(
                    "object {} starts at byte {}, inside the header or descriptor table",
                    d.id, d.offset
                )));
            }
            if d.size > 0 {
                extents.push((d.offset, d.end(), d.id));
            }
        }
        extents.sort_unstable();
        for pair in extents.windows(2) {
            let ((_, a_end, a), (b_start, _, b)) = (pair[0], pair[1]);
            if b_start < a_end {
                return Err(Error::Overlap {
                    a,
                    b,
                    start: b_start,
                    end: a_end,
                });
            }
        }
        let data_end = checked_end(h.data_offset, h.data_size)
            .ok_or_else(|| Error::BadHeader("data offset or size is out of range".into()))?;
        if h.data_size > 0 && data_end > self.len {
            return Err(Error::Truncated {
                what: "the data section".into(),
                end: data_end,
                len: self.len,
            });
        }
        Ok(())
    }
}

/// `offset + size` as an unsigned end position, if both are sane.
fn checked_end(offset: i64, size: i64) -> Option<u64> {
    if offset < 0 || size < 0 {
        return None;
    }
    (offset as u64).checked_add(size as u64)
}

/// The byte range of the descriptor table, checked against the header and the
/// file length.
fn descriptor_table(h: &Header, len: u64) -> Result<std::ops::Range<u64>> {
    let bad = |s: String| Error::BadHeader(s);
    if h.descriptors_total < 0 || h.descriptors_free < 0 || h.descriptors_free > h.descriptors_total
    {
        return Err(bad(format!(
            "descriptor counts are impossible (total {}, free {})",
            h.descriptors_total, h.descriptors_free
        )));
    }
    let size = (h.descriptors_total as u64)
        .checked_mul(DESCRIPTOR_LEN as u64)
        .filter(|&s| s == h.descriptors_size as u64 && h.descriptors_size >= 0)
        .ok_or_else(|| {
            bad(format!(
                "descriptor table size {} does not match {} descriptors of {} bytes",
                h.descriptors_size, h.descriptors_total, DESCRIPTOR_LEN
            ))
        })?;
    if h.descriptors_offset < HEADER_LEN as i64 {
        return Err(bad(format!(
            "descriptor table offset {} lies inside the header",
            h.descriptors_offset
        )));
    }
    let start = h.descriptors_offset as u64;
    let end = start
        .checked_add(size)
        .ok_or_else(|| bad("descriptor table extends past any possible file".into()))?;
    if end > len {
        return Err(Error::Truncated {
            what: "the descriptor table".into(),
            end,
            len,
        });
    }
    if h.data_offset < 0 || (h.data_offset as u64) < end {
        return Err(bad(format!(
            "data section offset {} overlaps the descriptor table (which ends at {end})",
            h.data_offset
        )));
    }
    Ok(start..end)
}
