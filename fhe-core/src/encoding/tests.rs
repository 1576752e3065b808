//! Encoder tests: precision in bits against the f64 input, sparse slots, rotations through the
//! automorphism, and rejections.

use super::*;
use crate::params::presets;
use alloc::vec;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

fn random_values(rng: &mut ChaCha20Rng, n: usize) -> Vec<Complex> {
    let mut u = || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0;
    (0..n).map(|_| Complex::new(u(), u())).collect()
}

#[test]
fn round_trip_precision_at_least_log_scale_minus_10() {
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    for lit in [presets::toy_insecure_n10(), presets::n13(), presets::n14()] {
        let params = lit.validate().unwrap();
        for slots in [1, 8, params.max_slots() / 4, params.max_slots()] {
            let enc = Encoder::new(&params, slots).unwrap();
            let v = random_values(&mut rng, slots);
            for level in [0, params.max_level()] {
                let pt = enc.encode_complex_at(&v, params.scale(), level).unwrap();
                let got = enc.decode_complex(&pt).unwrap();
                let p = Precision::of_complex(&v, &got);
                assert!(
                    p.min_bits >= params.log_scale() - 10.0,
                    "log N {} slots {slots} level {level}: {p:?}",
                    params.log_n()
                );
            }
        }
    }
}

#[test]
fn large_scales_use_the_wide_rounding_path() {
    // Scale 2^100 at the top level of n14 (Q ≈ 2^310): coefficients exceed 2^62.
    let params = presets::n14().validate().unwrap();
    let enc = Encoder::new(&params, 64).unwrap();
    let v: Vec<f64> = (0..64).map(|i| (i as f64 - 31.5) / 40.0).collect();
    let pt = enc
        .encode_at(&v, libm::exp2(100.0), params.max_level())
        .unwrap();
    let got = enc.decode(&pt).unwrap();
    let p = Precision::of_real(&v, &got);
    assert!(p.min_bits >= 45.0, "{p:?}");
}

#[test]
fn automorphism_5_rotates_and_minus_1_conjugates_slots() {
    let params = presets::toy_insecure_n10().validate().unwrap();
    let ctx = params.ctx();
    let mut rng = ChaCha20Rng::seed_from_u64(12);
    for slots in [4, 64, 512] {
        let enc = Encoder::new(&params, slots).unwrap();
        let v = random_values(&mut rng, slots);
        let pt = enc.encode_complex_at(&v, params.scale(), 2).unwrap();
        let two_n = 2 * params.n();
        for (k, expect) in [
            (
                5usize,
                (0..slots).map(|j| v[(j + 1) % slots]).collect::<Vec<_>>(),
            ),
            (
                125 % two_n,
                (0..slots).map(|j| v[(j + 3) % slots]).collect(),
            ),
            (two_n - 1, v.iter().map(|c| c.conj()).collect()),
        ] {
            let mut rotated = Poly::zero(ctx, 0, false);
            pt.poly
                .automorphism_into(&ctx.galois_permutation(k), &mut rotated)
                .unwrap();
            let got = enc
                .decode_complex(&Plaintext {
                    poly: rotated,
                    scale: pt.scale,
                    slots,
                })
                .unwrap();
            let p = Precision::of_complex(&expect, &got);
            assert!(p.min_bits >= 28.0, "slots {slots} k {k}: {p:?}");
        }
    }
}

#[test]
fn encode_into_does_not_reallocate_and_rejects_bad_input() {
    let params = presets::toy_insecure_n10().validate().unwrap();
    let enc = Encoder::new(&params, 16).unwrap();
    let mut out = Poly::zero(params.ctx(), params.max_level(), false);
    let ptr = out.data().as_ptr();
    let mut scratch = vec![Complex::ZERO; enc.scratch_len()];
    let v = vec![Complex::new(0.25, -0.5); 16];
    enc.encode_complex_into(&v, params.scale(), 1, &mut out, &mut scratch)
        .unwrap();
    assert_eq!(out.data().as_ptr(), ptr);
    assert_eq!(out.level(), 1);
    assert!(matches!(
        enc.encode_complex_into(&vec![Complex::ZERO; 17], 1.0, 0, &mut out, &mut scratch),
        Err(Error::LengthMismatch { .. })
    ));
    assert!(matches!(
        enc.encode_at(&[f64::NAN], params.scale(), 0),
        Err(Error::EncodingOverflow { .. })
    ));
    // 2^45 · 2^40 does not fit q_0 (50 bits) at level 0.
    assert!(matches!(
        enc.encode_at(&[libm::exp2(45.0)], params.scale(), 0),
        Err(Error::EncodingOverflow { .. })
    ));
    assert!(matches!(
        enc.encode_at(&[1.0], params.scale(), params.max_level() + 1),
        Err(Error::LevelTooLow { .. })
    ));
    assert!(matches!(
        Encoder::new(&params, 3),
        Err(Error::InvalidSlots { slots: 3, max: 512 })
    ));
    assert!(matches!(
        Encoder::new(&params, 1024),
        Err(Error::InvalidSlots { .. })
    ));
}

#[test]
fn precision_statistics() {
    let p = Precision::of_real(&[0.0, 0.0, 0.0], &[0.25, 0.5, 0.125]);
    assert_eq!(p.min_bits, 1.0);
    assert_eq!(p.median_bits, 2.0);
    assert!((p.mean_bits - -libm::log2(0.875 / 3.0)).abs() < 1e-12);
}
