//! Extended attributes.
//!
//! The xattr id table (a lookup table of 16-byte `{ref, count, size}`
//! entries, preceded by a 16-byte header holding the key/value table's start)
//! maps an inode's xattr index to a run of key/value pairs in the xattr
//! metadata stream. Keys store a prefix id (0 user, 1 trusted, 2 security)
//! plus the rest of the name; bit 0x100 marks a value stored out of line, in
//! which case the value is a u64 reference to the real value elsewhere (so
//! shared values are stored once).

use crate::error::{Error, Result};
use crate::inode::{Inode, NONE_U32};
use crate::metadata::MetaReader;
use crate::source::Source;
use crate::table::LookupTable;
use crate::Archive;

const OUT_OF_LINE: u16 = 0x100;
/// Linux caps a value (and a name list) at 64 KiB.
const MAX_VALUE: u32 = 65536;
/// Cap on all names and values of one inode together.
const MAX_TOTAL: usize = 1 << 20;

pub(crate) struct XattrTable {
    kv_start: u64,
    ids: LookupTable,
}

impl XattrTable {
    pub(crate) fn load(src: &Source, start: u64) -> Result<Self> {
        let mut hdr = [0u8; 16];
        src.read_at(start, &mut hdr)?;
        let kv_start =
            u64::from_le_bytes(hdr[0..8].try_into().map_err(|_| Error::Corrupt("xattr"))?);
        let count = u32::from_le_bytes(hdr[8..12].try_into().map_err(|_| Error::Corrupt("xattr"))?);
        if kv_start >= src.len() {
            return Err(Error::Corrupt("xattr table outside the archive"));
        }
        let ids = LookupTable::load(src, start + 16, u64::from(count), 16)?;
        Ok(XattrTable { kv_start, ids })
    }
}

impl Archive {
    fn xattr_cursor(&self, kv_start: u64, r: u64) -> Result<MetaReader<'_>> {
        let pos = kv_start
            .checked_add(r >> 16)
            .filter(|&p| p < self.src.len())
            .ok_or(Error::Corrupt("xattr reference outside the archive"))?;
        MetaReader::new(self, pos, (r & 0xffff) as usize)
    }

    pub(crate) fn xattrs_impl(&self, inode: &Inode) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let Some(table) = &self.xattr else {
            return Ok(Vec::new());
        };
        if inode.xattr == NONE_U32 {
            return Ok(Vec::new());
        }
        let mut e = [0u8; 16];
        table.ids.entry(self, u64::from(inode.xattr), &mut e)?;
        let r = u64::from_le_bytes(e[0..8].try_into().map_err(|_| Error::Corrupt("xattr"))?);
        let count = u32::from_le_bytes(e[8..12].try_into().map_err(|_| Error::Corrupt("xattr"))?);
        let mut m = self.xattr_cursor(table.kv_start, r)?;
        let mut out = Vec::new();
        let mut total = 0usize;
        for _ in 0..count {
            let ktype = m.u16()?;
            let name_len = m.u16()?;
            let prefix: &[u8] = match ktype & !OUT_OF_LINE {
                0 => b"user.",
                1 => b"trusted.",
                2 => b"security.",
                _ => return Err(Error::Corrupt("unknown xattr prefix")),
            };
            let mut name = prefix.to_vec();
            name.extend_from_slice(&m.bytes(usize::from(name_len))?);
            let vlen = m.u32()?;
            let value = if ktype & OUT_OF_LINE != 0 {
                if vlen != 8 {
                    return Err(Error::Corrupt("bad out-of-line xattr reference"));
                }
                let vref = m.u64()?;
                let mut v = self.xattr_cursor(table.kv_start, vref)?;
                let len = v.u32()?;
                if len > MAX_VALUE {
                    return Err(Error::Corrupt("xattr value too long"));
                }
                v.bytes(len as usize)?
            } else {
                if vlen > MAX_VALUE {
                    return Err(Error::Corrupt("xattr value too long"));
                }
                m.bytes(vlen as usize)?
            };
            total += name.len() + value.len();
            if total > MAX_TOTAL {
                return Err(Error::Corrupt("too many extended attributes"));
            }
            out.push((name, value));
        }
        Ok(out)
    }
}
