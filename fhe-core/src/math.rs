//! Arithmetic modulo word-size primes, and NTT-friendly prime generation.
//!
//! [`Modulus`] holds a prime `q < 2^62` with its Barrett constant and offers add, sub, neg,
//! Barrett multiplication, Shoup multiplication by a precomputed constant, power and inverse.
//! Every operation on possibly secret operands is branch-free (conditional subtraction by mask);
//! functions whose running time depends on their inputs end in `_vt` and are used only on
//! public data (prime generation, root finding).
//!
//! The bound `q < 2^62` leaves two bits of headroom so the NTT can keep values lazily in
//! `[0, 4q)`.

use alloc::vec::Vec;

use crate::Error;

/// Largest supported modulus size: moduli are below `2^MAX_MODULUS_BITS`.
pub const MAX_MODULUS_BITS: u32 = 62;
/// Smallest prime size [`generate_primes_vt`] accepts.
pub const MIN_PRIME_BITS: u32 = 20;
/// Largest prime size [`generate_primes_vt`] accepts (primes are below `2^bits`).
pub const MAX_PRIME_BITS: u32 = 61;

/// Branch-free `x - q` if `x >= q`, else `x`. Requires `x < 2q`.
#[inline(always)]
pub const fn csub(x: u64, q: u64) -> u64 {
    let (d, borrow) = x.overflowing_sub(q);
    d.wrapping_add(q & (borrow as u64).wrapping_neg())
}

/// A prime modulus `q < 2^62` with precomputed reduction constants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Modulus {
    q: u64,
    /// floor(2^128 / q), high and low words.
    mu_hi: u64,
    mu_lo: u64,
    /// floor(2^64 / q), for reducing single words.
    mu64: u64,
}

impl Modulus {
    /// Wraps `q`; checks only the size (odd, `2^10 ≤ q < 2^62`), not primality: parameter
    /// validation checks primality once for the whole chain.
    pub fn new(q: u64) -> Result<Self, Error> {
        if !((1 << 10)..(1 << MAX_MODULUS_BITS)).contains(&q) || q.is_multiple_of(2) {
            return Err(Error::ModulusOutOfRange {
                modulus: q,
                max_bits: MAX_MODULUS_BITS,
            });
        }
        // floor(2^128 / q) = floor((2^128 - 1) / q) since q is odd (q does not divide 2^128).
        let mu = u128::MAX / u128::from(q);
        Ok(Self {
            q,
            mu_hi: (mu >> 64) as u64,
            mu_lo: mu as u64,
            mu64: ((1u128 << 64) / u128::from(q)) as u64,
        })
    }

    /// The modulus value.
    #[inline(always)]
    pub const fn value(&self) -> u64 {
        self.q
    }

    /// Bit length of `q`.
    pub const fn bits(&self) -> u32 {
        64 - self.q.leading_zeros()
    }

    /// `(a + b) mod q` for `a, b < q`.
    #[inline(always)]
    pub const fn add(&self, a: u64, b: u64) -> u64 {
        csub(a + b, self.q)
    }

    /// `(a - b) mod q` for `a, b < q`.
    #[inline(always)]
    pub const fn sub(&self, a: u64, b: u64) -> u64 {
        csub(a + self.q - b, self.q)
    }

    /// `(-a) mod q` for `a < q`, branch-free (maps 0 to 0).
    #[inline(always)]
    pub const fn neg(&self, a: u64) -> u64 {
        csub(self.q - a, self.q)
    }

    /// `x mod q` for `x < 2^126` (e.g. a product of two values below `2^62` plus a few more),
    /// by Barrett reduction with `floor(2^128/q)`. (The middle sum stays below `2^127` because
    /// the high word is below `2^62` and `floor(2^128/q) < 2^118`.)
    #[inline(always)]
    pub const fn reduce_u128(&self, x: u128) -> u64 {
        let x0 = x as u64;
        let x1 = (x >> 64) as u64;
        // floor(x * mu / 2^128) is at most 2 below x / q; leaving out floor(x0·mu_lo / 2^64)
        // (below 2^64) costs at most one more, so the estimate is at most 3 too small.
        let mid = x1 as u128 * self.mu_lo as u128 + x0 as u128 * self.mu_hi as u128;
        let quot = (x1 as u128 * self.mu_hi as u128) + (mid >> 64);
        let r = x0.wrapping_sub((quot as u64).wrapping_mul(self.q));
        // r < 4q ≤ 2^64.
        csub(csub(r, 2 * self.q), self.q)
    }

