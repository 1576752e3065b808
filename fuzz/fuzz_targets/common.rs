//! Shared by the fuzz targets: the fixed parameters every loader is fuzzed with.

use std::sync::OnceLock;

use fhe_core::params::{Params, presets};

/// The toy preset (N = 2^10, INSECURE: for tests only), validated once.
pub fn params() -> &'static Params {
    static P: OnceLock<Params> = OnceLock::new();
    P.get_or_init(|| match presets::toy_insecure_n10().validate() {
        Ok(p) => p,
        Err(e) => panic!("toy preset: {e}"),
    })
}
