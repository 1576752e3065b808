//! The leveled CKKS scheme: encryption, decryption and evaluation, asserted in bits of
//! precision against an f64 reference (STYLE.md 12), plus the fresh-noise variance against its
//! prediction.

// Test code: panicking on a broken invariant is the point.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;

use fhe_core::Error;
use fhe_core::ciphertext::Ciphertext;
use fhe_core::encoding::{Complex, Encoder, Precision};
use fhe_core::encrypt::{decrypt, decrypt_flooded, encrypt_pk, encrypt_sk};
use fhe_core::eval::Evaluator;
use fhe_core::keys::{EvalKeys, PublicKey, SecretKey};
use fhe_core::params::{Moduli, Params, ParamsLiteral, SecretDist, Security, presets};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

fn uniform(r: &mut ChaCha20Rng, n: usize, lo: f64, hi: f64) -> Vec<f64> {
    (0..n)
        .map(|_| lo + (hi - lo) * ((r.next_u64() >> 11) as f64 / (1u64 << 53) as f64))
        .collect()
}

/// INSECURE deep toy chain for precision tests: N = 2^12, q_0 60 bits + 22 × 50 bits.
fn toy_insecure_deep() -> Params {
    ParamsLiteral {
        log_n: 12,
        q: Moduli::Bits(
            std::iter::once(60)
                .chain(std::iter::repeat_n(50, 22))
                .collect(),
        ),
        p: Moduli::Bits(vec![60; 6]),
        log_scale: 50.0,
        dnum: 4,
        secret: SecretDist::Ternary,
        security: Security::InsecureForTestsOnly,
    }
    .validate()
    .unwrap()
}

struct Ctx {
    params: Params,
    sk: SecretKey,
    pk: PublicKey,
    eval: Evaluator,
    enc: Encoder,
}

fn setup(params: Params, rotations: &[i64], seed: u64) -> Ctx {
    let mut r = rng(seed);
    let sk = SecretKey::generate(&params, &mut r).unwrap();
    let pk = PublicKey::generate(&sk, &mut r).unwrap();
    let keys = EvalKeys::generate(&sk, rotations, true, &mut r).unwrap();
    let eval = Evaluator::with_keys(&params, Arc::new(keys));
    let enc = Encoder::new(&params, params.max_slots()).unwrap();
    Ctx {
        params,
        sk,
        pk,
        eval,
        enc,
    }
}

impl Ctx {
    fn encrypt(&self, v: &[f64], r: &mut ChaCha20Rng) -> Ciphertext {
        let pt = self.enc.encode(v).unwrap();
        encrypt_pk(&self.params, &self.pk, &pt, r).unwrap()
    }
    fn decrypt(&self, ct: &Ciphertext) -> Vec<f64> {
        self.enc
            .decode(&decrypt(&self.params, &self.sk, ct).unwrap())
            .unwrap()
    }
}

#[test]
fn fresh_encryptions_decrypt_precisely() {
    let c = setup(presets::n14().validate().unwrap(), &[], 1);
    let mut r = rng(2);
    let v = uniform(&mut r, c.params.max_slots(), -1.0, 1.0);
    let ct = c.encrypt(&v, &mut r);
    assert_eq!(ct.level(), c.params.max_level());
    let p = Precision::of_real(&v, &c.decrypt(&ct));
    // Public-key noise σ·√(1 + 4N/3) ≈ 2^8.9 at N = 2^14, times √N in the slots: ≈ 2^-34 mean.
    assert!(p.min_bits >= 30.0 && p.mean_bits >= 33.0, "pk: {p:?}");
    let pt = c.enc.encode(&v).unwrap();
    let ct = encrypt_sk(&c.params, &c.sk, &pt, &mut r).unwrap();
    assert!(ct.seed().is_some(), "secret-key encryptions are seeded");
    let p = Precision::of_real(&v, &c.decrypt(&ct));
    assert!(p.min_bits >= 37.0, "sk: {p:?}");
    // Flooded decryption: slot error ≈ 2^30·√N / 2^50 = 2^-13, so about 13 bits remain.
    let flooded = decrypt_flooded(
        &c.params,
        &c.sk,
        &c.eval.add_new(&ct, &ct).unwrap(),
        30,
        &mut r,
    )
    .unwrap();
    let got = c.enc.decode(&flooded).unwrap();
    let twice: Vec<f64> = v.iter().map(|x| 2.0 * x).collect();
    let p = Precision::of_real(&twice, &got);
    assert!(
        (8.0..30.0).contains(&p.min_bits),
        "flooding must cost precision but keep some: {p:?}"
    );
}