    /// `x mod q` for any `u128` (e.g. a lazily accumulated sum of up to 16 products of values
    /// below `2^62`).
    #[inline(always)]
    pub const fn reduce_u128_any(&self, x: u128) -> u64 {
        let hi = self.reduce((x >> 64) as u64);
        self.reduce_u128(((hi as u128) << 64) | (x as u64 as u128))
    }

    /// `x mod q` for any `u64`: the quotient estimate `floor(x·floor(2^64/q) / 2^64)` is at
    /// most one too small.
    #[inline(always)]
    pub const fn reduce(&self, x: u64) -> u64 {
        let quot = ((x as u128 * self.mu64 as u128) >> 64) as u64;
        csub(x.wrapping_sub(quot.wrapping_mul(self.q)), self.q)
    }

    /// `x mod q` for a signed `x`, branch-free.
    #[inline(always)]
    pub const fn reduce_i64(&self, x: i64) -> u64 {
        let r = self.reduce(x.unsigned_abs());
        // Negate when x < 0.
        let neg_mask = (x >> 63) as u64;
        let n = self.neg(r);
        (r & !neg_mask) | (n & neg_mask)
    }

    /// `(a * b) mod q` by Barrett reduction, for `a, b < 2^62`.
    #[inline(always)]
    pub const fn mul(&self, a: u64, b: u64) -> u64 {
        self.reduce_u128(a as u128 * b as u128)
    }

    /// `(a * b + c) mod q` for `a, b < 2^62` and any `c < 2^64` (one Barrett reduction).
    #[inline(always)]
    pub const fn mul_add(&self, a: u64, b: u64, c: u64) -> u64 {
        self.reduce_u128(a as u128 * b as u128 + c as u128)
    }

    /// Shoup's precomputation for multiplications by the constant `w < q`:
    /// `floor(w * 2^64 / q)`.
    #[inline]
    pub const fn shoup(&self, w: u64) -> u64 {
        (((w as u128) << 64) / self.q as u128) as u64
    }

    /// `a * w mod q` in `[0, 2q)` for any `a < 2^64`, with `w_shoup = self.shoup(w)`.
    #[inline(always)]
    pub const fn mul_shoup_lazy(&self, a: u64, w: u64, w_shoup: u64) -> u64 {
        let quot = ((a as u128 * w_shoup as u128) >> 64) as u64;
        a.wrapping_mul(w).wrapping_sub(quot.wrapping_mul(self.q))
    }

    /// `a * w mod q` in `[0, q)`, with `w_shoup = self.shoup(w)`.
    #[inline(always)]
    pub const fn mul_shoup(&self, a: u64, w: u64, w_shoup: u64) -> u64 {
        csub(self.mul_shoup_lazy(a, w, w_shoup), self.q)
    }

    /// `a^e mod q`. Time depends on `e` (public exponents only), not on `a`.
    pub const fn pow(&self, a: u64, mut e: u64) -> u64 {
        let mut base = self.reduce(a);
        let mut acc = 1u64;
        while e > 0 {
            if e & 1 == 1 {
                acc = self.mul(acc, base);
            }
            base = self.mul(base, base);
            e >>= 1;
        }
        acc
    }

    /// `a^-1 mod q` (Fermat; `q` must be prime). `None` for `a ≡ 0`.
    pub const fn inv(&self, a: u64) -> Option<u64> {
        let a = self.reduce(a);
        if a == 0 {
            None
        } else {
            Some(self.pow(a, self.q - 2))
        }
    }

    /// The representative of `a < q` in `(-q/2, q/2]`, as a signed integer.
    #[inline(always)]
    pub const fn center(&self, a: u64) -> i64 {
        // a > q/2  →  a - q.
        let half = self.q >> 1;
        let (_, above) = half.overflowing_sub(a);
        let mask = (above as u64).wrapping_neg();
        (a as i64).wrapping_sub((self.q & mask) as i64)
    }

    /// `Σ a_i b_i mod q` over two slices of reduced values (zipped; extra entries ignored).
    pub fn dot(&self, a: &[u64], b: &[u64]) -> u64 {
        a.iter()
            .zip(b)
            .fold(0, |acc, (&x, &y)| self.add(acc, self.mul(x, y)))
    }
}

/// `(a * b) mod m` for any 64-bit `m > 0`, via u128 division. Variable time; public data only.
#[inline]
pub const fn mul_mod_vt(a: u64, b: u64, m: u64) -> u64 {
    ((a as u128 * b as u128) % m as u128) as u64
}

