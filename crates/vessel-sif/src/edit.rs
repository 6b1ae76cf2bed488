//! Creating SIF images and changing them in place: adding, deleting and
//! promoting objects, with the reference implementation's placement rules so
//! that files written here are laid out as Go's `sif` package lays them out.
//!
//! Changes are ordered so that an interruption leaves a readable image: object
//! data is written past the current end first, then the descriptor table, and
//! the header last.

use std::io::{self, Read, Seek, SeekFrom, Write};

use sha2::{Digest, Sha256};

use crate::descriptor::{
    name_field, oci_digest_extra, sbom_extra, CryptoMessage, Descriptor, Link, Partition,
    Signature, DESCRIPTOR_LEN, EXTRA_LEN, GROUP_MASK, NAME_LEN,
};
use crate::error::{Error, Result};
use crate::header::{Header, DETERMINISTIC_TIME, HEADER_LEN, MAGIC, SPEC_VERSION};
use crate::image::Sif;
use crate::types::{Arch, DataType, PartType, SbomFormat};

/// The object group new objects join unless told otherwise.
pub const DEFAULT_GROUP: u32 = 1;
/// Alignment of partitions, so that they can be loop-mounted at an offset.
pub const PARTITION_ALIGNMENT: u64 = 4096;

/// How a new image is laid out.
#[derive(Clone, Debug)]
pub struct CreateOptions {
    pub launch_script: String,
    /// The image UUID; all zeros for a deterministic image.
    pub id: [u8; 16],
    /// Creation time in Unix seconds.
    pub time: i64,
    pub descriptor_capacity: u64,
    pub descriptors_offset: u64,
}

impl CreateOptions {
    /// A new image with this UUID and creation time, and the reference
    /// defaults: 48 descriptors at offset 4096, no launch script.
    pub fn new(id: [u8; 16], time: i64) -> Self {
        CreateOptions {
            launch_script: String::new(),
            id,
            time,
            descriptor_capacity: 48,
            descriptors_offset: 4096,
        }
    }

    /// A reproducible image: zero UUID and Go's zero time. Later changes to
    /// such an image keep using the zero time, as the reference does.
    pub fn deterministic() -> Self {
        Self::new([0; 16], DETERMINISTIC_TIME)
    }
}

/// Type-specific metadata stored in a descriptor's `Extra` field.
// One value lives briefly per added object; boxing the 260-byte signature
// entity would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Copy, Debug)]
pub enum Metadata {
    None,
    Partition(Partition),
    Signature(Signature),
    CryptoMessage(CryptoMessage),
    Sbom(SbomFormat),
}

/// A data object to add: its type, placement and metadata. The bytes come
/// from a reader passed to [`Sif::add_object`], so that a multi-gigabyte
/// partition streams from its file and never sits in memory.
#[derive(Clone, Debug)]
pub struct ObjectInput {
    pub data_type: DataType,
    /// `None` puts the object outside any group (as signatures are).
    pub group: Option<u32>,
    pub link: Link,
    /// Byte alignment of the object's start; 0 or 1 means none.
    pub alignment: u64,
    pub name: String,
    /// Creation time; `None` uses the time of the change.
    pub time: Option<i64>,
    pub metadata: Metadata,
}

impl ObjectInput {
    /// An object with the reference defaults: group 1, no link, no name, and
    /// 4096-byte alignment for partitions.
    pub fn new(data_type: DataType) -> Self {
        ObjectInput {
            data_type,
            group: Some(DEFAULT_GROUP),
            link: Link::None,
            alignment: if data_type == DataType::PARTITION {
                PARTITION_ALIGNMENT
            } else {
                0
            },
            name: String::new(),
            time: None,
            metadata: Metadata::None,
        }
    }

    /// The `Extra` field for everything but OCI digests, which are computed
    /// from the data as it is written.
    fn extra(&self) -> Result<[u8; EXTRA_LEN]> {
        let want = match self.metadata {
            Metadata::None => return Ok([0; EXTRA_LEN]),
            Metadata::Partition(_) => DataType::PARTITION,
            Metadata::Signature(_) => DataType::SIGNATURE,
            Metadata::CryptoMessage(_) => DataType::CRYPTO_MESSAGE,
            Metadata::Sbom(_) => DataType::SBOM,
        };
        if want != self.data_type {
            return Err(Error::InvalidInput(format!(
                "{} metadata given for a {} object",
                want, self.data_type
            )));
        }
        Ok(match self.metadata {
            Metadata::None => unreachable!("handled above"),
            Metadata::Partition(p) => p.encode(),
            Metadata::Signature(s) => s.encode(),
            Metadata::CryptoMessage(c) => c.encode(),
            Metadata::Sbom(f) => sbom_extra(f),
        })
    }

    fn primary_arch(&self) -> Option<Arch> {
        match self.metadata {
            Metadata::Partition(p) if p.part == PartType::PRIMARY_SYSTEM => Some(p.arch),
            _ => None,
        }
    }
}