/// Empirical variance of the centred decryption of an encryption of zero.
fn noise_variance(c: &Ctx, ct: &Ciphertext) -> f64 {
    let pt = decrypt(&c.params, &c.sk, ct).unwrap();
    let coeff = pt.poly.clone().into_coeff(c.params.ctx());
    let n = c.params.n();
    let xs: Vec<f64> = (0..n).map(|i| coeff.coeff_f64(c.params.ctx(), i)).collect();
    let mean = xs.iter().sum::<f64>() / n as f64;
    xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64
}

#[test]
fn fresh_noise_variance_matches_prediction() {
    let c = setup(presets::n14().validate().unwrap(), &[], 3);
    let mut r = rng(4);
    let zero = c.enc.encode(&[]).unwrap();
    let n = c.params.n() as f64;
    let sigma2 = 3.2f64 * 3.2;
    // Secret-key encryption: the noise is e, variance σ².
    let ct = encrypt_sk(&c.params, &c.sk, &zero, &mut r).unwrap();
    let var = noise_variance(&c, &ct);
    assert!(
        (var / sigma2 - 1.0).abs() < 0.10,
        "sk noise variance {var}, predicted {sigma2}"
    );
    // Public-key encryption: e_0 + v·e + e_1·s with ternary v, s (variance 2/3 each):
    // σ²·(1 + 4N/3).
    let ct = encrypt_pk(&c.params, &c.pk, &zero, &mut r).unwrap();
    let var = noise_variance(&c, &ct);
    let want = sigma2 * (1.0 + 4.0 * n / 3.0);
    assert!(
        (var / want - 1.0).abs() < 0.10,
        "pk noise variance {var}, predicted {want}"
    );
}

#[test]
fn mult_relin_rescale_keeps_25_bits_at_scale_2_50() {
    let c = setup(presets::n14().validate().unwrap(), &[], 5);
    let mut r = rng(6);
    let slots = c.params.max_slots();
    let (a, b) = (
        uniform(&mut r, slots, -1.0, 1.0),
        uniform(&mut r, slots, -1.0, 1.0),
    );
    let (ca, cb) = (c.encrypt(&a, &mut r), c.encrypt(&b, &mut r));
    let mut s = c.eval.scratch();
    let mut prod = c.eval.mul_relin_new(&ca, &cb, &mut s).unwrap();
    assert_eq!(prod.degree(), 1);
    c.eval.rescale_assign(&mut prod, &mut s).unwrap();
    assert_eq!(prod.level(), c.params.max_level() - 1);
    let want: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x * y).collect();
    let p = Precision::of_real(&want, &c.decrypt(&prod));
    assert!(p.min_bits >= 25.0, "{p:?}");
    // Relinearisation needs degree 2; multiplication needs degree 1.
    assert!(matches!(
        c.eval.relinearize_assign(&mut prod.clone(), &mut s),
        Err(Error::WrongDegree { .. })
    ));
}

