//! Limb kernels for pointwise products modulo one prime, with a runtime-dispatched AVX-512 IFMA
//! path for primes below 2^50 (x86-64 with the `std` feature) and the scalar loop otherwise.
//! Every kernel computes exactly the residues the scalar loop computes.
//!
//! The IFMA path is Barrett reduction in 52-bit lanes (Menezes et al., Handbook of Applied
//! Cryptography, 14.42, base 2): for `N = bits(q) ≤ 50` and `x = a·b + c < 2^(2N)`,
//! `q1 = floor(x / 2^(N−1)) < 2^(N+1)` and `q3 = floor(q1·μ / 2^52)` with
//! `μ = floor(2^(N+51) / q) < 2^52` is at most two below `floor(x / q)`, so `x − q3·q < 3q`
//! (below 2^52, hence exact from the low 52 bits) and two conditional subtractions finish.

use crate::math::Modulus;

/// What a kernel computes from the old output value `o` and the inputs `a`, `b`, `c`
/// (`w` is a per-call constant).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Op {
    /// `a·b`.
    Mul,
    /// `o·a`.
    AccMul,
    /// `a·b + c`.
    MulAdd,
    /// `o + a·b`.
    AccMulAdd,
    /// `o − a·b`.
    AccMulSub,
    /// `(a − b)·w` for a constant `w` with its Shoup constant.
    SubMulConst(u64, u64),
    /// `(o − a)·w` for a constant `w` with its Shoup constant.
    AccSubMulConst(u64, u64),
    /// `o·w` for a constant `w` with its Shoup constant.
    AccMulConst(u64, u64),
}

impl Op {
    #[inline(always)]
    fn scalar(self, m: &Modulus, o: u64, a: u64, b: u64, c: u64) -> u64 {
        match self {
            Self::Mul => m.mul(a, b),
            Self::AccMul => m.mul(o, a),
            Self::MulAdd => m.mul_add(a, b, c),
            Self::AccMulAdd => m.mul_add(a, b, o),
            Self::AccMulSub => m.sub(o, m.mul(a, b)),
            Self::SubMulConst(w, ws) => m.mul_shoup(m.sub(a, b), w, ws),
            Self::AccSubMulConst(w, ws) => m.mul_shoup(m.sub(o, a), w, ws),
            Self::AccMulConst(w, ws) => m.mul_shoup(o, w, ws),
        }
    }
}

/// `out[i] = op(out[i], a[i], b[i], c[i])` modulo `m`. Inputs that `op` does not read may be
/// empty; the others must be at least as long as `out`.
pub(crate) fn apply(op: Op, m: &Modulus, out: &mut [u64], a: &[u64], b: &[u64], c: &[u64]) {
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    let done = ifma::apply(op, m, out, a, b, c);
    #[cfg(not(all(feature = "std", target_arch = "x86_64")))]
    let done = 0;
    let at = |s: &[u64], i: usize| s.get(i).copied().unwrap_or(0);
    for (i, o) in out.iter_mut().enumerate().skip(done) {
        *o = op.scalar(m, *o, at(a, i), at(b, i), at(c, i));
    }
}

/// Runs `f` compiled for AVX-512 when the CPU has it (x86-64 with `std`), so that plain
/// loops inside it (additions, subtractions, conditional subtractions) are vectorised with
/// native 64-bit compares; otherwise just runs it.
#[inline(always)]
pub(crate) fn vectorized<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    if let Some(simd) = pulp::x86::V4::try_new() {
        return simd.vectorize(f);
    }
    f()
}

/// One row of an exact base conversion (see [`crate::ring::BaseConverter::row`]) to a target
/// prime `t`: `out[c] = (Σ_j z_j[c]·hats[j] + v[c]·neg_b) mod t`.
#[derive(Clone, Copy, Debug)]
#[cfg_attr(
    not(all(feature = "std", target_arch = "x86_64")),
    allow(dead_code, reason = "read only by the SIMD kernel")
)]
pub(crate) struct ConvRow<'a> {
    /// The target prime.
    pub t: &'a Modulus,
    /// `k` source limbs of `n` words each (`z_j < 2^62`).
    pub z: &'a [u64],
    /// Coefficients per limb.
    pub n: usize,
    /// The first coefficient of the range computed (`out.len()` of them).
    pub c0: usize,
    /// `h_j mod t`.
    pub hats: &'a [u64],
    /// `h_j·2^52 mod t`.
    pub hats52: &'a [u64],
    /// The corrections `v[c] ≤ k` of the range.
    pub v: &'a [u64],
    /// `−B mod t`.
    pub neg_b: u64,
    /// Whether some source prime is `2^52` or more (then `z` is split at bit 52).
    pub big: bool,
    /// `2^52 mod t`.
    pub r52: u64,
    /// `2^104 mod t`.
    pub r104: u64,
}

