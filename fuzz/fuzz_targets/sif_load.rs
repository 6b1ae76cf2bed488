//! Loading, listing and reading an arbitrary file as a SIF image never
//! panics and never allocates more than the input holds.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    vessel_sif::exercise_untrusted(data);
});
