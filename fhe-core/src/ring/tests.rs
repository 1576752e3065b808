//! Ring tests against a big-integer reference (num-bigint).

use super::*;
use crate::math::generate_chain_vt;
use alloc::string::ToString;
use alloc::vec;
use num_bigint::{BigInt, BigUint};
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;

const LOG_N: u32 = 10;

fn ctx_with(q_bits: &[u32], p_bits: &[u32]) -> RnsContext {
    let two_n = 2u64 << LOG_N;
    let q = generate_chain_vt(q_bits, two_n, &[]).unwrap();
    let p = generate_chain_vt(p_bits, two_n, &q).unwrap();
    RnsContext::new(LOG_N, &q, &p).unwrap()
}

fn ctx() -> RnsContext {
    ctx_with(&[60, 45, 45, 50, 61], &[61, 58])
}

fn moduli(ctx: &RnsContext, level: usize, ext: bool) -> Vec<u64> {
    ctx.limb_tables(level, ext)
        .map(|t| t.modulus().value())
        .collect()
}

fn product(m: &[u64]) -> BigUint {
    m.iter().fold(BigUint::from(1u32), |acc, &q| acc * q)
}

/// CRT value of coefficient i in [0, M).
fn crt(poly_data: &[u64], n: usize, m: &[u64], i: usize) -> BigUint {
    let big_m = product(m);
    let mut acc = BigUint::from(0u32);
    for (j, &qj) in m.iter().enumerate() {
        let hat = &big_m / qj;
        let hat_mod = (&hat % qj).to_u64_digits().first().copied().unwrap_or(0);
        let inv = crate::math::pow_mod_vt(hat_mod, qj - 2, qj);
        let yj = poly_data[j * n + i];
        let t = crate::math::mul_mod_vt(yj, inv, qj);
        acc += hat * t;
    }
    acc % big_m
}

fn centered(x: &BigUint, m: &BigUint) -> BigInt {
    let x = BigInt::from(x.clone());
    let m = BigInt::from(m.clone());
    if &x * 2 > m { x - m } else { x }
}

fn mod_u64(x: &BigInt, q: u64) -> u64 {
    let r = x % BigInt::from(q);
    let r = if r < BigInt::from(0) {
        r + BigInt::from(q)
    } else {
        r
    };
    r.to_u64_digits().1.first().copied().unwrap_or(0)
}

/// round(a / b) for b > 0, ties away from zero never occur for odd b.
fn div_round(a: &BigInt, b: &BigInt) -> BigInt {
    let two = BigInt::from(2);
    let num = a * &two + b;
    let den = b * &two;
    // floor((2a + b) / 2b)
    let q = &num / &den;
    if (&num % &den) < BigInt::from(0) {
        q - 1
    } else {
        q
    }
}

