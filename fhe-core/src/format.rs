//! File formats: every object that crosses the wire (DESIGN.md §5), as bytes and back.
//!
//! A file is the 24-byte [`wire`](crate::wire) header (magic `BLTN`, version, [`ObjectKind`],
//! parameter fingerprint, payload length) followed by a postcard payload. The payloads:
//!
//! | kind | payload |
//! | --- | --- |
//! | `Params` | `log N`, the Q and P primes (8 bytes each, little-endian), `log2 Δ`, `dnum`, secret distribution, security level |
//! | `PublicKey` | 32-byte seed of `a`, packed `b` (top level) |
//! | `EvalKeys` | optional relinearisation key, the number of Galois keys, then each Galois key by increasing element; a key is its 32-byte seed and the packed `b` halves of its `dnum` digits (top level, extended by P) |
//! | `Ciphertext` | level, scale (the 8 bytes of the f64), slots, degree, optional seed, packed polynomials (only `c_0` when seeded) |
//! | `SecretKey` | the ternary coefficients, 2 bits each (hospital only) |
//!
//! **Packing.** Residues are stored limb by limb at the bit width of their prime (a 50-bit
//! prime's residues take 50 bits each), see [`bits`]. The uniform halves of public-key-like
//! objects (public key, key-switching keys, fresh secret-key ciphertexts) are stored as their
//! 32-byte seed.
//!
//! **Loading untrusted bytes.** Every loader checks the header (magic, version, kind, payload
//! length), that the fingerprint equals the parameters in use, every length against what the
//! parameters allow (limbs for the level, N, `dnum`, number of Galois keys) *before* allocating,
//! levels, that every residue is reduced modulo its prime, the scale (finite, positive), the
//! slot count (a power of two ≤ N/2) and Galois elements (odd, < 2N, strictly increasing).
//! Anything else is a structured [`Error`], never a panic. Variable-length fields are borrowed
//! from the input, so decoding allocates nothing before those checks.
//!
//! **Cloud-bound vs hospital-only.** Cloud-bound objects implement [`WireObject`];
//! [`Params`] has inherent [`Params::to_bytes`] / [`Params::from_bytes`] (loading needs no
//! parameters). [`SecretKey`] deliberately does **not** implement [`WireObject`]: its only
//! writer is [`SecretKey::to_bytes`], which writes the hospital-only `SecretKey` kind into a
//! buffer that is wiped on drop, so no generic cloud writer can be handed a secret key:
//!
//! ```compile_fail
//! use fhe_core::format::WireObject;
//! fn send_to_cloud<T: WireObject>(_: &T) {}
//! fn leak(sk: &fhe_core::keys::SecretKey) {
//!     send_to_cloud(sk); // does not compile: SecretKey is not a WireObject
//! }
//! ```
//!
//! ```
//! use fhe_core::format::WireObject;
//! use fhe_core::keys::{PublicKey, SecretKey};
//! use fhe_core::params::{Params, presets};
//! use rand_chacha::ChaCha20Rng;
//! use rand_core::SeedableRng;
//!
//! let params = presets::toy_insecure_n10().validate()?;
//! let mut rng = ChaCha20Rng::seed_from_u64(1);
//! let sk = SecretKey::generate(&params, &mut rng)?;
//! let pk = PublicKey::generate(&sk, &mut rng)?;
//!
//! // Parameters travel first; the other side rebuilds them from the file alone.
//! let params_file = params.to_bytes()?;
//! let cloud_params = Params::from_bytes(&params_file)?;
//! assert_eq!(cloud_params.fingerprint(), params.fingerprint());
//!
//! let pk_file = pk.to_bytes(&params)?;
//! assert_eq!(PublicKey::from_bytes(&cloud_params, &pk_file)?, pk);
//!
//! // The secret key file stays at the hospital, and is no public key.
//! let sk_file = sk.to_bytes(&params)?;
//! assert!(PublicKey::from_bytes(&params, &sk_file).is_err());
//! assert_eq!(SecretKey::from_bytes(&params, &sk_file)?.coeffs(), sk.coeffs());
//! # Ok::<(), fhe_core::Error>(())
//! ```

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::Error;
use crate::ciphertext::Ciphertext;
use crate::encrypt::expand_seeded;
use crate::keys::{EvalKeys, GaloisKey, KeySwitchKey, PublicKey, RelinKey, SecretKey, Seed};
use crate::math::Modulus;
use crate::params::{MAX_Q_LIMBS, Moduli, Params, ParamsLiteral, SecretDist, Security};
use crate::ring::{Ntt, Poly, RnsContext};
use crate::wire::{HEADER_LEN, Header, ObjectKind};

/// At most this many special primes P in a parameters file (checked before allocating).
pub const MAX_P_LIMBS: usize = 64;

/// Bit-packing of unsigned integers of a fixed width, least significant bit first.
///
/// `count` values of `width` bits take [`packed_len`]`(count, width)` bytes; the unused high
/// bits of the last byte are zero (and [`unpack`] insists on it, so every value has exactly one
/// encoding).
pub mod bits {
    use alloc::vec::Vec;

    use crate::Error;

    /// Bytes needed for `count` values of `width` bits (saturating).
    pub const fn packed_len(count: usize, width: u32) -> usize {
        count.saturating_mul(width as usize).div_ceil(8)
    }

    const fn mask(width: u32) -> u64 {
        if width >= 64 {
            u64::MAX
        } else {
            (1u64 << width) - 1
        }
    }

    fn check_width(width: u32) -> Result<(), Error> {
        if (1..=64).contains(&width) {
            Ok(())
        } else {
            Err(Error::Malformed {
                what: "bit width (must be 1..=64)",
            })
        }
    }

    /// Appends `values`, `width` bits each, to `out`. Bits of a value above `width` are
    /// dropped: callers check that the values fit (for residues: that they are reduced).
    pub fn pack(values: &[u64], width: u32, out: &mut Vec<u8>) -> Result<(), Error> {
        check_width(width)?;
        let m = mask(width);
        out.reserve(packed_len(values.len(), width));
        // At most 7 pending bits before adding a value of at most 64: fits in a u128.
        let mut acc: u128 = 0;
        let mut pending: u32 = 0;
        for &v in values {
            acc |= u128::from(v & m) << pending;
            pending += width;
            if pending >= 64 {
                out.extend_from_slice(&(acc as u64).to_le_bytes());
                acc >>= 64;
                pending -= 64;
            }
        }
        let tail = (acc as u64).to_le_bytes();
        out.extend(tail.iter().take(pending.div_ceil(8) as usize));
        Ok(())
    }