/// `a^e mod m`, variable time; public data only.
pub const fn pow_mod_vt(a: u64, mut e: u64, m: u64) -> u64 {
    let mut base = a % m;
    let mut acc = 1 % m;
    while e > 0 {
        if e & 1 == 1 {
            acc = mul_mod_vt(acc, base, m);
        }
        base = mul_mod_vt(base, base, m);
        e >>= 1;
    }
    acc
}

/// Deterministic Miller–Rabin primality test for all 64-bit integers (the first twelve primes
/// as bases suffice below 3.3·10^24). Variable time; public data only.
pub fn is_prime_vt(n: u64) -> bool {
    const BASES: [u64; 12] = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37];
    if n < 2 {
        return false;
    }
    if let Some(&p) = BASES.iter().find(|&&p| n.is_multiple_of(p)) {
        return n == p;
    }
    let s = (n - 1).trailing_zeros();
    let d = (n - 1) >> s;
    BASES.iter().all(|&a| {
        let mut x = pow_mod_vt(a, d, n);
        if x == 1 || x == n - 1 {
            return true;
        }
        for _ in 1..s {
            x = mul_mod_vt(x, x, n);
            if x == n - 1 {
                return true;
            }
        }
        false
    })
}

/// The `count` largest primes `q < 2^bits` with `q ≡ 1 mod two_n`, in decreasing order,
/// skipping those in `exclude`. Deterministic. Variable time (public data).
pub fn generate_primes_vt(
    bits: u32,
    count: usize,
    two_n: u64,
    exclude: &[u64],
) -> Result<Vec<u64>, Error> {
    if !(MIN_PRIME_BITS..=MAX_PRIME_BITS).contains(&bits) {
        return Err(Error::PrimeBitsOutOfRange {
            bits,
            min: MIN_PRIME_BITS,
            max: MAX_PRIME_BITS,
        });
    }
    let mut out = Vec::with_capacity(count);
    let top = 1u64 << bits;
    let bottom = 1u64 << (bits - 1);
    // Largest candidate ≡ 1 mod two_n below 2^bits.
    let mut cand = top - two_n + 1;
    while out.len() < count && cand > bottom {
        if is_prime_vt(cand) && !exclude.contains(&cand) {
            out.push(cand);
        }
        cand = match cand.checked_sub(two_n) {
            Some(c) => c,
            None => break,
        };
    }
    if out.len() < count {
        return Err(Error::NotEnoughPrimes {
            bits,
            wanted: count,
            found: out.len(),
        });
    }
    Ok(out)
}

/// Primes for a chain of requested sizes: for each entry of `bit_sizes` in order, the largest
/// not yet used NTT-friendly prime of that size (below `2^bits`), skipping `exclude`.
pub fn generate_chain_vt(
    bit_sizes: &[u32],
    two_n: u64,
    exclude: &[u64],
) -> Result<Vec<u64>, Error> {
    let mut used: Vec<u64> = exclude.to_vec();
    let mut out = Vec::with_capacity(bit_sizes.len());
    for &bits in bit_sizes {
        let p = generate_primes_vt(bits, 1, two_n, &used)?;
        if let Some(&q) = p.first() {
            used.push(q);
            out.push(q);
        }
    }
    Ok(out)
}

/// The unused prime `q ≡ 1 mod two_n` nearest to `target` (searching outwards, below first on
/// ties), below `2^MAX_PRIME_BITS`. Variable time (public data).
pub fn nearest_prime_vt(target: f64, two_n: u64, exclude: &[u64]) -> Result<u64, Error> {
    let bits = libm::log2(target.max(2.0)) as u32 + 1;
    if !(MIN_PRIME_BITS..=MAX_PRIME_BITS).contains(&bits) {
        return Err(Error::PrimeBitsOutOfRange {
            bits,
            min: MIN_PRIME_BITS,
            max: MAX_PRIME_BITS,
        });
    }
    let base = (target as u64 / two_n) * two_n + 1;
    let ok = |c: u64| c < (1u64 << MAX_PRIME_BITS) && is_prime_vt(c) && !exclude.contains(&c);
    for k in 0..(1u64 << 20) {
        let (down, up) = (
            base.checked_sub(k * two_n),
            base.checked_add((k + 1) * two_n),
        );
        let mut cands: Vec<u64> = [down, up].into_iter().flatten().collect();
        cands.sort_by(|a, b| {
            (*a as f64 - target)
                .abs()
                .total_cmp(&(*b as f64 - target).abs())
        });
        if let Some(&c) = cands.iter().find(|&&c| ok(c)) {
            return Ok(c);
        }
    }
    Err(Error::NotEnoughPrimes {
        bits,
        wanted: 1,
        found: 0,
    })
}

