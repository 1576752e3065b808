//! CKKS parameters: an unchecked [`ParamsLiteral`] → [`ParamsLiteral::validate`] → immutable
//! [`Params`], or a structured [`Error`].
//!
//! Validation checks the ring dimension, that every modulus is an NTT-friendly prime below
//! 2^62 and that no prime repeats across Q and P, that P exists and covers one key-switching
//! digit, that the scale fits the primes, the secret distribution, and — unless the literal is
//! explicitly marked insecure — that `log2(QP)` is within the homomorphic-encryption
//! standard's 128-bit bound for uniform ternary secrets (see [`max_log_qp_128`]), and for a
//! sparse ternary secret within the tighter sparse-secret bound [`max_log_qp_128_sparse`].
//!
//! Named presets state their security in their docs; the insecure ones say so in their name
//! and exist for fast tests only.

use alloc::sync::Arc;
use alloc::vec::Vec;

use crate::Error;
use crate::math::{MAX_MODULUS_BITS, generate_chain_vt, is_prime_vt};
use crate::ring::RnsContext;

/// Standard deviation of the error distribution (HE standard).
pub const ERROR_SIGMA: f64 = 3.2;

/// The largest `log2(QP)` with 128-bit classical security for a uniform ternary secret and
/// σ = 3.2, from the homomorphic-encryption security standard (Albrecht et al., 2018, table of
/// `HEStd_128_classic`). `None` for ring dimensions the standard does not cover.
pub const fn max_log_qp_128(log_n: u32) -> Option<u32> {
    match log_n {
        10 => Some(27),
        11 => Some(54),
        12 => Some(109),
        13 => Some(218),
        14 => Some(438),
        15 => Some(881),
        16 => Some(1772),
        _ => None,
    }
}

/// The largest `log2(QP)` accepted as 128-bit secure for a **sparse** ternary secret of Hamming
/// weight `hamming_weight` (σ = 3.2). Sparse secrets are weaker than uniform ternary ones
/// (hybrid and dual-hybrid attacks exploit the zeros), so [`max_log_qp_128`] does not apply.
///
/// Source: Lattigo's sparse-secret bootstrapping parameter set `N16QP1546H192H32`
/// (`DefaultParametersSparse` in Lattigo's `bootstrapping/default_parameters.go`, v4–v6; the
/// H192/H32 sets of Bossuat, Troncoso-Pastoriza, Hubaux, ACNS 2022, "Bootstrapping for
/// approximate homomorphic encryption with negligible failure-probability by using
/// sparse-secret encapsulation"): main secret of Hamming weight 192 at N = 2^16 and
/// log QP = 1546, published as 128-bit secure under the lattice estimator including
/// hybrid attacks. A heavier secret is at least as hard, so the point is used for every
/// `h ≥ 192` at N = 2^16. Every other `(N, h)` returns `None`: no sparse-secret point is
/// justified here, and validation refuses [`Security::Classical128`] for it.
pub const fn max_log_qp_128_sparse(log_n: u32, hamming_weight: usize) -> Option<u32> {
    if log_n == 16 && hamming_weight >= 192 {
        Some(1546)
    } else {
        None
    }
}

/// Smallest and largest supported `log2 N`.
pub const LOG_N_RANGE: (u32, u32) = (crate::ntt::MIN_LOG_N, crate::ntt::MAX_LOG_N);
/// At most this many Q primes (the exact reconstruction keeps a fixed-size digit array).
pub const MAX_Q_LIMBS: usize = 64;

/// The secret-key distribution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretDist {
    /// Uniform over {−1, 0, 1}^N (what the HE-standard table assumes).
    Ternary,
    /// Exactly `hamming_weight` nonzero ±1 entries. With [`Security::Classical128`] it is
    /// checked against [`max_log_qp_128_sparse`] (only N = 2^16 with `h ≥ 192` is accepted).
    SparseTernary { hamming_weight: usize },
}

/// The moduli of Q or P: explicit primes, or bit sizes to generate deterministically.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Moduli {
    /// Explicit primes.
    Primes(Vec<u64>),
    /// For each entry, the largest unused NTT-friendly prime below `2^bits`
    /// ([`crate::math::generate_chain_vt`]); Q is generated first, then P avoiding Q.
    Bits(Vec<u32>),
    /// Q only: `q_0` of `first_bits` bits and `levels` rescaling primes chosen so that the
    /// canonical scales `S_{l-1} = S_l²/q_l` stay at the literal's scale
    /// ([`crate::math::generate_scale_chain_vt`]).
    ScaleTracking { first_bits: u32, levels: usize },
}

/// Whether validation enforces the 128-bit bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Security {
    /// Enforce `log2(QP) ≤` [`max_log_qp_128`] (uniform ternary secret) or
    /// [`max_log_qp_128_sparse`] (sparse ternary secret).
    Classical128,
    /// No security check. Only for tests and toy examples; presets using it are named
    /// `*_INSECURE_*`.
    InsecureForTestsOnly,
}

