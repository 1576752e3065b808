//! The CKKS canonical embedding as a special FFT over the rotation group, in pure `f64`.
//!
//! Let `n = slots` (a power of two), `m = 4n`, `ξ = exp(2πi/m)` and `g_j = 5^j mod m` for
//! `j = 0..n`. A real polynomial `p(Y)` of degree `< 2n` (inside the ring of dimension `N`,
//! `Y = X^{N/(2n)}`) has the slot values `z_j = p(ξ^{g_j})`.
//!
//! Because every `g_j ≡ 1 (mod 4)`, `ξ^{g_j·n} = i`, so
//! `p(ξ^{g_j}) = Σ_{k<n} (p_k + i·p_{k+n}) · ξ^{g_j·k}`: the `2n` real coefficients fold into
//! `n` complex ones `v_k = p_k + i·p_{k+n}`, and decoding is the evaluation of the complex
//! polynomial `V(Y) = Σ v_k Y^k` at the `n` points `ξ^{g_j}`. [`SlotFft::coeffs_to_slots`]
//! does this in `O(n log n)` (decimation in time: input in bit-reversed order, output directly
//! in rotation-group order); [`SlotFft::slots_to_coeffs`] is its exact inverse.
//!
//! The ordering by powers of 5 is what makes rotations work: the automorphism `Y → Y^5` of the
//! ring rotates the slots left by one, and `Y → Y^{-1}` conjugates them (see the tests).

use alloc::vec::Vec;
use core::f64::consts::PI;
use core::ops::{Add, AddAssign, Mul, MulAssign, Neg, Sub, SubAssign};

use crate::Error;

/// A complex number in `f64`, just enough for the canonical embedding.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Complex {
    /// Real part.
    pub re: f64,
    /// Imaginary part.
    pub im: f64,
}

impl Complex {
    /// `0`.
    pub const ZERO: Self = Self::new(0.0, 0.0);
    /// `1`.
    pub const ONE: Self = Self::new(1.0, 0.0);
    /// The imaginary unit `i`.
    pub const I: Self = Self::new(0.0, 1.0);

    /// `re + i·im`.
    #[must_use]
    pub const fn new(re: f64, im: f64) -> Self {
        Self { re, im }
    }

    /// `r · exp(i·theta)`, with `libm` sine and cosine.
    #[must_use]
    pub fn from_polar(r: f64, theta: f64) -> Self {
        Self::new(r * libm::cos(theta), r * libm::sin(theta))
    }

    /// The complex conjugate `re − i·im`.
    #[must_use]
    pub const fn conj(self) -> Self {
        Self::new(self.re, -self.im)
    }

    /// Multiplication by a real number.
    #[must_use]
    pub const fn scale(self, s: f64) -> Self {
        Self::new(self.re * s, self.im * s)
    }

    /// Multiplication by `i` (exact: a swap and a sign change).
    #[must_use]
    pub const fn mul_i(self) -> Self {
        Self::new(-self.im, self.re)
    }

    /// `|z|²`.
    #[must_use]
    pub const fn norm_sqr(self) -> f64 {
        self.re * self.re + self.im * self.im
    }

    /// `|z|`, computed without undue overflow (`libm::hypot`).
    #[must_use]
    pub fn abs(self) -> f64 {
        libm::hypot(self.re, self.im)
    }
}

impl Add for Complex {
    type Output = Self;
    #[inline]
    fn add(self, rhs: Self) -> Self {
        Self::new(self.re + rhs.re, self.im + rhs.im)
    }
}

impl Sub for Complex {
    type Output = Self;
    #[inline]
    fn sub(self, rhs: Self) -> Self {
        Self::new(self.re - rhs.re, self.im - rhs.im)
    }
}

impl Mul for Complex {
    type Output = Self;
    #[inline]
    fn mul(self, rhs: Self) -> Self {
        Self::new(
            self.re * rhs.re - self.im * rhs.im,
            self.re * rhs.im + self.im * rhs.re,
        )
    }
}