    /// Fills `out` with values of `width` bits read from `bytes`, which must be exactly
    /// [`packed_len`]`(out.len(), width)` long with zero padding bits.
    pub fn unpack(bytes: &[u8], width: u32, out: &mut [u64]) -> Result<(), Error> {
        check_width(width)?;
        let want = packed_len(out.len(), width);
        if bytes.len() != want {
            return Err(Error::LengthMismatch {
                what: "packed values",
                expected: want,
                found: bytes.len(),
            });
        }
        let m = mask(width);
        let mut words = bytes.chunks(8).map(|c| {
            let mut w = [0u8; 8];
            w.iter_mut().zip(c).for_each(|(d, s)| *d = *s);
            u64::from_le_bytes(w)
        });
        let mut acc: u128 = 0;
        let mut avail: u32 = 0;
        for o in out.iter_mut() {
            if avail < width {
                // Cannot fail after the length check; an error all the same, never a panic.
                let w = words.next().ok_or(Error::Truncated {
                    needed: want,
                    available: bytes.len(),
                })?;
                acc |= u128::from(w) << avail;
                avail += 64;
            }
            *o = (acc as u64) & m;
            acc >>= width;
            avail -= width;
        }
        // What is left (fewer than 64 bits of the last word, plus any unread word) is padding.
        if acc != 0 || words.any(|w| w != 0) {
            return Err(Error::Malformed {
                what: "packed values (nonzero padding bits)",
            });
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Polynomials

/// The moduli of the limbs of a polynomial at `level` (Q limbs, then P limbs if `ext`).
fn limb_moduli(ctx: &RnsContext, level: usize, ext: bool) -> impl Iterator<Item = &Modulus> {
    let p_limbs = if ext { ctx.p().len() } else { 0 };
    ctx.q()
        .iter()
        .take(level + 1)
        .chain(ctx.p().iter().take(p_limbs))
}

/// Bytes of one packed polynomial at (`level`, `ext`).
pub fn packed_poly_len(ctx: &RnsContext, level: usize, ext: bool) -> usize {
    limb_moduli(ctx, level, ext)
        .map(|m| bits::packed_len(ctx.n(), m.bits()))
        .sum()
}

fn check_level(ctx: &RnsContext, level: usize) -> Result<(), Error> {
    if level > ctx.max_level() {
        return Err(Error::LevelTooLow {
            have: ctx.max_level(),
            need: level,
        });
    }
    Ok(())
}

/// Appends `poly`, which must have the shape (`level`, `ext`) and reduced residues.
fn write_poly(
    ctx: &RnsContext,
    poly: &Poly<Ntt>,
    level: usize,
    ext: bool,
    out: &mut Vec<u8>,
) -> Result<(), Error> {
    check_level(ctx, level)?;
    let n = ctx.n();
    let limbs = limb_moduli(ctx, level, ext).count();
    if poly.n() != n || poly.level() != level || poly.is_extended() != ext {
        return Err(Error::LengthMismatch {
            what: "polynomial limbs",
            expected: n * limbs,
            found: poly.data().len(),
        });
    }
    for (j, (m, limb)) in limb_moduli(ctx, level, ext)
        .zip(poly.data().chunks_exact(n))
        .enumerate()
    {
        if limb.iter().any(|&c| c >= m.value()) {
            return Err(Error::CoefficientNotReduced {
                limb: j,
                modulus: m.value(),
            });
        }
        bits::pack(limb, m.bits(), out)?;
    }
    Ok(())
}

/// Reads `count` polynomials of shape (`level`, `ext`) packed back to back in `bytes`. The
/// length is checked against the parameters before anything is allocated.
fn read_polys(
    ctx: &RnsContext,
    level: usize,
    ext: bool,
    count: usize,
    bytes: &[u8],
) -> Result<Vec<Poly<Ntt>>, Error> {
    check_level(ctx, level)?;
    let one = packed_poly_len(ctx, level, ext);
    let want = one.saturating_mul(count);
    if bytes.len() != want {
        return Err(Error::LengthMismatch {
            what: "packed polynomials",
            expected: want,
            found: bytes.len(),
        });
    }
    let n = ctx.n();
    let limbs = limb_moduli(ctx, level, ext).count();
    let mut polys = Vec::with_capacity(count);
    for packed in bytes.chunks_exact(one.max(1)).take(count) {
        let mut data = alloc::vec![0u64; n * limbs];
        let mut rest = packed;
        for (m, limb) in limb_moduli(ctx, level, ext).zip(data.chunks_exact_mut(n)) {
            let len = bits::packed_len(n, m.bits());
            let (head, tail) = rest.split_at_checked(len).ok_or(Error::Truncated {
                needed: len,
                available: rest.len(),
            })?;
            bits::unpack(head, m.bits(), limb)?;
            rest = tail;
        }
        polys.push(Poly::from_limbs(ctx, level, ext, data)?);
    }
    Ok(polys)
}

// ---------------------------------------------------------------------------------------------
// Payload plumbing

/// Serializes a borrowed byte field as postcard bytes (length + raw bytes, one copy).
fn as_bytes<S: serde::Serializer>(b: &&[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_bytes(b)
}

/// Decodes one `T` from the front of `bytes`, in its canonical encoding only: postcard also
/// reads overlong varints, which would give one object several files.
fn take<'a, T: Deserialize<'a> + Serialize>(
    bytes: &'a [u8],
    what: &'static str,
) -> Result<(T, &'a [u8]), Error> {
    let (value, rest) = postcard::take_from_bytes(bytes).map_err(|_| Error::Malformed { what })?;
    let canonical = postcard::serialize_with_flavor::<T, _, usize>(
        &value,
        postcard::ser_flavors::Size::default(),
    )
    .map_err(|_| Error::Malformed { what })?;
    if canonical != bytes.len() - rest.len() {
        return Err(Error::Malformed { what });
    }
    Ok((value, rest))
}

/// Nothing may follow the object.
fn finish(rest: &[u8], what: &'static str) -> Result<(), Error> {
    if rest.is_empty() {
        Ok(())
    } else {
        Err(Error::TrailingBytes {
            what,
            count: rest.len(),
        })
    }
}

/// Appends `value` to `out` with postcard.
fn append<T: Serialize>(value: &T, out: &mut Vec<u8>, what: &'static str) -> Result<(), Error> {
    let buf = core::mem::take(out);
    *out = postcard::to_extend(value, buf).map_err(|_| Error::Malformed { what })?;
    Ok(())
}

/// Writes the header of a finished file (`out` starts with `HEADER_LEN` placeholder bytes).
fn seal_header(out: &mut [u8], kind: ObjectKind, fingerprint: u64) {
    let payload_len = out.len().saturating_sub(HEADER_LEN);
    if let Some(h) = out.get_mut(..HEADER_LEN) {
        h.copy_from_slice(&Header::encode(kind, fingerprint, payload_len));
    }
}

// ---------------------------------------------------------------------------------------------
// The trait of cloud-bound objects

/// An object that may cross the wire to the cloud, bound to a parameter set.
///
/// Implementors provide the payload ([`WireObject::write_payload`] /
/// [`WireObject::read_payload`]); [`WireObject::to_bytes`] and [`WireObject::from_bytes`] add
/// and check the header. Other crates may implement it for their container kinds (and embed
/// these payloads). [`SecretKey`] never implements it.
pub trait WireObject: Sized {
    /// The kind written into and expected in the header.
    const KIND: ObjectKind;

    /// Appends the payload (without header) to `out`.
    fn write_payload(&self, params: &Params, out: &mut Vec<u8>) -> Result<(), Error>;

    /// Parses a payload (without header) that must be exactly this object.
    fn read_payload(params: &Params, payload: &[u8]) -> Result<Self, Error>;

    /// Expected payload size in bytes, to allocate the output once (a hint: may be off).
    fn payload_size_hint(&self, params: &Params) -> usize {
        let _ = params;
        0
    }

    /// The complete file: header then payload.
    fn to_bytes(&self, params: &Params) -> Result<Vec<u8>, Error> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.payload_size_hint(params));
        out.resize(HEADER_LEN, 0);
        self.write_payload(params, &mut out)?;
        seal_header(&mut out, Self::KIND, params.fingerprint());
        Ok(out)
    }

    /// Parses a complete file, checking the header's kind and that its fingerprint is that of
    /// `params`.
    fn from_bytes(params: &Params, bytes: &[u8]) -> Result<Self, Error> {
        let (_, payload) = Header::decode_expect(bytes, Self::KIND, Some(params.fingerprint()))?;
        Self::read_payload(params, payload)
    }
}

// ---------------------------------------------------------------------------------------------
// Params

const SECRET_TERNARY: u8 = 1;
const SECRET_SPARSE: u8 = 2;
const SECURITY_128: u8 = 1;
const SECURITY_INSECURE: u8 = 2;

#[derive(Serialize, Deserialize)]
struct ParamsWire<'a> {
    log_n: u32,
    /// Q primes, 8 bytes little-endian each.
    #[serde(serialize_with = "as_bytes")]
    q: &'a [u8],
    /// P primes, 8 bytes little-endian each.
    #[serde(serialize_with = "as_bytes")]
    p: &'a [u8],
    log_scale: f64,
    dnum: u32,
    secret: u8,
    hamming_weight: u32,
    security: u8,
}

fn primes_to_bytes(ps: &[u64]) -> Vec<u8> {
    ps.iter().flat_map(|p| p.to_le_bytes()).collect()
}

fn primes_from_bytes(b: &[u8], max: usize, what: &'static str) -> Result<Vec<u64>, Error> {
    if !b.len().is_multiple_of(8) {
        return Err(Error::Malformed { what });
    }
    let count = b.len() / 8;
    if count > max {
        return Err(Error::LengthMismatch {
            what,
            expected: max,
            found: count,
        });
    }
    Ok(b.chunks_exact(8)
        .map(|c| {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            u64::from_le_bytes(w)
        })
        .collect())
}

impl Params {
    /// The `Params` file: the literal with its resolved primes (so loading needs no prime
    /// generation), fingerprint in the header.
    pub fn to_bytes(&self) -> Result<Vec<u8>, Error> {
        let lit = self.literal();
        let (secret, hamming_weight) = match lit.secret {
            SecretDist::Ternary => (SECRET_TERNARY, 0),
            SecretDist::SparseTernary { hamming_weight } => (
                SECRET_SPARSE,
                u32::try_from(hamming_weight).map_err(|_| Error::InvalidHammingWeight {
                    weight: hamming_weight,
                    n: self.n(),
                })?,
            ),
        };
        let security = match lit.security {
            Security::Classical128 => SECURITY_128,
            Security::InsecureForTestsOnly => SECURITY_INSECURE,
        };
        let (q, p) = (primes_to_bytes(self.q()), primes_to_bytes(self.p()));
        let wire = ParamsWire {
            log_n: lit.log_n,
            q: &q,
            p: &p,
            log_scale: lit.log_scale,
            dnum: u32::try_from(lit.dnum).map_err(|_| Error::InvalidDnum {
                dnum: lit.dnum,
                q_limbs: self.q().len(),
            })?,
            secret,
            hamming_weight,
            security,
        };
        let mut out = Vec::with_capacity(HEADER_LEN + q.len() + p.len() + 32);
        out.resize(HEADER_LEN, 0);
        append(&wire, &mut out, "Params payload")?;
        seal_header(&mut out, ObjectKind::Params, self.fingerprint());
        Ok(out)
    }