/// Unchecked parameters, as written by a person.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamsLiteral {
    /// `log2` of the ring dimension N.
    pub log_n: u32,
    /// The ciphertext modulus chain `q_0 … q_L`; `q_0` holds the message at level 0.
    pub q: Moduli,
    /// The special primes P for hybrid key switching.
    pub p: Moduli,
    /// `log2` of the default scale Δ.
    pub log_scale: f64,
    /// Number of key-switching digits (limbs of Q are split into `dnum` groups).
    pub dnum: usize,
    /// Secret-key distribution.
    pub secret: SecretDist,
    /// Security requirement.
    pub security: Security,
}

#[derive(Debug)]
struct Inner {
    literal: ParamsLiteral,
    q: Vec<u64>,
    p: Vec<u64>,
    ctx: RnsContext,
    ks: KeySwitchTables,
    fingerprint: u64,
    log_qp: f64,
}

/// Precomputed tables for hybrid key switching: the Q limbs of each digit, and for every level
/// and active digit the exact base converter from the digit's limbs (restricted to the level) to
/// the other Q limbs of the level and P.
#[derive(Debug)]
pub struct KeySwitchTables {
    alpha: usize,
    /// `conv[level]` holds one converter per active digit at that level.
    conv: Vec<Vec<crate::ring::BaseConverter>>,
}

impl KeySwitchTables {
    fn new(ctx: &RnsContext, dnum: usize) -> Self {
        let l_max = ctx.max_level();
        let alpha = (l_max + 1).div_ceil(dnum);
        let conv = (0..=l_max)
            .map(|level| {
                (0..(level + 1).div_ceil(alpha))
                    .map(|d| {
                        let (lo, hi) = (d * alpha, ((d + 1) * alpha).min(level + 1));
                        let q = ctx.q();
                        let src: Vec<_> = q.iter().take(hi).skip(lo).copied().collect();
                        let dst: Vec<_> = q
                            .iter()
                            .take(level + 1)
                            .enumerate()
                            .filter(|(j, _)| *j < lo || *j >= hi)
                            .map(|(_, m)| *m)
                            .chain(ctx.p().iter().copied())
                            .collect();
                        crate::ring::BaseConverter::new(&src, &dst)
                    })
                    .collect()
            })
            .collect();
        Self { alpha, conv }
    }

    /// Q limbs per digit.
    pub fn alpha(&self) -> usize {
        self.alpha
    }

    /// Number of digits active at `level`.
    pub fn digits_at(&self, level: usize) -> usize {
        (level + 1).div_ceil(self.alpha)
    }

    /// The limb range `[lo, hi)` of digit `d` at `level`.
    pub fn digit_range(&self, level: usize, d: usize) -> (usize, usize) {
        (d * self.alpha, ((d + 1) * self.alpha).min(level + 1))
    }

    /// The base converter of digit `d` at `level`.
    pub fn converter(&self, level: usize, d: usize) -> Option<&crate::ring::BaseConverter> {
        self.conv.get(level).and_then(|c| c.get(d))
    }
}

/// Validated, immutable CKKS parameters (cheap to clone: shared).
#[derive(Clone, Debug)]
pub struct Params {
    inner: Arc<Inner>,
}

fn resolve(m: &Moduli, two_n: u64, exclude: &[u64], log_scale: f64) -> Result<Vec<u64>, Error> {
    match m {
        Moduli::Primes(p) => Ok(p.clone()),
        Moduli::Bits(b) => generate_chain_vt(b, two_n, exclude),
        Moduli::ScaleTracking { first_bits, levels } => {
            crate::math::generate_scale_chain_vt(*first_bits, log_scale, *levels, two_n, exclude)
        }
    }
}

fn log2_sum(ms: &[u64]) -> f64 {
    ms.iter().map(|&q| libm::log2(q as f64)).sum()
}