/// What deleting an object does beyond freeing its descriptor.
#[derive(Clone, Copy, Debug, Default)]
pub struct DeleteOptions {
    /// Overwrite the object's bytes with zeros.
    pub zero: bool,
    /// Shrink the data section and the file when space at the end is freed.
    pub compact: bool,
}

impl<F: Read + Write + Seek> Sif<F> {
    /// Writes a new, empty image to `file`, which should be empty.
    pub fn create(mut file: F, opts: &CreateOptions) -> Result<Self> {
        let capacity = opts.descriptor_capacity;
        if capacity >= u64::from(u32::MAX) {
            return Err(Error::InvalidInput(format!(
                "descriptor capacity {capacity} is larger than object IDs allow"
            )));
        }
        let table_size = capacity * DESCRIPTOR_LEN as u64;
        if opts.descriptors_offset < HEADER_LEN as u64 {
            return Err(Error::InvalidInput(
                "the descriptor table cannot start inside the header".into(),
            ));
        }
        let mut header = Header {
            launch_script: [0; 32],
            magic: MAGIC,
            version: SPEC_VERSION,
            arch: Arch::UNKNOWN,
            id: opts.id,
            created_at: opts.time,
            modified_at: opts.time,
            descriptors_free: capacity as i64,
            descriptors_total: capacity as i64,
            descriptors_offset: opts.descriptors_offset as i64,
            descriptors_size: table_size as i64,
            data_offset: (opts.descriptors_offset + table_size) as i64,
            data_size: 0,
        };
        if opts.launch_script.len() > header.launch_script.len() {
            return Err(Error::InvalidInput(format!(
                "launch script is {} bytes, at most 32 fit",
                opts.launch_script.len()
            )));
        }
        header.set_launch_script(&opts.launch_script);
        file.seek(SeekFrom::Start(0))?;
        file.write_all(&header.encode())?;
        // The gap up to the table and the empty table itself are zeros.
        io::copy(
            &mut io::repeat(0).take(opts.descriptors_offset - HEADER_LEN as u64 + table_size),
            &mut file,
        )?;
        file.flush()?;
        Ok(Sif {
            file,
            len: header.data_offset as u64,
            header,
            slots: vec![Descriptor::UNUSED; capacity as usize],
        })
    }

    /// Appends an object read from `data` and returns its ID. `now` is the
    /// time of the change, ignored for deterministic images.
    pub fn add_object(
        &mut self,
        input: &ObjectInput,
        data: &mut dyn Read,
        now: i64,
    ) -> Result<u32> {
        if input.name.len() > NAME_LEN {
            return Err(Error::InvalidInput(format!(
                "object name is {} bytes, at most {NAME_LEN} fit",
                input.name.len()
            )));
        }
        if input.group == Some(0) {
            return Err(Error::InvalidInput("group ID 0 is not valid".into()));
        }
        if matches!(input.link, Link::Object(0) | Link::Group(0)) {
            return Err(Error::InvalidInput("a link to ID 0 is not valid".into()));
        }
        let mut extra = input.extra()?;
        let slot = self
            .slots
            .iter()
            .position(|d| !d.used)
            .ok_or(Error::NoFreeDescriptor(self.slots.len() as u64))?;
        let primary_arch = input.primary_arch();
        if primary_arch.is_some() && self.primary_partition().is_some() {
            return Err(Error::InvalidInput(
                "the image already has a primary partition".into(),
            ));
        }

        let unaligned = self.header.data_offset + self.calculated_data_size();
        let offset = align_up(unaligned, input.alignment)?;
        self.file.seek(SeekFrom::Start(offset as u64))?;
        let wants_digest = matches!(
            input.data_type,
            DataType::OCI_ROOT_INDEX | DataType::OCI_BLOB
        );
        let mut hashing = HashingReader {
            inner: data,
            hasher: wants_digest.then(Sha256::new),
        };
        let size = io::copy(&mut hashing, &mut self.file)? as i64;
        if let Some(hasher) = hashing.hasher {
            let hex: String = hasher
                .finalize()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            extra = oci_digest_extra(&format!("sha256:{hex}"));
        }

        let time = self.change_time(now);
        let created = input.time.unwrap_or(time);
        let d = Descriptor {
            data_type: input.data_type,
            used: true,
            id: slot as u32 + 1,
            raw_group: input.group.unwrap_or(0) | GROUP_MASK,
            raw_link: input.link.encode(),
            offset,
            size,
            size_with_padding: offset - unaligned + size,
            created_at: created,
            modified_at: created,
            uid: 0,
            gid: 0,
            name: name_field(&input.name),
            extra,
        };
        self.slots[slot] = d;
        self.len = self.len.max((offset + size) as u64);
        self.header.data_size = unaligned - self.header.data_offset + d.size_with_padding;
        self.header.descriptors_free -= 1;
        self.header.modified_at = time;
        if let Some(arch) = primary_arch {
            self.header.arch = arch;
        }
        self.write_descriptors()?;
        self.write_header()?;
        Ok(d.id)
    }

