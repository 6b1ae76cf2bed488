//! Where the shared fixture corpus is, for every test binary of the
//! workspace (the crates' tests include this file with `#[path]`).

#![allow(dead_code)]
// The tests read their own settings (VESSEL_TEST_*, VESSEL_FIXTURES, CI),
// not Vessel's variables, so not through vessel-config's registry.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};

/// The shared fixtures: `$VESSEL_FIXTURES`, else `shared/fixtures` beside
/// the checkout (next to the workspace root), where CI and developers have
/// them.
pub fn fixtures() -> PathBuf {
    std::env::var_os("VESSEL_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("../shared/fixtures"))
}

/// The workspace root: the nearest directory above the package being tested
/// that holds `Cargo.lock`.
fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .find(|d| d.join("Cargo.lock").is_file())
        .unwrap_or(manifest)
        .to_path_buf()
}

/// The SIF part of the corpus: images, goldens, keys, Apptainer's images
/// and definition files.
pub fn sif_fixtures() -> PathBuf {
    fixtures().join("sif")
}

/// `TwoGroupsSignedPGP` → `two-groups-signed-pgp.sif`, as the corpus names
/// the image of each golden output.
pub fn golden_image(name: &str) -> PathBuf {
    let chars: Vec<char> = name.chars().collect();
    let mut kebab = String::new();
    for (i, &c) in chars.iter().enumerate() {
        let prev_lower = i > 0 && chars[i - 1].is_ascii_lowercase();
        let prev_upper = i > 0 && chars[i - 1].is_ascii_uppercase();
        let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
        if c.is_ascii_uppercase() && i > 0 && (prev_lower || (prev_upper && next_lower)) {
            kebab.push('-');
        }
        kebab.push(c.to_ascii_lowercase());
    }
    sif_fixtures().join("images").join(format!("{kebab}.sif"))
}
