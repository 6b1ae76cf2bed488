//! Feeds arbitrary bytes to the layer merge as up to 8 layers (tar, gzip or
//! zstd; split on `vessel_oci::layers::FUZZ_LAYER_SEPARATOR`), planning and
//! writing the merged stream: any panic, hang, huge allocation or output
//! path that could leave the root is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    vessel_oci::layers::exercise_untrusted(data);
});
