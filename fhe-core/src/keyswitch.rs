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
use crate::math::Modulus;
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
    let top = ctx.max_level();
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
        let zv: &[u64] = zv;
        // Limb j of the digit: Q limbs 0..=l, then P limbs (table index L+1+t). The digit's own
        // limbs are the input's NTT limbs; every other limb is one row of the conversion (rows
        // 0..lo, then lo.. for the limbs from hi on), computed blocked, then transformed.
        let (before, rest) = digit.data_mut().split_at_mut(lo * n);
        let after = rest.get_mut((hi - lo) * n..).unwrap_or_default();
        conv.rows_into(zv, 0, before, n);
        conv.rows_into(zv, lo, after, n);
        crate::par::chunks_mut(digit.data_mut(), n, |j, limb| {
            if (lo..hi).contains(&j) {
                limb.copy_from_slice(c.limb(j).unwrap_or_default());
                return;
            }
            let table_idx = if j <= l { j } else { top + 1 + (j - l - 1) };
            if let Some(t) = tables.get(table_idx) {
                let _ = t.forward(limb);
            }
        });
    }
    scratch.digit_count = count;
    scratch.digit_level = l;
    Ok(())
}

/// Digits handed to the SIMD inner-product kernel at most.
const SIMD_DIGITS: usize = 16;

/// The most products of two residues mod `q` whose sum stays below `2^126` (the input range of
/// [`crate::math::Modulus::reduce_u128`]).
fn lazy_terms(q: u64) -> u128 {
    let max = u128::from(q - 1) * u128::from(q - 1);
    ((1u128 << 126) - 1) / max.max(1)
}

/// One limb of the inner product for `D` digits, the two sums in registers and reduced once
/// per coefficient (the caller checks `D ≤ lazy_terms(q)`).
#[inline(always)]
fn ip_limb<const D: usize>(
    m: &Modulus,
    o0: &mut [u64],
    o1: &mut [u64],
    ds: [&[u64]; D],
    bs: [&[u64]; D],
    as_: [&[u64]; D],
    perm: Option<&[u32]>,
) {
    let n = o0.len();
    if o1.len() != n || ds.iter().chain(&bs).chain(&as_).any(|s| s.len() != n) {
        return;
    }
    #[expect(
        clippy::indexing_slicing,
        reason = "every slice has length n (checked above) and c < n"
    )]
    match perm {
        None => {
            for c in 0..n {
                let (mut x0, mut x1) = (0u128, 0u128);
                for d in 0..D {
                    let x = u128::from(ds[d][c]);
                    x0 += x * u128::from(bs[d][c]);
                    x1 += x * u128::from(as_[d][c]);
                }
                o0[c] = m.reduce_u128(x0);
                o1[c] = m.reduce_u128(x1);
            }
        }
        Some(p) => {
            if p.len() != n {
                return;
            }
            for c in 0..n {
                let (mut x0, mut x1) = (0u128, 0u128);
                let pi = p[c] as usize;
                for d in 0..D {
                    let x = u128::from(ds[d].get(pi).copied().unwrap_or(0));
                    x0 += x * u128::from(bs[d][c]);
                    x1 += x * u128::from(as_[d][c]);
                }
                o0[c] = m.reduce_u128(x0);
                o1[c] = m.reduce_u128(x1);
            }
        }
    }
}