impl ParamsLiteral {
    /// Checks everything and precomputes the RNS context.
    pub fn validate(&self) -> Result<Params, Error> {
        let (min, max) = LOG_N_RANGE;
        let max = if self.security == Security::Classical128 {
            16
        } else {
            max
        };
        if !(min..=max).contains(&self.log_n) {
            return Err(Error::LogNOutOfRange {
                log_n: self.log_n,
                min,
                max,
            });
        }
        let n = 1usize << self.log_n;
        let two_n = 2 * n as u64;
        let q = resolve(&self.q, two_n, &[], self.log_scale)?;
        let p = resolve(&self.p, two_n, &q, self.log_scale)?;
        if q.is_empty() {
            return Err(Error::EmptyModulusChain);
        }
        if q.len() > MAX_Q_LIMBS {
            return Err(Error::LengthMismatch {
                what: "Q limbs (at most 64)",
                expected: MAX_Q_LIMBS,
                found: q.len(),
            });
        }
        if p.is_empty() {
            return Err(Error::MissingSpecialPrimes);
        }
        for (i, &m) in q.iter().chain(&p).enumerate() {
            if !((1 << 10)..(1 << MAX_MODULUS_BITS)).contains(&m) {
                return Err(Error::ModulusOutOfRange {
                    modulus: m,
                    max_bits: MAX_MODULUS_BITS,
                });
            }
            if !is_prime_vt(m) {
                return Err(Error::NotPrime { modulus: m });
            }
            if m % two_n != 1 {
                return Err(Error::NotNttFriendly { modulus: m, two_n });
            }
            if q.iter().chain(&p).take(i).any(|&o| o == m) {
                return Err(Error::DuplicateModulus { modulus: m });
            }
        }
        if self.dnum == 0 || self.dnum > q.len() {
            return Err(Error::InvalidDnum {
                dnum: self.dnum,
                q_limbs: q.len(),
            });
        }
        let alpha = q.len().div_ceil(self.dnum);
        let p_bits = log2_sum(&p);
        let digit_bits = q.chunks(alpha).map(log2_sum).fold(0.0f64, f64::max);
        // One bit of slack: a digit marginally larger than P adds under a bit of key-switching
        // noise (primes "of b bits" are all just below 2^b).
        if digit_bits > p_bits + 1.0 {
            return Err(Error::DigitExceedsP {
                digit_bits: libm::ceil(digit_bits) as u32,
                p_bits: libm::floor(p_bits) as u32,
            });
        }
        // The scale must leave room in q_0 for the message, and match the rescaling primes
        // (each within one bit above the scale, so rescaling keeps the scale near Δ).
        let q0_bits = q.first().map_or(0.0, |&v| libm::log2(v as f64));
        let min_rescale_bits = q
            .iter()
            .skip(1)
            .map(|&v| libm::log2(v as f64))
            .fold(f64::INFINITY, f64::min);
        let max_scale = (q0_bits - 1.0).min(min_rescale_bits + 1.0);
        if !(self.log_scale.is_finite() && self.log_scale > 0.0 && self.log_scale <= max_scale) {
            return Err(Error::ScaleTooLarge {
                log_scale: self.log_scale,
                max_log_scale: max_scale,
            });
        }
        if let SecretDist::SparseTernary { hamming_weight } = self.secret
            && (hamming_weight == 0 || hamming_weight > n)
        {
            return Err(Error::InvalidHammingWeight {
                weight: hamming_weight,
                n,
            });
        }
        let log_qp = log2_sum(&q) + p_bits;
        if self.security == Security::Classical128 {
            let bound = max_log_qp_128(self.log_n).unwrap_or(0);
            if log_qp > f64::from(bound) {
                return Err(Error::InsecureModulus {
                    log_n: self.log_n,
                    log_qp,
                    max_log_qp: bound,
                });
            }
            if let SecretDist::SparseTernary { hamming_weight } = self.secret {
                let sparse = max_log_qp_128_sparse(self.log_n, hamming_weight);
                if sparse.is_none_or(|b| log_qp > f64::from(b)) {
                    return Err(Error::InsecureSparseSecret {
                        log_n: self.log_n,
                        hamming_weight,
                        log_qp,
                        max_log_qp: sparse,
                    });
                }
            }
        }
        let ctx = RnsContext::new(self.log_n, &q, &p)?;
        let ks = KeySwitchTables::new(&ctx, self.dnum);
        let fingerprint = fingerprint(self, &q, &p);
        Ok(Params {
            inner: Arc::new(Inner {
                literal: self.clone(),
                q,
                p,
                ctx,
                ks,
                fingerprint,
                log_qp,
            }),
        })
    }
}

/// FNV-1a (64-bit) over the canonical description of the parameters: a cheap identifier that
/// catches mismatched files, not a security mechanism.
pub(crate) fn fingerprint(lit: &ParamsLiteral, q: &[u64], p: &[u64]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let (secret_code, h) = match lit.secret {
        SecretDist::Ternary => (1u64, 0u64),
        SecretDist::SparseTernary { hamming_weight } => (2, hamming_weight as u64),
    };
    let words = [u64::from(lit.log_n), q.len() as u64, p.len() as u64]
        .into_iter()
        .chain(q.iter().copied())
        .chain(p.iter().copied())
        .chain([
            lit.log_scale.to_bits(),
            lit.dnum as u64,
            secret_code,
            h,
            ERROR_SIGMA.to_bits(),
        ]);
    let mut hash = OFFSET;
    for w in words {
        for b in w.to_le_bytes() {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(PRIME);
        }
    }
    hash
}

