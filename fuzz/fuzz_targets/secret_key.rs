//! Fuzzes `SecretKey::from_bytes`: any input is an `Err` or a file that writes back to the same bytes;
//! nothing panics.
#![no_main]

mod common;

use fhe_core::keys::SecretKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let params = common::params();
    if let Ok(sk) = SecretKey::from_bytes(params, data) {
        let again = sk.to_bytes(params).ok();
        assert_eq!(
            again.as_deref().map(|v| v.as_slice()),
            Some(data),
            "accepted a non-canonical file"
        );
    }
});