/// The IFMA form of a conversion row; returns `false` (and writes nothing) when the CPU, the
/// target (above 2^50) or the shapes do not qualify, so the caller runs its scalar loop.
pub(crate) fn conv_row(row: &ConvRow<'_>, out: &mut [u64]) -> bool {
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    {
        ifma::conv_row(row, out)
    }
    #[cfg(not(all(feature = "std", target_arch = "x86_64")))]
    {
        let _ = (row, out);
        false
    }
}

/// One limb of the key-switching inner product: `o0 = Σ_d x_d·b_d`, `o1 = Σ_d x_d·a_d` modulo
/// `m`, with `x_d = digits[d][perm[c]]` (or `digits[d][c]` without `perm`). Returns `false`
/// (writing nothing) when the IFMA path does not apply; the caller then runs its scalar loop.
pub(crate) fn inner_product_limb(
    m: &Modulus,
    o0: &mut [u64],
    o1: &mut [u64],
    digits: &[&[u64]],
    b: &[&[u64]],
    a: &[&[u64]],
    perm: Option<&[u32]>,
) -> bool {
    #[cfg(all(feature = "std", target_arch = "x86_64"))]
    {
        ifma::inner_product_limb(m, o0, o1, digits, b, a, perm)
    }
    #[cfg(not(all(feature = "std", target_arch = "x86_64")))]
    {
        let _ = (m, o0, o1, digits, b, a, perm);
        false
    }
}

#[cfg(all(feature = "std", target_arch = "x86_64"))]
mod ifma {
    use core::arch::x86_64::__m512i;

    use super::Op;
    use crate::math::Modulus;

    /// Largest prime size these kernels accept.
    const MAX_BITS: u32 = 50;

    pulp::simd_type! {
        /// AVX-512 with the 52-bit integer multiply-add instructions.
        struct V4Ifma {
            pub sse: "sse",
            pub sse2: "sse2",
            pub fxsr: "fxsr",
            pub sse3: "sse3",
            pub ssse3: "ssse3",
            pub sse4_1: "sse4.1",
            pub sse4_2: "sse4.2",
            pub popcnt: "popcnt",
            pub avx: "avx",
            pub avx2: "avx2",
            pub bmi1: "bmi1",
            pub bmi2: "bmi2",
            pub fma: "fma",
            pub lzcnt: "lzcnt",
            pub avx512f: "avx512f",
            pub avx512bw: "avx512bw",
            pub avx512cd: "avx512cd",
            pub avx512dq: "avx512dq",
            pub avx512vl: "avx512vl",
            pub avx512ifma: "avx512ifma",
        }
    }

    /// Broadcast constants of one prime.
    #[derive(Clone, Copy)]
    struct Consts {
        q: __m512i,
        mu: __m512i,
        sh_lo: __m512i,
        sh_hi: __m512i,
        mask52: __m512i,
        zero: __m512i,
        w: __m512i,
    }

    impl Consts {
        #[inline(always)]
        fn new(simd: V4Ifma, q: u64, w: u64) -> Self {
            let f = simd.avx512f;
            let bits = 64 - q.leading_zeros();
            let mu = ((1u128 << (bits + 51)) / u128::from(q)) as u64;
            Self {
                q: f._mm512_set1_epi64(q as i64),
                mu: f._mm512_set1_epi64(mu as i64),
                sh_lo: f._mm512_set1_epi64(i64::from(bits - 1)),
                sh_hi: f._mm512_set1_epi64(i64::from(53 - bits)),
                mask52: f._mm512_set1_epi64(((1u64 << 52) - 1) as i64),
                zero: f._mm512_set1_epi64(0),
                w: f._mm512_set1_epi64(w as i64),
            }
        }
    }

