//! Parameter presets for training runs.
//!
//! Training needs a scale-tracking prime chain (`fhe_core::math::generate_scale_chain_vt`, see
//! docs/TRAINING.md): fhe-core's `n16_train`, `n14_train` and the insecure `toy_insecure_train`
//! have one, as does `n15_train` (the same recipe at N = 2^15); the HE-standard bound is checked
//! again by `ParamsLiteral::validate`.

use anyhow::{Result, bail};
use fhe_core::params::{Params, ParamsLiteral, Security, presets};

/// Names accepted by `--preset` (secure ones; the insecure test preset needs
/// `--insecure-test-preset`).
pub const SECURE: [&str; 3] = ["n15_train", "n14_train", "n16_train"];

/// The name of the insecure test preset.
pub const INSECURE_TEST: &str = "toy_insecure_train";

/// The bootstrappable training preset (`keygen --bootstrap`; sparse secret, see
/// fhe-core/README.md on its security).
pub const BOOTSTRAP: &str = "n16_boot";

/// The name of the insecure bootstrappable test preset.
pub const INSECURE_BOOT_TEST: &str = "toy_insecure_boot_train";

/// The literal of a training preset.
pub fn literal(name: &str) -> Result<ParamsLiteral> {
    Ok(match name {
        "n15_train" => presets::n15_train(),
        "n14_train" => presets::n14_train(),
        "n16_train" => presets::n16_train(),
        BOOTSTRAP => presets::n16_boot(),
        INSECURE_TEST => presets::toy_insecure_train(),
        INSECURE_BOOT_TEST => presets::toy_insecure_boot_train(),
        _ => bail!(
            "unknown training preset {name:?}; choose one of {} (128-bit secure), or {BOOTSTRAP} \
             with --bootstrap",
            SECURE.join(", ")
        ),
    })
}

/// Validated parameters of a training preset.
pub fn params(name: &str) -> Result<Params> {
    literal(name)?
        .validate()
        .map_err(|e| anyhow::anyhow!("preset {name}: {e}"))
}

/// "128-bit" or "INSECURE".
pub fn security_name(p: &Params) -> &'static str {
    match p.security() {
        Security::Classical128 => "128-bit",
        Security::InsecureForTestsOnly => "INSECURE",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn secure_training_presets_validate_within_the_128_bit_bound() {
        for name in ["n15_train", "n14_train"] {
            let p = params(name).unwrap();
            assert_eq!(p.security(), Security::Classical128, "{name}");
            let bound = fhe_core::params::max_log_qp_128(p.log_n()).unwrap();
            assert!(p.log_qp() <= f64::from(bound), "{name}: {}", p.log_qp());
        }
        assert!(literal("nope").is_err());
    }
}
