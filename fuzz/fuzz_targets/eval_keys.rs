//! Fuzzes `EvalKeys::from_bytes`: any input is an `Err` or a file that writes back to the same bytes;
//! nothing panics.
#![no_main]

mod common;

use fhe_core::format::WireObject;
use fhe_core::keys::EvalKeys;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let params = common::params();
    if let Ok(keys) = EvalKeys::from_bytes(params, data) {
        assert_eq!(
            keys.to_bytes(params).ok().as_deref(),
            Some(data),
            "accepted a non-canonical file"
        );
    }
});