impl Neg for Complex {
    type Output = Self;
    #[inline]
    fn neg(self) -> Self {
        Self::new(-self.re, -self.im)
    }
}

impl AddAssign for Complex {
    #[inline]
    fn add_assign(&mut self, rhs: Self) {
        *self = *self + rhs;
    }
}

impl SubAssign for Complex {
    #[inline]
    fn sub_assign(&mut self, rhs: Self) {
        *self = *self - rhs;
    }
}

impl MulAssign for Complex {
    #[inline]
    fn mul_assign(&mut self, rhs: Self) {
        *self = *self * rhs;
    }
}

/// `exp(2πi·k/m)` for `m` a multiple of 4, computed from the angle (never by repeated
/// multiplication). The quarter turns are applied exactly, so `sin`/`cos` only ever see angles
/// in `[0, π/2)`, and powers such as `ξ^{m/4} = i` come out exact.
fn root_of_unity(k: usize, m: usize) -> Complex {
    let quarter = m / 4;
    let k = k % m;
    let (quadrant, r) = (k / quarter, k % quarter);
    // `r < m/4 ≤ 2^16` and `m ≤ 2^18`: both convert to f64 exactly.
    let base = Complex::from_polar(1.0, 2.0 * PI * (r as f64) / (m as f64));
    match quadrant {
        0 => base,
        1 => base.mul_i(),
        2 => -base,
        _ => -base.mul_i(),
    }
}

/// The special FFT of CKKS for a fixed power-of-two slot count: twiddles, rotation group and
/// bit-reversal permutation are computed once in [`SlotFft::new`]; the transforms work in place
/// and allocate nothing.
#[derive(Clone, Debug)]
pub struct SlotFft {
    slots: usize,
    /// `g_j = 5^j mod 4·slots`, `j = 0..slots`.
    rotation_group: Vec<usize>,
    /// One twiddle table per butterfly stage, smallest first. The stage joining halves of
    /// length `h` (blocks of `2h`) holds `ξ_{2h}^{g_j mod 8h}` for `j < h`, with
    /// `ξ_{2h} = exp(2πi/8h)`.
    stages: Vec<Vec<Complex>>,
    /// Pairs `(i, rev(i))` with `i < rev(i)`: the swaps of the bit-reversal permutation.
    swaps: Vec<(u32, u32)>,
}

impl SlotFft {
    /// The largest supported slot count, `2^16` (full slots at ring dimension `N = 2^17`).
    pub const MAX_SLOTS: usize = 1 << 16;

    /// Precomputes the transform for `slots` slots.
    ///
    /// # Errors
    /// [`Error::InvalidSlots`] if `slots` is not a power of two in `1..=MAX_SLOTS`.
    pub fn new(slots: usize) -> Result<Self, Error> {
        if !slots.is_power_of_two() || slots > Self::MAX_SLOTS {
            return Err(Error::InvalidSlots {
                slots,
                max: Self::MAX_SLOTS,
            });
        }
        let m = 4 * slots;
        let mut rotation_group = Vec::with_capacity(slots);
        let mut g = 1usize;
        for _ in 0..slots {
            rotation_group.push(g);
            g = (g * 5) % m;
        }

        let mut stages = Vec::new();
        let mut h = 1usize;
        while h < slots {
            let lenq = 8 * h; // 4 × the block length 2h
            let stride = m / lenq;
            let twiddles = rotation_group
                .iter()
                .take(h)
                .map(|&g| root_of_unity((g % lenq) * stride, m))
                .collect();
            stages.push(twiddles);
            h *= 2;
        }

        let log_n = slots.trailing_zeros();
        let swaps = (0..slots)
            .filter_map(|i| {
                let r = i
                    .reverse_bits()
                    .checked_shr(usize::BITS - log_n)
                    .unwrap_or(0);
                // `slots ≤ 2^16`, so both indices fit in u32.
                (i < r).then_some((i as u32, r as u32))
            })
            .collect();

        Ok(Self {
            slots,
            rotation_group,
            stages,
            swaps,
        })
    }

