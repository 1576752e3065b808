//! Hybrid key switching (see [`crate::keys`] for the key format).
//!
//! Three steps, each reusable so rotations can be hoisted:
//! 1. [`decompose`] (ModUp): the input polynomial at level `l` is split into its digits; each
//!    digit's residues are extended exactly (centred base conversion) to `Q_l·P` and brought to
//!    NTT form. The digit's own limbs are the input's NTT limbs, copied.
//! 2. [`inner_product`]: `(u_0, u_1) = Σ_i σ(d_i)·(b_i, a_i)` over `Q_l·P`, where `σ` is an
//!    optional NTT-domain automorphism (hoisted rotations apply it to the decomposed digits),
//!    accumulated lazily in 128 bits and reduced once per 16 digits.
//! 3. ModDown: exact rounding division of `(u_0, u_1)` by P.
//!
//! A decomposition is computed once per input polynomial; every rotation of the same
//! ciphertext reuses it (hoisting).

use alloc::vec::Vec;

use crate::Error;
use crate::keys::KeySwitchKey;
use crate::params::Params;
use crate::ring::{Coeff, Ntt, Poly};

/// Buffers for key switching at the parameters' top level (reused across calls; no
/// allocation after construction).
#[derive(Debug)]
pub struct KsScratch {
    coeff: Poly<Coeff>,
    zv: Vec<u64>,
    pub(crate) digits: Vec<Poly<Ntt>>,
    pub(crate) digit_count: usize,
    pub(crate) digit_level: usize,
    pub(crate) u0: Poly<Ntt>,
    pub(crate) u1: Poly<Ntt>,
    md: Vec<u64>,
}

impl KsScratch {
    /// Buffers sized for `params` (allocates about `(dnum + 3)·(L + 1 + k)·N` words).
    pub fn new(params: &Params) -> Self {
        let ctx = params.ctx();
        let top = ctx.max_level();
        let n = params.n();
        Self {
            coeff: Poly::zero(ctx, top, false),
            zv: alloc::vec![0; n * (params.ks().alpha() + 1)],
            digits: (0..params.dnum())
                .map(|_| Poly::zero(ctx, top, true))
                .collect(),
            digit_count: 0,
            digit_level: 0,
            u0: Poly::zero(ctx, top, true),
            u1: Poly::zero(ctx, top, true),
            md: alloc::vec![0; ctx.mod_down_scratch_len()],
        }
    }
}

/// ModUp: decomposes `c` (NTT form, level `l`, not extended) into `scratch.digits`.
pub fn decompose(params: &Params, c: &Poly<Ntt>, scratch: &mut KsScratch) -> Result<(), Error> {
    let ctx = params.ctx();
    let ks = params.ks();
    let l = c.level();
    let n = params.n();
    let k = ctx.p().len();
    if c.is_extended() {
        return Err(Error::LengthMismatch {
            what: "key-switching input with P limbs",
            expected: 0,
            found: k,
        });
    }
    c.to_coeff_into(ctx, &mut scratch.coeff);
    let count = ks.digits_at(l);
    let tables = ctx.ntt_tables();
    for d in 0..count {
        let (lo, hi) = ks.digit_range(l, d);
        let conv = ks
            .converter(l, d)
            .ok_or(Error::LevelTooLow { have: l, need: l })?;
        let digit = scratch.digits.get_mut(d).ok_or(Error::InvalidDnum {
            dnum: d,
            q_limbs: l + 1,
        })?;
        digit.set_shape(ctx, l, true);
        let src = scratch.coeff.data().get(lo * n..hi * n).unwrap_or_default();
        let zv = scratch.zv.get_mut(..(hi - lo + 1) * n).unwrap_or_default();
        conv.prepare(src, zv, n);
        let mut row = 0;
        // Limb j of the digit: Q limbs 0..=l, then P limbs (table index L+1+t).
        for (j, limb) in digit.data_mut().chunks_exact_mut(n).enumerate() {
            let table_idx = if j <= l {
                j
            } else {
                ctx.max_level() + 1 + (j - l - 1)
            };
            if (lo..hi).contains(&j) {
                limb.copy_from_slice(c.limb(j).unwrap_or_default());
                continue;
            }
            conv.row(zv, row, limb, n);
            row += 1;
            if let Some(t) = tables.get(table_idx) {
                t.forward(limb)?;
            }
        }
    }
    scratch.digit_count = count;
    scratch.digit_level = l;
    Ok(())
}

