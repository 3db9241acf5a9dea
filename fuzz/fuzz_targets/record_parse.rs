//! Holder records come from other processes: parsing any bytes must return
//! a record or an error, never panic, and a parsed record's accessors and
//! `Display` must not panic either (times far in the future or past).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(record) = lockyard::parse_record(data) {
        let _ = record.to_string();
        let _ = record.age();
        let _ = record.expires_at();
    }
});