    /// Loads a `Params` file: rebuilds the literal, validates it again (security bound
    /// included), and checks that the header's fingerprint is that of the result.
    pub fn from_bytes(bytes: &[u8]) -> Result<Params, Error> {
        const WHAT: &str = "Params payload";
        let (header, payload) = Header::decode_expect(bytes, ObjectKind::Params, None)?;
        let (w, rest) = take::<ParamsWire<'_>>(payload, WHAT)?;
        finish(rest, WHAT)?;
        let q = primes_from_bytes(w.q, MAX_Q_LIMBS, "Q primes")?;
        let p = primes_from_bytes(w.p, MAX_P_LIMBS, "P primes")?;
        let secret = match (w.secret, w.hamming_weight) {
            (SECRET_TERNARY, 0) => SecretDist::Ternary,
            (SECRET_TERNARY, _) => {
                return Err(Error::Malformed {
                    what: "secret distribution (a Hamming weight for a dense secret)",
                });
            }
            (SECRET_SPARSE, h) => SecretDist::SparseTernary {
                hamming_weight: usize::try_from(h).map_err(|_| Error::InvalidHammingWeight {
                    weight: usize::MAX,
                    n: 0,
                })?,
            },
            (code, _) => {
                return Err(Error::UnknownCode {
                    what: "secret distribution",
                    code: u64::from(code),
                });
            }
        };
        let security = match w.security {
            SECURITY_128 => Security::Classical128,
            SECURITY_INSECURE => Security::InsecureForTestsOnly,
            code => {
                return Err(Error::UnknownCode {
                    what: "security level",
                    code: u64::from(code),
                });
            }
        };
        let dnum = usize::try_from(w.dnum).map_err(|_| Error::InvalidDnum {
            dnum: usize::MAX,
            q_limbs: q.len(),
        })?;
        let mut literal = ParamsLiteral {
            log_n: w.log_n,
            q: Moduli::Primes(Vec::new()),
            p: Moduli::Primes(Vec::new()),
            log_scale: w.log_scale,
            dnum,
            secret,
            security,
        };
        // The fingerprint is cheap; validation builds NTT tables. Refuse a file whose header
        // does not describe its payload before paying for that.
        let claimed = crate::params::fingerprint(&literal, &q, &p);
        if claimed != header.fingerprint {
            return Err(Error::FingerprintMismatch {
                expected: claimed,
                found: header.fingerprint,
            });
        }
        literal.q = Moduli::Primes(q);
        literal.p = Moduli::Primes(p);
        let params = literal.validate()?;
        if params.fingerprint() != header.fingerprint {
            return Err(Error::FingerprintMismatch {
                expected: params.fingerprint(),
                found: header.fingerprint,
            });
        }
        Ok(params)
    }
}

// ---------------------------------------------------------------------------------------------
// PublicKey

#[derive(Serialize, Deserialize)]
struct PublicKeyWire<'a> {
    seed: Seed,
    #[serde(serialize_with = "as_bytes")]
    b: &'a [u8],
}