    /// `(a·b + c) mod q` for `a, b, c < q < 2^50`.
    #[inline(always)]
    fn mul_add(simd: V4Ifma, k: &Consts, a: __m512i, b: __m512i, c: __m512i) -> __m512i {
        let f = simd.avx512f;
        let i = simd.avx512ifma;
        // x = hi·2^52 + lo with lo = c + (a·b mod 2^52) < 2^53.
        let lo = i._mm512_madd52lo_epu64(c, a, b);
        let hi = i._mm512_madd52hi_epu64(k.zero, a, b);
        let q1 = f._mm512_add_epi64(
            f._mm512_srlv_epi64(lo, k.sh_lo),
            f._mm512_sllv_epi64(hi, k.sh_hi),
        );
        let q3 = i._mm512_madd52hi_epu64(k.zero, q1, k.mu);
        let r = f._mm512_sub_epi64(lo, i._mm512_madd52lo_epu64(k.zero, q3, k.q));
        let r = f._mm512_and_si512(r, k.mask52);
        let r = f._mm512_min_epu64(r, f._mm512_sub_epi64(r, k.q));
        f._mm512_min_epu64(r, f._mm512_sub_epi64(r, k.q))
    }

    /// `x mod q` for `x < 2^52` (the same Barrett reduction with `a·b` replaced by `x`).
    #[inline(always)]
    fn reduce52(simd: V4Ifma, k: &Consts, x: __m512i) -> __m512i {
        let f = simd.avx512f;
        let i = simd.avx512ifma;
        let q1 = f._mm512_srlv_epi64(x, k.sh_lo);
        let q3 = i._mm512_madd52hi_epu64(k.zero, q1, k.mu);
        let r = f._mm512_sub_epi64(x, i._mm512_madd52lo_epu64(k.zero, q3, k.q));
        let r = f._mm512_and_si512(r, k.mask52);
        let r = f._mm512_min_epu64(r, f._mm512_sub_epi64(r, k.q));
        f._mm512_min_epu64(r, f._mm512_sub_epi64(r, k.q))
    }

    /// `(hi·2^52 + lo) mod q` for `lo < 2^60`, `hi < 2^57` (sums of 52-bit halves of
    /// products), with `r52 = 2^52 mod q` and `r104 = 2^104 mod q` broadcast.
    #[inline(always)]
    fn reduce_wide(
        simd: V4Ifma,
        k: &Consts,
        lo: __m512i,
        hi: __m512i,
        r52: __m512i,
        r104: __m512i,
    ) -> __m512i {
        let f = simd.avx512f;
        let c52 = f._mm512_set1_epi64(52);
        // Normalise: lo < 2^52, then hi = hh·2^52 + hl.
        let hi = f._mm512_add_epi64(hi, f._mm512_srlv_epi64(lo, c52));
        let lo = reduce52(simd, k, f._mm512_and_si512(lo, k.mask52));
        let hl = reduce52(simd, k, f._mm512_and_si512(hi, k.mask52));
        let hh = f._mm512_srlv_epi64(hi, c52);
        let r = mul_add(simd, k, hl, r52, lo);
        mul_add(simd, k, hh, r104, r)
    }

    /// The most digits [`inner_product_limb`] takes.
    const MAX_DIGITS: usize = 16;