    /// Makes a system partition the primary one, demoting the current one.
    pub fn set_primary_partition(&mut self, id: u32, now: i64) -> Result<()> {
        let slot = self.slot_of(id)?;
        let d = self.slots[slot];
        let mut p = d.partition().ok_or_else(|| Error::NotAPartition {
            id,
            kind: d.data_type.to_string(),
        })?;
        if p.part == PartType::PRIMARY_SYSTEM {
            return Ok(());
        }
        if p.part != PartType::SYSTEM {
            return Err(Error::InvalidInput(format!(
                "object {id} is a {} partition, only a system partition can become primary",
                p.part
            )));
        }
        let time = self.change_time(now);
        if let Some(old) = self.slots.iter_mut().find(|o| {
            o.used
                && o.partition()
                    .is_some_and(|q| q.part == PartType::PRIMARY_SYSTEM)
        }) {
            let mut q = old.partition().expect("checked above");
            q.part = PartType::SYSTEM;
            old.extra = q.encode();
            old.modified_at = time;
        }
        p.part = PartType::PRIMARY_SYSTEM;
        let d = &mut self.slots[slot];
        d.extra = p.encode();
        d.modified_at = time;
        self.write_descriptors()?;
        self.header.arch = p.arch;
        self.header.modified_at = time;
        self.write_header()
    }

    fn slot_of(&self, id: u32) -> Result<usize> {
        self.slots
            .iter()
            .position(|d| d.used && d.id == id)
            .ok_or(Error::NoSuchObject(id))
    }

    fn write_descriptors(&mut self) -> Result<()> {
        let mut table = Vec::with_capacity(self.slots.len() * DESCRIPTOR_LEN);
        for d in &self.slots {
            table.extend_from_slice(&d.encode());
        }
        self.file
            .seek(SeekFrom::Start(self.header.descriptors_offset as u64))?;
        self.file.write_all(&table)?;
        Ok(())
    }

    fn write_header(&mut self) -> Result<()> {
        self.file.seek(SeekFrom::Start(0))?;
        self.file.write_all(&self.header.encode())?;
        self.file.flush()?;
        Ok(())
    }
}

impl<F: Read + Write + Seek + SetLen> Sif<F> {
    /// Frees an object's descriptor. Its bytes stay in the file unless
    /// `opts` asks to zero or compact them.
    pub fn delete_object(&mut self, id: u32, opts: DeleteOptions, now: i64) -> Result<()> {
        let slot = self.slot_of(id)?;
        let d = self.slots[slot];
        if opts.zero {
            self.file.seek(SeekFrom::Start(d.offset as u64))?;
            io::copy(&mut io::repeat(0).take(d.size as u64), &mut self.file)?;
        }
        if d.partition()
            .is_some_and(|p| p.part == PartType::PRIMARY_SYSTEM)
        {
            self.header.arch = Arch::UNKNOWN;
        }
        self.slots[slot] = Descriptor::UNUSED;
        self.header.descriptors_free += 1;
        self.header.modified_at = self.change_time(now);
        if opts.compact {
            self.header.data_size = self.calculated_data_size();
            self.len = (self.header.data_offset + self.header.data_size) as u64;
            self.file.set_len(self.len)?;
        }
        self.write_descriptors()?;
        self.write_header()
    }
}

impl<F> Sif<F> {
    fn is_deterministic(&self) -> bool {
        self.header.id == [0; 16]
            && self.header.created_at == DETERMINISTIC_TIME
            && self.header.modified_at == DETERMINISTIC_TIME
    }

    fn change_time(&self, now: i64) -> i64 {
        if self.is_deterministic() {
            DETERMINISTIC_TIME
        } else {
            now
        }
    }

    /// The data section's size as implied by the objects in it: up to the
    /// end of the last one.
    fn calculated_data_size(&self) -> i64 {
        let data_start = self.header.data_offset;
        self.descriptors()
            .map(Descriptor::end)
            .fold(data_start, i64::max)
            - data_start
    }
}

fn align_up(offset: i64, alignment: u64) -> Result<i64> {
    if alignment <= 1 {
        return Ok(offset);
    }
    let alignment = i64::try_from(alignment)
        .map_err(|_| Error::InvalidInput(format!("alignment {alignment} is too large")))?;
    match offset % alignment {
        0 => Ok(offset),
        rem => offset
            .checked_add(alignment - rem)
            .ok_or_else(|| Error::InvalidInput("aligned offset overflows".into())),
    }
}

/// Storage whose length can be cut, for compacting deletes.
pub trait SetLen {
    fn set_len(&mut self, len: u64) -> io::Result<()>;
}

impl SetLen for std::fs::File {
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        std::fs::File::set_len(self, len)
    }
}

impl SetLen for io::Cursor<Vec<u8>> {
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        let len = usize::try_from(len).map_err(io::Error::other)?;
        self.get_mut().truncate(len);
        Ok(())
    }
}

impl<T: SetLen + ?Sized> SetLen for &mut T {
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        (**self).set_len(len)
    }
}

/// Passes bytes through while hashing them, for OCI digests.
struct HashingReader<'a> {
    inner: &'a mut dyn Read,
    hasher: Option<Sha256>,
}

impl Read for HashingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(h) = &mut self.hasher {
            h.update(&buf[..n]);
        }
        Ok(n)
    }
}