#[test]
fn rotation_and_conjugation_lose_at_most_one_bit_and_hoisting_is_exact() {
    let steps = [1i64, 2, 5, -3, 100];
    let c = setup(presets::n14().validate().unwrap(), &steps, 7);
    let mut r = rng(8);
    let slots = c.params.max_slots();
    let v = uniform(&mut r, slots, -1.0, 1.0);
    let ct = c.encrypt(&v, &mut r);
    let base = Precision::of_real(&v, &c.decrypt(&ct));
    let mut s = c.eval.scratch();
    let hoisted = c.eval.rotate_hoisted_new(&ct, &steps, &mut s).unwrap();
    for (&step, h) in steps.iter().zip(&hoisted) {
        let single = c.eval.rotate_new(&ct, step, &mut s).unwrap();
        assert_eq!(
            &single, h,
            "hoisted rotation by {step} differs from the single one"
        );
        let want: Vec<f64> = (0..slots)
            .map(|j| v[(j as i64 + step).rem_euclid(slots as i64) as usize])
            .collect();
        let p = Precision::of_real(&want, &c.decrypt(&single));
        assert!(
            p.mean_bits >= base.mean_bits - 1.0,
            "step {step}: {p:?} vs fresh {base:?}"
        );
    }
    // Conjugation of a complex vector.
    let z: Vec<Complex> = (0..slots)
        .map(|i| Complex::new(v[i], v[(i + 1) % slots]))
        .collect();
    let pt = c
        .enc
        .encode_complex_at(&z, c.params.scale(), c.params.max_level())
        .unwrap();
    let ct = encrypt_pk(&c.params, &c.pk, &pt, &mut r).unwrap();
    let conj = c.eval.conjugate_new(&ct, &mut s).unwrap();
    let got = c
        .enc
        .decode_complex(&decrypt(&c.params, &c.sk, &conj).unwrap())
        .unwrap();
    let want: Vec<Complex> = z.iter().map(|x| x.conj()).collect();
    assert!(Precision::of_complex(&want, &got).mean_bits >= base.mean_bits - 1.5);
    // A rotation without a key is a clear error.
    assert_eq!(
        c.eval.rotate_new(&ct, 7, &mut s).unwrap_err(),
        Error::MissingKey {
            galois_element: 78125 % 32768
        }
    );
}

#[test]
fn chain_of_20_multiplications_keeps_15_bits_at_scale_2_50() {
    let c = setup(toy_insecure_deep(), &[], 9);
    let mut r = rng(10);
    let slots = c.params.max_slots();
    let x = uniform(&mut r, slots, 0.9, 1.1);
    let y = uniform(&mut r, slots, 0.9, 1.1);
    let mut want = x.clone();
    let mut ct = c.encrypt(&x, &mut r);
    let cy = c.encrypt(&y, &mut r);
    let mut s = c.eval.scratch();
    for i in 0..20 {
        ct = c.eval.mul_relin_new(&ct, &cy, &mut s).unwrap();
        c.eval.rescale_assign(&mut ct, &mut s).unwrap();
        for (w, b) in want.iter_mut().zip(&y) {
            *w *= b;
        }
        assert_eq!(ct.level(), c.params.max_level() - i - 1);
    }
    let p = Precision::of_real(&want, &c.decrypt(&ct));
    assert!(p.min_bits >= 15.0, "{p:?}");
}