    /// The number of slots `n`.
    #[must_use]
    pub const fn slots(&self) -> usize {
        self.slots
    }

    /// The rotation group `g_j = 5^j mod 4n`, `j = 0..n`: slot `j` is the evaluation at
    /// `ξ^{g_j}`.
    #[must_use]
    pub fn rotation_group(&self) -> &[usize] {
        &self.rotation_group
    }

    /// The twiddles of each butterfly stage, smallest first: stage `s` joins halves of length
    /// `h = 2^s` and holds `h` twiddles (see [`SlotFft::coeffs_to_slots`]). Bootstrapping builds
    /// its homomorphic transforms from them.
    pub(crate) fn stage_twiddles(&self) -> &[Vec<Complex>] {
        &self.stages
    }

    fn check_len(&self, v: &[Complex]) -> Result<(), Error> {
        if v.len() == self.slots {
            Ok(())
        } else {
            Err(Error::LengthMismatch {
                what: "slot vector",
                expected: self.slots,
                found: v.len(),
            })
        }
    }

    fn bit_reverse(&self, v: &mut [Complex]) {
        for &(i, j) in &self.swaps {
            v.swap(i as usize, j as usize);
        }
    }

    /// Decoding: from folded coefficients to slots, in place.
    ///
    /// On input `v[i] = p_i + i·p_{i+n}` (real parts: coefficients `0..n`, imaginary parts:
    /// coefficients `n..2n`); on output `v[j] = z_j = p(ξ^{5^j})`.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] if `v.len() != slots`.
    pub fn coeffs_to_slots(&self, v: &mut [Complex]) -> Result<(), Error> {
        self.check_len(v)?;
        self.bit_reverse(v);
        for twiddles in &self.stages {
            let h = twiddles.len();
            for block in v.chunks_exact_mut(2 * h) {
                let (lo, hi) = block.split_at_mut(h);
                for ((a, b), &w) in lo.iter_mut().zip(hi.iter_mut()).zip(twiddles) {
                    let u = *a;
                    let t = *b * w;
                    *a = u + t;
                    *b = u - t;
                }
            }
        }
        Ok(())
    }

