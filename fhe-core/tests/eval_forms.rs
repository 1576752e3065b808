//! The one-pass `_into` / `_new` forms of the evaluator give exactly (bit for bit) what the
//! `_assign` forms give, at equal and at different levels.

// Test code: panicking on a broken invariant is the point.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;

use fhe_core::ciphertext::Ciphertext;
use fhe_core::encoding::Encoder;
use fhe_core::encrypt::encrypt_pk;
use fhe_core::eval::Evaluator;
use fhe_core::keys::{EvalKeys, PublicKey, SecretKey};
use fhe_core::params::presets;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

#[test]
fn new_forms_match_assign_forms() {
    let params = presets::toy_insecure_n10().validate().unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let sk = SecretKey::generate(&params, &mut rng).unwrap();
    let pk = PublicKey::generate(&sk, &mut rng).unwrap();
    let keys = EvalKeys::generate(&sk, &[1], false, &mut rng).unwrap();
    let eval = Evaluator::with_keys(&params, Arc::new(keys));
    let mut scratch = eval.scratch();
    let enc = Encoder::new(&params, params.max_slots()).unwrap();
    let v: Vec<f64> = (0..params.max_slots()).map(|i| (i as f64).sin()).collect();
    let pt = enc.encode(&v).unwrap();
    let a = encrypt_pk(&params, &pk, &pt, &mut rng).unwrap();
    let b = encrypt_pk(&params, &pk, &pt, &mut rng).unwrap();
    let mut low = b.clone();
    low.drop_to_level(params.max_level() - 2).unwrap();

    for (x, y) in [(&a, &b), (&a, &low), (&low, &a)] {
        // add / sub: the reference subtracts in place at the lower level.
        let mut want = x.clone();
        eval.add_assign(&mut want, y).unwrap();
        assert_eq!(eval.add_new(x, y).unwrap(), want);
        let mut neg_y = y.clone();
        eval.neg_assign(&mut neg_y);
        let mut want = x.clone();
        eval.add_assign(&mut want, &neg_y).unwrap();
        assert_eq!(eval.sub_new(x, y).unwrap(), want);
    }
    let mut low_pt = pt.clone();
    low_pt.poly.drop_to_level(params.max_level() - 1).unwrap();
    for p in [&pt, &low_pt] {
        let mut want = a.clone();
        eval.mul_plain_assign(&mut want, p).unwrap();
        assert_eq!(eval.mul_plain_new(&a, p).unwrap(), want);
    }
    let mut c3 = Ciphertext::from_parts(a.polys().to_vec(), a.scale, a.slots).unwrap();
    eval.mul_into(&a, &b, &mut c3).unwrap();
    let mut want = c3.clone();
    eval.relinearize_assign(&mut want, &mut scratch).unwrap();
    let got = eval.relinearize_new(&c3, &mut scratch).unwrap();
    assert_eq!(got, want);
    let mut want_r = got.clone();
    eval.rescale_assign(&mut want_r, &mut scratch).unwrap();
    assert_eq!(eval.rescale_new(&got, &mut scratch).unwrap(), want_r);
    // A small scratch (one limb at a time) gives the same.
    let ctx = params.ctx();
    let mut small = vec![0u64; 2 * ctx.n()];
    let mut p = got.polys()[0].clone();
    p.rescale_assign(ctx, &mut small).unwrap();
    assert_eq!(&p, &want_r.polys()[0]);
    let mut q = fhe_core::ring::Poly::empty();
    got.polys()[1]
        .rescale_into(ctx, &mut q, &mut small)
        .unwrap();
    assert_eq!(&q, &want_r.polys()[1]);
}