#[test]
fn additions_plaintexts_constants_and_level_alignment() {
    let c = setup(presets::n14().validate().unwrap(), &[1, 2, 4], 11);
    let mut r = rng(12);
    let slots = c.params.max_slots();
    let (a, b) = (
        uniform(&mut r, slots, -1.0, 1.0),
        uniform(&mut r, slots, -1.0, 1.0),
    );
    let (ca, cb) = (c.encrypt(&a, &mut r), c.encrypt(&b, &mut r));
    let check = |ct: &Ciphertext, want: Vec<f64>, floor: f64, what: &str| {
        let p = Precision::of_real(&want, &c.decrypt(ct));
        assert!(p.min_bits >= floor, "{what}: {p:?}");
    };
    let mut s = c.eval.scratch();
    check(
        &c.eval.add_new(&ca, &cb).unwrap(),
        a.iter().zip(&b).map(|(x, y)| x + y).collect(),
        30.0,
        "add",
    );
    check(
        &c.eval.sub_new(&ca, &cb).unwrap(),
        a.iter().zip(&b).map(|(x, y)| x - y).collect(),
        30.0,
        "sub",
    );
    // Level alignment: b one level lower, both operand orders.
    let mut low = cb.clone();
    low.drop_to_level(2).unwrap();
    let d1 = c.eval.sub_new(&ca, &low).unwrap();
    let d2 = c.eval.sub_new(&low, &ca).unwrap();
    assert_eq!(d1.level(), 2);
    check(
        &d1,
        a.iter().zip(&b).map(|(x, y)| x - y).collect(),
        30.0,
        "sub aligned",
    );
    check(
        &d2,
        a.iter().zip(&b).map(|(x, y)| y - x).collect(),
        30.0,
        "sub aligned reversed",
    );
    // Plaintext ops.
    let mut t = ca.clone();
    c.eval
        .add_plain_assign(&mut t, &c.enc.encode(&b).unwrap())
        .unwrap();
    check(
        &t,
        a.iter().zip(&b).map(|(x, y)| x + y).collect(),
        30.0,
        "add_plain",
    );
    let mut t = ca.clone();
    c.eval
        .mul_plain_assign(&mut t, &c.enc.encode(&b).unwrap())
        .unwrap();
    c.eval.rescale_assign(&mut t, &mut s).unwrap();
    check(
        &t,
        a.iter().zip(&b).map(|(x, y)| x * y).collect(),
        30.0,
        "mul_plain",
    );
    // Constants: real and complex multiplication keep the scale after rescaling.
    let mut t = ca.clone();
    c.eval
        .mul_const_assign(&mut t, Complex::new(-0.75, 0.0))
        .unwrap();
    c.eval.rescale_assign(&mut t, &mut s).unwrap();
    assert!((t.scale / ca.scale - 1.0).abs() < 1e-12);
    check(&t, a.iter().map(|x| -0.75 * x).collect(), 28.0, "mul_const");
    let mut t = ca.clone();
    c.eval
        .add_const_assign(&mut t, Complex::new(0.5, 0.0))
        .unwrap();
    check(&t, a.iter().map(|x| x + 0.5).collect(), 30.0, "add_const");
    let mut t = ca.clone();
    c.eval.mul_int_assign(&mut t, -3).unwrap();
    check(&t, a.iter().map(|x| -3.0 * x).collect(), 28.0, "mul_int");
    // i·a: the real part of the result is 0, the imaginary part a.
    let mut t = ca.clone();
    c.eval
        .mul_const_assign(&mut t, Complex::new(0.0, 1.0))
        .unwrap();
    c.eval.rescale_assign(&mut t, &mut s).unwrap();
    let got = c
        .enc
        .decode_complex(&decrypt(&c.params, &c.sk, &t).unwrap())
        .unwrap();
    let want: Vec<Complex> = a.iter().map(|&x| Complex::new(0.0, x)).collect();
    assert!(Precision::of_complex(&want, &got).min_bits >= 28.0);
    // Inner sum over 8 slots.
    let mut t = ca.clone();
    c.eval.inner_sum_assign(&mut t, 1, 8, &mut s).unwrap();
    let want: Vec<f64> = (0..slots)
        .map(|j| (0..8).map(|i| a[(j + i) % slots]).sum())
        .collect();
    check(&t, want, 26.0, "inner_sum");
    // Mismatches are errors naming both values.
    let mut scaled = ca.clone();
    scaled.scale *= 2.0;
    assert!(matches!(
        c.eval.add_new(&scaled, &cb),
        Err(Error::ScaleMismatch { .. })
    ));
    let mut other = cb.clone();
    other.slots = 8;
    assert_eq!(
        c.eval.add_new(&ca, &other).unwrap_err(),
        Error::SlotsMismatch { a: slots, b: 8 }
    );
}

#[test]
fn secret_key_debug_is_redacted_and_rejects_bad_coefficients() {
    let params = presets::toy_insecure_n10().validate().unwrap();
    let sk = SecretKey::generate(&params, &mut rng(13)).unwrap();
    let shown = format!("{sk:?}");
    assert!(
        shown.contains("SecretKey") && !shown.contains("coeffs"),
        "{shown}"
    );
    let mut bad = sk.coeffs().to_vec();
    bad[3] = 2;
    assert_eq!(
        SecretKey::from_coeffs(&params, &bad).unwrap_err(),
        Error::InvalidSecret
    );
    assert!(SecretKey::from_coeffs(&params, &bad[1..]).is_err());
}

