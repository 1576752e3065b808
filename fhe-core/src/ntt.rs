//! The negacyclic number-theoretic transform over `Z_q[X]/(X^N + 1)`, `N = 2^10 … 2^17`.
//!
//! One type, [`NttTable`], per (prime, N). Two backends compute the same function:
//! - **own**: Harvey's lazy butterflies (values kept in `[0, 4q)`, Shoup multiplication by
//!   precomputed twiddles), Cooley–Tukey forward and Gentleman–Sande inverse; always compiled,
//!   the reference, and the one used without `std`;
//! - **tfhe-ntt** (feature `tfhe-ntt`, on with `std`): SIMD (AVX2 / AVX-512 / IFMA) kernels,
//!   selected at run time.
//!
//! Output order (both backends): entry `i` of the forward transform of `p` is
//! `p(ψ^(2·bitrev(i)+1))`, with `ψ` the canonical primitive `2N`-th root of
//! [`crate::math::primitive_root_vt`]. The tfhe-ntt backend is enabled for a prime only after
//! checking at construction that it computes exactly this, so NTT-domain data means the same on
//! every build (an edge board without `std` and the cloud with SIMD).

use alloc::vec::Vec;

use crate::Error;
use crate::math::{Modulus, bit_reverse, csub, primitive_root_vt};

/// Smallest supported `log2 N`.
pub const MIN_LOG_N: u32 = 10;
/// Largest supported `log2 N`.
pub const MAX_LOG_N: u32 = 17;

/// Which implementation an [`NttTable`] uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NttBackend {
    /// The crate's own lazy Harvey NTT.
    Own,
    /// The `tfhe-ntt` crate's SIMD NTT.
    TfheNtt,
}

/// Precomputed tables for the negacyclic NTT of one prime and one ring dimension.
pub struct NttTable {
    n: usize,
    log_n: u32,
    modulus: Modulus,
    psi: u64,
    /// `ψ^bitrev(k)` and Shoup constants, `k = 0..N`.
    fwd: Vec<u64>,
    fwd_shoup: Vec<u64>,
    /// `ψ^-bitrev(k)` and Shoup constants.
    inv: Vec<u64>,
    inv_shoup: Vec<u64>,
    n_inv: u64,
    n_inv_shoup: u64,
    #[cfg(feature = "tfhe-ntt")]
    plan: Option<tfhe_ntt::prime64::Plan>,
}

impl core::fmt::Debug for NttTable {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("NttTable")
            .field("n", &self.n)
            .field("q", &self.modulus.value())
            .field("backend", &self.backend())
            .finish()
    }
}

impl NttTable {
    /// Tables for the prime `modulus` (must be ≡ 1 mod 2N) and `N = 2^log_n`, using the fastest
    /// backend compiled in that computes the canonical transform.
    pub fn new(modulus: Modulus, log_n: u32) -> Result<Self, Error> {
        let mut t = Self::new_own(modulus, log_n)?;
        #[cfg(feature = "tfhe-ntt")]
        {
            t.plan = t.checked_tfhe_plan();
        }
        #[cfg(not(feature = "tfhe-ntt"))]
        let _ = &mut t;
        Ok(t)
    }

    /// Tables that always use the own backend (reference; tests and benchmarks).
    pub fn new_own(modulus: Modulus, log_n: u32) -> Result<Self, Error> {
        if !(MIN_LOG_N..=MAX_LOG_N).contains(&log_n) {
            return Err(Error::LogNOutOfRange {
                log_n,
                min: MIN_LOG_N,
                max: MAX_LOG_N,
            });
        }
        let n = 1usize << log_n;
        let q = modulus.value();
        let two_n = 2 * n as u64;
        if q % two_n != 1 {
            return Err(Error::NotNttFriendly { modulus: q, two_n });
        }
        let psi = primitive_root_vt(q, two_n).ok_or(Error::NotPrime { modulus: q })?;
        let psi_inv = modulus.inv(psi).ok_or(Error::NotPrime { modulus: q })?;
        let mut fwd = alloc::vec![0u64; n];
        let mut inv = alloc::vec![0u64; n];
        let (mut p, mut pi) = (1u64, 1u64);
        for k in 0..n {
            let r = bit_reverse(k, log_n);
            if let (Some(f), Some(i)) = (fwd.get_mut(r), inv.get_mut(r)) {
                *f = p;
                *i = pi;
            }
            p = modulus.mul(p, psi);
            pi = modulus.mul(pi, psi_inv);
        }
        let fwd_shoup = fwd.iter().map(|&w| modulus.shoup(w)).collect();
        let inv_shoup = inv.iter().map(|&w| modulus.shoup(w)).collect();
        let n_inv = modulus
            .inv(n as u64)
            .ok_or(Error::NotPrime { modulus: q })?;
        Ok(Self {
            n,
            log_n,
            modulus,
            psi,
            fwd,
            fwd_shoup,
            inv,
            inv_shoup,
            n_inv,
            n_inv_shoup: modulus.shoup(n_inv),
            #[cfg(feature = "tfhe-ntt")]
            plan: None,
        })
    }