impl Params {
    /// The literal these parameters were validated from.
    pub fn literal(&self) -> &ParamsLiteral {
        &self.inner.literal
    }
    /// `log2 N`.
    pub fn log_n(&self) -> u32 {
        self.inner.literal.log_n
    }
    /// Ring dimension N.
    pub fn n(&self) -> usize {
        1 << self.log_n()
    }
    /// Maximum number of complex slots, N/2.
    pub fn max_slots(&self) -> usize {
        self.n() / 2
    }
    /// The Q primes.
    pub fn q(&self) -> &[u64] {
        &self.inner.q
    }
    /// The P primes.
    pub fn p(&self) -> &[u64] {
        &self.inner.p
    }
    /// The top level L = |Q| − 1 (the number of rescalings available).
    pub fn max_level(&self) -> usize {
        self.inner.q.len() - 1
    }
    /// `log2` of the default scale.
    pub fn log_scale(&self) -> f64 {
        self.inner.literal.log_scale
    }
    /// The default scale Δ.
    pub fn scale(&self) -> f64 {
        libm::exp2(self.log_scale())
    }
    /// Number of key-switching digits.
    pub fn dnum(&self) -> usize {
        self.inner.literal.dnum
    }
    /// Q limbs per key-switching digit (the last digit may be shorter).
    pub fn digit_limbs(&self) -> usize {
        self.inner.q.len().div_ceil(self.dnum())
    }
    /// Secret distribution.
    pub fn secret(&self) -> SecretDist {
        self.inner.literal.secret
    }
    /// Security requirement these parameters were checked against.
    pub fn security(&self) -> Security {
        self.inner.literal.security
    }
    /// `log2(QP)`.
    pub fn log_qp(&self) -> f64 {
        self.inner.log_qp
    }
    /// The RNS context (moduli, NTT tables, RNS constants).
    pub fn ctx(&self) -> &RnsContext {
        &self.inner.ctx
    }
    /// Hybrid key-switching tables.
    pub fn ks(&self) -> &KeySwitchTables {
        &self.inner.ks
    }
    /// Identifier of these parameters, written into every file header.
    pub fn fingerprint(&self) -> u64 {
        self.inner.fingerprint
    }
}

fn repeat(first: u32, bits: u32, count: usize) -> Vec<u32> {
    core::iter::once(first)
        .chain(core::iter::repeat_n(bits, count))
        .collect()
}

/// Named parameter sets.
pub mod presets {
    use super::*;

    /// Training preset, **128-bit secure** (log QP ≈ 1558 ≤ 1772): N = 2^16, scale 2^42,
    /// q_0 of 58 bits, 30 scale-tracking rescaling primes near 2^42 (30 levels, canonical
    /// scales within 2^-16 of 2^42), P = 4 × 60 bits, dnum 7.
    pub fn n16_train() -> ParamsLiteral {
        ParamsLiteral {
            log_n: 16,
            q: Moduli::ScaleTracking {
                first_bits: 58,
                levels: 30,
            },
            p: Moduli::Bits(alloc::vec![60; 4]),
            log_scale: 42.0,
            dnum: 7,
            secret: SecretDist::Ternary,
            security: Security::Classical128,
        }
    }

    /// The OpenFHE comparison point, **128-bit secure** (log QP ≈ 1740 ≤ 1772): N = 2^16,
    /// q_0 of 60 bits and 24 × 50 bits (depth 24, scale 2^50), dnum 3, P = 8 × 60 bits (the
    /// smallest P of 60-bit primes covering one 9-limb digit, as OpenFHE chooses it).
    pub fn n16_openfhe() -> ParamsLiteral {
        ParamsLiteral {
            log_n: 16,
            q: Moduli::Bits(repeat(60, 50, 24)),
            p: Moduli::Bits(alloc::vec![60; 8]),
            log_scale: 50.0,
            dnum: 3,
            secret: SecretDist::Ternary,
            security: Security::Classical128,
        }
    }

    /// Training preset, **128-bit secure** (log QP = 850 ≤ 881): N = 2^15 (16 384 slots),
    /// scale 2^42, q_0 of 58 bits, 16 scale-tracking rescaling primes near 2^42, P = 2 × 60
    /// bits, dnum 9.
    pub fn n15_train() -> ParamsLiteral {
        ParamsLiteral {
            log_n: 15,
            q: Moduli::ScaleTracking {
                first_bits: 58,
                levels: 16,
            },
            p: Moduli::Bits(alloc::vec![60, 60]),
            log_scale: 42.0,
            dnum: 9,
            secret: SecretDist::Ternary,
            security: Security::Classical128,
        }
    }