    /// Each slice as 8-lane arrays (at most [`MAX_DIGITS`] of them).
    fn arrays8<'a>(s: &[&'a [u64]]) -> [&'a [[u64; 8]]; MAX_DIGITS] {
        let mut t: [&[[u64; 8]]; MAX_DIGITS] = [&[]; MAX_DIGITS];
        for (x, y) in t.iter_mut().zip(s) {
            *x = pulp::as_arrays::<8, _>(y).0;
        }
        t
    }

    /// See [`super::inner_product_limb`]: the products are accumulated as 52-bit halves and
    /// reduced once per coefficient ([`reduce_wide`]).
    pub(super) fn inner_product_limb(
        m: &Modulus,
        o0: &mut [u64],
        o1: &mut [u64],
        digits: &[&[u64]],
        b: &[&[u64]],
        a: &[&[u64]],
        perm: Option<&[u32]>,
    ) -> bool {
        let n = o0.len();
        let count = digits.len();
        if m.bits() > MAX_BITS
            || count == 0
            || count > MAX_DIGITS
            || b.len() != count
            || a.len() != count
            || o1.len() != n
            || !n.is_multiple_of(8)
            || digits.iter().chain(b).chain(a).any(|s| s.len() != n)
            || perm.is_some_and(|p| p.len() != n)
        {
            return false;
        }
        let Some(simd) = V4Ifma::try_new() else {
            return false;
        };
        let q = m.value();
        let r52 = m.reduce_u128(1u128 << 52);
        let r104 = m.mul(r52, r52);
        let (d8, b8, a8) = (arrays8(digits), arrays8(b), arrays8(a));
        let (d8, b8, a8) = (
            d8.get(..count).unwrap_or_default(),
            b8.get(..count).unwrap_or_default(),
            a8.get(..count).unwrap_or_default(),
        );
        let o08 = pulp::as_arrays_mut::<8, _>(o0).0;
        let o18 = pulp::as_arrays_mut::<8, _>(o1).0;
        let p8 = perm.map(|p| pulp::as_arrays::<8, _>(p).0);
        simd.vectorize(
            #[inline(always)]
            || {
                let f = simd.avx512f;
                let i = simd.avx512ifma;
                let k = Consts::new(simd, q, 0);
                let r52 = f._mm512_set1_epi64(r52 as i64);
                let r104 = f._mm512_set1_epi64(r104 as i64);
                for (c, (x0, x1)) in o08.iter_mut().zip(o18.iter_mut()).enumerate() {
                    let (mut lo0, mut hi0, mut lo1, mut hi1) = (k.zero, k.zero, k.zero, k.zero);
                    for ((d, bl), al) in d8.iter().zip(b8).zip(a8) {
                        let x = match p8 {
                            None => d.get(c).map_or(k.zero, load),
                            Some(p8) => {
                                let idx = p8.get(c).copied().unwrap_or([0; 8]);
                                let flat = d.as_flattened();
                                let g = idx.map(|j| flat.get(j as usize).copied().unwrap_or(0));
                                load(&g)
                            }
                        };
                        let bv = bl.get(c).map_or(k.zero, load);
                        let av = al.get(c).map_or(k.zero, load);
                        lo0 = i._mm512_madd52lo_epu64(lo0, x, bv);
                        hi0 = i._mm512_madd52hi_epu64(hi0, x, bv);
                        lo1 = i._mm512_madd52lo_epu64(lo1, x, av);
                        hi1 = i._mm512_madd52hi_epu64(hi1, x, av);
                    }
                    *x0 = pulp::cast(reduce_wide(simd, &k, lo0, hi0, r52, r104));
                    *x1 = pulp::cast(reduce_wide(simd, &k, lo1, hi1, r52, r104));
                }
            },
        );
        true
    }

    /// The most source limbs [`conv_row`] takes (a stack table of limb slices).
    const MAX_SRC: usize = 64;

    /// See [`super::conv_row`]. Each product `z·h` is accumulated as its low and high 52-bit
    /// halves (`z` split at bit 52 when it may be larger, the upper part multiplying
    /// `h·2^52 mod t`); with `X = hi·2^52 + lo` the result is
    /// `lo + (hi mod 2^52)·2^52 + (hi >> 52)·2^104 (mod t)`, reduced with the kernels above.
    pub(super) fn conv_row(row: &super::ConvRow<'_>, out: &mut [u64]) -> bool {
        let t = row.t.value();
        let kk = row.hats.len();
        let (n, c0, len) = (row.n, row.c0, out.len());
        if row.t.bits() > MAX_BITS
            || kk == 0
            || kk > MAX_SRC
            || row.hats52.len() != kk
            || !len.is_multiple_of(8)
            || !c0.is_multiple_of(8)
            || c0 + len > n
            || row.z.len() < kk * n
            || row.v.len() != len
        {
            return false;
        }
        let Some(simd) = V4Ifma::try_new() else {
            return false;
        };
        let mut limbs: [&[[u64; 8]]; MAX_SRC] = [&[]; MAX_SRC];
        for (l, z) in limbs.iter_mut().zip(row.z.chunks_exact(n)) {
            *l = pulp::as_arrays::<8, _>(z.get(c0..c0 + len).unwrap_or_default()).0;
        }
        let limbs = limbs.get(..kk).unwrap_or_default();
        let v8 = pulp::as_arrays::<8, _>(row.v).0;
        let o8 = pulp::as_arrays_mut::<8, _>(out).0;
        simd.vectorize(
            #[inline(always)]
            || {
                let f = simd.avx512f;
                let i = simd.avx512ifma;
                let k = Consts::new(simd, t, 0);
                let neg_b = f._mm512_set1_epi64(row.neg_b as i64);
                let r52 = f._mm512_set1_epi64(row.r52 as i64);
                let r104 = f._mm512_set1_epi64(row.r104 as i64);
                let c52 = f._mm512_set1_epi64(52);
                for (c, (o, v)) in o8.iter_mut().zip(v8).enumerate() {
                    let v = load(v);
                    let mut lo = i._mm512_madd52lo_epu64(k.zero, v, neg_b);
                    let mut hi = i._mm512_madd52hi_epu64(k.zero, v, neg_b);
                    if row.big {
                        for ((l, &h), &h52) in limbs.iter().zip(row.hats).zip(row.hats52) {
                            let z = l.get(c).map_or(k.zero, load);
                            let zl = f._mm512_and_si512(z, k.mask52);
                            let zh = f._mm512_srlv_epi64(z, c52);
                            let h = f._mm512_set1_epi64(h as i64);
                            let h52 = f._mm512_set1_epi64(h52 as i64);
                            lo = i._mm512_madd52lo_epu64(lo, zl, h);
                            hi = i._mm512_madd52hi_epu64(hi, zl, h);
                            lo = i._mm512_madd52lo_epu64(lo, zh, h52);
                            hi = i._mm512_madd52hi_epu64(hi, zh, h52);
                        }
                    } else {
                        for (l, &h) in limbs.iter().zip(row.hats) {
                            let z = l.get(c).map_or(k.zero, load);
                            let h = f._mm512_set1_epi64(h as i64);
                            lo = i._mm512_madd52lo_epu64(lo, z, h);
                            hi = i._mm512_madd52hi_epu64(hi, z, h);
                        }
                    }
                    *o = pulp::cast(reduce_wide(simd, &k, lo, hi, r52, r104));
                }
            },
        );
        true
    }

    /// `(a − b) mod q` for `a, b < q`.
    #[inline(always)]
    fn sub(simd: V4Ifma, k: &Consts, a: __m512i, b: __m512i) -> __m512i {
        let f = simd.avx512f;
        let d = f._mm512_sub_epi64(a, b);
        f._mm512_min_epu64(d, f._mm512_add_epi64(d, k.q))
    }

    /// The first `len` entries of `s` as 8-lane arrays (none if not `need`ed).
    fn head8(s: &[u64], need: bool, len: usize) -> &[[u64; 8]] {
        if need {
            pulp::as_arrays::<8, _>(s.get(..len).unwrap_or_default()).0
        } else {
            &[]
        }
    }

    #[inline(always)]
    fn load(x: &[u64; 8]) -> __m512i {
        pulp::cast(*x)
    }

    /// The 8-lane form of [`Op`].
    #[inline(always)]
    fn lanes(
        simd: V4Ifma,
        op: Op,
        k: &Consts,
        o: __m512i,
        a: __m512i,
        b: __m512i,
        c: __m512i,
    ) -> __m512i {
        match op {
            Op::Mul => mul_add(simd, k, a, b, k.zero),
            Op::AccMul => mul_add(simd, k, o, a, k.zero),
            Op::MulAdd => mul_add(simd, k, a, b, c),
            Op::AccMulAdd => mul_add(simd, k, a, b, o),
            Op::AccMulSub => sub(simd, k, o, mul_add(simd, k, a, b, k.zero)),
            Op::SubMulConst(..) => mul_add(simd, k, sub(simd, k, a, b), k.w, k.zero),
            Op::AccSubMulConst(..) => mul_add(simd, k, sub(simd, k, o, a), k.w, k.zero),
            Op::AccMulConst(..) => mul_add(simd, k, o, k.w, k.zero),
        }
    }

    /// The 8-lane part of [`super::apply`]: returns how many leading entries it wrote (0 when
    /// the CPU or the prime does not qualify).
    pub(super) fn apply(
        op: Op,
        m: &Modulus,
        out: &mut [u64],
        a: &[u64],
        b: &[u64],
        c: &[u64],
    ) -> usize {
        let q = m.value();
        if m.bits() > MAX_BITS {
            return 0;
        }
        let Some(simd) = V4Ifma::try_new() else {
            return 0;
        };
        let len = out.len() / 8 * 8;
        let w = match op {
            Op::SubMulConst(w, _) | Op::AccSubMulConst(w, _) | Op::AccMulConst(w, _) => w,
            _ => 0,
        };
        // An input the op does not read may be empty: it is replaced by `out` itself (read
        // before being overwritten, and ignored).
        let (needs_a, needs_b, needs_c) = match op {
            Op::AccMulConst(..) => (false, false, false),
            Op::AccMul | Op::AccSubMulConst(..) => (true, false, false),
            Op::Mul | Op::AccMulAdd | Op::AccMulSub | Op::SubMulConst(..) => (true, true, false),
            Op::MulAdd => (true, true, true),
        };
        let ok = |s: &[u64], need: bool| !need || s.len() >= len;
        if !(ok(a, needs_a) && ok(b, needs_b) && ok(c, needs_c)) {
            return 0;
        }
        let (a8, b8, c8) = (
            head8(a, needs_a, len),
            head8(b, needs_b, len),
            head8(c, needs_c, len),
        );
        let o8 = pulp::as_arrays_mut::<8, _>(out.get_mut(..len).unwrap_or_default()).0;
        simd.vectorize(
            #[inline(always)]
            || {
                let k = Consts::new(simd, q, w);
                let get = |s: &[[u64; 8]], i: usize| s.get(i).map_or(k.zero, load);
                for (i, o) in o8.iter_mut().enumerate() {
                    let r = lanes(simd, op, &k, load(o), get(a8, i), get(b8, i), get(c8, i));
                    *o = pulp::cast(r);
                }
            },
        );
        len
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::math::generate_primes_vt;
    use alloc::vec;
    use alloc::vec::Vec;
    use rand_chacha::ChaCha8Rng;
    use rand_core::{RngCore, SeedableRng};

    fn reference(op: Op, q: u64, o: u64, a: u64, b: u64, c: u64) -> u64 {
        let (q, o, a, b, c) = (
            u128::from(q),
            u128::from(o),
            u128::from(a),
            u128::from(b),
            u128::from(c),
        );
        let r = match op {
            Op::Mul => a * b % q,
            Op::AccMul => o * a % q,
            Op::MulAdd => (a * b + c) % q,
            Op::AccMulAdd => (o + a * b) % q,
            Op::AccMulSub => (o + q - a * b % q) % q,
            Op::SubMulConst(w, _) => (a + q - b) % q * u128::from(w) % q,
            Op::AccSubMulConst(w, _) => (o + q - a) % q * u128::from(w) % q,
            Op::AccMulConst(w, _) => o * u128::from(w) % q,
        };
        r as u64
    }

    /// Conversion rows to targets of 30 to 50 bits from sources of 40 to 61 bits, against u128.
    #[test]
    fn conversion_rows_match_u128_reference() {
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        let n = 64;
        for (t_bits, src_bits) in [
            (50u32, &[50u32, 50, 50][..]),
            (50, &[60, 50, 50, 50, 50, 50, 50, 50, 50]),
            (49, &[61, 60, 60, 60]),
            (30, &[50, 40]),
            (45, &[61; 17]),
        ] {
            let two_n = 1u64 << 11;
            let t = Modulus::new(generate_primes_vt(t_bits, 1, two_n, &[]).unwrap()[0]).unwrap();
            let src: Vec<u64> = src_bits
                .iter()
                .enumerate()
                .map(|(i, &b)| generate_primes_vt(b, i + 2, two_n, &[t.value()]).unwrap()[i + 1])
                .collect();
            let k = src.len();
            let tv = t.value();
            let z: Vec<u64> = (0..k * n)
                .map(|i| match i % 7 {
                    0 => src[i / n] - 1,
                    1 => 0,
                    _ => rng.next_u64() % src[i / n],
                })
                .collect();
            let v: Vec<u64> = (0..n)
                .map(|i| rng.next_u64() % (k as u64 + 1) * u64::from(i % 5 != 0))
                .collect();
            let hats: Vec<u64> = (0..k).map(|_| rng.next_u64() % tv).collect();
            let two52 = (1u128 << 52) % u128::from(tv);
            let hats52: Vec<u64> = hats
                .iter()
                .map(|&h| (u128::from(h) * two52 % u128::from(tv)) as u64)
                .collect();
            let neg_b = tv - 1 - rng.next_u64() % (tv - 1);
            let r52 = two52 as u64;
            let r104 = (two52 * two52 % u128::from(tv)) as u64;
            let row = ConvRow {
                t: &t,
                z: &z,
                n,
                c0: 0,
                hats: &hats,
                hats52: &hats52,
                v: &v,
                neg_b,
                big: src.iter().any(|&b| b >> 52 != 0),
                r52,
                r104,
            };
            let mut out = vec![0u64; n];
            if !conv_row(&row, &mut out) {
                continue; // no IFMA on this CPU: the scalar row is tested in ring
            }
            for c in 0..n {
                let want = (0..k).fold(
                    u128::from(v[c]) * u128::from(neg_b) % u128::from(tv),
                    |acc, j| {
                        (acc + u128::from(z[j * n + c]) * u128::from(hats[j])) % u128::from(tv)
                    },
                );
                assert_eq!(
                    u128::from(out[c]),
                    want,
                    "target {t_bits} bits, coefficient {c}"
                );
            }
        }
    }

    fn refs(v: &[Vec<u64>]) -> Vec<&[u64]> {
        v.iter().map(Vec::as_slice).collect()
    }

    /// The inner-product kernel, with and without a permutation, against u128.
    #[test]
    fn inner_product_limbs_match_u128_reference() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let n = 64;
        for (bits, count) in [(50u32, 3usize), (40, 1), (50, 16), (61, 2)] {
            let q = generate_primes_vt(bits, 1, 1 << 11, &[]).unwrap()[0];
            let m = Modulus::new(q).unwrap();
            let mut draw = || -> Vec<u64> {
                (0..n)
                    .map(|i| {
                        if i % 9 == 0 {
                            q - 1
                        } else {
                            rng.next_u64() % q
                        }
                    })
                    .collect()
            };
            let ds: Vec<Vec<u64>> = (0..count).map(|_| draw()).collect();
            let bs: Vec<Vec<u64>> = (0..count).map(|_| draw()).collect();
            let as_: Vec<Vec<u64>> = (0..count).map(|_| draw()).collect();
            let perm: Vec<u32> = (0..n as u32).map(|i| (i * 5 + 3) % n as u32).collect();
            for p in [None, Some(perm.as_slice())] {
                let (mut o0, mut o1) = (vec![0u64; n], vec![0u64; n]);
                let ok = inner_product_limb(
                    &m,
                    &mut o0,
                    &mut o1,
                    &refs(&ds),
                    &refs(&bs),
                    &refs(&as_),
                    p,
                );
                if !ok {
                    assert!(
                        bits > 50 || !cfg!(target_arch = "x86_64") || o0.iter().all(|&x| x == 0)
                    );
                    continue;
                }
                for c in 0..n {
                    let src = p.map_or(c, |p| p[c] as usize);
                    let sum = |k: &[Vec<u64>]| {
                        (0..count).fold(0u128, |acc, d| {
                            (acc + u128::from(ds[d][src]) * u128::from(k[d][c])) % u128::from(q)
                        }) as u64
                    };
                    assert_eq!(
                        (o0[c], o1[c]),
                        (sum(&bs), sum(&as_)),
                        "{bits}-bit, {count} digits, c {c}"
                    );
                }
            }
        }
    }

    /// Every op, on primes from 20 to 61 bits (the IFMA path up to 50 bits where the CPU has it,
    /// the scalar loop otherwise), random and extreme residues, lengths with a scalar tail.
    #[test]
    fn kernels_match_u128_reference() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for bits in [20u32, 31, 40, 49, 50, 51, 55, 60, 61] {
            let q = generate_primes_vt(bits, 1, 1 << 11, &[]).unwrap()[0];
            let m = Modulus::new(q).unwrap();
            let w = rng.next_u64() % q;
            let ops = [
                Op::Mul,
                Op::AccMul,
                Op::MulAdd,
                Op::AccMulAdd,
                Op::AccMulSub,
                Op::SubMulConst(w, m.shoup(w)),
                Op::AccSubMulConst(w, m.shoup(w)),
                Op::AccMulConst(w, m.shoup(w)),
            ];
            for len in [0usize, 7, 8, 64, 203] {
                let mut draw = || -> Vec<u64> {
                    (0..len)
                        .map(|i| match i % 5 {
                            0 => q - 1,
                            1 => 0,
                            _ => rng.next_u64() % q,
                        })
                        .collect()
                };
                let (o0, a, b, c) = (draw(), draw(), draw(), draw());
                for op in ops {
                    let mut o = o0.clone();
                    apply(op, &m, &mut o, &a, &b, &c);
                    for i in 0..len {
                        assert_eq!(
                            o[i],
                            reference(op, q, o0[i], a[i], b[i], c[i]),
                            "{op:?} {bits}-bit index {i}"
                        );
                    }
                }
            }
        }
    }
}
