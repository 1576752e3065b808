//! Fuzzes `Params::from_bytes` (which needs no parameters): any input is an `Err` or a file
//! that writes back to the same bytes; nothing panics.
#![no_main]

use fhe_core::params::Params;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = Params::from_bytes(data) {
        assert_eq!(
            p.to_bytes().ok().as_deref(),
            Some(data),
            "accepted a non-canonical file"
        );
    }
});
