//! The enumerations stored in SIF headers and descriptors.
//!
//! Each is a thin wrapper over the raw on-disk integer, so that a value this
//! version does not know survives a read/write round trip unchanged; `name()`
//! gives the label the reference `siftool` prints, or `None` when unknown.

use std::fmt;

macro_rules! sif_enum {
    (
        $(#[$meta:meta])*
        $name:ident($repr:ty) {
            $($(#[$vmeta:meta])* $variant:ident = $value:expr => $label:expr,)*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub $repr);

        impl $name {
            $($(#[$vmeta])* pub const $variant: $name = $name($value);)*

            /// Every value this version knows, in numeric order.
            pub const KNOWN: &'static [$name] = &[$($name::$variant),*];

            /// The reference implementation's label, if the value is known.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($value => Some($label),)*
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name().unwrap_or("Unknown"))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:#x})", stringify!($name), self.0)
            }
        }
    };
}

sif_enum! {
    /// What a data object holds.
    DataType(i32) {
        /// The definition file an image was built from.
        DEFFILE = 0x4001 => "Def.FILE",
        /// Environment variables (unused by Apptainer).
        ENV_VARS = 0x4002 => "Env.Vars",
        /// Labels as JSON (unused by Apptainer, which keeps labels in the rootfs).
        LABELS = 0x4003 => "JSON.Labels",
        /// A file system partition.
        PARTITION = 0x4004 => "FS",
        /// A signature over an object or a group.
        SIGNATURE = 0x4005 => "Signature",
        /// Generic JSON, such as `inspect-metadata.json` or `oci-config.json`.
        GENERIC_JSON = 0x4006 => "JSON.Generic",
        /// Opaque bytes.
        GENERIC = 0x4007 => "Generic/Raw",
        /// A cryptographic message, such as a wrapped encryption key.
        CRYPTO_MESSAGE = 0x4008 => "Cryptographic Message",
        /// A software bill of materials.
        SBOM = 0x4009 => "SBOM",
        /// The root index of an OCI image layout.
        OCI_ROOT_INDEX = 0x400a => "OCI.RootIndex",
        /// A blob of an OCI image layout.
        OCI_BLOB = 0x400b => "OCI.Blob",
    }
}

sif_enum! {
    /// The file system format of a partition.
    FsType(i32) {
        SQUASHFS = 1 => "Squashfs",
        EXT3 = 2 => "Ext3",
        IMMUTABLE_OBJECT = 3 => "Archive",
        RAW = 4 => "Raw",
        ENCRYPTED_SQUASHFS = 5 => "Encrypted squashfs",
    }
}

sif_enum! {
    /// The role of a partition.
    PartType(i32) {
        SYSTEM = 1 => "System",
        /// The primary system partition: the container's root file system.
        PRIMARY_SYSTEM = 2 => "*System",
        DATA = 3 => "Data",
        OVERLAY = 4 => "Overlay",
    }
}

sif_enum! {
    /// The hash algorithm of a signature.
    HashType(i32) {
        SHA256 = 1 => "SHA-256",
        SHA384 = 2 => "SHA-384",
        SHA512 = 3 => "SHA-512",
        BLAKE2S = 4 => "BLAKE2s-256",
        BLAKE2B = 5 => "BLAKE2b-256",
    }
}

sif_enum! {
    /// The encoding of a cryptographic message.
    FormatType(i32) {
        OPENPGP = 1 => "OpenPGP",
        PEM = 2 => "PEM",
    }
}

sif_enum! {
    /// The kind of a cryptographic message.
    MessageType(i32) {
        CLEAR_SIGNATURE = 0x100 => "Clear Signature",
        RSA_OAEP = 0x200 => "RSA-OAEP",
    }
}

sif_enum! {
    /// The format of an SBOM object.
    SbomFormat(i32) {
        CYCLONEDX_JSON = 1 => "cyclonedx-json",
        CYCLONEDX_XML = 2 => "cyclonedx-xml",
        GITHUB_JSON = 3 => "github-json",
        SPDX_JSON = 4 => "spdx-json",
        SPDX_RDF = 5 => "spdx-rdf",
        SPDX_TAG_VALUE = 6 => "spdx-tag-value",
        SPDX_YAML = 7 => "spdx-yaml",
        SYFT_JSON = 8 => "syft-json",
    }
}

/// A CPU architecture as SIF stores it: a two-digit code and a NUL.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Arch(pub [u8; 3]);

/// Codes and Go architecture names, as the reference implementation maps them.
const ARCHES: &[(&[u8; 2], &str)] = &[
    (b"00", "unknown"),
    (b"01", "386"),
    (b"02", "amd64"),
    (b"03", "arm"),
    (b"04", "arm64"),
    (b"05", "ppc64"),
    (b"06", "ppc64le"),
    (b"07", "mips"),
    (b"08", "mipsle"),
    (b"09", "mips64"),
    (b"10", "mips64le"),
    (b"11", "s390x"),
    (b"12", "riscv64"),
    (b"13", "loong64"),
];

impl Arch {
    pub const UNKNOWN: Arch = Arch(*b"00\0");
    pub const AMD64: Arch = Arch(*b"02\0");

    /// The architecture for a Go-style name (`amd64`, `arm64`, …).
    pub fn from_go_name(name: &str) -> Option<Arch> {
        ARCHES
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(code, _)| Arch([code[0], code[1], 0]))
    }

    /// The Go-style name, or `None` for a code this version does not know.
    pub fn go_name(self) -> Option<&'static str> {
        ARCHES
            .iter()
            .find(|(code, _)| self.0[..2] == code[..] && self.0[2] == 0)
            .map(|(_, n)| *n)
    }

    /// The architecture of the machine this program was built for.
    pub fn host() -> Arch {
        let go = match std::env::consts::ARCH {
            "x86" => "386",
            "x86_64" => "amd64",
            "arm" => "arm",
            "aarch64" => "arm64",
            "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
            "powerpc64" => "ppc64",
            "mips" if cfg!(target_endian = "little") => "mipsle",
            "mips" => "mips",
            "mips64" if cfg!(target_endian = "little") => "mips64le",
            "mips64" => "mips64",
            "s390x" => "s390x",
            "riscv64" => "riscv64",
            "loongarch64" => "loong64",
            _ => "unknown",
        };
        Arch::from_go_name(go).unwrap_or(Arch::UNKNOWN)
    }

    pub fn is_unknown(self) -> bool {
        self.go_name().is_none_or(|n| n == "unknown")
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.go_name().unwrap_or("unknown"))
    }
}

impl fmt::Debug for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Arch({})", String::from_utf8_lossy(&self.0[..2]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_values_keep_their_number() {
        assert_eq!(DataType(0x4fff).name(), None);
        assert_eq!(DataType(0x4fff).to_string(), "Unknown");
        assert_eq!(DataType::PARTITION.to_string(), "FS");
    }

    #[test]
    fn arch_names_round_trip() {
        for (code, name) in ARCHES {
            let arch = Arch::from_go_name(name).unwrap();
            assert_eq!(&arch.0[..2], &code[..]);
            assert_eq!(arch.go_name(), Some(*name));
        }
        assert_eq!(Arch(*b"99\0").go_name(), None);
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn host_arch_is_amd64_on_x86_64() {
        assert_eq!(Arch::host(), Arch::AMD64);
    }
}