impl WireObject for PublicKey {
    const KIND: ObjectKind = ObjectKind::PublicKey;

    fn payload_size_hint(&self, params: &Params) -> usize {
        packed_poly_len(params.ctx(), params.max_level(), false) + 48
    }

    fn write_payload(&self, params: &Params, out: &mut Vec<u8>) -> Result<(), Error> {
        let ctx = params.ctx();
        let mut b = Vec::with_capacity(packed_poly_len(ctx, ctx.max_level(), false));
        write_poly(ctx, self.b(), ctx.max_level(), false, &mut b)?;
        let wire = PublicKeyWire {
            seed: *self.seed(),
            b: &b,
        };
        append(&wire, out, "PublicKey payload")
    }

    fn read_payload(params: &Params, payload: &[u8]) -> Result<Self, Error> {
        const WHAT: &str = "PublicKey payload";
        let (w, rest) = take::<PublicKeyWire<'_>>(payload, WHAT)?;
        finish(rest, WHAT)?;
        let ctx = params.ctx();
        let b = read_polys(ctx, ctx.max_level(), false, 1, w.b)?
            .pop()
            .ok_or(Error::Malformed { what: WHAT })?;
        PublicKey::from_seed(params, w.seed, b)
    }
}

// ---------------------------------------------------------------------------------------------
// EvalKeys

#[derive(Serialize, Deserialize)]
struct KeyWire<'a> {
    seed: Seed,
    /// The `dnum` packed `b` halves (top level, extended).
    #[serde(serialize_with = "as_bytes")]
    b: &'a [u8],
}

#[derive(Serialize, Deserialize)]
struct EvalKeysHead<'a> {
    #[serde(borrow)]
    relin: Option<KeyWire<'a>>,
    galois_count: u64,
}

#[derive(Serialize, Deserialize)]
struct GaloisWire<'a> {
    element: u64,
    #[serde(borrow)]
    key: KeyWire<'a>,
}

fn key_packed_len(params: &Params) -> usize {
    packed_poly_len(params.ctx(), params.max_level(), true).saturating_mul(params.dnum())
}

fn pack_key(params: &Params, key: &KeySwitchKey) -> Result<Vec<u8>, Error> {
    if key.b().len() != params.dnum() {
        return Err(Error::LengthMismatch {
            what: "key-switching digits",
            expected: params.dnum(),
            found: key.b().len(),
        });
    }
    let mut out = Vec::with_capacity(key_packed_len(params));
    for b in key.b() {
        write_poly(params.ctx(), b, params.max_level(), true, &mut out)?;
    }
    Ok(out)
}

fn read_key(params: &Params, w: &KeyWire<'_>) -> Result<KeySwitchKey, Error> {
    let b = read_polys(params.ctx(), params.max_level(), true, params.dnum(), w.b)?;
    KeySwitchKey::from_seed(params, w.seed, b)
}

/// Galois elements must be odd and below 2N.
fn check_galois_element(params: &Params, element: u64) -> Result<usize, Error> {
    let two_n = 2 * params.n() as u64;
    if element.is_multiple_of(2) || element >= two_n {
        return Err(Error::UnknownCode {
            what: "Galois element",
            code: element,
        });
    }
    usize::try_from(element).map_err(|_| Error::UnknownCode {
        what: "Galois element",
        code: element,
    })
}

impl WireObject for EvalKeys {
    const KIND: ObjectKind = ObjectKind::EvalKeys;

    fn payload_size_hint(&self, params: &Params) -> usize {
        let keys = usize::from(self.relin.is_some()) + self.galois.len();
        keys.saturating_mul(key_packed_len(params).saturating_add(64))
    }

    fn write_payload(&self, params: &Params, out: &mut Vec<u8>) -> Result<(), Error> {
        const WHAT: &str = "EvalKeys payload";
        let relin = self
            .relin
            .as_ref()
            .map(|r| pack_key(params, &r.0))
            .transpose()?;
        let head = EvalKeysHead {
            relin: self
                .relin
                .as_ref()
                .zip(relin.as_ref())
                .map(|(r, b)| KeyWire {
                    seed: *r.0.seed(),
                    b,
                }),
            galois_count: self.galois.len() as u64,
        };
        append(&head, out, WHAT)?;
        drop(relin);
        for (&element, gk) in &self.galois {
            if gk.element() != element {
                return Err(Error::Malformed {
                    what: "EvalKeys (a Galois key is filed under another element)",
                });
            }
            check_galois_element(params, element as u64)?;
            let b = pack_key(params, gk.key())?;
            let item = GaloisWire {
                element: element as u64,
                key: KeyWire {
                    seed: *gk.key().seed(),
                    b: &b,
                },
            };
            append(&item, out, WHAT)?;
        }
        Ok(())
    }

