//! The reference corpus written by Go's `sif` package: every image loads,
//! its reports match the reference `siftool` byte for byte, and objects read
//! back as the inputs they were made from.

use std::fs::File;
use std::path::PathBuf;

use vessel_sif::{report, Sif};

#[path = "../../../tests/common/fixtures.rs"]
mod shared;

/// The corpus's SIF part.
fn fixtures() -> PathBuf {
    shared::sif_fixtures()
}

fn load(path: &PathBuf) -> Sif<File> {
    Sif::load(File::open(path).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn goldens(kind: &str) -> Vec<(String, String)> {
    let dir = fixtures().join("golden").join(kind);
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let path = e.unwrap().path();
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&path).unwrap())
        })
        .collect();
    out.sort();
    out
}

#[test]
fn names_map_to_images() {
    assert!(shared::golden_image("TwoGroupsSignedPGP").ends_with("two-groups-signed-pgp.sif"));
    assert!(shared::golden_image("EmptyID").ends_with("empty-id.sif"));
    assert!(shared::golden_image("OneObjectSBOM").ends_with("one-object-sbom.sif"));
    assert!(
        shared::golden_image("OneObjectOCIRootIndex").ends_with("one-object-oci-root-index.sif")
    );
}

#[test]
fn header_reports_match_the_reference() {
    let all = goldens("header");
    assert_eq!(all.len(), 19);
    for (name, want) in all {
        let sif = load(&shared::golden_image(&name));
        assert_eq!(report::header(sif.header()), want, "header of {name}");
    }
}

#[test]
fn list_reports_match_the_reference() {
    let all = goldens("list");
    assert_eq!(all.len(), 19);
    for (name, want) in all {
        let sif = load(&shared::golden_image(&name));
        assert_eq!(report::list(&sif), want, "list of {name}");
    }
}

#[test]
fn info_reports_match_the_reference() {
    let cases = [
        ("Time", "one-object-time.sif", 1),
        ("GenericJSON", "one-object-generic-json.sif", 1),
        ("CryptMessage", "one-object-crypt-message.sif", 1),
        ("SBOM", "one-object-sbom.sif", 1),
        ("OCIRootIndex", "one-object-oci-root-index.sif", 1),
        ("OCIBlob", "one-object-oci-blob.sif", 1),
        ("DataPartitionRaw", "two-groups-signed-pgp.sif", 1),
        ("DataPartitionSquashFS", "two-groups-signed-pgp.sif", 2),
        ("DataPartitionEXT3", "two-groups-signed-pgp.sif", 3),
        ("DataSignature", "two-groups-signed-pgp.sif", 4),
    ];
    let goldens = goldens("info");
    assert_eq!(goldens.len(), cases.len());
    for (name, image, id) in cases {
        let want = &goldens.iter().find(|(n, _)| n == name).unwrap().1;
        let sif = load(&fixtures().join("images").join(image));
        assert_eq!(&report::info(&sif, id).unwrap(), want, "info of {name}");
    }
}

#[test]
fn objects_read_back_as_their_inputs() {
    let input = |f: &str| std::fs::read(fixtures().join("input").join(f)).unwrap();
    let mut sif = load(&fixtures().join("images/one-group.sif"));
    assert_eq!(
        sif.read_object(1, 1 << 20).unwrap(),
        [0xfa, 0xce, 0xfe, 0xed]
    );
    assert_eq!(sif.read_object(2, 1 << 20).unwrap(), input("root.squashfs"));
    let mut sif = load(&fixtures().join("images/one-object-sbom.sif"));
    assert_eq!(sif.read_object(1, 1 << 20).unwrap(), input("sbom.cdx.json"));
}

#[test]
fn every_real_image_loads() {
    for dir in ["images", "apptainer/images", "singularity-3.4"] {
        for entry in std::fs::read_dir(fixtures().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "sif") {
                let sif = load(&path);
                assert!(sif.descriptors().count() > 0 || path.to_string_lossy().contains("empty"));
            }
        }
    }
}

