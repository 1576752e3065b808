//! Encryption with the public key or the secret key (seeded, half-size), and decryption,
//! optionally noise-flooded for values that leave the key owner (IND-CPA-D).

use alloc::vec::Vec;

use rand_core::{CryptoRng, RngCore};
use zeroize::{Zeroize, Zeroizing};

use crate::Error;
use crate::ciphertext::Ciphertext;
use crate::encoding::Plaintext;
use crate::keys::{PublicKey, SecretKey, fresh_seed, gaussian_poly, seeded_rng};
use crate::params::Params;
use crate::ring::{Ntt, Poly};
use crate::sampling::ternary;

/// Encrypts `pt` with the public key: `(v·b + e_0 + m, v·a + e_1)` with a ternary `v` and
/// Gaussian `e_0, e_1`, at the plaintext's level.
pub fn encrypt_pk<R: RngCore + CryptoRng>(
    params: &Params,
    pk: &PublicKey,
    pt: &Plaintext,
    rng: &mut R,
) -> Result<Ciphertext, Error> {
    let ctx = params.ctx();
    let level = pt.level();
    let mut v = Zeroizing::new(alloc::vec![0i64; params.n()]);
    ternary(rng, &mut v);
    let mut vp = Poly::<Ntt>::from_small_ntt(ctx, level, false, &v)?;
    // The public key is read at the plaintext's level (its lower limbs), without a copy.
    let mut c0 = gaussian_poly(params, level, false, rng)?;
    c0.mul_add_assign(ctx, &vp, &pk.b)?;
    c0.add_assign(ctx, &pt.poly)?;
    let mut c1 = gaussian_poly(params, level, false, rng)?;
    c1.mul_add_assign(ctx, &vp, &pk.a)?;
    vp.zeroize();
    Ok(Ciphertext {
        c: alloc::vec![c0, c1],
        scale: pt.scale,
        slots: pt.slots,
        seed: None,
    })
}

/// Encrypts `pt` with the secret key: `(−a·s + e + m, a)` with `a` expanded from a fresh seed
/// (so the ciphertext serializes at half size).
pub fn encrypt_sk<R: RngCore + CryptoRng>(
    params: &Params,
    sk: &SecretKey,
    pt: &Plaintext,
    rng: &mut R,
) -> Result<Ciphertext, Error> {
    let ctx = params.ctx();
    let level = pt.level();
    let seed = fresh_seed(rng);
    let a = Poly::<Ntt>::uniform(ctx, level, false, &mut seeded_rng(&seed));
    let mut s = sk.at_level(level)?;
    let mut c0 = gaussian_poly(params, level, false, rng)?;
    c0.add_assign(ctx, &pt.poly)?;
    let mut as_ = Poly::zero(ctx, level, false);
    a.mul_into(ctx, &s, &mut as_)?;
    c0.sub_assign(ctx, &as_)?;
    s.zeroize();
    as_.zeroize();
    Ok(Ciphertext {
        c: alloc::vec![c0, a],
        scale: pt.scale,
        slots: pt.slots,
        seed: Some(seed),
    })
}

/// Rebuilds a seeded secret-key ciphertext from `c_0` and the seed.
pub fn expand_seeded(
    params: &Params,
    c0: Poly<Ntt>,
    seed: [u8; 32],
    scale: f64,
    slots: usize,
) -> Ciphertext {
    let a = Poly::<Ntt>::uniform(params.ctx(), c0.level(), false, &mut seeded_rng(&seed));
    Ciphertext {
        c: alloc::vec![c0, a],
        scale,
        slots,
        seed: Some(seed),
    }
}

/// Decrypts to a plaintext: `c_0 + c_1·s (+ c_2·s²)`. The first product is computed in one
/// pass from the key's own limbs (no copy of the secret is made).
pub fn decrypt(params: &Params, sk: &SecretKey, ct: &Ciphertext) -> Result<Plaintext, Error> {
    let ctx = params.ctx();
    let level = ct.level();
    let (Some(c0), Some(c1)) = (ct.c.first(), ct.c.get(1)) else {
        return Err(Error::WrongDegree {
            expected: 1,
            found: ct.degree(),
        });
    };
    let mut m = Poly::empty();
    c0.mul_add_limbs_into(ctx, c1, sk.poly().data(), &mut m)?;
    if ct.c.len() > 2 {
        let mut s = sk.at_level(level)?;
        let mut s_pow = s.clone();
        for ci in ct.c.iter().skip(2) {
            let mut prev = s_pow.clone();
            prev.mul_into(ctx, &s, &mut s_pow)?;
            prev.zeroize();
            m.mul_add_assign(ctx, ci, &s_pow)?;
        }
        s.zeroize();
        s_pow.zeroize();
    }
    Ok(Plaintext {
        poly: m,
        scale: ct.scale,
        slots: ct.slots,
    })
}

/// Decrypts and adds flooding noise, uniform in `[−2^log_bound, 2^log_bound]` on every
/// coefficient, before anything leaves the key owner. The noise hides the CKKS decryption
/// noise (which depends on the secret) up to a statistical distance of about
/// `2^(log2 |noise| − log_bound)` per coefficient; the slots keep about
/// `log2(scale) − log_bound − log2(N)/2` bits of precision, so choose `log_bound` between the
/// noise and that limit.
pub fn decrypt_flooded<R: RngCore + CryptoRng>(
    params: &Params,
    sk: &SecretKey,
    ct: &Ciphertext,
    log_bound: u32,
    rng: &mut R,
) -> Result<Plaintext, Error> {
    let mut pt = decrypt(params, sk, ct)?;
    let ctx = params.ctx();
    let log_bound = log_bound.min(61);
    let bound = 1u64 << log_bound;
    let mut raw: Vec<u64> = alloc::vec![0; params.n()];
    crate::sampling::uniform_mod(rng, 2 * bound + 1, &mut raw);
    let noise: Vec<i64> = raw.iter().map(|&u| u as i64 - bound as i64).collect();
    raw.zeroize();
    let flood = Poly::<Ntt>::from_small_ntt(ctx, pt.level(), false, &noise)?;
    pt.poly.add_assign(ctx, &flood)?;
    Ok(pt)
}