    fn read_payload(params: &Params, payload: &[u8]) -> Result<Self, Error> {
        const WHAT: &str = "EvalKeys payload";
        let (head, mut rest) = take::<EvalKeysHead<'_>>(payload, WHAT)?;
        let relin = head
            .relin
            .as_ref()
            .map(|k| read_key(params, k).map(RelinKey))
            .transpose()?;
        // Distinct odd elements below 2N other than the identity: at most N − 1.
        let max_keys = params.n() - 1;
        if head.galois_count > max_keys as u64 {
            return Err(Error::LengthMismatch {
                what: "Galois keys",
                expected: max_keys,
                found: usize::try_from(head.galois_count).unwrap_or(usize::MAX),
            });
        }
        let mut galois = BTreeMap::new();
        let mut previous: Option<usize> = None;
        for _ in 0..head.galois_count {
            let (item, r) = take::<GaloisWire<'_>>(rest, WHAT)?;
            rest = r;
            let element = check_galois_element(params, item.element)?;
            if previous.is_some_and(|p| p >= element) {
                return Err(Error::Malformed {
                    what: "EvalKeys (Galois elements not strictly increasing)",
                });
            }
            previous = Some(element);
            let key = read_key(params, &item.key)?;
            galois.insert(element, GaloisKey::from_parts(params, element, key)?);
        }
        finish(rest, WHAT)?;
        Ok(EvalKeys { relin, galois })
    }
}

// ---------------------------------------------------------------------------------------------
// Ciphertext

#[derive(Serialize, Deserialize)]
struct CiphertextWire<'a> {
    level: u32,
    /// The scale; postcard writes the 8 little-endian bytes of its bits.
    scale: f64,
    slots: u64,
    degree: u8,
    /// Present for fresh secret-key encryptions: `polys` then holds only `c_0`.
    seed: Option<Seed>,
    #[serde(serialize_with = "as_bytes")]
    polys: &'a [u8],
}

fn check_scale(scale: f64) -> Result<(), Error> {
    if scale.is_finite() && scale > 0.0 {
        Ok(())
    } else {
        Err(Error::InvalidScale { scale })
    }
}

fn check_slots(params: &Params, slots: usize) -> Result<(), Error> {
    let max = params.max_slots();
    if slots == 0 || !slots.is_power_of_two() || slots > max {
        return Err(Error::InvalidSlots { slots, max });
    }
    Ok(())
}

impl WireObject for Ciphertext {
    const KIND: ObjectKind = ObjectKind::Ciphertext;

    fn payload_size_hint(&self, params: &Params) -> usize {
        let stored = if self.seed().is_some() {
            1
        } else {
            self.polys().len()
        };
        packed_poly_len(params.ctx(), self.level().min(params.max_level()), false)
            .saturating_mul(stored)
            .saturating_add(64)
    }

    fn write_payload(&self, params: &Params, out: &mut Vec<u8>) -> Result<(), Error> {
        let ctx = params.ctx();
        let degree = self.degree();
        if !(1..=2).contains(&degree) {
            return Err(Error::WrongDegree {
                expected: 1,
                found: degree,
            });
        }
        check_scale(self.scale)?;
        check_slots(params, self.slots)?;
        let level = self.level();
        check_level(ctx, level)?;
        let seed = self.seed().copied().filter(|_| degree == 1);
        let stored = if seed.is_some() { 1 } else { degree + 1 };
        let mut polys = Vec::with_capacity(packed_poly_len(ctx, level, false) * stored);
        for c in self.polys().iter().take(stored) {
            write_poly(ctx, c, level, false, &mut polys)?;
        }
        let wire = CiphertextWire {
            level: u32::try_from(level).map_err(|_| Error::LevelTooLow {
                have: ctx.max_level(),
                need: level,
            })?,
            scale: self.scale,
            slots: self.slots as u64,
            degree: degree as u8,
            seed,
            polys: &polys,
        };
        append(&wire, out, "Ciphertext payload")
    }