/// A scale-tracking chain: `q_0` of `first_bits` bits, then `levels` rescaling primes chosen top
/// down so that the canonical scales `S_L = 2^log_scale`, `S_{l-1} = S_l² / q_l` stay at
/// `2^log_scale` to within the prime spacing (each `q_l` is the prime nearest `S_l² / 2^log_scale`).
/// Returned in chain order `q_0, q_1, …, q_L`.
pub fn generate_scale_chain_vt(
    first_bits: u32,
    log_scale: f64,
    levels: usize,
    two_n: u64,
    exclude: &[u64],
) -> Result<Vec<u64>, Error> {
    let mut used: Vec<u64> = exclude.to_vec();
    let q0 = generate_primes_vt(first_bits, 1, two_n, &used)?
        .first()
        .copied()
        .unwrap_or(0);
    used.push(q0);
    let delta = libm::exp2(log_scale);
    let mut s = delta;
    let mut top_down = Vec::with_capacity(levels);
    for _ in 0..levels {
        let q = nearest_prime_vt(s * s / delta, two_n, &used)?;
        used.push(q);
        top_down.push(q);
        s = s * s / q as f64;
    }
    Ok(core::iter::once(q0)
        .chain(top_down.into_iter().rev())
        .collect())
}

/// The canonical scale of every level for a chain and a top scale: `S_L = top`,
/// `S_{l-1} = S_l² / q_l`. Index `l` holds `S_l`.
pub fn canonical_scales(q: &[u64], top: f64) -> Vec<f64> {
    let mut out = alloc::vec![0.0; q.len()];
    let mut s = top;
    for (l, slot) in out.iter_mut().enumerate().rev() {
        *slot = s;
        if let Some(&ql) = q.get(l) {
            s = s * s / ql as f64;
        }
    }
    out
}

/// The canonical primitive `two_n`-th root of unity mod the prime `q` (`two_n` a power of two
/// dividing `q - 1`): the result of `log2(two_n) - 1` successive square roots of `-1 mod q`, each
/// computed by the Tonelli–Shanks algorithm with the least quadratic non-residue `z`
/// (textbook formulation: `c = z^Q`, `t = n^Q`, `r = n^((Q+1)/2)`).
///
/// This rule fixes the order of NTT-domain values for every backend, so NTT-domain data
/// (keys, ciphertexts) means the same thing on every build. Variable time (public data).
pub fn primitive_root_vt(q: u64, two_n: u64) -> Option<u64> {
    if two_n < 2 || !two_n.is_power_of_two() || !(q - 1).is_multiple_of(two_n) {
        return None;
    }
    // q - 1 = qq * 2^s.
    let s = (q - 1).trailing_zeros();
    let qq = (q - 1) >> s;
    let mut z = 2;
    while pow_mod_vt(z, (q - 1) / 2, q) != q - 1 {
        z += 1;
        if z >= q {
            return None;
        }
    }
    let mut root = q - 1;
    for _ in 1..two_n.trailing_zeros() {
        root = sqrt_tonelli_shanks_vt(q, qq, s, z, root)?;
    }
    Some(root)
}

fn sqrt_tonelli_shanks_vt(p: u64, qq: u64, s: u32, z: u64, n: u64) -> Option<u64> {
    let mut m = s;
    let mut c = pow_mod_vt(z, qq, p);
    let mut t = pow_mod_vt(n, qq, p);
    let mut r = pow_mod_vt(n, qq.div_ceil(2), p);
    loop {
        if t == 0 {
            return Some(0);
        }
        if t == 1 {
            return Some(r);
        }
        // Least i with t^(2^i) = 1.
        let mut i = 0;
        let mut tp = t;
        while tp != 1 {
            tp = mul_mod_vt(tp, tp, p);
            i += 1;
            if i == m {
                return None;
            }
        }
        let b = pow_mod_vt(c, 1u64 << (m - i - 1), p);
        m = i;
        c = mul_mod_vt(b, b, p);
        t = mul_mod_vt(t, c, p);
        r = mul_mod_vt(r, b, p);
    }
}

