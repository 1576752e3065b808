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
            Op::SubMulConst(w, _) | Op::AccSubMulConst(w, _) => w,
            _ => 0,
        };
        // An input the op does not read may be empty: it is replaced by `out` itself (read
        // before being overwritten, and ignored).
        let (needs_a, needs_b, needs_c) = match op {
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
        };
        r as u64
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
