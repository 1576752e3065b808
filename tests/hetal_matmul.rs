//! HETAL's DiagABT and DiagATB (`trainer_core::hetal`) on CKKS: the decrypted products against
//! f64 matrix products, in bits, with the operation counts and levels the mirror predicts.
//! Toy (insecure) parameters keep it fast; `cargo run --release -p blindtuner --example
//! matmul_cost` measures them at N = 2^16 beside the trainer's own products.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use blindtuner::harness::setup_with_keys;
use fhe_core::ciphertext::Ciphertext;
use fhe_core::params::presets;
use trainer_core::backend::{Backend, OpCounts};
use trainer_core::hetal::{AtbVariant, HetalMatmul, Shape};

fn bits(want: &[Vec<f64>], got: &[Vec<f64>]) -> f64 {
    let err = want
        .iter()
        .zip(got)
        .map(|(w, g)| common::max_abs_diff(w, g))
        .fold(0.0, f64::max);
    -err.max(f64::MIN_POSITIVE).log2()
}

#[test]
fn hetal_products_on_ckks_are_the_matrix_products_to_24_bits() {
    let params = presets::toy_insecure_train().validate().expect("params");
    let slots = params.max_slots();
    // One row block with two column blocks; two row blocks of eight classes.
    for (n, (a, b, c)) in [(16, 100, 4), (150, 20, 8)].into_iter().enumerate() {
        let sh = Shape::new(a, b, c, slots).unwrap();
        let (mut hospital, mut be) =
            setup_with_keys(&params, &sh.rotation_steps(), true, 11 + n as u64).unwrap();
        let top = be.top_level();
        let (x, w, e) = (
            common::uniform(a * b, 1),
            common::uniform(c * b, 2),
            common::uniform(a * c, 3),
        );
        let logits: Vec<f64> = (0..a * c)
            .map(|k| {
                (0..b)
                    .map(|f| x[(k / c) * b + f] * w[(k % c) * b + f])
                    .sum()
            })
            .collect();
        let grad: Vec<f64> = (0..c * b)
            .map(|k| (0..a).map(|r| e[r * c + k / b] * x[r * b + k % b]).sum())
            .collect();
        let mut enc = |blocks: Vec<Vec<f64>>| -> Vec<Ciphertext> {
            blocks
                .iter()
                .map(|v| hospital.encrypt(v).unwrap())
                .collect()
        };
        let xs = enc(sh.encode_data(&x).unwrap());
        let ws = enc(sh.encode_model(&w).unwrap());
        // The class matrix as it comes out of a softmax: lower than the data.
        let es: Vec<Ciphertext> = enc(sh.encode_classes(&e).unwrap())
            .iter()
            .map(|v| be.lower(v, top - 3).unwrap())
            .collect();
        let mut hm = HetalMatmul::new(sh);
        let without_adds = |c: OpCounts| OpCounts { add: 0, ..c };

        let before = be.counts();
        let out = hm.abt(&mut be, &xs, &ws).unwrap();
        assert_eq!(without_adds(be.counts() - before), sh.abt_ops());
        assert!(out.iter().all(|v| v.level() == top - Shape::ABT_DEPTH));
        let got: Vec<Vec<f64>> = out.iter().map(|v| hospital.decrypt(v).unwrap()).collect();
        let b_abt = bits(&sh.encode_classes(&logits).unwrap(), &got);
        assert!(b_abt >= 24.0, "{sh:?}: DiagABT {b_abt:.1} bits");

        for variant in [AtbVariant::FewestOps, AtbVariant::SaveLevel] {
            let before = be.counts();
            let out = hm.atb(&mut be, &xs, &es, variant).unwrap();
            assert_eq!(without_adds(be.counts() - before), sh.atb_ops(variant));
            let level = top - 3 - sh.atb_turn_depth(variant) - 2;
            assert!(out.iter().all(|v| v.level() == level), "{variant:?}");
            let got: Vec<Vec<f64>> = out.iter().map(|v| hospital.decrypt(v).unwrap()).collect();
            let b_atb = bits(&sh.encode_model(&grad).unwrap(), &got);
            assert!(b_atb >= 24.0, "{sh:?} {variant:?}: DiagATB {b_atb:.1} bits");
            eprintln!("{sh:?} {variant:?}: DiagABT {b_abt:.1} bits, DiagATB {b_atb:.1} bits");
        }
    }
}