    fn read_payload(params: &Params, payload: &[u8]) -> Result<Self, Error> {
        const WHAT: &str = "Ciphertext payload";
        let (w, rest) = take::<CiphertextWire<'_>>(payload, WHAT)?;
        finish(rest, WHAT)?;
        let ctx = params.ctx();
        let level = usize::try_from(w.level).unwrap_or(usize::MAX);
        check_level(ctx, level)?;
        check_scale(w.scale)?;
        check_slots(params, usize::try_from(w.slots).unwrap_or(usize::MAX))?;
        let slots = usize::try_from(w.slots).unwrap_or(usize::MAX);
        let degree = usize::from(w.degree);
        if !(1..=2).contains(&degree) || (w.seed.is_some() && degree != 1) {
            return Err(Error::WrongDegree {
                expected: 1,
                found: degree,
            });
        }
        match w.seed {
            Some(seed) => {
                let c0 = read_polys(ctx, level, false, 1, w.polys)?
                    .pop()
                    .ok_or(Error::Malformed { what: WHAT })?;
                Ok(expand_seeded(params, c0, seed, w.scale, slots))
            }
            None => {
                let c = read_polys(ctx, level, false, degree + 1, w.polys)?;
                Ciphertext::from_parts(c, w.scale, slots)
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// SecretKey (hospital only)

#[derive(Serialize, Deserialize)]
struct SecretKeyWire<'a> {
    /// Coefficients, 2 bits each, four per byte, lowest first: the two's-complement low bits
    /// (0 → `00`, 1 → `01`, −1 → `11`; `10` is invalid).
    #[serde(serialize_with = "as_bytes")]
    coeffs: &'a [u8],
}

/// Room for the postcard framing of [`SecretKeyWire`] (a length varint).
const SECRET_FRAMING: usize = 10;

impl SecretKey {
    /// The hospital's `SecretKey` file. The buffer (and every temporary holding secret bits) is
    /// wiped when dropped. Fails with [`Error::ParamsMismatch`] if `params` are not the key's.
    ///
    /// Not a [`WireObject`]: no generic writer of cloud-bound files accepts a secret key.
    pub fn to_bytes(&self, params: &Params) -> Result<Zeroizing<Vec<u8>>, Error> {
        if params.fingerprint() != self.params().fingerprint() {
            return Err(Error::ParamsMismatch {
                expected: params.fingerprint(),
                found: self.params().fingerprint(),
            });
        }
        let coeffs = self.coeffs();
        if coeffs.len() != params.n() {
            return Err(Error::LengthMismatch {
                what: "secret key",
                expected: params.n(),
                found: coeffs.len(),
            });
        }
        let mut packed = Zeroizing::new(alloc::vec![0u8; coeffs.len().div_ceil(4)]);
        for (byte, four) in packed.iter_mut().zip(coeffs.chunks(4)) {
            *byte = four
                .iter()
                .enumerate()
                .fold(0u8, |acc, (i, &c)| acc | (((c as u8) & 3) << (2 * i)));
        }
        let wire = SecretKeyWire { coeffs: &packed };
        // Sized once: the buffer never reallocates, so no copy of the key is left behind.
        let mut out = Zeroizing::new(alloc::vec![0u8; HEADER_LEN + packed.len() + SECRET_FRAMING]);
        let used = {
            let body = out.get_mut(HEADER_LEN..).unwrap_or_default();
            postcard::to_slice(&wire, body)
                .map_err(|_| Error::Malformed {
                    what: "SecretKey payload",
                })?
                .len()
        };
        out.truncate(HEADER_LEN + used);
        seal_header(&mut out, ObjectKind::SecretKey, params.fingerprint());
        Ok(out)
    }

    /// Loads the hospital's `SecretKey` file for `params`; the decoded coefficients pass
    /// through a buffer that is wiped. (The caller wipes `bytes`.)
    pub fn from_bytes(params: &Params, bytes: &[u8]) -> Result<Self, Error> {
        const WHAT: &str = "SecretKey payload";
        let (_, payload) =
            Header::decode_expect(bytes, ObjectKind::SecretKey, Some(params.fingerprint()))?;
        let (w, rest) = take::<SecretKeyWire<'_>>(payload, WHAT)?;
        finish(rest, WHAT)?;
        let n = params.n();
        if w.coeffs.len() != n.div_ceil(4) {
            return Err(Error::LengthMismatch {
                what: "packed secret key",
                expected: n.div_ceil(4),
                found: w.coeffs.len(),
            });
        }
        let mut coeffs = Zeroizing::new(alloc::vec![0i64; n]);
        // Branch-free on the secret: sign-extend each 2-bit field, flag the invalid `10`.
        let mut invalid = 0u8;
        for (&byte, four) in w.coeffs.iter().zip(coeffs.chunks_mut(4)) {
            for (i, c) in four.iter_mut().enumerate() {
                let code = (byte >> (2 * i)) & 3;
                invalid |= (code >> 1) & !code & 1;
                *c = (i64::from(code) << 62) >> 62;
            }
        }
        if invalid != 0 {
            return Err(Error::InvalidSecret);
        }
        if let SecretDist::SparseTernary { hamming_weight } = params.secret() {
            let weight = coeffs.iter().filter(|&&c| c != 0).count();
            if weight != hamming_weight {
                return Err(Error::InvalidHammingWeight { weight, n });
            }
        }
        SecretKey::from_coeffs(params, &coeffs)
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )]

    use super::*;
    use alloc::format;
    use alloc::vec;
    use proptest::prelude::*;

    /// Reference: value `i` occupies bits `i·w .. (i+1)·w` of the stream, LSB first.
    fn pack_reference(values: &[u64], width: u32) -> Vec<u8> {
        let mut out = vec![0u8; bits::packed_len(values.len(), width)];
        for (i, &v) in values.iter().enumerate() {
            for b in 0..width {
                if (v >> b) & 1 == 1 {
                    let pos = i * width as usize + b as usize;
                    out[pos / 8] |= 1 << (pos % 8);
                }
            }
        }
        out
    }

    proptest! {
        #[test]
        fn pack_matches_reference_and_round_trips(
            width in 1u32..=64,
            raw in proptest::collection::vec(any::<u64>(), 0..70),
        ) {
            let m = if width == 64 { u64::MAX } else { (1 << width) - 1 };
            let values: Vec<u64> = raw.iter().map(|v| v & m).collect();
            let mut packed = vec![0xAA]; // appends after existing content
            bits::pack(&values, width, &mut packed).unwrap();
            prop_assert_eq!(&packed[1..], &pack_reference(&values, width)[..]);
            let mut back = vec![0u64; values.len()];
            bits::unpack(&packed[1..], width, &mut back).unwrap();
            prop_assert_eq!(back, values);
        }

        #[test]
        fn unpack_never_panics(
            width in 0u32..=70,
            bytes in proptest::collection::vec(any::<u8>(), 0..80),
            count in 0usize..80,
        ) {
            let mut out = vec![0u64; count];
            let _ = bits::unpack(&bytes, width, &mut out);
        }
    }

    #[test]
    fn pack_drops_high_bits_and_widths_are_checked() {
        let mut out = Vec::new();
        bits::pack(&[0b1111, 0b0001], 2, &mut out).unwrap();
        assert_eq!(out, [0b0111]);
        assert!(bits::pack(&[1], 0, &mut out).is_err());
        assert!(bits::pack(&[1], 65, &mut out).is_err());
        assert_eq!(bits::packed_len(1024, 50), 6400);
        assert_eq!(bits::packed_len(3, 3), 2);
    }

    #[test]
    fn unpack_rejects_wrong_lengths_and_nonzero_padding() {
        let mut out = [0u64; 3];
        assert!(bits::unpack(&[0, 0], 5, &mut out).is_ok());
        assert!(matches!(
            bits::unpack(&[0], 5, &mut out),
            Err(Error::LengthMismatch { .. })
        ));
        assert!(matches!(
            bits::unpack(&[0, 0x80], 5, &mut out),
            Err(Error::Malformed { .. })
        ));
        // 50-bit values, 7 of them: 350 bits = 44 bytes, 2 padding bits.
        let vals: Vec<u64> = (1..=7u64)
            .map(|i| (i * 0x3_0000_0000_0001) & ((1 << 50) - 1))
            .collect();
        let mut p = Vec::new();
        bits::pack(&vals, 50, &mut p).unwrap();
        assert_eq!(p.len(), 44);
        let mut back = [0u64; 7];
        bits::unpack(&p, 50, &mut back).unwrap();
        assert_eq!(back.to_vec(), vals);
        *p.last_mut().unwrap() |= 0x80;
        assert!(bits::unpack(&p, 50, &mut back).is_err());
    }

    #[test]
    fn overlong_varints_are_refused() {
        #[derive(Serialize, Deserialize, Debug, PartialEq)]
        struct T {
            a: u32,
            b: u8,
        }
        assert_eq!(
            take::<T>(&[4, 7, 9], "t").unwrap(),
            (T { a: 4, b: 7 }, &[9u8][..])
        );
        // 4 as the two-byte varint 0x84 0x00.
        assert_eq!(
            take::<T>(&[0x84, 0, 7], "t").unwrap_err(),
            Error::Malformed { what: "t" }
        );
        assert!(
            postcard::from_bytes::<T>(&[0x84, 0, 7]).is_ok(),
            "postcard alone accepts it"
        );
    }

    #[test]
    fn new_error_messages_are_pinned() {
        let cases: [(Error, &str); 3] = [
            (
                Error::Malformed {
                    what: "EvalKeys payload",
                },
                "malformed EvalKeys payload",
            ),
            (
                Error::TrailingBytes {
                    what: "Ciphertext payload",
                    count: 3,
                },
                "Ciphertext payload: 3 unexpected bytes after the end",
            ),
            (
                Error::InvalidScale { scale: -1.0 },
                "scale -1 is not finite and positive",
            ),
        ];
        for (e, want) in cases {
            assert_eq!(format!("{e}"), want);
        }
    }

    // ----- crafted payloads: each check of the loaders -----

    use crate::encoding::Encoder;
    use crate::encrypt::{encrypt_pk, encrypt_sk};
    use crate::params::presets;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    fn toy() -> Params {
        presets::toy_insecure_n10().validate().unwrap()
    }

    fn file<T: Serialize>(params: &Params, kind: ObjectKind, payload: &T) -> Vec<u8> {
        let mut out = vec![0u8; HEADER_LEN];
        append(payload, &mut out, "test").unwrap();
        seal_header(&mut out, kind, params.fingerprint());
        out
    }

    fn packed(params: &Params, polys: &[Poly<Ntt>], level: usize, ext: bool) -> Vec<u8> {
        let mut out = Vec::new();
        for p in polys {
            write_poly(params.ctx(), p, level, ext, &mut out).unwrap();
        }
        out
    }

    #[test]
    fn ciphertext_metadata_is_checked() {
        let params = toy();
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let sk = SecretKey::generate(&params, &mut rng).unwrap();
        let pk = PublicKey::generate(&sk, &mut rng).unwrap();
        let enc = Encoder::new(&params, 4).unwrap();
        let pt = enc.encode(&[1.0, 2.0]).unwrap();
        let ct = encrypt_pk(&params, &pk, &pt, &mut rng).unwrap();
        let top = params.max_level();
        let polys = packed(&params, ct.polys(), top, false);
        let good = CiphertextWire {
            level: top as u32,
            scale: ct.scale,
            slots: 4,
            degree: 1,
            seed: None,
            polys: &polys,
        };
        let load = |w: &CiphertextWire<'_>| {
            Ciphertext::from_bytes(&params, &file(&params, ObjectKind::Ciphertext, w))
        };
        assert_eq!(load(&good).unwrap(), ct);
        let max = params.max_slots();
        let cases: [(CiphertextWire<'_>, Error); 9] = [
            (
                CiphertextWire {
                    level: top as u32 + 1,
                    ..good
                },
                Error::LevelTooLow {
                    have: top,
                    need: top + 1,
                },
            ),
            (
                CiphertextWire {
                    level: top as u32 - 1,
                    ..good
                },
                Error::LengthMismatch {
                    what: "packed polynomials",
                    expected: 2 * packed_poly_len(params.ctx(), top - 1, false),
                    found: polys.len(),
                },
            ),
            (
                CiphertextWire {
                    scale: f64::INFINITY,
                    ..good
                },
                Error::InvalidScale {
                    scale: f64::INFINITY,
                },
            ),
            (
                CiphertextWire { scale: 0.0, ..good },
                Error::InvalidScale { scale: 0.0 },
            ),
            (
                CiphertextWire { slots: 6, ..good },
                Error::InvalidSlots { slots: 6, max },
            ),
            (
                CiphertextWire {
                    slots: 2 * max as u64,
                    ..good
                },
                Error::InvalidSlots {
                    slots: 2 * max,
                    max,
                },
            ),
            (
                CiphertextWire { degree: 3, ..good },
                Error::WrongDegree {
                    expected: 1,
                    found: 3,
                },
            ),
            (
                CiphertextWire { degree: 0, ..good },
                Error::WrongDegree {
                    expected: 1,
                    found: 0,
                },
            ),
            (
                CiphertextWire {
                    degree: 2,
                    seed: Some([7; 32]),
                    ..good
                },
                Error::WrongDegree {
                    expected: 1,
                    found: 2,
                },
            ),
        ];
        for (w, want) in cases {
            assert_eq!(load(&w).unwrap_err(), want);
        }
        // Trailing bytes after the payload.
        let mut f = file(&params, ObjectKind::Ciphertext, &good);
        f.push(0);
        seal_header(&mut f, ObjectKind::Ciphertext, params.fingerprint());
        assert_eq!(
            Ciphertext::from_bytes(&params, &f).unwrap_err(),
            Error::TrailingBytes {
                what: "Ciphertext payload",
                count: 1
            }
        );
        // A seeded ciphertext stores only c_0.
        let cs = encrypt_sk(&params, &sk, &pt, &mut rng).unwrap();
        let c0 = packed(&params, &cs.polys()[..1], top, false);
        let seeded = CiphertextWire {
            seed: cs.seed().copied(),
            polys: &c0,
            ..good
        };
        assert_eq!(load(&seeded).unwrap(), cs);
        assert!(matches!(
            load(&CiphertextWire {
                seed: None,
                ..seeded
            }),
            Err(Error::LengthMismatch { .. })
        ));
    }

    #[test]
    fn eval_keys_structure_is_checked() {
        let params = toy();
        let mut rng = ChaCha20Rng::seed_from_u64(6);
        let sk = SecretKey::generate(&params, &mut rng).unwrap();
        let keys = EvalKeys::generate(&sk, &[1, 2], false, &mut rng).unwrap();
        let top = params.max_level();
        let gks: Vec<(&usize, &GaloisKey)> = keys.galois.iter().collect();
        let (&e0, gk0) = gks[0];
        let b0 = packed(&params, gk0.key().b(), top, true);
        let key0 = || KeyWire {
            seed: *gk0.key().seed(),
            b: &b0,
        };
        let load_items = |count: u64, elements: &[u64]| {
            let mut f = vec![0u8; HEADER_LEN];
            append(
                &EvalKeysHead {
                    relin: None,
                    galois_count: count,
                },
                &mut f,
                "t",
            )
            .unwrap();
            for &element in elements {
                append(
                    &GaloisWire {
                        element,
                        key: key0(),
                    },
                    &mut f,
                    "t",
                )
                .unwrap();
            }
            seal_header(&mut f, ObjectKind::EvalKeys, params.fingerprint());
            EvalKeys::from_bytes(&params, &f)
        };
        let one = load_items(1, &[e0 as u64]).unwrap();
        assert_eq!(one.galois[&e0], *gk0);
        assert!(one.relin.is_none());
        let two_n = 2 * params.n() as u64;
        for bad in [4, two_n + 1, two_n + 5, u64::MAX] {
            assert_eq!(
                load_items(1, &[bad]).unwrap_err(),
                Error::UnknownCode {
                    what: "Galois element",
                    code: bad
                }
            );
        }
        assert!(matches!(
            load_items(2, &[e0 as u64, e0 as u64]),
            Err(Error::Malformed { .. })
        ));
        assert!(matches!(
            load_items(2, &[7, 5]),
            Err(Error::Malformed { .. })
        ));
        // More keys than there are Galois elements: refused before reading any.
        assert_eq!(
            load_items(params.n() as u64, &[]).unwrap_err(),
            Error::LengthMismatch {
                what: "Galois keys",
                expected: params.n() - 1,
                found: params.n()
            }
        );
        // Fewer items than announced, and more.
        assert!(matches!(load_items(2, &[5]), Err(Error::Malformed { .. })));
        assert!(matches!(
            load_items(1, &[5, 7]),
            Err(Error::TrailingBytes { .. })
        ));
        // A key with a digit missing.
        let short = &b0[..b0.len() / params.dnum() * (params.dnum() - 1)];
        let mut f = vec![0u8; HEADER_LEN];
        append(
            &EvalKeysHead {
                relin: Some(KeyWire {
                    seed: [0; 32],
                    b: short,
                }),
                galois_count: 0,
            },
            &mut f,
            "t",
        )
        .unwrap();
        seal_header(&mut f, ObjectKind::EvalKeys, params.fingerprint());
        assert!(matches!(
            EvalKeys::from_bytes(&params, &f),
            Err(Error::LengthMismatch {
                what: "packed polynomials",
                ..
            })
        ));
        // The writer refuses a key filed under another element.
        let mut mixed = keys.clone();
        let k = mixed.galois.remove(&e0).unwrap();
        mixed.galois.insert(e0 + 2, k);
        assert!(matches!(
            mixed.to_bytes(&params),
            Err(Error::Malformed { .. })
        ));
    }

    #[test]
    fn secret_key_payload_is_checked() {
        let params = toy();
        let n = params.n();
        let load = |coeffs: &[u8]| {
            SecretKey::from_bytes(
                &params,
                &file(&params, ObjectKind::SecretKey, &SecretKeyWire { coeffs }),
            )
        };
        // 0, 1, −1, 0 in every byte: 0b00_11_01_00.
        let sk = load(&vec![0b0011_0100; n / 4]).unwrap();
        assert_eq!(&sk.coeffs()[..8], &[0, 1, -1, 0, 0, 1, -1, 0]);
        let mut bad = vec![0u8; n / 4];
        bad[17] = 0b10 << 4;
        assert_eq!(load(&bad).unwrap_err(), Error::InvalidSecret);
        assert!(matches!(
            load(&vec![0u8; n / 4 - 1]),
            Err(Error::LengthMismatch { .. })
        ));
        // A sparse secret must have its Hamming weight.
        let mut lit = presets::toy_insecure_n10();
        lit.secret = SecretDist::SparseTernary { hamming_weight: 3 };
        let sparse = lit.validate().unwrap();
        let mut coeffs = vec![0u8; n / 4];
        coeffs[0] = 0b01_11_01;
        let f = |c: &[u8]| file(&sparse, ObjectKind::SecretKey, &SecretKeyWire { coeffs: c });
        assert!(SecretKey::from_bytes(&sparse, &f(&coeffs)).is_ok());
        coeffs[1] = 1;
        assert_eq!(
            SecretKey::from_bytes(&sparse, &f(&coeffs)).unwrap_err(),
            Error::InvalidHammingWeight { weight: 4, n }
        );
    }

    #[test]
    fn params_payload_is_checked() {
        let params = toy();
        let q = primes_to_bytes(params.q());
        let p = primes_to_bytes(params.p());
        let good = ParamsWire {
            log_n: 10,
            q: &q,
            p: &p,
            log_scale: 40.0,
            dnum: 5,
            secret: SECRET_TERNARY,
            hamming_weight: 0,
            security: SECURITY_INSECURE,
        };
        let load = |w: &ParamsWire<'_>| Params::from_bytes(&file(&params, ObjectKind::Params, w));
        assert_eq!(load(&good).unwrap().fingerprint(), params.fingerprint());
        assert_eq!(
            load(&ParamsWire { secret: 9, ..good }).unwrap_err(),
            Error::UnknownCode {
                what: "secret distribution",
                code: 9
            }
        );
        assert!(matches!(
            load(&ParamsWire {
                hamming_weight: 3,
                ..good
            }),
            Err(Error::Malformed { .. })
        ));
        assert_eq!(
            load(&ParamsWire {
                security: 0,
                ..good
            })
            .unwrap_err(),
            Error::UnknownCode {
                what: "security level",
                code: 0
            }
        );
        // Loading validates again: the toy chain is not 128-bit secure.
        assert!(matches!(
            load(&ParamsWire {
                security: SECURITY_128,
                ..good
            }),
            Err(Error::InsecureModulus { .. })
        ));
        assert!(matches!(
            load(&ParamsWire {
                q: &q[..q.len() - 3],
                ..good
            }),
            Err(Error::Malformed { .. })
        ));
        let many = vec![0u8; 8 * (MAX_Q_LIMBS + 1)];
        assert_eq!(
            load(&ParamsWire { q: &many, ..good }).unwrap_err(),
            Error::LengthMismatch {
                what: "Q primes",
                expected: MAX_Q_LIMBS,
                found: MAX_Q_LIMBS + 1
            }
        );
        // Valid parameters, but not the ones the header's fingerprint names.
        assert!(matches!(
            load(&ParamsWire {
                log_scale: 39.0,
                ..good
            }),
            Err(Error::FingerprintMismatch { .. })
        ));
    }
}
