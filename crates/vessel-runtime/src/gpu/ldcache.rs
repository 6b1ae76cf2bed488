//! The dynamic linker's cache, `/etc/ld.so.cache`, read directly: where
//! the host's libraries are, and for which architecture each was built.
//!
//! Apptainer runs `ldconfig -p` on every `--nv` start; one read of a file
//! of a few tens of KiB is what every rank of a large job can afford.
//! Written by hand: the crates that parse this format are single releases
//! (`ldcache_rs` 0.1 from 2021, `ld-so-cache` 0.1 which pulls clap and
//! nom into a library), and the part needed here is a header, a table of
//! fixed-size entries and NUL-terminated strings.
//!
//! The format (glibc's `elf/cache.c`, "new format", the only one glibc has
//! written since 2.32): the magic `glibc-ld.so.cache` and version `1.1`,
//! the entry count, the string table's length, a flags byte (endianness),
//! padding, the extension offset and three unused words — 48 bytes — then
//! 24-byte entries of `flags: i32, key: u32, value: u32, osversion: u32,
//! hwcap: u64`, where `key` (the library's name) and `value` (its path)
//! are offsets of NUL-terminated strings from the start of the file. An
//! old-format cache (`ld.so-1.7.0`) may come first, as glibc before 2.32
//! wrote it; the new one then follows its entries.

use std::path::{Path, PathBuf};

const NEW_MAGIC: &[u8] = b"glibc-ld.so.cache1.1";
const OLD_MAGIC: &[u8] = b"ld.so-1.7.0";
const NEW_HEADER: usize = 48;
const NEW_ENTRY: usize = 24;
const OLD_HEADER: usize = 16;
const OLD_ENTRY: usize = 12;

/// The entry's type in the low byte of its flags: an ELF library for glibc,
/// or one that links no C library (ldconfig says "ELF"; a 32-bit library
/// built without libc shows so on a 64-bit host).
const FLAG_ELF_LIBC6: i32 = 0x0003;
const FLAG_ELF: i32 = 0x0001;
const FLAG_TYPE_MASK: i32 = 0x00ff;
const FLAG_ARCH_MASK: i32 = 0xff00;

/// The ABI a library was built for, as the cache records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Abi(i32);

impl Abi {
    /// 64-bit x86.
    pub const X86_64: Abi = Abi(0x0300);
    /// 64-bit ARM.
    pub const AARCH64: Abi = Abi(0x0a00);
    /// 64-bit POWER (and little-endian POWER).
    pub const PPC64: Abi = Abi(0x0500);
    /// 64-bit RISC-V with double floats.
    pub const RISCV64: Abi = Abi(0x1100);
    /// 64-bit s390.
    pub const S390X: Abi = Abi(0x0400);
    /// A 32-bit library of the family's base ABI (i386 on x86-64 hosts):
    /// the cache marks it with no architecture bits.
    pub const BASE32: Abi = Abi(0);

    /// The ABI of the libraries this program can load.
    pub fn native() -> Abi {
        match std::env::consts::ARCH {
            "x86_64" => Abi::X86_64,
            "aarch64" => Abi::AARCH64,
            "powerpc64" => Abi::PPC64,
            "riscv64" => Abi::RISCV64,
            "s390x" => Abi::S390X,
            _ => Abi::BASE32,
        }
    }
}

/// One library in the cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Library {
    /// The name programs ask for (`libcuda.so.1`).
    pub name: String,
    /// Where it is (often a link to the versioned file).
    pub path: PathBuf,
    pub abi: Abi,
}

/// The libraries of a linker cache, in the cache's order (glibc sorts it
/// so that the preferred entry of a name comes first).
#[derive(Clone, Debug, Default)]
pub struct LdCache {
    pub libraries: Vec<Library>,
}

/// Why a linker cache could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LdCacheError {
    #[error("cannot read the linker cache {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a linker cache glibc 2.32 or newer writes ({problem})")]
    Format {
        path: PathBuf,
        problem: &'static str,
    },
}