#[test]
fn arithmetic_matches_per_limb_reference() {
    let ctx = ctx();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for ext in [false, true] {
        let a = Poly::<Ntt>::uniform(&ctx, 3, ext, &mut rng);
        let b = Poly::<Ntt>::uniform(&ctx, 3, ext, &mut rng);
        let ms = moduli(&ctx, 3, ext);
        let n = ctx.n();
        let mut s = a.clone();
        s.add_assign(&ctx, &b).unwrap();
        let mut d = a.clone();
        d.sub_assign(&ctx, &b).unwrap();
        let mut p = Poly::zero(&ctx, 0, false);
        a.mul_into(&ctx, &b, &mut p).unwrap();
        let mut ng = a.clone();
        ng.neg_assign(&ctx);
        let mut acc = s.clone();
        acc.mul_add_assign(&ctx, &a, &b).unwrap();
        for (j, &q) in ms.iter().enumerate() {
            for i in [0, 1, n / 2, n - 1] {
                let (x, y) = (
                    u128::from(a.data()[j * n + i]),
                    u128::from(b.data()[j * n + i]),
                );
                let q = u128::from(q);
                assert_eq!(u128::from(s.data()[j * n + i]), (x + y) % q);
                assert_eq!(u128::from(d.data()[j * n + i]), (x + q - y) % q);
                assert_eq!(u128::from(p.data()[j * n + i]), x * y % q);
                assert_eq!(u128::from(ng.data()[j * n + i]), (q - x) % q);
                assert_eq!(
                    u128::from(acc.data()[j * n + i]),
                    ((x + y) % q + x * y % q) % q
                );
            }
        }
        let sc = ctx.scalar_from_i64(-7, 3, ext);
        let mut m7 = a.clone();
        m7.mul_scalar_assign(&ctx, &sc).unwrap();
        for (j, &q) in ms.iter().enumerate() {
            let x = a.data()[j * n + 5];
            assert_eq!(m7.data()[j * n + 5], mod_u64(&(BigInt::from(x) * -7), q));
        }
    }
    // Shape mismatches are errors; a right operand at a higher level is read at the lower one.
    let mut a = Poly::<Ntt>::zero(&ctx, 3, false);
    let mut b = Poly::<Ntt>::zero(&ctx, 2, false);
    assert!(b.add_assign(&ctx, &a).is_ok());
    assert!(a.add_assign(&ctx, &b).is_err());
    let ae = Poly::<Ntt>::zero(&ctx, 3, true);
    assert!(a.add_assign(&ctx, &ae).is_err());
    assert!(b.mul_scalar_assign(&ctx, &[1, 2]).is_err());
}

#[test]
fn ntt_product_of_small_polys_is_exact_integer_product() {
    // Small integer polynomials: the RNS product equals the integer negacyclic product.
    let ctx = ctx();
    let n = ctx.n();
    let a: Vec<i64> = (0..n as i64).map(|i| (i * 7919 % 201) - 100).collect();
    let b: Vec<i64> = (0..n as i64).map(|i| (i * 104_729 % 2001) - 1000).collect();
    let mut want = vec![0i64; n];
    for (i, &x) in a.iter().enumerate() {
        for (j, &y) in b.iter().enumerate() {
            if i + j < n {
                want[i + j] += x * y
            } else {
                want[i + j - n] -= x * y
            }
        }
    }
    let pa = Poly::<Coeff>::from_small(&ctx, 4, false, &a)
        .unwrap()
        .into_ntt(&ctx);
    let pb = Poly::<Coeff>::from_small(&ctx, 4, false, &b)
        .unwrap()
        .into_ntt(&ctx);
    let mut prod = Poly::zero(&ctx, 0, false);
    pa.mul_into(&ctx, &pb, &mut prod).unwrap();
    let prod = prod.into_coeff(&ctx);
    for (i, &w) in want.iter().enumerate() {
        assert_eq!(prod.coeff_f64(&ctx, i), w as f64, "coefficient {i}");
    }
}

#[test]
fn coeff_f64_matches_big_integer_crt() {
    let ctx = ctx();
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let n = ctx.n();
    for level in 0..=ctx.max_level() {
        let a = Poly::<Ntt>::uniform(&ctx, level, false, &mut rng).into_coeff(&ctx);
        let ms = moduli(&ctx, level, false);
        let big_q = product(&ms);
        for i in [0, 3, n - 1] {
            let x = centered(&crt(a.data(), n, &ms, i), &big_q);
            let want: f64 = x.to_string().parse().unwrap();
            let got = a.coeff_f64(&ctx, i);
            assert!(
                (got - want).abs() <= want.abs() * 1e-15,
                "level {level} i {i}: {got} vs {want}"
            );
        }
    }
    // Small values are reconstructed exactly at every level, negative ones too.
    let vals: Vec<i64> = (0..n as i64).map(|i| (i - 512) * 1_000_003).collect();
    let p = Poly::<Coeff>::from_small(&ctx, 4, false, &vals).unwrap();
    for (i, &v) in vals.iter().enumerate() {
        assert_eq!(p.coeff_f64(&ctx, i), v as f64);
    }
}

