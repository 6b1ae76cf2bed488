//! Feeds arbitrary bytes to the SquashFS reader as an archive at offset 0
//! and walks everything it can (with small limits): any panic, hang or huge
//! allocation is a bug.
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut tmp) = tempfile::tempfile() else {
        return;
    };
    if tmp.write_all(data).is_err() {
        return;
    }
    vessel_squashfs::exercise_untrusted(tmp, 0, data.len() as u64);
});