impl LdCache {
    /// Reads the cache at `path` (the host's is `/etc/ld.so.cache`).
    pub fn read(path: &Path) -> Result<LdCache, LdCacheError> {
        let bytes = std::fs::read(path).map_err(|source| LdCacheError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        LdCache::parse(&bytes).map_err(|problem| LdCacheError::Format {
            path: path.to_path_buf(),
            problem,
        })
    }

    /// Parses a cache's bytes (little- or big-endian, as the file says).
    pub fn parse(bytes: &[u8]) -> Result<LdCache, &'static str> {
        let start = new_format_start(bytes)?;
        let cache = &bytes[start..];
        if cache.len() < NEW_HEADER {
            return Err("the header is cut short");
        }
        // glibc's flags byte: 0 = unknown (native), 1 = invalid, 2 = little
        // endian, 3 = big endian.
        let big = match cache[28] {
            0 => cfg!(target_endian = "big"),
            2 => false,
            3 => true,
            _ => return Err("unknown byte order"),
        };
        let word = |at: usize| -> Option<u32> {
            let b: [u8; 4] = cache.get(at..at + 4)?.try_into().ok()?;
            Some(if big {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            })
        };
        let count = word(20).ok_or("the header is cut short")? as usize;
        let table_end = count
            .checked_mul(NEW_ENTRY)
            .and_then(|n| n.checked_add(NEW_HEADER))
            .filter(|&end| end <= cache.len())
            .ok_or("more entries than the file holds")?;
        let string = |offset: u32| -> Option<&[u8]> {
            // Offsets count from the start of the new-format cache.
            let tail = cache.get(offset as usize..)?;
            let len = tail.iter().position(|&b| b == 0)?;
            Some(&tail[..len])
        };
        let mut libraries = Vec::with_capacity(count);
        for at in (NEW_HEADER..table_end).step_by(NEW_ENTRY) {
            let (Some(flags), Some(key), Some(value)) = (word(at), word(at + 4), word(at + 8))
            else {
                return Err("an entry is cut short");
            };
            let flags = flags as i32;
            if !matches!(flags & FLAG_TYPE_MASK, FLAG_ELF_LIBC6 | FLAG_ELF) {
                continue;
            }
            let (Some(name), Some(path)) = (string(key), string(value)) else {
                return Err("an entry points outside the string table");
            };
            let (Ok(name), Ok(path)) = (std::str::from_utf8(name), std::str::from_utf8(path))
            else {
                continue;
            };
            libraries.push(Library {
                name: name.to_string(),
                path: PathBuf::from(path),
                abi: Abi(flags & FLAG_ARCH_MASK),
            });
        }
        Ok(LdCache { libraries })
    }

    /// The libraries for `abi` whose name starts with `prefix`, as
    /// Apptainer matches a list entry (`libcuda.so` finds `libcuda.so.1`),
    /// each name once: its first (preferred) entry.
    pub fn find<'c>(&'c self, prefix: &str, abi: Abi) -> Vec<&'c Library> {
        let mut found: Vec<&Library> = Vec::new();
        for lib in &self.libraries {
            if lib.abi == abi
                && lib.name.starts_with(prefix)
                && !found.iter().any(|f| f.name == lib.name)
            {
                found.push(lib);
            }
        }
        found
    }
}

