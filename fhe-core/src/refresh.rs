//! The hospital-aided refresh: bring a low-level ciphertext back to the top level with one
//! round trip to the key owner, who learns nothing about the value.
//!
//! 1. **Cloud** ([`mask`]): adds to `c_0` an integer polynomial `r` with coefficients uniform in
//!    `[0, 2^B)`, `B = message_bits + stat_bits + log2 N`, at the ciphertext's level `l`
//!    (which must satisfy `log2 Q_l ≥ B + 2`).
//! 2. **Hospital** ([`reencrypt_masked`]): decrypts to the integer polynomial `y = m + e + r`
//!    (no wrap-around modulo `Q_l`), lifts it exactly to the top modulus `Q_L` (or the modulus
//!    of a level the cloud asks for, [`reencrypt_masked_at`]: no more primes than the cloud
//!    will use) and encrypts it there with a fresh secret-key encryption. Each coefficient of
//!    `y` is within statistical distance `2^(message_bits − B)` of uniform whatever `m + e` is
//!    (`|m + e| < 2^message_bits`),
//!    so the whole polynomial hides `m` to `N·2^-(stat_bits + log2 N) = 2^-stat_bits`.
//! 3. **Cloud** ([`unmask`]): subtracts `r`, lifted to the answer's modulus: an encryption of
//!    `m + e` at the same scale and that level.

use alloc::vec::Vec;

use rand_core::{CryptoRng, RngCore};

use crate::Error;
use crate::ciphertext::Ciphertext;
use crate::encoding::Plaintext;
use crate::encrypt::{decrypt, encrypt_sk};
use crate::keys::SecretKey;
use crate::params::Params;
use crate::ring::{BaseConverter, Coeff, Ntt, Poly};

/// The cloud's secret mask for one refresh.
#[derive(Clone, Debug)]
pub struct RefreshMask {
    r: Poly<Coeff>,
}

/// Exact centred lift of a coefficient-domain polynomial to level `top` (at or above its own).
fn lift_to(params: &Params, p: &Poly<Coeff>, top: usize) -> Result<Poly<Coeff>, Error> {
    let ctx = params.ctx();
    let (l, n) = (p.level(), params.n());
    if top < l || top > ctx.max_level() {
        return Err(Error::LevelTooLow { have: top, need: l });
    }
    let mut out = Poly::<Coeff>::zero(ctx, top, false);
    let data = out.data_mut();
    let (low, high) = data.split_at_mut((l + 1) * n);
    low.copy_from_slice(p.data().get(..(l + 1) * n).unwrap_or_default());
    if l < top {
        let src = ctx.q().get(..=l).unwrap_or_default();
        let dst = ctx.q().get(l + 1..).unwrap_or_default();
        let conv = BaseConverter::new(src, dst);
        let mut scratch = alloc::vec![0u64; conv.scratch_len(n)];
        conv.convert(low, high, n, &mut scratch);
    }
    Ok(out)
}

/// Step 1 (cloud): masks `ct` for refreshing; returns the masked ciphertext to send and the
/// mask to keep. `message_bits` bounds `log2 |m + e|` (e.g. `log2(scale) + log2(max |value|) + 1`).
pub fn mask<R: RngCore + CryptoRng>(
    params: &Params,
    ct: &Ciphertext,
    message_bits: u32,
    stat_bits: u32,
    rng: &mut R,
) -> Result<(Ciphertext, RefreshMask), Error> {
    let ctx = params.ctx();
    let level = ct.level();
    let b = message_bits + stat_bits + params.log_n();
    let log_q: f64 = ctx
        .q()
        .iter()
        .take(level + 1)
        .map(|m| libm::log2(m.value() as f64))
        .sum();
    if f64::from(b) + 2.0 > log_q || b > 126 {
        return Err(Error::LevelTooLow {
            have: level,
            need: level + 1,
        });
    }
    // r < 2^b as hi·2^64 + lo.
    let n = params.n();
    let mut words: Vec<(u64, u64)> = Vec::with_capacity(n);
    for _ in 0..n {
        let lo_bits = b.min(64);
        let lo = if lo_bits == 64 {
            rng.next_u64()
        } else {
            rng.next_u64() & ((1u64 << lo_bits) - 1)
        };
        let hi = if b > 64 {
            rng.next_u64() & ((1u64 << (b - 64)) - 1)
        } else {
            0
        };
        words.push((hi, lo));
    }
    let mut r = Poly::<Coeff>::zero(ctx, level, false);
    for (limb, m) in r.data_mut().chunks_exact_mut(n).zip(ctx.q()) {
        let two64 = m.reduce_u128(1u128 << 64);
        for (x, &(hi, lo)) in limb.iter_mut().zip(&words) {
            *x = m.add(m.mul(m.reduce(hi), two64), m.reduce(lo));
        }
    }
    let mut masked = ct.clone();
    let r_ntt = r.clone().into_ntt(ctx);
    if let Some(c0) = masked.c.first_mut() {
        c0.add_assign(ctx, &r_ntt)?;
    }
    masked.seed = None;
    Ok((masked, RefreshMask { r }))
}

/// Step 2 (hospital): decrypts the masked ciphertext and re-encrypts the (masked) integer
/// polynomial at the top level.
pub fn reencrypt_masked<R: RngCore + CryptoRng>(
    params: &Params,
    sk: &SecretKey,
    masked: &Ciphertext,
    rng: &mut R,
) -> Result<Ciphertext, Error> {
    reencrypt_masked_at(params, sk, masked, params.max_level(), rng)
}

/// [`reencrypt_masked`] at `level` (between the masked ciphertext's and the top) instead of
/// the top: the encryption, the answer and the cloud's unmasking cost what that level's
/// primes cost. The mask hides the value the same way at any level.
pub fn reencrypt_masked_at<R: RngCore + CryptoRng>(
    params: &Params,
    sk: &SecretKey,
    masked: &Ciphertext,
    level: usize,
    rng: &mut R,
) -> Result<Ciphertext, Error> {
    let ctx = params.ctx();
    let y = decrypt(params, sk, masked)?.poly.into_coeff(ctx);
    let top = lift_to(params, &y, level)?.into_ntt(ctx);
    let pt = Plaintext {
        poly: top,
        scale: masked.scale,
        slots: masked.slots,
    };
    encrypt_sk(params, sk, &pt, rng)
}

/// Step 3 (cloud): removes the mask from the hospital's ciphertext (at the top or the level
/// asked for).
pub fn unmask(
    params: &Params,
    mut fresh: Ciphertext,
    mask: &RefreshMask,
) -> Result<Ciphertext, Error> {
    let ctx = params.ctx();
    let r_top: Poly<Ntt> = lift_to(params, &mask.r, fresh.level())?.into_ntt(ctx);
    if let Some(c0) = fresh.c.first_mut() {
        c0.sub_assign(ctx, &r_top)?;
    }
    fresh.seed = None;
    Ok(fresh)
}