    /// Encoding: from slots to folded coefficients, in place; the exact inverse of
    /// [`SlotFft::coeffs_to_slots`], including the `1/n` normalisation.
    ///
    /// On input `v[j] = z_j`; on output `v[i] = p_i + i·p_{i+n}`. The coefficients are real
    /// numbers; rounding them at a scale is the caller's business.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] if `v.len() != slots`.
    pub fn slots_to_coeffs(&self, v: &mut [Complex]) -> Result<(), Error> {
        self.check_len(v)?;
        for twiddles in self.stages.iter().rev() {
            let h = twiddles.len();
            for block in v.chunks_exact_mut(2 * h) {
                let (lo, hi) = block.split_at_mut(h);
                for ((a, b), &w) in lo.iter_mut().zip(hi.iter_mut()).zip(twiddles) {
                    let (x, y) = (*a, *b);
                    *a = x + y;
                    *b = (x - y) * w.conj();
                }
            }
        }
        self.bit_reverse(v);
        // A power of two: the scaling is exact.
        let inv_n = 1.0 / self.slots as f64;
        for x in v.iter_mut() {
            *x = x.scale(inv_n);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use rand_chacha::ChaCha20Rng;
    use rand_core::{RngCore, SeedableRng};

    /// Uniform in [-1, 1).
    fn unit(rng: &mut ChaCha20Rng) -> f64 {
        (rng.next_u64() >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }

    fn random_coeffs(rng: &mut ChaCha20Rng, n: usize) -> Vec<f64> {
        (0..2 * n).map(|_| unit(rng)).collect()
    }

    /// Folds 2n real coefficients into n complex ones.
    fn fold(p: &[f64]) -> Vec<Complex> {
        let n = p.len() / 2;
        (0..n).map(|i| Complex::new(p[i], p[i + n])).collect()
    }

    fn unfold(v: &[Complex]) -> Vec<f64> {
        v.iter()
            .map(|c| c.re)
            .chain(v.iter().map(|c| c.im))
            .collect()
    }

    /// `exp(2πi t/m)` straight from libm, independent of `root_of_unity`.
    fn powers(m: usize) -> Vec<Complex> {
        (0..m)
            .map(|t| Complex::from_polar(1.0, 2.0 * PI * t as f64 / m as f64))
            .collect()
    }

    /// `p(ξ^e)` for a real polynomial of degree < 2n, `ξ = exp(2πi/4n)`, O(n).
    fn eval(p: &[f64], e: usize, pow: &[Complex]) -> Complex {
        let m = pow.len();
        p.iter().enumerate().fold(Complex::ZERO, |acc, (k, &c)| {
            acc + pow[(e * k) % m].scale(c)
        })
    }

    /// Naive O(n²) decoding: `z_j = Σ_k p_k ξ^{g_j k}`.
    fn naive_slots(p: &[f64]) -> Vec<Complex> {
        let n = p.len() / 2;
        let m = 4 * n;
        let pow = powers(m);
        let mut g = 1usize;
        (0..n)
            .map(|_| {
                let z = eval(p, g, &pow);
                g = g * 5 % m;
                z
            })
            .collect()
    }

    fn max_abs_diff(a: &[Complex], b: &[Complex]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (*x - *y).abs())
            .fold(0.0, f64::max)
    }

    fn max_abs(a: &[Complex]) -> f64 {
        a.iter().map(|x| x.abs()).fold(0.0, f64::max)
    }

    /// `p(Y^e) mod (Y^{2n} + 1)` for odd `e`: coefficient k moves to `e·k mod 4n`, with a sign
    /// flip when that lands in `[2n, 4n)`.
    fn automorphism(p: &[f64], e: usize) -> Vec<f64> {
        let two_n = p.len();
        let m = 2 * two_n;
        let mut q = vec![0.0; two_n];
        for (k, &c) in p.iter().enumerate() {
            let t = e * k % m;
            if t < two_n {
                q[t] += c;
            } else {
                q[t - two_n] -= c;
            }
        }
        q
    }

    const SIZES: [usize; 6] = [1, 2, 4, 8, 64, 1024];

    #[test]
    fn rejects_bad_slot_counts() {
        for slots in [0, 3, 6, 1000, SlotFft::MAX_SLOTS * 2, usize::MAX] {
            assert_eq!(
                SlotFft::new(slots).err(),
                Some(Error::InvalidSlots {
                    slots,
                    max: SlotFft::MAX_SLOTS
                })
            );
        }
        assert!(SlotFft::new(SlotFft::MAX_SLOTS).is_ok());
    }

    #[test]
    fn rejects_wrong_length() {
        let fft = SlotFft::new(8).unwrap();
        for len in [0, 7, 9, 16] {
            let mut v = vec![Complex::ZERO; len];
            let err = Error::LengthMismatch {
                what: "slot vector",
                expected: 8,
                found: len,
            };
            assert_eq!(fft.coeffs_to_slots(&mut v), Err(err.clone()));
            assert_eq!(fft.slots_to_coeffs(&mut v), Err(err));
        }
    }

    #[test]
    fn rotation_group_is_powers_of_five() {
        let fft = SlotFft::new(16).unwrap();
        let g = fft.rotation_group();
        assert_eq!(&g[..5], &[1, 5, 25, 125 % 64, 625 % 64]);
        // The group {5^j} is exactly the residues ≡ 1 mod 4.
        let mut sorted = g.to_vec();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..16).map(|t| 4 * t + 1).collect::<Vec<_>>());
    }

    #[test]
    fn root_of_unity_exact_quarters() {
        assert_eq!(root_of_unity(0, 8), Complex::ONE);
        assert_eq!(root_of_unity(2, 8), Complex::I);
        assert_eq!(root_of_unity(4, 8), -Complex::ONE);
        assert_eq!(root_of_unity(6, 8), -Complex::I);
        assert_eq!(root_of_unity(8 + 2, 8), Complex::I);
    }