    /// Small training preset, **128-bit secure** (log QP = 412 ≤ 438): N = 2^14 (8192 slots),
    /// scale 2^42, q_0 of 58 bits, 7 scale-tracking rescaling primes near 2^42, P = 1 × 60
    /// bits, dnum 8 (one prime per digit). Few levels: meant for the hospital-aided refresh,
    /// which brings a ciphertext back to level 6 every few multiplications at little cost.
    pub fn n14_train() -> ParamsLiteral {
        ParamsLiteral {
            log_n: 14,
            q: Moduli::ScaleTracking {
                first_bits: 58,
                levels: 7,
            },
            p: Moduli::Bits(alloc::vec![60]),
            log_scale: 42.0,
            dnum: 8,
            secret: SecretDist::Ternary,
            security: Security::Classical128,
        }
    }

    /// **128-bit secure** (log QP ≈ 850 ≤ 881): N = 2^15, q_0 60 bits, 11 × 50 bits, scale
    /// 2^50, dnum 3, P = 4 × 60 bits (OpenFHE's logN 15 point).
    pub fn n15() -> ParamsLiteral {
        ParamsLiteral {
            log_n: 15,
            q: Moduli::Bits(repeat(60, 50, 11)),
            p: Moduli::Bits(alloc::vec![60; 4]),
            log_scale: 50.0,
            dnum: 3,
            secret: SecretDist::Ternary,
            security: Security::Classical128,
        }
    }

    /// Fast-test preset, **128-bit secure** (log QP ≈ 430 ≤ 438): N = 2^14, q_0 60 bits,
    /// 5 × 50 bits, scale 2^50, dnum 3, P = 2 × 60 bits (OpenFHE's logN 14 point).
    pub fn n14() -> ParamsLiteral {
        ParamsLiteral {
            log_n: 14,
            q: Moduli::Bits(repeat(60, 50, 5)),
            p: Moduli::Bits(alloc::vec![60; 2]),
            log_scale: 50.0,
            dnum: 3,
            secret: SecretDist::Ternary,
            security: Security::Classical128,
        }
    }

    /// Fast-test preset, **128-bit secure** (log QP ≈ 190 ≤ 218): N = 2^13, q_0 50 bits,
    /// 2 × 40 bits, scale 2^40, dnum 3, P = 60 bits (OpenFHE's logN 13 point).
    pub fn n13() -> ParamsLiteral {
        ParamsLiteral {
            log_n: 13,
            q: Moduli::Bits(repeat(50, 40, 2)),
            p: Moduli::Bits(alloc::vec![60]),
            log_scale: 40.0,
            dnum: 3,
            secret: SecretDist::Ternary,
            security: Security::Classical128,
        }
    }

    /// Edge preset for encode + encrypt on boards without an OS, **128-bit secure**
    /// (log QP ≈ 108 ≤ 109): N = 2^12, Q = 39 + 30 bits, P = 39 bits, scale 2^30, dnum 2.
    pub fn n12_edge() -> ParamsLiteral {
        ParamsLiteral {
            log_n: 12,
            q: Moduli::Bits(alloc::vec![39, 30]),
            p: Moduli::Bits(alloc::vec![39]),
            log_scale: 30.0,
            dnum: 2,
            secret: SecretDist::Ternary,
            security: Security::Classical128,
        }
    }

    /// **INSECURE** toy parameters for unit tests only: N = 2^10, Q = 50 + 4 × 40 bits,
    /// P = 2 × 50 bits, scale 2^40, dnum 5.
    pub fn toy_insecure_n10() -> ParamsLiteral {
        ParamsLiteral {
            log_n: 10,
            q: Moduli::Bits(repeat(50, 40, 4)),
            p: Moduli::Bits(alloc::vec![50, 50]),
            log_scale: 40.0,
            dnum: 5,
            secret: SecretDist::Ternary,
            security: Security::InsecureForTestsOnly,
        }
    }

    /// Training preset for fast tests, **INSECURE**: N = 2^11 (4 rows of 256 slots), q_0 58
    /// bits, 16 scale-tracking primes near 2^42, P = 2 × 60 bits, dnum 9.
    pub fn toy_insecure_train() -> ParamsLiteral {
        ParamsLiteral {
            log_n: 11,
            q: Moduli::ScaleTracking {
                first_bits: 58,
                levels: 16,
            },
            p: Moduli::Bits(alloc::vec![60, 60]),
            log_scale: 42.0,
            dnum: 9,
            secret: SecretDist::Ternary,
            security: Security::InsecureForTestsOnly,
        }
    }

    /// A chain for bootstrapping, bottom to top: `q_0`, the levels left to the user, then
    /// SlotToCoeff, EvalMod and CoeffToSlot primes.
    fn boot_chain(
        first: u32,
        user: (u32, usize),
        stc: (u32, usize),
        eval_mod: (u32, usize),
        cts: (u32, usize),
    ) -> Vec<u32> {
        let mut v = alloc::vec![first];
        for (bits, count) in [user, stc, eval_mod, cts] {
            v.extend(core::iter::repeat_n(bits, count));
        }
        v
    }