/// `(u_0, u_1) = Σ_i σ(d_i)·(b_i, a_i)` over `Q_l·P` into `scratch.u0`, `scratch.u1`, from the
/// digits of the last [`decompose`]; `perm` is the NTT-domain permutation of `σ` (or `None`).
pub fn inner_product(
    params: &Params,
    key: &KeySwitchKey,
    perm: Option<&[u32]>,
    scratch: &mut KsScratch,
) -> Result<(), Error> {
    const BLOCK: usize = 64;
    let ctx = params.ctx();
    let n = params.n();
    let l = scratch.digit_level;
    let top = ctx.max_level();
    let count = scratch.digit_count;
    scratch.u0.set_shape(ctx, l, true);
    scratch.u1.set_shape(ctx, l, true);
    let limbs = l + 1 + ctx.p().len();
    let tables = ctx.ntt_tables();
    let mut acc0 = [0u128; BLOCK];
    let mut acc1 = [0u128; BLOCK];
    for j in 0..limbs {
        let key_limb = if j <= l { j } else { top + 1 + (j - l - 1) };
        let Some(m) = tables.get(key_limb).map(|t| *t.modulus()) else {
            continue;
        };
        let u0 = scratch
            .u0
            .data_mut()
            .get_mut(j * n..(j + 1) * n)
            .unwrap_or_default();
        let u1 = scratch
            .u1
            .data_mut()
            .get_mut(j * n..(j + 1) * n)
            .unwrap_or_default();
        for (blk, (o0, o1)) in u0.chunks_mut(BLOCK).zip(u1.chunks_mut(BLOCK)).enumerate() {
            let c0 = blk * BLOCK;
            acc0.fill(0);
            acc1.fill(0);
            for (d, (digit, (b, a))) in scratch
                .digits
                .iter()
                .zip(key.b.iter().zip(&key.a))
                .take(count)
                .enumerate()
            {
                let dl = digit.limb(j).unwrap_or_default();
                let bl = b
                    .limb(key_limb)
                    .unwrap_or_default()
                    .get(c0..c0 + BLOCK)
                    .unwrap_or_default();
                let al = a
                    .limb(key_limb)
                    .unwrap_or_default()
                    .get(c0..c0 + BLOCK)
                    .unwrap_or_default();
                match perm {
                    Some(p) => {
                        let pl = p.get(c0..c0 + BLOCK).unwrap_or_default();
                        for (((x0, x1), (&bv, &av)), &pi) in acc0
                            .iter_mut()
                            .zip(acc1.iter_mut())
                            .zip(bl.iter().zip(al))
                            .zip(pl)
                        {
                            let x = u128::from(dl.get(pi as usize).copied().unwrap_or(0));
                            *x0 += x * u128::from(bv);
                            *x1 += x * u128::from(av);
                        }
                    }
                    None => {
                        let ds = dl.get(c0..c0 + BLOCK).unwrap_or_default();
                        for (((x0, x1), (&bv, &av)), &dv) in acc0
                            .iter_mut()
                            .zip(acc1.iter_mut())
                            .zip(bl.iter().zip(al))
                            .zip(ds)
                        {
                            let x = u128::from(dv);
                            *x0 += x * u128::from(bv);
                            *x1 += x * u128::from(av);
                        }
                    }
                }
                if d % 16 == 15 {
                    for (x0, x1) in acc0.iter_mut().zip(acc1.iter_mut()) {
                        *x0 = u128::from(m.reduce_u128_any(*x0));
                        *x1 = u128::from(m.reduce_u128_any(*x1));
                    }
                }
            }
            for ((o, &x0), (p, &x1)) in o0.iter_mut().zip(&acc0).zip(o1.iter_mut().zip(&acc1)) {
                *o = m.reduce_u128_any(x0);
                *p = m.reduce_u128_any(x1);
            }
        }
    }
    Ok(())
}

/// ModDown of `scratch.u0`, `scratch.u1` (exact division by P), leaving them at level `l`
/// without P limbs.
pub fn mod_down(params: &Params, scratch: &mut KsScratch) -> Result<(), Error> {
    let ctx = params.ctx();
    scratch.u0.mod_down_assign(ctx, &mut scratch.md)?;
    scratch.u1.mod_down_assign(ctx, &mut scratch.md)?;
    Ok(())
}

/// Full key switch of `c` with `key`: afterwards `scratch.u0 + scratch.u1·s ≈ c·s'`.
pub fn key_switch(
    params: &Params,
    c: &Poly<Ntt>,
    key: &KeySwitchKey,
    scratch: &mut KsScratch,
) -> Result<(), Error> {
    decompose(params, c, scratch)?;
    inner_product(params, key, None, scratch)?;
    mod_down(params, scratch)
}