    /// A tfhe-ntt plan for this prime, kept only if it computes exactly the own transform.
    #[cfg(feature = "tfhe-ntt")]
    fn checked_tfhe_plan(&self) -> Option<tfhe_ntt::prime64::Plan> {
        let plan = tfhe_ntt::prime64::Plan::try_new(self.n, self.modulus.value())?;
        // A deterministic test polynomial with every coefficient in use.
        let q = self.modulus.value();
        let mut a: Vec<u64> = (0..self.n as u64)
            .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17) % q)
            .collect();
        let mut b = a.clone();
        self.forward_own(&mut a);
        plan.fwd(&mut b);
        if a != b {
            return None;
        }
        plan.inv(&mut b);
        plan.normalize(&mut b);
        self.inverse_own(&mut a);
        (a == b).then_some(plan)
    }

    /// The ring dimension N.
    pub fn n(&self) -> usize {
        self.n
    }

    /// `log2 N`.
    pub fn log_n(&self) -> u32 {
        self.log_n
    }

    /// The prime.
    pub fn modulus(&self) -> &Modulus {
        &self.modulus
    }

    /// The canonical primitive `2N`-th root of unity ψ.
    pub fn psi(&self) -> u64 {
        self.psi
    }

    /// The backend in use.
    pub fn backend(&self) -> NttBackend {
        #[cfg(feature = "tfhe-ntt")]
        if self.plan.is_some() {
            return NttBackend::TfheNtt;
        }
        NttBackend::Own
    }

    fn check_len(&self, a: &[u64]) -> Result<(), Error> {
        if a.len() == self.n {
            Ok(())
        } else {
            Err(Error::LengthMismatch {
                what: "NTT input",
                expected: self.n,
                found: a.len(),
            })
        }
    }

    /// Forward transform in place: coefficients in `[0, q)` → evaluations in `[0, q)`,
    /// bit-reversed order (see the module docs). `a` must have length N.
    pub fn forward(&self, a: &mut [u64]) -> Result<(), Error> {
        self.check_len(a)?;
        #[cfg(feature = "tfhe-ntt")]
        if let Some(plan) = &self.plan {
            plan.fwd(a);
            return Ok(());
        }
        self.forward_own(a);
        Ok(())
    }

    /// Inverse transform in place (including the `1/N` factor), outputs in `[0, q)`.
    pub fn inverse(&self, a: &mut [u64]) -> Result<(), Error> {
        self.check_len(a)?;
        #[cfg(feature = "tfhe-ntt")]
        if let Some(plan) = &self.plan {
            plan.inv(a);
            plan.normalize(a);
            return Ok(());
        }
        self.inverse_own(a);
        Ok(())
    }

    /// The own backend's forward transform (for any length-N slice; other lengths are a
    /// caller bug and leave trailing entries untransformed). Inputs may be lazy, in `[0, 4q)`.
    pub fn forward_own(&self, a: &mut [u64]) {
        let q = self.modulus.value();
        let two_q = 2 * q;
        let mut m = 1usize;
        let mut t = self.n;
        while m < self.n {
            t >>= 1;
            let tw = self.fwd.iter().zip(&self.fwd_shoup).skip(m).take(m);
            for (block, (&w, &ws)) in a.chunks_exact_mut(2 * t).zip(tw) {
                let (lo, hi) = block.split_at_mut(t);
                for (x, y) in lo.iter_mut().zip(hi.iter_mut()) {
                    let u = csub(*x, two_q);
                    let v = self.modulus.mul_shoup_lazy(*y, w, ws);
                    *x = u + v;
                    *y = u + two_q - v;
                }
            }
            m <<= 1;
        }
        for x in a.iter_mut() {
            *x = csub(csub(*x, two_q), q);
        }
    }

    /// The own backend's inverse transform. Inputs may be lazy, in `[0, 2q)`.
    pub fn inverse_own(&self, a: &mut [u64]) {
        let q = self.modulus.value();
        let two_q = 2 * q;
        let mut m = self.n >> 1;
        let mut t = 1usize;
        while m >= 1 {
            let tw = self.inv.iter().zip(&self.inv_shoup).skip(m).take(m);
            for (block, (&w, &ws)) in a.chunks_exact_mut(2 * t).zip(tw) {
                let (lo, hi) = block.split_at_mut(t);
                for (x, y) in lo.iter_mut().zip(hi.iter_mut()) {
                    let (u, v) = (*x, *y);
                    *x = csub(u + v, two_q);
                    *y = self.modulus.mul_shoup_lazy(u + two_q - v, w, ws);
                }
            }
            t <<= 1;
            m >>= 1;
        }
        for x in a.iter_mut() {
            *x = self.modulus.mul_shoup(*x, self.n_inv, self.n_inv_shoup);
        }
    }
}