    /// Bootstrappable preset, **128-bit secure under the sparse-secret bound** (log QP ≈ 1543 ≤
    /// 1546, [`max_log_qp_128_sparse`]) with a sparse ternary secret of Hamming weight 192:
    /// N = 2^16, scale 2^42; bottom to top `q_0` of 60 bits, 10 user levels of 42 bits,
    /// 3 SlotToCoeff levels of 45 bits, 10 EvalMod levels of 58 bits, 3 CoeffToSlot levels of
    /// 56 bits; P = 3 × 60 bits, dnum 9 (digits of 3 limbs, at most 174 bits ≤ P). Bootstrapping
    /// with [`crate::bootstrap::BootstrapConfig::new`] (budget 3, 3; K = 32, 3 double angles)
    /// leaves the 10 user levels at scale 2^42.
    pub fn n16_boot() -> ParamsLiteral {
        ParamsLiteral {
            log_n: 16,
            q: Moduli::Bits(boot_chain(60, (42, 10), (45, 3), (58, 10), (56, 3))),
            p: Moduli::Bits(alloc::vec![60; 3]),
            log_scale: 42.0,
            dnum: 9,
            secret: SecretDist::SparseTernary {
                hamming_weight: 192,
            },
            security: Security::Classical128,
        }
    }

    /// **INSECURE** bootstrapping preset for fast tests: N = 2^10, sparse secret of Hamming
    /// weight 64, scale 2^45; `q_0` of 60 bits, 2 user levels of 45 bits, 3 SlotToCoeff levels
    /// of 45 bits, 9 EvalMod levels of 58 bits, 3 CoeffToSlot levels of 58 bits; P = 3 × 61
    /// bits, dnum 6. Bootstrapping (budget 3, 3; K = 16, 2 double angles) leaves 2 levels.
    pub fn toy_insecure_boot() -> ParamsLiteral {
        ParamsLiteral {
            log_n: 10,
            q: Moduli::Bits(boot_chain(60, (45, 2), (45, 3), (58, 9), (58, 3))),
            p: Moduli::Bits(alloc::vec![61; 3]),
            log_scale: 45.0,
            dnum: 6,
            secret: SecretDist::SparseTernary { hamming_weight: 64 },
            security: Security::InsecureForTestsOnly,
        }
    }

    /// **INSECURE** bootstrapping preset for training tests: the chain of
    /// [`toy_insecure_boot`] with 6 user levels of 45 bits instead of 2 (P = 3 × 61 bits,
    /// dnum 9), so a trainer between bootstrappings does more than one product.
    pub fn toy_insecure_boot_train() -> ParamsLiteral {
        ParamsLiteral {
            log_n: 10,
            q: Moduli::Bits(boot_chain(60, (45, 6), (45, 3), (58, 9), (58, 3))),
            p: Moduli::Bits(alloc::vec![61; 3]),
            log_scale: 45.0,
            dnum: 9,
            secret: SecretDist::SparseTernary { hamming_weight: 64 },
            security: Security::InsecureForTestsOnly,
        }
    }