/// `(u_0, u_1) = Σ_i σ(d_i)·(b_i, a_i)` over `Q_l·P` into `scratch.u0`, `scratch.u1`, from the
/// digits of the last [`decompose`]; `perm` is the NTT-domain permutation of `σ` (or `None`).
/// The limbs are independent (parallel with the `parallel` feature).
pub fn inner_product(
    params: &Params,
    key: &KeySwitchKey,
    perm: Option<&[u32]>,
    scratch: &mut KsScratch,
) -> Result<(), Error> {
    let ctx = params.ctx();
    let n = params.n();
    let l = scratch.digit_level;
    let top = ctx.max_level();
    let count = scratch.digit_count;
    // A key cut to a lower level ([`KeySwitchKey::truncate`]) holds its `P` limbs right
    // after its own `Q` limbs.
    let key_level = key.level();
    if l > key_level || count > key.b.len().min(key.a.len()) {
        return Err(Error::LevelTooLow {
            have: key_level,
            need: l,
        });
    }
    scratch.u0.set_shape(ctx, l, true);
    scratch.u1.set_shape(ctx, l, true);
    let tables = ctx.ntt_tables();
    let digits = scratch.digits.get(..count).unwrap_or_default();
    let (kb, ka) = (
        key.b.get(..count).unwrap_or_default(),
        key.a.get(..count).unwrap_or_default(),
    );
    crate::par::chunks_mut_pair(
        scratch.u0.data_mut(),
        scratch.u1.data_mut(),
        n,
        |j, o0, o1| {
            let (chain_limb, key_limb) = if j <= l {
                (j, j)
            } else {
                (top + 1 + (j - l - 1), key_level + 1 + (j - l - 1))
            };
            let Some(m) = tables.get(chain_limb).map(|t| *t.modulus()) else {
                return;
            };
            let dl = |i: usize| digits.get(i).and_then(|d| d.limb(j)).unwrap_or_default();
            let bl = |i: usize| kb.get(i).and_then(|b| b.limb(key_limb)).unwrap_or_default();
            let al = |i: usize| ka.get(i).and_then(|a| a.limb(key_limb)).unwrap_or_default();
            if count <= SIMD_DIGITS {
                let mut ds: [&[u64]; SIMD_DIGITS] = [&[]; SIMD_DIGITS];
                let mut bs: [&[u64]; SIMD_DIGITS] = [&[]; SIMD_DIGITS];
                let mut as_: [&[u64]; SIMD_DIGITS] = [&[]; SIMD_DIGITS];
                for (d, ((x, y), z)) in ds.iter_mut().zip(&mut bs).zip(&mut as_).enumerate() {
                    (*x, *y, *z) = (dl(d), bl(d), al(d));
                }
                let (ds, bs, as_) = (
                    ds.get(..count).unwrap_or_default(),
                    bs.get(..count).unwrap_or_default(),
                    as_.get(..count).unwrap_or_default(),
                );
                if crate::simd::inner_product_limb(&m, o0, o1, ds, bs, as_, perm) {
                    return;
                }
            }
            let fits = (count as u128) <= lazy_terms(m.value());
            match count {
                1 if fits => ip_limb::<1>(&m, o0, o1, [dl(0)], [bl(0)], [al(0)], perm),
                2 if fits => ip_limb::<2>(
                    &m,
                    o0,
                    o1,
                    [dl(0), dl(1)],
                    [bl(0), bl(1)],
                    [al(0), al(1)],
                    perm,
                ),
                3 if fits => ip_limb::<3>(
                    &m,
                    o0,
                    o1,
                    [dl(0), dl(1), dl(2)],
                    [bl(0), bl(1), bl(2)],
                    [al(0), al(1), al(2)],
                    perm,
                ),
                4 if fits => ip_limb::<4>(
                    &m,
                    o0,
                    o1,
                    [dl(0), dl(1), dl(2), dl(3)],
                    [bl(0), bl(1), bl(2), bl(3)],
                    [al(0), al(1), al(2), al(3)],
                    perm,
                ),
                _ => ip_limb_any(&m, o0, o1, count, dl, bl, al, perm),
            }
        },
    );
    Ok(())
}

/// One limb of the inner product for any number of digits: 128-bit accumulators per block of
/// coefficients, reduced once per 16 digits.
#[expect(
    clippy::too_many_arguments,
    reason = "internal kernel: outputs, digit count, three limb getters and the permutation"
)]
fn ip_limb_any<'a>(
    m: &Modulus,
    o0: &mut [u64],
    o1: &mut [u64],
    count: usize,
    dl: impl Fn(usize) -> &'a [u64],
    bl: impl Fn(usize) -> &'a [u64],
    al: impl Fn(usize) -> &'a [u64],
    perm: Option<&[u32]>,
) {
    const BLOCK: usize = 64;
    let mut acc0 = [0u128; BLOCK];
    let mut acc1 = [0u128; BLOCK];
    for (blk, (o0, o1)) in o0.chunks_mut(BLOCK).zip(o1.chunks_mut(BLOCK)).enumerate() {
        let c0 = blk * BLOCK;
        acc0.fill(0);
        acc1.fill(0);
        for d in 0..count {
            let dl = dl(d);
            let bl = bl(d).get(c0..c0 + BLOCK).unwrap_or_default();
            let al = al(d).get(c0..c0 + BLOCK).unwrap_or_default();
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
