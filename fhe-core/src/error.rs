//! The one error type of `fhe-core`: structured, non-exhaustive, `Display` written by hand so it
//! works without `std`. Every variant names the values that disagree.

use core::fmt;

/// Errors of `fhe-core`. Variants carry the offending values; see the `Display` impl for wording.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// `log N` outside the supported range.
    LogNOutOfRange { log_n: u32, min: u32, max: u32 },
    /// A modulus is not prime.
    NotPrime { modulus: u64 },
    /// A modulus is not ≡ 1 mod 2N, so it has no negacyclic NTT of this size.
    NotNttFriendly { modulus: u64, two_n: u64 },
    /// A modulus is too large for word-size arithmetic (must be < 2^62) or too small.
    ModulusOutOfRange { modulus: u64, max_bits: u32 },
    /// Two moduli of the chain (Q and P together) are equal.
    DuplicateModulus { modulus: u64 },
    /// Not enough NTT-friendly primes of the requested size exist below 2^bits.
    NotEnoughPrimes {
        bits: u32,
        wanted: usize,
        found: usize,
    },
    /// A bit size for a generated prime is outside the supported range.
    PrimeBitsOutOfRange { bits: u32, min: u32, max: u32 },
    /// The chain has no Q modulus.
    EmptyModulusChain,
    /// Hybrid key switching needs at least one special prime P.
    MissingSpecialPrimes,
    /// `dnum` (number of key-switching digits) is zero or larger than the number of Q limbs.
    InvalidDnum { dnum: usize, q_limbs: usize },
    /// The product of one key-switching digit exceeds P, so key-switching noise would not be
    /// reduced by the division by P.
    DigitExceedsP { digit_bits: u32, p_bits: u32 },
    /// log2(QP) exceeds the HE-standard 128-bit bound for this ring dimension.
    InsecureModulus {
        log_n: u32,
        log_qp: f64,
        max_log_qp: u32,
    },
    /// A sparse ternary secret with [`crate::params::Security::Classical128`] whose log2(QP)
    /// exceeds the sparse-secret bound ([`crate::params::max_log_qp_128_sparse`]), or for which
    /// no sparse-secret bound is known (`max_log_qp: None`).
    InsecureSparseSecret {
        log_n: u32,
        hamming_weight: usize,
        log_qp: f64,
        max_log_qp: Option<u32>,
    },
    /// The scale does not fit the primes (it must be smaller than every rescaling prime and
    /// smaller than the first prime).
    ScaleTooLarge { log_scale: f64, max_log_scale: f64 },
    /// Hamming weight of a sparse secret outside `1..=N`.
    InvalidHammingWeight { weight: usize, n: usize },
    /// A standard deviation that the sampler does not support.
    InvalidSigma { sigma: f64 },
    /// A buffer or vector has the wrong length.
    LengthMismatch {
        what: &'static str,
        expected: usize,
        found: usize,
    },
    /// A level above the top of the chain, or an operation needing more levels than remain.
    LevelTooLow { have: usize, need: usize },
    /// Slot count is not a power of two in `1..=N/2`.
    InvalidSlots { slots: usize, max: usize },
    /// A value could not be encoded (NaN, infinity, or too large for the modulus at this scale).
    EncodingOverflow { value: f64, log_scale: f64 },
    /// A file or byte string does not start with the `BLTN` magic.
    BadMagic,
    /// A file's format version is not one this build reads.
    UnsupportedVersion { found: u16, supported: u16 },
    /// A file holds another kind of object than the one asked for.
    WrongKind { expected: u16, found: u16 },
    /// A file's parameter fingerprint differs from the parameters in use.
    FingerprintMismatch { expected: u64, found: u64 },
    /// The byte string ended before the object did (or has trailing bytes).
    Truncated { needed: usize, available: usize },
    /// A coefficient is not reduced modulo its prime.
    CoefficientNotReduced { limb: usize, modulus: u64 },
    /// Two operands have different scales (beyond the relative tolerance of the evaluator).
    ScaleMismatch { a: f64, b: f64 },
    /// Two operands have different slot counts.
    SlotsMismatch { a: usize, b: usize },
    /// The evaluation key for this Galois element is missing (0 = relinearisation key).
    MissingKey { galois_element: usize },
    /// A ciphertext of the wrong degree (number of polynomials minus one).
    WrongDegree { expected: usize, found: usize },
    /// An object belongs to other parameters than the ones in use.
    ParamsMismatch { expected: u64, found: u64 },
    /// A secret-key coefficient outside {−1, 0, 1}.
    InvalidSecret,
    /// An unknown code for an enumerated field (object kind, secret distribution, ...).
    UnknownCode { what: &'static str, code: u64 },
    /// Bytes that do not decode as the named part of a file.
    Malformed { what: &'static str },
    /// Bytes left over after the named object ended.
    TrailingBytes { what: &'static str, count: usize },
    /// A scale that is not finite and positive.
    InvalidScale { scale: f64 },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LogNOutOfRange { log_n, min, max } => {
                write!(
                    f,
                    "log N = {log_n} is outside the supported range {min}..={max}"
                )
            }
            Self::NotPrime { modulus } => write!(f, "modulus {modulus} is not prime"),
            Self::NotNttFriendly { modulus, two_n } => {
                write!(
                    f,
                    "modulus {modulus} is not congruent to 1 mod 2N = {two_n}"
                )
            }
            Self::ModulusOutOfRange { modulus, max_bits } => write!(
                f,
                "modulus {modulus} is out of range (must be odd, at least 2^10 and below 2^{max_bits})"
            ),
            Self::DuplicateModulus { modulus } => {
                write!(f, "modulus {modulus} appears more than once in Q and P")
            }
            Self::NotEnoughPrimes {
                bits,
                wanted,
                found,
            } => write!(
                f,
                "only {found} NTT-friendly primes of {bits} bits exist, {wanted} were asked for"
            ),
            Self::PrimeBitsOutOfRange { bits, min, max } => {
                write!(f, "prime size {bits} bits is outside {min}..={max}")
            }
            Self::EmptyModulusChain => write!(f, "the modulus chain Q is empty"),
            Self::MissingSpecialPrimes => {
                write!(f, "hybrid key switching needs at least one special prime P")
            }
            Self::InvalidDnum { dnum, q_limbs } => write!(
                f,
                "dnum = {dnum} is invalid: it must be between 1 and the number of Q limbs ({q_limbs})"
            ),
            Self::DigitExceedsP { digit_bits, p_bits } => write!(
                f,
                "a key-switching digit has {digit_bits} bits but P has only {p_bits}: raise P or dnum"
            ),
            Self::InsecureModulus {
                log_n,
                log_qp,
                max_log_qp,
            } => write!(
                f,
                "log2(QP) = {log_qp:.1} exceeds the 128-bit HE-standard bound {max_log_qp} for N = 2^{log_n}"
            ),
            Self::InsecureSparseSecret {
                log_n,
                hamming_weight,
                log_qp,
                max_log_qp: Some(b),
            } => write!(
                f,
                "log2(QP) = {log_qp:.1} exceeds the 128-bit sparse-secret bound {b} for N = 2^{log_n}, h = {hamming_weight}"
            ),
            Self::InsecureSparseSecret {
                log_n,
                hamming_weight,
                max_log_qp: None,
                ..
            } => write!(
                f,
                "no 128-bit bound is known for a sparse secret of Hamming weight {hamming_weight} at N = 2^{log_n}: use a uniform ternary secret"
            ),
            Self::ScaleTooLarge {
                log_scale,
                max_log_scale,
            } => write!(
                f,
                "scale 2^{log_scale:.1} does not fit the primes (at most 2^{max_log_scale:.1})"
            ),
            Self::InvalidHammingWeight { weight, n } => {
                write!(f, "Hamming weight {weight} is outside 1..={n}")
            }
            Self::InvalidSigma { sigma } => {
                write!(
                    f,
                    "standard deviation {sigma} is not supported (0 < sigma <= 64)"
                )
            }
            Self::LengthMismatch {
                what,
                expected,
                found,
            } => {
                write!(f, "{what}: expected length {expected}, found {found}")
            }
            Self::LevelTooLow { have, need } => {
                write!(f, "level too low: have {have}, need {need}")
            }
            Self::InvalidSlots { slots, max } => {
                write!(f, "slot count {slots} is not a power of two in 1..={max}")
            }
            Self::EncodingOverflow { value, log_scale } => {
                write!(
                    f,
                    "value {value} cannot be encoded at scale 2^{log_scale:.1}"
                )
            }
            Self::BadMagic => write!(f, "not a blindtuner file (magic BLTN missing)"),
            Self::UnsupportedVersion { found, supported } => write!(
                f,
                "format version {found} is not supported (this build reads version {supported})"
            ),
            Self::WrongKind { expected, found } => write!(
                f,
                "wrong object kind: expected {}, found {}",
                crate::wire::ObjectKind::name_of(*expected),
                crate::wire::ObjectKind::name_of(*found)
            ),
            Self::FingerprintMismatch { expected, found } => write!(
                f,
                "parameter fingerprint {found:016x} does not match the parameters in use ({expected:016x})"
            ),
            Self::Truncated { needed, available } => write!(
                f,
                "truncated or malformed data: needed {needed} bytes, {available} available"
            ),
            Self::CoefficientNotReduced { limb, modulus } => {
                write!(
                    f,
                    "a coefficient of limb {limb} is not reduced modulo {modulus}"
                )
            }
            Self::UnknownCode { what, code } => write!(f, "unknown {what} code {code}"),
            Self::ScaleMismatch { a, b } => write!(
                f,
                "scale mismatch: 2^{:.3} vs 2^{:.3}",
                libm::log2(*a),
                libm::log2(*b)
            ),
            Self::SlotsMismatch { a, b } => write!(f, "slot count mismatch: {a} vs {b}"),
            Self::MissingKey { galois_element: 0 } => {
                write!(f, "the relinearisation key is missing")
            }
            Self::MissingKey { galois_element } => write!(
                f,
                "no rotation key for Galois element {galois_element}: generate it with the keys"
            ),
            Self::WrongDegree { expected, found } => {
                write!(f, "ciphertext degree {found}, expected {expected}")
            }
            Self::ParamsMismatch { expected, found } => write!(
                f,
                "object made with parameters {found:016x}, but {expected:016x} are in use"
            ),
            Self::InvalidSecret => write!(f, "secret-key coefficients must be -1, 0 or 1"),
            Self::Malformed { what } => write!(f, "malformed {what}"),
            Self::TrailingBytes { what, count } => {
                write!(f, "{what}: {count} unexpected bytes after the end")
            }
            Self::InvalidScale { scale } => write!(f, "scale {scale} is not finite and positive"),
        }
    }
}

impl core::error::Error for Error {}
