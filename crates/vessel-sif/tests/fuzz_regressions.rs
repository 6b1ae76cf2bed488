//! Every input the `sif_load` fuzz target ever crashed on, replayed, plus
//! the reference corpus cut at every interesting length.

use std::path::PathBuf;

#[path = "../../../tests/common/fixtures.rs"]
mod shared;

fn regressions() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions/sif_load")
}

#[test]
fn past_crashes_stay_fixed() {
    for entry in std::fs::read_dir(regressions()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            continue;
        }
        let data = std::fs::read(&path).unwrap();
        // Must return, loaded or not, without panicking.
        vessel_sif::exercise_untrusted(&data);
    }
}

#[test]
fn every_truncation_of_a_real_image_is_handled() {
    let data = std::fs::read(shared::golden_image("TwoGroupsSignedPGP")).unwrap();
    assert!(vessel_sif::exercise_untrusted(&data));
    let mut loaded = 0;
    for len in (0..data.len())
        .step_by(97)
        .chain([127, 128, 4096, 32175, 32176])
    {
        if vessel_sif::exercise_untrusted(&data[..len]) {
            loaded += 1;
        }
    }
    // Only the cut at the very end of the last object could load.
    assert_eq!(loaded, 0);
}