/// Where the new-format cache starts: at 0, or after an old-format one.
fn new_format_start(bytes: &[u8]) -> Result<usize, &'static str> {
    if bytes.starts_with(NEW_MAGIC) {
        return Ok(0);
    }
    if !bytes.starts_with(OLD_MAGIC) {
        return Err("no known magic");
    }
    let count = bytes
        .get(12..16)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_ne_bytes)
        .ok_or("the header is cut short")? as usize;
    let end = count
        .checked_mul(OLD_ENTRY)
        .and_then(|n| n.checked_add(OLD_HEADER))
        .ok_or("more entries than the file holds")?;
    // The new format follows, aligned to 8 bytes.
    let start = end.next_multiple_of(8);
    match bytes.get(start..) {
        Some(rest) if rest.starts_with(NEW_MAGIC) => Ok(start),
        _ => Err("an old-format cache alone"),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A cache with the given (flags, name, path) entries, as glibc writes
    /// it on a little-endian machine.
    pub(crate) fn cache(entries: &[(i32, &str, &str)]) -> Vec<u8> {
        let strings_at = NEW_HEADER + entries.len() * NEW_ENTRY;
        let mut strings = Vec::new();
        let mut table = Vec::new();
        for (flags, name, path) in entries {
            let key = (strings_at + strings.len()) as u32;
            strings.extend_from_slice(name.as_bytes());
            strings.push(0);
            let value = (strings_at + strings.len()) as u32;
            strings.extend_from_slice(path.as_bytes());
            strings.push(0);
            table.extend_from_slice(&flags.to_le_bytes());
            table.extend_from_slice(&key.to_le_bytes());
            table.extend_from_slice(&value.to_le_bytes());
            table.extend_from_slice(&0u32.to_le_bytes());
            table.extend_from_slice(&0u64.to_le_bytes());
        }
        let mut out = NEW_MAGIC.to_vec();
        out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
        out.extend_from_slice(&(strings.len() as u32).to_le_bytes());
        out.extend_from_slice(&[2, 0, 0, 0]);
        out.extend_from_slice(&[0; 16]);
        out.extend_from_slice(&table);
        out.extend_from_slice(&strings);
        out
    }

    #[test]
    fn finds_libraries_of_the_right_abi_only() {
        let bytes = cache(&[
            (
                0x0303,
                "libcuda.so.1",
                "/usr/lib/x86_64-linux-gnu/libcuda.so.1",
            ),
            (
                0x0003,
                "libcuda.so.1",
                "/usr/lib/i386-linux-gnu/libcuda.so.1",
            ),
            (0x0303, "libcuda.so", "/usr/lib/x86_64-linux-gnu/libcuda.so"),
            (
                0x0303,
                "libcudart.so.12",
                "/usr/lib/x86_64-linux-gnu/libcudart.so.12",
            ),
        ]);
        let c = LdCache::parse(&bytes).unwrap();
        let names = |abi| -> Vec<String> {
            c.find("libcuda.so", abi)
                .iter()
                .map(|l| l.path.display().to_string())
                .collect()
        };
        assert_eq!(
            names(Abi::X86_64),
            [
                "/usr/lib/x86_64-linux-gnu/libcuda.so.1",
                "/usr/lib/x86_64-linux-gnu/libcuda.so"
            ]
        );
        assert_eq!(names(Abi::BASE32), ["/usr/lib/i386-linux-gnu/libcuda.so.1"]);
    }

    #[test]
    fn hostile_caches_are_refused_not_trusted() {
        let good = cache(&[(0x0303, "liba.so.1", "/lib/liba.so.1")]);
        assert!(LdCache::parse(b"not a cache").is_err());
        for cut in 0..good.len() {
            // Never a panic; a cut inside the strings is an error.
            let _ = LdCache::parse(&good[..cut]);
        }
        let mut huge = good.clone();
        huge[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(LdCache::parse(&huge).is_err());
        let mut outside = good;
        outside[NEW_HEADER + 4..NEW_HEADER + 8].copy_from_slice(&9999u32.to_le_bytes());
        assert!(LdCache::parse(&outside).is_err());
    }

    #[test]
    fn the_hosts_cache_agrees_with_ldconfig() {
        let Ok(c) = LdCache::read(Path::new("/etc/ld.so.cache")) else {
            return; // a host without a cache (musl): nothing to compare
        };
        let Ok(out) = std::process::Command::new("ldconfig").arg("-p").output() else {
            return;
        };
        let listed: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once(" => ").map(|(_, p)| p.trim().to_string()))
            .collect();
        let ours: Vec<String> = c
            .libraries
            .iter()
            .map(|l| l.path.display().to_string())
            .collect();
        assert_eq!(ours, listed);
        let libc = c.find("libc.so.6", Abi::native());
        assert!(
            !libc.is_empty(),
            "libc.so.6 not found for {:?}",
            Abi::native()
        );
    }
}