/// Reverses the lowest `bits` bits of `x`.
#[inline]
pub const fn bit_reverse(x: usize, bits: u32) -> usize {
    if bits == 0 {
        0
    } else {
        x.reverse_bits() >> (usize::BITS - bits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// NTT-friendly primes (≡ 1 mod 2^18) of 30 to 61 bits.
    fn test_moduli() -> Vec<Modulus> {
        [30, 40, 50, 55, 60, 61]
            .into_iter()
            .map(|b| Modulus::new(generate_primes_vt(b, 1, 1 << 18, &[]).unwrap()[0]).unwrap())
            .collect()
    }

    #[test]
    fn primality_known_values() {
        let primes = [
            2u64,
            3,
            5,
            97,
            65_537,
            2_147_483_647,
            18_446_744_073_709_551_557,
        ];
        let composites = [
            1u64,
            4,
            561,
            1_105,
            3_215_031_751,
            341_550_071_728_321,
            u64::MAX,
        ];
        for p in primes {
            assert!(is_prime_vt(p), "{p}");
        }
        for c in composites {
            assert!(!is_prime_vt(c), "{c}");
        }
        // Against trial division for small n.
        for n in 0u64..5000 {
            let trial = n >= 2 && (2..n).take_while(|d| d * d <= n).all(|d| n % d != 0);
            assert_eq!(is_prime_vt(n), trial, "{n}");
        }
    }

    #[test]
    fn generated_primes_are_deterministic_ntt_friendly_and_sized() {
        for bits in [30, 40, 50, 55, 60, 61] {
            let two_n = 1u64 << 17;
            let a = generate_primes_vt(bits, 4, two_n, &[]).unwrap();
            let b = generate_primes_vt(bits, 4, two_n, &[]).unwrap();
            assert_eq!(a, b);
            for w in a.windows(2) {
                assert!(w[0] > w[1]);
            }
            for q in a {
                assert!(is_prime_vt(q));
                assert_eq!(q % two_n, 1);
                assert_eq!(64 - q.leading_zeros(), bits);
            }
        }
        let chain = generate_chain_vt(&[50, 40, 40, 50], 1 << 14, &[]).unwrap();
        let mut sorted = chain.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 4, "chain primes must be distinct");
        assert!(matches!(
            generate_primes_vt(19, 1, 1 << 14, &[]),
            Err(Error::PrimeBitsOutOfRange { .. })
        ));
        assert!(matches!(
            generate_primes_vt(20, 1000, 1 << 17, &[]),
            Err(Error::NotEnoughPrimes { .. })
        ));
    }

    #[test]
    fn scale_chain_keeps_canonical_scales_near_the_target() {
        let chain = generate_scale_chain_vt(58, 42.0, 30, 1 << 17, &[]).unwrap();
        assert_eq!(chain.len(), 31);
        let mut sorted = chain.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 31);
        let scales = canonical_scales(&chain, libm::exp2(42.0));
        for (l, s) in scales.iter().enumerate() {
            let dev = (s / libm::exp2(42.0) - 1.0).abs();
            assert!(dev < 1e-5, "level {l}: relative deviation {dev}");
        }
        for &q in &chain {
            assert!(is_prime_vt(q) && q % (1 << 17) == 1);
        }
        // Plain primes below 2^42 drift exponentially under the same schedule.
        let plain = generate_chain_vt(
            &[58; 1].iter().copied().chain([42; 30]).collect::<Vec<_>>(),
            1 << 17,
            &[],
        )
        .unwrap();
        let drift = canonical_scales(&plain, libm::exp2(42.0))[0] / libm::exp2(42.0);
        assert!((drift - 1.0).abs() > 1e-2, "expected drift, got {drift}");
    }

    #[test]
    fn primitive_roots_have_exact_order() {
        for m in test_moduli() {
            let q = m.value();
            for log in [2u32, 5, 11, 17] {
                let two_n = 1u64 << log;
                let w = primitive_root_vt(q, two_n).unwrap();
                assert_eq!(pow_mod_vt(w, two_n, q), 1);
                assert_eq!(pow_mod_vt(w, two_n / 2, q), q - 1);
            }
        }
    }

    #[test]
    fn modulus_rejects_bad_values() {
        assert!(Modulus::new(4).is_err());
        assert!(Modulus::new(1 << 62).is_err());
        assert!(Modulus::new((1 << 20) + 2).is_err());
    }

    proptest! {
        #[test]
        fn ops_match_u128(i in 0usize..6, a in any::<u64>(), b in any::<u64>(), w in any::<u64>()) {
            let m = test_moduli()[i];
            let q = m.value();
            let (a, b, w) = (a % q, b % q, w % q);
            let qq = u128::from(q);
            prop_assert_eq!(u128::from(m.add(a, b)), (u128::from(a) + u128::from(b)) % qq);
            prop_assert_eq!(u128::from(m.sub(a, b)), (u128::from(a) + qq - u128::from(b)) % qq);
            prop_assert_eq!(u128::from(m.neg(a)), (qq - u128::from(a)) % qq);
            prop_assert_eq!(u128::from(m.mul(a, b)), u128::from(a) * u128::from(b) % qq);
            prop_assert_eq!(
                u128::from(m.mul_add(a, b, w)),
                (u128::from(a) * u128::from(b) + u128::from(w)) % qq
            );
            let ws = m.shoup(w);
            prop_assert_eq!(u128::from(m.mul_shoup(a, w, ws)), u128::from(a) * u128::from(w) % qq);
            let lazy = m.mul_shoup_lazy(a.wrapping_mul(4) | 3, w, ws);
            prop_assert!(lazy < 2 * q);
            prop_assert_eq!(
                u128::from(lazy) % qq,
                u128::from(a.wrapping_mul(4) | 3) * u128::from(w) % qq
            );
            let c = m.center(a);
            prop_assert!(c.unsigned_abs() <= q / 2);
            prop_assert_eq!((i128::from(c) - i128::from(a)).rem_euclid(i128::from(q)), 0);
        }

        #[test]
        fn reductions_match_u128(i in 0usize..6, x in any::<u128>(), y in any::<i64>()) {
            let m = test_moduli()[i];
            let q = u128::from(m.value());
            prop_assert_eq!(u128::from(m.reduce_u128_any(x)), x % q);
            let x = x >> 2; // documented input range: below 2^126
            prop_assert_eq!(u128::from(m.reduce_u128(x)), x % q);
            prop_assert_eq!(u128::from(m.reduce(x as u64)), u128::from(x as u64) % q);
            prop_assert_eq!(
                i128::from(m.reduce_i64(y)),
                i128::from(y).rem_euclid(q as i128)
            );
        }

        #[test]
        fn pow_inv_dot_match_reference(i in 0usize..6, a in 1u64.., e in any::<u64>(),
                                       xs in proptest::collection::vec(any::<u64>(), 0..40)) {
            let m = test_moduli()[i];
            let q = m.value();
            let a = a % q;
            prop_assert_eq!(m.pow(a, e), pow_mod_vt(a, e, q));
            if a != 0 {
                let inv = m.inv(a).unwrap();
                prop_assert_eq!(m.mul(a, inv), 1);
            } else {
                prop_assert!(m.inv(a).is_none());
            }
            let red: Vec<u64> = xs.iter().map(|x| x % q).collect();
            let rev: Vec<u64> = red.iter().rev().copied().collect();
            let want = red.iter().zip(&rev).fold(0u128, |acc, (x, y)| {
                (acc + u128::from(*x) * u128::from(*y)) % u128::from(q)
            });
            prop_assert_eq!(u128::from(m.dot(&red, &rev)), want);
        }
    }

    proptest! {
        #[test]
        fn barrett_at_every_width(
            bits in 11u32..=62, seed in any::<u64>(), a in any::<u64>(), b in any::<u64>(),
        ) {
            // Any odd modulus of `bits` bits (primality plays no part in the reductions).
            let q = (1u64 << (bits - 1)) | (seed & ((1u64 << (bits - 1)) - 1)) | 1;
            let m = Modulus::new(q).unwrap();
            let (a, b) = (a % q, b % q);
            let want = u128::from(a) * u128::from(b) % u128::from(q);
            prop_assert_eq!(u128::from(m.mul(a, b)), want);
            prop_assert_eq!(m.reduce(seed), seed % q);
            let top = q - 1;
            prop_assert_eq!(
                u128::from(m.mul_add(top, top, u64::MAX)),
                (u128::from(top) * u128::from(top) + u128::from(u64::MAX)) % u128::from(q)
            );
            // The largest documented input of reduce_u128.
            let x = (1u128 << 126) - 1 - u128::from(seed);
            prop_assert_eq!(u128::from(m.reduce_u128(x)), x % u128::from(q));
        }
    }

    #[test]
    fn bit_reverse_small() {
        assert_eq!(bit_reverse(1, 3), 4);
        assert_eq!(bit_reverse(6, 3), 3);
        assert_eq!(bit_reverse(0, 0), 0);
    }
}
