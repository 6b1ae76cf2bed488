//! `vessel sif`: the reference `siftool`'s commands, arguments and output.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use vessel_sif::{
    report, Arch, CreateOptions, CryptoMessage, DataType, DeleteOptions, FormatType, FsType,
    HashType, Link, MessageType, Metadata, ObjectInput, PartType, Partition, SbomFormat, Sif,
    Signature,
};

use crate::cli::{SifAddArgs, SifArgs, SifCommand};

pub fn run(args: SifArgs) -> Result<u8> {
    match args.command {
        SifCommand::Header { path } => {
            let sif = open(&path)?;
            super::write_stdout(report::header(sif.header()).as_bytes())?;
        }
        SifCommand::List { path } => {
            let sif = open(&path)?;
            super::write_stdout(report::list(&sif).as_bytes())?;
        }
        SifCommand::Info { id, path } => {
            let id = parse_id(&id)?;
            let sif = open(&path)?;
            let text = report::info(&sif, id).with_context(|| in_file(&path))?;
            super::write_stdout(text.as_bytes())?;
        }
        SifCommand::Dump { id, path } => {
            let id = parse_id(&id)?;
            let mut sif = open(&path)?;
            let mut object = sif.object_reader(id).with_context(|| in_file(&path))?;
            let mut out = io::stdout().lock();
            match io::copy(&mut object, &mut out).and_then(|_| out.flush()) {
                Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
                    return Err(e).with_context(|| format!("while dumping object {id}"));
                }
                _ => {}
            }
        }
        SifCommand::New { path } => new(&path)?,
        SifCommand::Add(args) => add(args)?,
        SifCommand::Del { id, path } => {
            let id = parse_id(&id)?;
            modify(&path, |sif| {
                sif.delete_object(id, DeleteOptions::default(), now())
            })?;
        }
        SifCommand::Setprim { id, path } => {
            let id = parse_id(&id)?;
            modify(&path, |sif| sif.set_primary_partition(id, now()))?;
        }
    }
    Ok(0)
}

fn open(path: &Path) -> Result<Sif<File>> {
    vessel_image::open_sif(path).map_err(|e| anyhow!("could not load {e}"))
}

fn in_file(path: &Path) -> String {
    format!("in {}", path.display())
}