#[test]
fn coeffs_f64_into_matches_coeff_f64_on_both_paths() {
    let ctx = ctx();
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let n = ctx.n();
    let q0 = ctx.q()[0].value() as i64;
    // Small (fast path), around ±q_0/2 (both sides of the threshold) and uniform (full
    // reconstruction), mixed in one polynomial.
    let mut vals: Vec<i64> = (0..n as i64).map(|i| (i - 512) * 1_000_003).collect();
    for (k, v) in vals.iter_mut().enumerate().skip(100).take(50) {
        *v = q0 / 2 - 25 + k as i64 - 100;
        if k % 2 == 0 {
            *v = -*v;
        }
    }
    for level in 0..=ctx.max_level() {
        let mut p = Poly::<Coeff>::from_small(&ctx, level, false, &vals).unwrap();
        let u = Poly::<Ntt>::uniform(&ctx, level, false, &mut rng).into_coeff(&ctx);
        // Every 7th coefficient uniform modulo Q.
        for j in 0..=level {
            for i in (0..n).step_by(7) {
                p.data_mut()[j * n + i] = u.data()[j * n + i];
            }
        }
        for (start, gap, len) in [(0, 1, n), (3, 2, n / 2 - 2), (n / 2, 4, n / 8), (5, 1, 37)] {
            let mut got = vec![f64::NAN; len];
            p.coeffs_f64_into(&ctx, start, gap, &mut got);
            for (k, g) in got.iter().enumerate() {
                let want = p.coeff_f64(&ctx, start + k * gap);
                assert_eq!(
                    g.to_bits(),
                    want.to_bits(),
                    "level {level} index {}",
                    start + k * gap
                );
            }
        }
    }
}

#[test]
fn rescale_is_exact_rounding_division() {
    let ctx = ctx();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let n = ctx.n();
    let mut scratch = vec![0u64; ctx.rescale_scratch_len()];
    for level in 1..=ctx.max_level() {
        let a = Poly::<Ntt>::uniform(&ctx, level, false, &mut rng);
        let a_coeff = a.clone().into_coeff(&ctx);
        let mut r = a.clone();
        r.rescale_assign(&ctx, &mut scratch).unwrap();
        assert_eq!(r.level(), level - 1);
        let r = r.into_coeff(&ctx);
        let ms = moduli(&ctx, level, false);
        let ql = BigInt::from(ms[level]);
        let big_q = product(&ms);
        for i in [0, 1, 100, n - 1] {
            let x = centered(&crt(a_coeff.data(), n, &ms, i), &big_q);
            let want = div_round(&x, &ql);
            for (j, &q) in ms[..level].iter().enumerate() {
                assert_eq!(
                    r.data()[j * n + i],
                    mod_u64(&want, q),
                    "level {level} limb {j} i {i}"
                );
            }
        }
    }
    let mut bottom = Poly::<Ntt>::zero(&ctx, 0, false);
    assert_eq!(
        bottom.rescale_assign(&ctx, &mut scratch),
        Err(Error::LevelTooLow { have: 0, need: 1 })
    );
}

#[test]
fn mod_down_is_exact_rounding_division_by_p() {
    let ctx = ctx();
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let n = ctx.n();
    let mut scratch = vec![0u64; ctx.mod_down_scratch_len()];
    for level in [0, 2, 4] {
        let a = Poly::<Ntt>::uniform(&ctx, level, true, &mut rng);
        let a_coeff = a.clone().into_coeff(&ctx);
        let mut r = a.clone();
        r.mod_down_assign(&ctx, &mut scratch).unwrap();
        assert!(!r.is_extended());
        let r = r.into_coeff(&ctx);
        let ms = moduli(&ctx, level, true);
        let qs = &ms[..=level];
        let ps = &ms[level + 1..];
        let big_p = BigInt::from(product(ps));
        for i in [0, 9, n - 1] {
            let x = BigInt::from(crt(a_coeff.data(), n, &ms, i));
            let x_p = centered(
                &(&x % &big_p).to_biguint().unwrap(),
                &big_p.to_biguint().unwrap(),
            );
            let want = (&x - &x_p) / &big_p;
            for (j, &q) in qs.iter().enumerate() {
                assert_eq!(
                    r.data()[j * n + i],
                    mod_u64(&want, q),
                    "level {level} limb {j} i {i}"
                );
            }
        }
    }
}