    /// Every named preset with its name, secure ones first.
    pub fn all() -> [(&'static str, ParamsLiteral); 13] {
        [
            ("n16_train", n16_train()),
            ("n16_openfhe", n16_openfhe()),
            ("n16_boot", n16_boot()),
            ("n15_train", n15_train()),
            ("n14_train", n14_train()),
            ("n15", n15()),
            ("n14", n14()),
            ("n13", n13()),
            ("n12_edge", n12_edge()),
            ("toy_insecure_n10", toy_insecure_n10()),
            ("toy_insecure_train", toy_insecure_train()),
            ("toy_insecure_boot", toy_insecure_boot()),
            ("toy_insecure_boot_train", toy_insecure_boot_train()),
        ]
    }

    /// The preset with this name.
    pub fn by_name(name: &str) -> Option<ParamsLiteral> {
        all().into_iter().find(|(n, _)| *n == name).map(|(_, p)| p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn base() -> ParamsLiteral {
        presets::toy_insecure_n10()
    }

    fn primes(bits: &[u32], log_n: u32, exclude: &[u64]) -> Vec<u64> {
        generate_chain_vt(bits, 2 << log_n, exclude).unwrap()
    }

    #[test]
    fn every_preset_validates_and_secure_ones_are_within_the_bound() {
        for (name, lit) in presets::all() {
            let p = lit.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
            if p.security() == Security::Classical128 {
                assert!(
                    p.log_qp() <= f64::from(max_log_qp_128(p.log_n()).unwrap()),
                    "{name}"
                );
                if let SecretDist::SparseTernary { hamming_weight } = p.secret() {
                    let b = max_log_qp_128_sparse(p.log_n(), hamming_weight).unwrap();
                    assert!(p.log_qp() <= f64::from(b), "{name}");
                }
                assert!(!name.contains("insecure"));
            } else {
                assert!(name.contains("insecure"), "{name} skips the security check");
            }
        }
        let train = presets::n16_train().validate().unwrap();
        assert!(train.max_level() >= 24);
        assert!((40.0..=50.0).contains(&train.log_scale()));
        let of = presets::n16_openfhe().validate().unwrap();
        assert_eq!((of.q().len(), of.dnum(), of.max_level()), (25, 3, 24));
        assert!(of.q()[0] > 1 << 59 && of.q()[1..].iter().all(|&q| q > 1 << 49 && q < 1 << 50));
    }

    #[test]
    fn fingerprint_is_stable_and_sensitive() {
        let a = base().validate().unwrap();
        let b = base().validate().unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        let mut lit = base();
        lit.log_scale = 39.0;
        assert_ne!(lit.validate().unwrap().fingerprint(), a.fingerprint());
        let mut lit = base();
        lit.dnum = 4;
        assert_ne!(lit.validate().unwrap().fingerprint(), a.fingerprint());
    }

    #[test]
    fn rejects_log_n_out_of_range() {
        let mut lit = base();
        lit.log_n = 9;
        assert!(matches!(
            lit.validate(),
            Err(Error::LogNOutOfRange { log_n: 9, .. })
        ));
        let mut lit = presets::n16_train();
        lit.log_n = 17; // no standard bound: not allowed as "secure"
        assert!(matches!(
            lit.validate(),
            Err(Error::LogNOutOfRange {
                log_n: 17,
                max: 16,
                ..
            })
        ));
    }

    #[test]
    fn rejects_non_prime() {
        let mut lit = base();
        let mut q = primes(&[50, 40], 10, &[]);
        q[1] = (q[1] - 1) * 3 + 1; // ≡ 1 mod 2N still, but composite? make sure:
        q[1] = 2049 * 2049; // 2049² ≡ 1 mod 2048, composite
        lit.q = Moduli::Primes(q);
        assert_eq!(
            lit.validate().unwrap_err(),
            Error::NotPrime {
                modulus: 2049 * 2049
            }
        );
    }

    #[test]
    fn rejects_non_ntt_friendly_prime() {
        let mut lit = base();
        lit.q = Moduli::Primes(vec![primes(&[50], 10, &[])[0], 1_000_000_007]);
        assert_eq!(
            lit.validate().unwrap_err(),
            Error::NotNttFriendly {
                modulus: 1_000_000_007,
                two_n: 2048
            }
        );
    }

    #[test]
    fn rejects_duplicate_primes_within_and_across_q_and_p() {
        let q = primes(&[50, 40], 10, &[]);
        let mut lit = base();
        lit.q = Moduli::Primes(vec![q[0], q[1], q[1]]);
        assert_eq!(
            lit.validate().unwrap_err(),
            Error::DuplicateModulus { modulus: q[1] }
        );
        let mut lit = base();
        lit.q = Moduli::Primes(q.clone());
        lit.p = Moduli::Primes(vec![q[0]]);
        lit.dnum = 2;
        assert_eq!(
            lit.validate().unwrap_err(),
            Error::DuplicateModulus { modulus: q[0] }
        );
    }

    #[test]
    fn rejects_oversized_modulus() {
        let mut lit = base();
        lit.q = Moduli::Primes(vec![(1 << 62) + 1]);
        assert!(matches!(
            lit.validate(),
            Err(Error::ModulusOutOfRange { .. })
        ));
    }

    #[test]
    fn rejects_missing_p_and_bad_dnum_and_small_p() {
        let mut lit = base();
        lit.p = Moduli::Bits(vec![]);
        assert_eq!(lit.validate().unwrap_err(), Error::MissingSpecialPrimes);
        let mut lit = base();
        lit.dnum = 0;
        assert!(matches!(
            lit.validate(),
            Err(Error::InvalidDnum { dnum: 0, .. })
        ));
        lit.dnum = 6;
        assert!(matches!(
            lit.validate(),
            Err(Error::InvalidDnum {
                dnum: 6,
                q_limbs: 5
            })
        ));
        let mut lit = base();
        lit.dnum = 1; // one digit of ~210 bits, P has ~100
        assert!(matches!(lit.validate(), Err(Error::DigitExceedsP { .. })));
        let mut lit = base();
        lit.q = Moduli::Bits(vec![]);
        assert_eq!(lit.validate().unwrap_err(), Error::EmptyModulusChain);
    }

    #[test]
    fn rejects_log_qp_over_the_security_bound() {
        let mut lit = presets::n16_train();
        lit.q = Moduli::Bits(repeat(58, 42, 36)); // ≈ 1810 bits with P
        lit.dnum = 8;
        assert!(matches!(
            lit.validate(),
            Err(Error::InsecureModulus {
                log_n: 16,
                max_log_qp: 1772,
                ..
            })
        ));
        let mut lit = presets::n13();
        lit.q = Moduli::Bits(repeat(50, 40, 3));
        lit.dnum = 4;
        assert!(matches!(
            lit.validate(),
            Err(Error::InsecureModulus {
                log_n: 13,
                max_log_qp: 218,
                ..
            })
        ));
        // The same literal passes only when explicitly marked insecure.
        lit.security = Security::InsecureForTestsOnly;
        assert!(lit.validate().is_ok());
    }

    #[test]
    fn sparse_secret_is_checked_against_the_sparse_bound() {
        let boot = presets::n16_boot().validate().unwrap();
        assert!(boot.log_qp() <= 1546.0, "{}", boot.log_qp());
        assert_eq!(max_log_qp_128_sparse(16, 192), Some(1546));
        assert_eq!(max_log_qp_128_sparse(16, 64), None);
        assert_eq!(max_log_qp_128_sparse(15, 192), None);
        // The old n16_boot chain (log QP ≈ 1735): within the uniform-ternary bound 1772, but
        // not within the sparse-secret bound 1546.
        let mut lit = presets::n16_boot();
        lit.q = Moduli::Bits(
            vec![60, 42, 42, 42, 42, 42, 42, 42, 42, 42, 42]
                .into_iter()
                .chain([45; 3])
                .chain([58; 13])
                .collect(),
        );
        lit.p = Moduli::Bits(vec![61; 6]);
        lit.dnum = 5;
        assert!(matches!(
            lit.validate(),
            Err(Error::InsecureSparseSecret {
                log_n: 16,
                hamming_weight: 192,
                max_log_qp: Some(1546),
                ..
            })
        ));
        // The same chain with a uniform ternary secret is accepted.
        lit.secret = SecretDist::Ternary;
        assert!(lit.validate().is_ok());
        // A lighter secret at N = 2^16 has no justified bound: refused whatever its modulus.
        let mut lit = presets::n16_boot();
        lit.secret = SecretDist::SparseTernary { hamming_weight: 64 };
        assert!(matches!(
            lit.validate(),
            Err(Error::InsecureSparseSecret {
                hamming_weight: 64,
                max_log_qp: None,
                ..
            })
        ));
        // Other ring dimensions: refused with Classical128, accepted only marked insecure.
        let mut lit = presets::n13();
        lit.secret = SecretDist::SparseTernary {
            hamming_weight: 192,
        };
        assert!(matches!(
            lit.validate(),
            Err(Error::InsecureSparseSecret {
                log_n: 13,
                max_log_qp: None,
                ..
            })
        ));
        lit.security = Security::InsecureForTestsOnly;
        assert!(lit.validate().is_ok());
    }

    #[test]
    fn rejects_scale_too_large() {
        let mut lit = base();
        lit.log_scale = 45.0; // rescaling primes are 40-bit
        assert!(matches!(lit.validate(), Err(Error::ScaleTooLarge { .. })));
        let mut lit = base();
        lit.q = Moduli::Bits(vec![40, 40]);
        lit.dnum = 2;
        lit.log_scale = 40.0; // no room in q_0
        assert!(matches!(lit.validate(), Err(Error::ScaleTooLarge { .. })));
        lit.log_scale = f64::NAN;
        assert!(matches!(lit.validate(), Err(Error::ScaleTooLarge { .. })));
    }

    #[test]
    fn rejects_bad_hamming_weight() {
        let mut lit = base();
        lit.secret = SecretDist::SparseTernary { hamming_weight: 0 };
        assert_eq!(
            lit.validate().unwrap_err(),
            Error::InvalidHammingWeight { weight: 0, n: 1024 }
        );
        lit.secret = SecretDist::SparseTernary {
            hamming_weight: 2000,
        };
        assert!(lit.validate().is_err());
        lit.secret = SecretDist::SparseTernary { hamming_weight: 64 };
        assert!(lit.validate().is_ok());
    }

    #[test]
    fn error_messages_are_pinned() {
        let cases: [(Error, &str); 4] = [
            (Error::NotPrime { modulus: 15 }, "modulus 15 is not prime"),
            (
                Error::InsecureModulus {
                    log_n: 13,
                    log_qp: 250.04,
                    max_log_qp: 218,
                },
                "log2(QP) = 250.0 exceeds the 128-bit HE-standard bound 218 for N = 2^13",
            ),
            (
                Error::LevelTooLow { have: 0, need: 1 },
                "level too low: have 0, need 1",
            ),
            (
                Error::WrongKind {
                    expected: 4,
                    found: 2,
                },
                "wrong object kind: expected EvalKeys, found SecretKey",
            ),
        ];
        for (e, want) in cases {
            assert_eq!(alloc::format!("{e}"), want);
        }
    }
}