fn parse_id(id: &str) -> Result<u32> {
    match id.parse::<u32>() {
        Ok(0) => bail!("invalid object ID 0: object IDs start at 1"),
        Ok(n) => Ok(n),
        Err(_) => bail!("invalid object ID {id:?}: expected a number, as shown by `sif list`"),
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Creates a new empty image, written under a temporary name and renamed
/// into place, so that an existing file is replaced whole or not at all.
fn new(path: &Path) -> Result<()> {
    // Executable, as SIF files are: their launch script runs them.
    let mut tmp = vessel_sys::fs::AtomicFile::create(path, 0o755)
        .with_context(|| format!("could not create {}", path.display()))?;
    let id = *uuid::Uuid::new_v4().as_bytes();
    let created = (|| -> Result<()> {
        Sif::create(tmp.file().try_clone()?, &CreateOptions::new(id, now()))?;
        tmp.commit()?;
        Ok(())
    })();
    created.with_context(|| format!("while creating {}", path.display()))
}

/// Applies a change to an image in place. A change that fails part way is
/// rolled back to the file's old length, so no stray bytes are left behind;
/// the header, written last, still describes the old content.
fn modify(
    path: &Path,
    change: impl FnOnce(&mut Sif<File>) -> vessel_sif::Result<()>,
) -> Result<()> {
    let mut sif = vessel_image::open_sif_rw(path).map_err(|e| anyhow!("could not load {e}"))?;
    let old_len = sif.file_len();
    let result = change(&mut sif);
    let file = sif.into_inner();
    match result {
        Ok(()) => file
            .sync_all()
            .with_context(|| format!("while writing {}", path.display())),
        Err(e) => {
            if file.metadata().map(|m| m.len()).unwrap_or(old_len) > old_len {
                let _ = file.set_len(old_len);
            }
            Err(e).with_context(|| in_file(path))
        }
    }
}

fn add(args: SifAddArgs) -> Result<()> {
    let data_type = match args.datatype {
        1..=11 => DataType(0x4000 + args.datatype as i32),
        _ => bail!("--datatype flag is required with a valid range (1 to 11)"),
    };
    vessel_image::check_regular_file(&args.object).map_err(|e| anyhow!("could not add {e}"))?;
    let mut object = File::open(&args.object)
        .with_context(|| format!("could not open {}", args.object.display()))?;
    let mut input = ObjectInput::new(data_type);
    input.metadata = metadata_for(data_type, &args)?;
    input.group = (args.groupid != 0).then_some(args.groupid);
    if let Some(link) = args.link {
        if link == 0 {
            bail!("invalid object ID 0 for --link: object IDs start at 1");
        }
        input.link = Link::Object(link);
    }
    if let Some(alignment) = args.alignment {
        input.alignment = alignment.max(0) as u64;
    }
    if let Some(name) = args.filename {
        input.name = name;
    }
    modify(&args.path, |sif| {
        sif.add_object(&input, &mut object, now()).map(|_| ())
    })
}

fn metadata_for(data_type: DataType, args: &SifAddArgs) -> Result<Metadata> {
    Ok(match data_type {
        DataType::PARTITION => {
            if args.partfs == 0 || args.parttype == 0 || args.partarch == 0 {
                bail!(
                    "with partition datatype, --partfs, --parttype and --partarch must be passed"
                );
            }
            let arch = arch_for_code(args.partarch).ok_or_else(|| {
                anyhow!(
                    "unknown architecture code {} for --partarch (1 to 13)",
                    args.partarch
                )
            })?;
            Metadata::Partition(Partition {
                fs: FsType(args.partfs),
                part: PartType(args.parttype),
                arch,
            })
        }
        DataType::SIGNATURE => {
            let entity = decode_hex(&args.signentity).ok_or_else(|| {
                anyhow!(
                    "failed to decode signing entity fingerprint {:?}: expected hex digits",
                    args.signentity
                )
            })?;
            if !(1..=5).contains(&args.signhash) {
                bail!("invalid hash type: {}", args.signhash);
            }
            if entity.len() != 20 {
                bail!(
                    "invalid signing entity fingerprint length: got {}, want 20",
                    entity.len()
                );
            }
            let mut full = [0u8; 256];
            full[..20].copy_from_slice(&entity);
            Metadata::Signature(Signature {
                hash: HashType(args.signhash),
                entity: full,
            })
        }
        DataType::SBOM => {
            if args.sbomformat.is_empty() {
                bail!("with SBOM datatype, --sbomformat must be passed");
            }
            let wanted = if args.sbomformat == "github" {
                "github-json"
            } else {
                &args.sbomformat
            };
            let format = SbomFormat::KNOWN
                .iter()
                .find(|f| f.name() == Some(wanted))
                .ok_or_else(|| anyhow!("invalid SBOM format: {}", args.sbomformat))?;
            Metadata::Sbom(*format)
        }
        // siftool has no flags for these, so the fields stay zero.
        DataType::CRYPTO_MESSAGE => Metadata::CryptoMessage(CryptoMessage {
            format: FormatType(0),
            message: MessageType(0),
        }),
        _ => Metadata::None,
    })
}

/// `--partarch` numbers the architectures in SIF code order: 1 is `01` (386).
fn arch_for_code(code: i32) -> Option<Arch> {
    if !(1..=13).contains(&code) {
        return None;
    }
    let digits = format!("{code:02}");
    let arch = Arch([digits.as_bytes()[0], digits.as_bytes()[1], 0]);
    arch.go_name().map(|_| arch)
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arch_codes() {
        assert_eq!(arch_for_code(2), Some(Arch::AMD64));
        assert_eq!(arch_for_code(13).and_then(|a| a.go_name()), Some("loong64"));
        assert_eq!(arch_for_code(0), None);
        assert_eq!(arch_for_code(14), None);
    }

    #[test]
    fn hex() {
        assert_eq!(decode_hex("0aFF"), Some(vec![0x0a, 0xff]));
        assert_eq!(decode_hex("zz"), None);
        assert_eq!(decode_hex("abc"), None);
    }
}