#[test]
fn bsgs_linear_transform_matches_matrix_vector_product() {
    use fhe_core::linear::LinearTransform;
    use std::collections::BTreeMap;
    // Dense 32×32 complex matrix on 32 sparse slots (N = 2^10), and a banded one.
    let params = presets::toy_insecure_n10().validate().unwrap();
    let slots = 32;
    let enc = Encoder::new(&params, slots).unwrap();
    let mut r = rng(21);
    let m: Vec<Vec<Complex>> = (0..slots)
        .map(|_| {
            let re = uniform(&mut r, slots, -1.0, 1.0);
            let im = uniform(&mut r, slots, -1.0, 1.0);
            re.into_iter()
                .zip(im)
                .map(|(a, b)| Complex::new(a, b))
                .collect()
        })
        .collect();
    let x: Vec<Complex> = uniform(&mut r, slots, -1.0, 1.0)
        .into_iter()
        .map(|v| Complex::new(v, 0.5 * v))
        .collect();
    for (band, n1) in [(slots, Some(8)), (slots, None), (5, Some(4))] {
        let keep = |k: usize| k < band || k + band > slots + band - 1;
        let mut diags = BTreeMap::new();
        for k in (0..slots).filter(|&k| keep(k)) {
            diags.insert(
                k,
                (0..slots)
                    .map(|j| m[j][(j + k) % slots])
                    .collect::<Vec<_>>(),
            );
        }
        let level = params.max_level();
        let lt = LinearTransform::new(&enc, &diags, level, n1).unwrap();
        let sk = SecretKey::generate(&params, &mut r).unwrap();
        let keys = EvalKeys::generate(&sk, &lt.rotations(), false, &mut r).unwrap();
        let eval = Evaluator::with_keys(&params, Arc::new(keys));
        let pt = enc.encode_complex_at(&x, params.scale(), level).unwrap();
        let ct = encrypt_sk(&params, &sk, &pt, &mut r).unwrap();
        let mut s = eval.scratch();
        let y = eval.linear_transform_new(&ct, &lt, &mut s).unwrap();
        assert_eq!(y.level(), level - 1);
        assert!((y.scale / ct.scale - 1.0).abs() < 1e-9);
        let got = enc
            .decode_complex(&decrypt(&params, &sk, &y).unwrap())
            .unwrap();
        let want: Vec<Complex> = (0..slots)
            .map(|j| {
                diags.iter().fold(Complex::ZERO, |acc, (&k, d)| {
                    acc + d[j] * x[(j + k) % slots]
                })
            })
            .collect();
        let p = Precision::of_complex(&want, &got);
        assert!(p.min_bits >= 20.0, "band {band} n1 {n1:?}: {p:?}");
    }
}

#[test]
fn hospital_refresh_restores_the_top_level_and_the_values() {
    use fhe_core::refresh::{mask, reencrypt_masked, reencrypt_masked_at, unmask};
    let c = setup(presets::toy_insecure_train().validate().unwrap(), &[], 31);
    let mut r = rng(32);
    let slots = c.params.max_slots();
    let v = uniform(&mut r, slots, -4.0, 4.0);
    let mut ct = c.encrypt(&v, &mut r);
    ct.drop_to_level(2).unwrap();
    // |m + e| < 2^(42 + 2 + 1); 40 statistical bits.
    let (masked, m) = mask(&c.params, &ct, 45, 40, &mut r).unwrap();
    // What the hospital decrypts is far from the message.
    let seen = c.decrypt(&masked);
    assert!(
        Precision::of_real(&v, &seen).mean_bits < 0.0,
        "the mask must hide the values"
    );
    let fresh = reencrypt_masked(&c.params, &c.sk, &masked, &mut r).unwrap();
    let back = unmask(&c.params, fresh, &m).unwrap();
    assert_eq!(back.level(), c.params.max_level());
    let p = Precision::of_real(&v, &c.decrypt(&back));
    assert!(p.min_bits >= 25.0, "{p:?}");
    // At a level the cloud asks for: that many primes, the same values.
    let (masked, m) = mask(&c.params, &ct, 45, 40, &mut r).unwrap();
    let at = c.params.max_level() - 2;
    let fresh = reencrypt_masked_at(&c.params, &c.sk, &masked, at, &mut r).unwrap();
    assert_eq!(fresh.level(), at);
    let back = unmask(&c.params, fresh, &m).unwrap();
    assert_eq!(back.level(), at);
    let p = Precision::of_real(&v, &c.decrypt(&back));
    assert!(p.min_bits >= 25.0, "at level {at}: {p:?}");
    // Below the masked ciphertext's level (the lift would wrap) or above the top: errors.
    assert!(reencrypt_masked_at(&c.params, &c.sk, &masked, 1, &mut r).is_err());
    let over = c.params.max_level() + 1;
    assert!(reencrypt_masked_at(&c.params, &c.sk, &masked, over, &mut r).is_err());
    // Too low a level for the mask is an error, not a silent wrap.
    let mut low = ct.clone();
    low.drop_to_level(0).unwrap();
    assert!(mask(&c.params, &low, 45, 40, &mut r).is_err());
}