/// The evaluation exponent of NTT index `i`: entry `i` holds `p(ψ^e)` with this `e`
/// (odd, in `[1, 2N)`).
#[inline]
pub fn eval_exponent(i: usize, log_n: u32) -> usize {
    2 * bit_reverse(i, log_n) + 1
}

/// The index permutation realising the automorphism `X → X^k` (`k` odd) in the NTT domain:
/// `out[i] = in[perm[i]]`.
pub fn automorphism_permutation(log_n: u32, k: usize) -> Vec<usize> {
    let n = 1usize << log_n;
    let mask = 2 * n - 1;
    (0..n)
        .map(|i| {
            let e = (eval_exponent(i, log_n) * k) & mask;
            bit_reverse((e - 1) >> 1, log_n)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::math::{generate_primes_vt, pow_mod_vt};
    use alloc::vec;
    use proptest::prelude::*;
    use rand_chacha::ChaCha8Rng;
    use rand_core::{RngCore, SeedableRng};

    fn table(bits: u32, log_n: u32) -> NttTable {
        let q = generate_primes_vt(bits, 1, 2 << log_n, &[]).unwrap()[0];
        NttTable::new(Modulus::new(q).unwrap(), log_n).unwrap()
    }

    fn random_poly(rng: &mut ChaCha8Rng, n: usize, q: u64) -> Vec<u64> {
        (0..n).map(|_| rng.next_u64() % q).collect()
    }

    /// Schoolbook negacyclic product, the reference.
    fn negacyclic_schoolbook(a: &[u64], b: &[u64], q: u64) -> Vec<u64> {
        let n = a.len();
        let mut out = vec![0u128; n];
        let qq = u128::from(q);
        for (i, &x) in a.iter().enumerate() {
            for (j, &y) in b.iter().enumerate() {
                let p = u128::from(x) * u128::from(y) % qq;
                let k = i + j;
                if k < n {
                    out[k] = (out[k] + p) % qq;
                } else {
                    out[k - n] = (out[k - n] + qq - p) % qq;
                }
            }
        }
        out.into_iter().map(|x| x as u64).collect()
    }

    #[test]
    fn rejects_bad_sizes_and_primes() {
        let q = generate_primes_vt(40, 1, 1 << 11, &[]).unwrap()[0];
        let m = Modulus::new(q).unwrap();
        assert!(matches!(
            NttTable::new(m, 9),
            Err(Error::LogNOutOfRange { .. })
        ));
        assert!(matches!(
            NttTable::new(m, 18),
            Err(Error::LogNOutOfRange { .. })
        ));
        // q ≡ 1 mod 2^11 but (most likely) not mod 2^17: find one that is not.
        let q2 = generate_primes_vt(40, 8, 1 << 11, &[])
            .unwrap()
            .into_iter()
            .find(|q| q % (1 << 17) != 1)
            .unwrap();
        assert!(matches!(
            NttTable::new(Modulus::new(q2).unwrap(), 16),
            Err(Error::NotNttFriendly { .. })
        ));
        let t = table(40, 10);
        assert!(t.forward(&mut [0u64; 3]).is_err());
        assert!(t.inverse(&mut [0u64; 2048]).is_err());
    }

    #[test]
    fn forward_evaluates_at_documented_points() {
        for (bits, log_n) in [(30, 10), (50, 11), (61, 10)] {
            let t = table(bits, log_n);
            let q = t.modulus().value();
            let mut rng = ChaCha8Rng::seed_from_u64(u64::from(bits));
            let p = random_poly(&mut rng, t.n(), q);
            let mut e = p.clone();
            t.forward(&mut e).unwrap();
            for i in [0usize, 1, 2, 77, t.n() - 1] {
                let x = pow_mod_vt(t.psi(), eval_exponent(i, log_n) as u64, q);
                let naive = p.iter().rev().fold(0u64, |acc, &c| {
                    ((u128::from(acc) * u128::from(x) + u128::from(c)) % u128::from(q)) as u64
                });
                assert_eq!(e[i], naive, "index {i}, {bits}-bit, log_n {log_n}");
            }
        }
    }

    #[test]
    fn products_match_schoolbook() {
        for (bits, log_n) in [(30, 10), (45, 10), (55, 11), (61, 10)] {
            let t = table(bits, log_n);
            let q = t.modulus().value();
            let mut rng = ChaCha8Rng::seed_from_u64(7 + u64::from(bits));
            let a = random_poly(&mut rng, t.n(), q);
            let b = random_poly(&mut rng, t.n(), q);
            let want = negacyclic_schoolbook(&a, &b, q);
            let (mut fa, mut fb) = (a.clone(), b.clone());
            t.forward(&mut fa).unwrap();
            t.forward(&mut fb).unwrap();
            let mut prod: Vec<u64> = fa
                .iter()
                .zip(&fb)
                .map(|(&x, &y)| t.modulus().mul(x, y))
                .collect();
            t.inverse(&mut prod).unwrap();
            assert_eq!(prod, want, "{bits}-bit, log_n {log_n}");
        }
    }

    #[test]
    fn backends_agree_at_every_size() {
        for log_n in MIN_LOG_N..=MAX_LOG_N {
            for bits in [36, 50, 60] {
                let fast = table(bits, log_n);
                let own = NttTable::new_own(*fast.modulus(), log_n).unwrap();
                let q = fast.modulus().value();
                let mut rng = ChaCha8Rng::seed_from_u64(u64::from(log_n * bits));
                let a = random_poly(&mut rng, fast.n(), q);
                let (mut x, mut y) = (a.clone(), a.clone());
                fast.forward(&mut x).unwrap();
                own.forward(&mut y).unwrap();
                assert_eq!(x, y, "forward, log_n {log_n}, {bits}-bit");
                fast.inverse(&mut x).unwrap();
                own.inverse(&mut y).unwrap();
                assert_eq!(x, a);
                assert_eq!(y, a);
                #[cfg(all(feature = "tfhe-ntt", target_arch = "x86_64"))]
                assert_eq!(
                    fast.backend(),
                    NttBackend::TfheNtt,
                    "log_n {log_n}, {bits}-bit"
                );
            }
        }
    }

    /// The evaluator applies complex constants by halves of each limb: the NTT points with
    /// `e ≡ 1 (mod 4)` are exactly the first half of the indices.
    #[test]
    fn exponents_one_mod_four_fill_the_first_half() {
        for log_n in 1..=16u32 {
            let n = 1usize << log_n;
            for i in 0..n {
                assert_eq!(
                    eval_exponent(i, log_n) & 3 == 1,
                    i < n / 2,
                    "log_n {log_n} i {i}"
                );
            }
        }
    }

    #[test]
    fn automorphism_commutes_with_ntt() {
        let log_n = 10;
        let t = table(50, log_n);
        let n = t.n();
        let q = t.modulus().value();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let a = random_poly(&mut rng, n, q);
        for k in [3usize, 5, 25, 2 * n - 1, 5usize.pow(7) % (2 * n)] {
            // Coefficient domain: X^i → ± X^(i·k mod N).
            let mut coeff = vec![0u64; n];
            for (i, &c) in a.iter().enumerate() {
                let e = (i * k) % (2 * n);
                if e < n {
                    coeff[e] = c;
                } else {
                    coeff[e - n] = t.modulus().neg(c);
                }
            }
            t.forward(&mut coeff).unwrap();
            let mut ev = a.clone();
            t.forward(&mut ev).unwrap();
            let perm = automorphism_permutation(log_n, k);
            let permuted: Vec<u64> = perm.iter().map(|&j| ev[j]).collect();
            assert_eq!(permuted, coeff, "k = {k}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn round_trip_random(bits in 30u32..=61, log_n in 10u32..=12, seed in any::<u64>()) {
            let t = table(bits, log_n);
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let a = random_poly(&mut rng, t.n(), t.modulus().value());
            let mut b = a.clone();
            t.forward(&mut b).unwrap();
            prop_assert!(b.iter().all(|&x| x < t.modulus().value()));
            t.inverse(&mut b).unwrap();
            prop_assert_eq!(b, a);
        }
    }
}