#[test]
fn basis_extension_gives_centred_representative() {
    let ctx = ctx();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let n = ctx.n();
    let mut scratch = vec![0u64; ctx.extend_scratch_len()];
    for level in 0..=ctx.max_level() {
        let mut a = Poly::<Ntt>::uniform(&ctx, level, false, &mut rng).into_coeff(&ctx);
        let src = a.clone();
        a.extend_to_p_assign(&ctx, &mut scratch).unwrap();
        assert!(a.is_extended());
        let ms = moduli(&ctx, level, false);
        let big_q = product(&ms);
        let ps = moduli(&ctx, level, true)[level + 1..].to_vec();
        for i in [0, 17, n - 1] {
            let x = centered(&crt(src.data(), n, &ms, i), &big_q);
            for (j, &p) in ps.iter().enumerate() {
                assert_eq!(
                    a.data()[(level + 1 + j) * n + i],
                    mod_u64(&x, p),
                    "level {level} p{j} i {i}"
                );
            }
        }
    }
}

#[test]
fn automorphisms_agree_across_domains_and_compose() {
    let ctx = ctx();
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let a = Poly::<Ntt>::uniform(&ctx, 2, true, &mut rng);
    let a_coeff = a.clone().into_coeff(&ctx);
    let two_n = 2 * ctx.n();
    for k in [5usize, 25, 3125 % two_n, two_n - 1] {
        let perm = ctx.galois_permutation(k);
        let mut by_ntt = Poly::zero(&ctx, 0, false);
        a.automorphism_into(&perm, &mut by_ntt).unwrap();
        let mut by_coeff = Poly::zero(&ctx, 0, false);
        a_coeff.automorphism_into(&ctx, k, &mut by_coeff);
        assert_eq!(by_ntt.into_coeff(&ctx), by_coeff, "k = {k}");
    }
    // σ_5 ∘ σ_5 = σ_25.
    let (p5, p25) = (ctx.galois_permutation(5), ctx.galois_permutation(25));
    let (mut t1, mut t2, mut t3) = (
        Poly::zero(&ctx, 0, false),
        Poly::zero(&ctx, 0, false),
        Poly::zero(&ctx, 0, false),
    );
    a.automorphism_into(&p5, &mut t1).unwrap();
    t1.automorphism_into(&p5, &mut t2).unwrap();
    a.automorphism_into(&p25, &mut t3).unwrap();
    assert_eq!(t2, t3);
}

#[test]
fn level_drop_keeps_p_limbs_and_from_limbs_validates() {
    let ctx = ctx();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let a = Poly::<Ntt>::uniform(&ctx, 4, true, &mut rng);
    let mut b = a.clone();
    b.drop_to_level(1).unwrap();
    let n = ctx.n();
    assert_eq!(b.level(), 1);
    assert_eq!(b.data()[..2 * n], a.data()[..2 * n]);
    assert_eq!(b.data()[2 * n..], a.data()[5 * n..]);
    assert!(b.drop_to_level(3).is_err());
    let mut raw = a.data().to_vec();
    assert!(Poly::<Ntt>::from_limbs(&ctx, 4, true, raw.clone()).is_ok());
    raw[3 * n + 2] = ctx.q()[3].value();
    assert_eq!(
        Poly::<Ntt>::from_limbs(&ctx, 4, true, raw.clone()).unwrap_err(),
        Error::CoefficientNotReduced {
            limb: 3,
            modulus: ctx.q()[3].value()
        }
    );
    raw.pop();
    assert!(matches!(
        Poly::<Ntt>::from_limbs(&ctx, 4, true, raw),
        Err(Error::LengthMismatch { .. })
    ));
    assert!(matches!(
        Poly::<Ntt>::from_limbs(&ctx, 9, false, vec![]),
        Err(Error::LevelTooLow { .. })
    ));
}