/// Building the reference images again, deterministically, gives the very
/// same bytes as Go's `sif` package wrote.
#[test]
fn deterministic_creation_reproduces_the_reference_bytes() {
    use std::io::Cursor;
    use vessel_sif::{
        Arch, CreateOptions, DataType, FsType, Metadata, ObjectInput, PartType, Partition,
    };

    let mut sif = Sif::create(Cursor::new(Vec::new()), &CreateOptions::deterministic()).unwrap();
    let empty = sif.into_inner().into_inner();
    assert_eq!(
        empty,
        std::fs::read(fixtures().join("images/empty.sif")).unwrap()
    );

    sif = Sif::create(Cursor::new(Vec::new()), &CreateOptions::deterministic()).unwrap();
    let i386 = Arch::from_go_name("386").unwrap();
    let partition = |fs, part| {
        let mut input = ObjectInput::new(DataType::PARTITION);
        input.metadata = Metadata::Partition(Partition {
            fs,
            part,
            arch: i386,
        });
        input
    };
    let raw = partition(FsType::RAW, PartType::SYSTEM);
    sif.add_object(&raw, &mut &[0xfa, 0xce, 0xfe, 0xed][..], 12345)
        .unwrap();
    let squash = partition(FsType::SQUASHFS, PartType::PRIMARY_SYSTEM);
    let root = std::fs::read(fixtures().join("input/root.squashfs")).unwrap();
    sif.add_object(&squash, &mut &root[..], 12345).unwrap();
    let built = sif.into_inner().into_inner();
    assert_eq!(
        built,
        std::fs::read(fixtures().join("images/one-group.sif")).unwrap()
    );
}

#[test]
fn oci_objects_carry_the_digest_of_their_data() {
    use std::io::Cursor;
    use vessel_sif::{CreateOptions, DataType, ObjectInput};

    let mut sif = Sif::create(Cursor::new(Vec::new()), &CreateOptions::deterministic()).unwrap();
    let config = std::fs::read(fixtures().join("input/oci-config.json")).unwrap();
    sif.add_object(&ObjectInput::new(DataType::OCI_BLOB), &mut &config[..], 0)
        .unwrap();
    let built = sif.into_inner().into_inner();
    assert_eq!(
        built,
        std::fs::read(fixtures().join("images/one-object-oci-blob.sif")).unwrap()
    );
}

#[test]
fn delete_and_set_primary() {
    use std::io::Cursor;
    use vessel_sif::{
        Arch, CreateOptions, DataType, DeleteOptions, FsType, Metadata, ObjectInput, PartType,
        Partition,
    };

    let mut sif = Sif::create(Cursor::new(Vec::new()), &CreateOptions::new([7; 16], 1000)).unwrap();
    let part = |part, arch| {
        let mut input = ObjectInput::new(DataType::PARTITION);
        input.metadata = Metadata::Partition(Partition {
            fs: FsType::SQUASHFS,
            part,
            arch,
        });
        input
    };
    let arm64 = Arch::from_go_name("arm64").unwrap();
    let a = sif
        .add_object(
            &part(PartType::PRIMARY_SYSTEM, Arch::AMD64),
            &mut &b"aaaa"[..],
            2000,
        )
        .unwrap();
    let b = sif
        .add_object(&part(PartType::SYSTEM, arm64), &mut &b"bbbb"[..], 2000)
        .unwrap();
    assert!(sif
        .add_object(&part(PartType::PRIMARY_SYSTEM, arm64), &mut &b"c"[..], 2000)
        .is_err());
    assert_eq!(sif.header().arch, Arch::AMD64);
    assert_eq!(sif.header().modified_at, 2000);

    sif.set_primary_partition(b, 3000).unwrap();
    assert_eq!(sif.header().arch, arm64);
    assert_eq!(sif.primary_partition().unwrap().id, b);
    assert_eq!(
        sif.descriptor(a).unwrap().partition().unwrap().part,
        PartType::SYSTEM
    );

    sif.delete_object(
        b,
        DeleteOptions {
            zero: true,
            compact: true,
        },
        4000,
    )
    .unwrap();
    assert_eq!(sif.header().arch, Arch::UNKNOWN);
    assert_eq!(sif.header().descriptors_free, 47);
    assert!(sif.descriptor(b).is_err());
    // The slot is reused, with the ID of its position, as the reference does.
    let c = sif
        .add_object(&ObjectInput::new(DataType::GENERIC), &mut &b"cc"[..], 5000)
        .unwrap();
    assert_eq!(c, b);
    let bytes = sif.into_inner().into_inner();
    let sif = Sif::load(Cursor::new(bytes)).unwrap();
    assert_eq!(sif.descriptors().count(), 2);
}