    #[test]
    fn decoding_matches_naive_evaluation() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        for n in SIZES {
            let fft = SlotFft::new(n).unwrap();
            let p = random_coeffs(&mut rng, n);
            let expected = naive_slots(&p);
            let mut v = fold(&p);
            fft.coeffs_to_slots(&mut v).unwrap();
            let rel = max_abs_diff(&v, &expected) / max_abs(&expected);
            std::println!("slots {n:5}: coeffs_to_slots vs naive, relative error {rel:.2e}");
            assert!(rel <= 1e-9, "slots {n}: relative error {rel:e}");
        }
    }

    #[test]
    fn encoding_inverts_naive_evaluation() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        for n in SIZES {
            let fft = SlotFft::new(n).unwrap();
            let p = random_coeffs(&mut rng, n);
            let mut v = naive_slots(&p);
            fft.slots_to_coeffs(&mut v).unwrap();
            let got = unfold(&v);
            let err = got
                .iter()
                .zip(&p)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            std::println!("slots {n:5}: slots_to_coeffs vs naive, max error {err:.2e}");
            assert!(err <= 1e-9, "slots {n}: error {err:e}");
        }
    }

    /// −log2 of the worst absolute error of slots → coefficients → slots, slots in the unit
    /// square.
    fn round_trip_bits(n: usize, seed: u64) -> f64 {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let fft = SlotFft::new(n).unwrap();
        let z: Vec<Complex> = (0..n)
            .map(|_| Complex::new(unit(&mut rng), unit(&mut rng)))
            .collect();
        let mut v = z.clone();
        fft.slots_to_coeffs(&mut v).unwrap();
        fft.coeffs_to_slots(&mut v).unwrap();
        -libm::log2(max_abs_diff(&v, &z))
    }

    #[test]
    fn round_trip_precision_in_bits() {
        for log_n in [0, 1, 4, 10, 15, 16] {
            let bits = round_trip_bits(1 << log_n, 3 + log_n);
            std::println!("slots 2^{log_n:2}: round trip precision {bits:.1} bits");
            assert!(bits >= 45.0, "2^{log_n} slots: only {bits:.1} bits");
        }
    }

    #[test]
    fn conjugate_points_give_conjugate_slots() {
        // For a real p, p(ξ^{-g}) = conj(p(ξ^g)): the other n points of the embedding carry no
        // extra information, which is why n complex slots fit 2n real coefficients.
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        for n in [1, 8, 256] {
            let fft = SlotFft::new(n).unwrap();
            let m = 4 * n;
            let pow = powers(m);
            let p = random_coeffs(&mut rng, n);
            let mut z = fold(&p);
            fft.coeffs_to_slots(&mut z).unwrap();
            for (&g, zj) in fft.rotation_group().iter().zip(&z) {
                let at_conj = eval(&p, m - g, &pow);
                assert!(
                    (at_conj - zj.conj()).abs() <= 1e-9 * (1.0 + zj.abs()),
                    "n {n}, g {g}"
                );
            }
        }
    }

    #[test]
    fn real_slots_give_antisymmetric_coefficients() {
        // Real slots mean p(Y^{-1}) = p(Y) in the ring, i.e. p_{2n-k} = -p_k for 0 < k < 2n
        // (so p_n = 0); imaginary slots give p_{2n-k} = p_k and p_0 = 0.
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        for n in [1, 2, 16, 512] {
            let fft = SlotFft::new(n).unwrap();
            for imaginary in [false, true] {
                let mut v: Vec<Complex> = (0..n)
                    .map(|_| {
                        let x = unit(&mut rng);
                        if imaginary {
                            Complex::new(0.0, x)
                        } else {
                            Complex::new(x, 0.0)
                        }
                    })
                    .collect();
                fft.slots_to_coeffs(&mut v).unwrap();
                let p = unfold(&v);
                let sign = if imaginary { 1.0 } else { -1.0 };
                for k in 1..2 * n {
                    let d = p[2 * n - k] - sign * p[k];
                    assert!(
                        d.abs() <= 1e-12,
                        "n {n}, k {k}, imaginary {imaginary}: {d:e}"
                    );
                }
                let fixed = if imaginary { p[0] } else { p[n] };
                assert!(
                    fixed.abs() <= 1e-12,
                    "n {n}, imaginary {imaginary}: {fixed:e}"
                );
            }
        }
    }

    #[test]
    fn automorphism_five_rotates_slots_left() {
        let mut rng = ChaCha20Rng::seed_from_u64(6);
        for n in [1, 2, 4, 8, 64, 1024, 4096] {
            let fft = SlotFft::new(n).unwrap();
            let p = random_coeffs(&mut rng, n);
            let mut z = fold(&p);
            fft.coeffs_to_slots(&mut z).unwrap();

            // Y → Y^5 rotates left by one.
            let mut zr = fold(&automorphism(&p, 5));
            fft.coeffs_to_slots(&mut zr).unwrap();
            let mut expected = z.clone();
            expected.rotate_left(1);
            let err = max_abs_diff(&zr, &expected) / max_abs(&z);
            assert!(err <= 1e-9, "n {n}: rotation error {err:e}");

            // Y → Y^{5^r} rotates left by r.
            let r = n / 2 + 1;
            let e = (0..r).fold(1usize, |acc, _| acc * 5 % (4 * n));
            let mut zr = fold(&automorphism(&p, e));
            fft.coeffs_to_slots(&mut zr).unwrap();
            let mut expected = z.clone();
            expected.rotate_left(r % n);
            let err = max_abs_diff(&zr, &expected) / max_abs(&z);
            assert!(err <= 1e-9, "n {n}: rotation by {r} error {err:e}");

            // Y → Y^{-1} = Y^{4n-1} conjugates every slot.
            let mut zc = fold(&automorphism(&p, 4 * n - 1));
            fft.coeffs_to_slots(&mut zc).unwrap();
            let expected: Vec<Complex> = z.iter().map(|x| x.conj()).collect();
            let err = max_abs_diff(&zc, &expected) / max_abs(&z);
            assert!(err <= 1e-9, "n {n}: conjugation error {err:e}");
        }
    }

    #[test]
    fn rotation_test_detects_a_wrong_direction() {
        // Guard on the test itself: with n ≥ 4 slots, rotating right instead of left is caught.
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let n = 8;
        let fft = SlotFft::new(n).unwrap();
        let p = random_coeffs(&mut rng, n);
        let mut z = fold(&p);
        fft.coeffs_to_slots(&mut z).unwrap();
        let mut zr = fold(&automorphism(&p, 5));
        fft.coeffs_to_slots(&mut zr).unwrap();
        let mut wrong = z.clone();
        wrong.rotate_right(1);
        assert!(max_abs_diff(&zr, &wrong) > 1e-3);
    }

    #[test]
    fn complex_arithmetic() {
        let a = Complex::new(1.5, -2.0);
        let b = Complex::new(-0.5, 3.0);
        assert_eq!(a + b, Complex::new(1.0, 1.0));
        assert_eq!(a - b, Complex::new(2.0, -5.0));
        assert_eq!(a * b, Complex::new(-0.75 + 6.0, 4.5 + 1.0));
        assert_eq!(-a, Complex::new(-1.5, 2.0));
        assert_eq!(a.conj(), Complex::new(1.5, 2.0));
        assert_eq!(a.scale(2.0), Complex::new(3.0, -4.0));
        assert_eq!(a.mul_i(), a * Complex::I);
        assert_eq!(Complex::new(3.0, 4.0).abs(), 5.0);
        assert_eq!(Complex::new(3.0, 4.0).norm_sqr(), 25.0);
        let mut c = a;
        c += b;
        c -= b;
        c *= Complex::ONE;
        assert_eq!(c, a);
        let w = Complex::from_polar(2.0, PI / 2.0);
        assert!((w - Complex::new(0.0, 2.0)).abs() < 1e-15);
    }
}
