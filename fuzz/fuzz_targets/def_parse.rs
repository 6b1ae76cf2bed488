//! Feeds arbitrary text to the definition-file parser (with and without a
//! required `Bootstrap:`), and what parses to the renderer, whose output
//! must parse back to the same definition: any panic or hang is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    vessel_build::def::exercise_untrusted(&String::from_utf8_lossy(data));
});
