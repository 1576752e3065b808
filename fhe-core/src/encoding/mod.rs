//! CKKS encoding: the canonical embedding between complex slot vectors and plaintext
//! polynomials.
//!
//! - [`fft`]: the special FFT over the rotation group 5^j (slots ↔ real coefficients), pure f64;
//! - [`Encoder`]: scales, rounds and spreads those coefficients into an RNS polynomial at a
//!   chosen level, and back.
//!
//! With `slots = n ≤ N/2` and `gap = N / (2n)`, a slot vector `z` is encoded as the real
//! polynomial `m(X) = p(X^gap)` where `p` has degree `< 2n` and `p(ξ^(5^j)) = z_j · Δ`
//! (ξ = exp(2πi/4n)). Rotating slots by `r` is the automorphism `X → X^(5^r)`, conjugation is
//! `X → X^-1`, for every slot count.

pub mod fft;

use alloc::vec::Vec;

pub use fft::{Complex, SlotFft};

use crate::Error;
use crate::params::Params;
use crate::ring::{Coeff, Ntt, Poly};

/// A plaintext: an NTT-domain polynomial with the scale and slot count it was encoded with.
#[derive(Clone, Debug, PartialEq)]
pub struct Plaintext {
    /// The encoded polynomial.
    pub poly: Poly<Ntt>,
    /// The scale Δ the values were multiplied by.
    pub scale: f64,
    /// The number of slots.
    pub slots: usize,
}

impl Plaintext {
    /// The level of the polynomial.
    pub fn level(&self) -> usize {
        self.poly.level()
    }
}

/// Encoder and decoder for one parameter set and one slot count.
#[derive(Clone, Debug)]
pub struct Encoder {
    params: Params,
    fft: SlotFft,
    gap: usize,
}

/// Values whose magnitude after scaling is below this are rounded through `i64`; larger ones
/// through their f64 mantissa and exponent.
const SMALL_LIMIT: f64 = 4_611_686_018_427_387_904.0; // 2^62

impl Encoder {
    /// An encoder for `slots` slots (a power of two, at most N/2).
    pub fn new(params: &Params, slots: usize) -> Result<Self, Error> {
        let max = params.max_slots();
        if slots == 0 || !slots.is_power_of_two() || slots > max {
            return Err(Error::InvalidSlots { slots, max });
        }
        Ok(Self {
            params: params.clone(),
            fft: SlotFft::new(slots)?,
            gap: params.n() / (2 * slots),
        })
    }

    /// The slot count.
    pub fn slots(&self) -> usize {
        self.fft.slots()
    }

    /// The parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Scratch (complex words) for the `_into` forms.
    pub fn scratch_len(&self) -> usize {
        self.slots()
    }

    /// Encodes up to `slots` complex values (missing ones are zero) at `scale` and `level` into
    /// `out`, using `scratch` ([`Encoder::scratch_len`] entries). Does not allocate when `out`
    /// has the capacity.
    pub fn encode_complex_into(
        &self,
        values: &[Complex],
        scale: f64,
        level: usize,
        out: &mut Poly<Ntt>,
        scratch: &mut [Complex],
    ) -> Result<(), Error> {
        let slots = self.slots();
        if values.len() > slots {
            return Err(Error::LengthMismatch {
                what: "values to encode",
                expected: slots,
                found: values.len(),
            });
        }
        let ctx = self.params.ctx();
        if level > ctx.max_level() {
            return Err(Error::LevelTooLow {
                have: ctx.max_level(),
                need: level,
            });
        }
        if !(scale.is_finite() && scale > 0.0) {
            return Err(Error::EncodingOverflow {
                value: scale,
                log_scale: libm::log2(scale),
            });
        }
        let have = scratch.len();
        let v = scratch.get_mut(..slots).ok_or(Error::LengthMismatch {
            what: "encoder scratch",
            expected: slots,
            found: have,
        })?;
        v.fill(Complex::ZERO);
        for (d, s) in v.iter_mut().zip(values) {
            *d = *s;
        }
        self.fft.slots_to_coeffs(v)?;
        // Largest coefficient magnitude that does not wrap modulo Q_level (with a bit to spare).
        let log_q: f64 = ctx
            .q()
            .iter()
            .take(level + 1)
            .map(|m| libm::log2(m.value() as f64))
            .sum();
        let log_limit = log_q - 2.0;
        let n = ctx.n();
        let half = n / 2;
        let gap = self.gap;
        let limit = libm::exp2(log_limit);
        let log_scale = libm::log2(scale);
        // Round in place (the rounded values are integers, exact in f64) and bound them.
        let mut bound = 0u64;
        let mut wide = false;
        for c in v.iter_mut() {
            for x in [&mut c.re, &mut c.im] {
                let r = libm::round(*x * scale);
                if !r.is_finite() || libm::fabs(r) >= limit {
                    return Err(Error::EncodingOverflow {
                        value: *x,
                        log_scale,
                    });
                }
                if libm::fabs(r) < SMALL_LIMIT {
                    bound = bound.max((r as i64).unsigned_abs());
                } else {
                    wide = true;
                }
                *x = r;
            }
        }
        let v: &[Complex] = v;
        // Each limb from the rounded coefficients, then its NTT, limb by limb.
        let reduce = |m: &crate::math::Modulus, r: f64| -> u64 {
            if wide {
                Rounded::new(r, limit).map_or(0, |w| w.reduce(m))
            } else if bound < m.value() {
                let x = r as i64;
                (x as u64).wrapping_add(m.value() & ((x >> 63) as u64))
            } else {
                m.reduce_i64(r as i64)
            }
        };
        Poly::fill_limbs_ntt(ctx, level, out, |_, m, limb| {
            if gap == 1 {
                let (lo, hi) = limb.split_at_mut(half.min(limb.len()));
                for ((a, b), c) in lo.iter_mut().zip(hi.iter_mut()).zip(v) {
                    *a = reduce(m, c.re);
                    *b = reduce(m, c.im);
                }
            } else {
                limb.fill(0);
                for (i, c) in v.iter().enumerate() {
                    for (idx, x) in [(i * gap, c.re), (half + i * gap, c.im)] {
                        if let Some(d) = limb.get_mut(idx) {
                            *d = reduce(m, x);
                        }
                    }
                }
            }
        });
        Ok(())
    }

    /// Encodes real values at the parameters' default scale and the top level.
    pub fn encode(&self, values: &[f64]) -> Result<Plaintext, Error> {
        self.encode_at(values, self.params.scale(), self.params.max_level())
    }

    /// Encodes real values at `scale` and `level`.
    pub fn encode_at(&self, values: &[f64], scale: f64, level: usize) -> Result<Plaintext, Error> {
        let c: Vec<Complex> = values.iter().map(|&x| Complex::new(x, 0.0)).collect();
        self.encode_complex_at(&c, scale, level)
    }

    /// Encodes complex values at `scale` and `level`.
    pub fn encode_complex_at(
        &self,
        values: &[Complex],
        scale: f64,
        level: usize,
    ) -> Result<Plaintext, Error> {
        let mut poly = Poly::zero(self.params.ctx(), level, false);
        let mut scratch = alloc::vec![Complex::ZERO; self.scratch_len()];
        self.encode_complex_into(values, scale, level, &mut poly, &mut scratch)?;
        Ok(Plaintext {
            poly,
            scale,
            slots: self.slots(),
        })
    }

    /// Decodes a coefficient-domain polynomial holding values at `scale` into `out`
    /// (`slots` entries). Exact CRT reconstruction of each used coefficient, then the FFT.
    pub fn decode_coeff_into(
        &self,
        poly: &Poly<Coeff>,
        scale: f64,
        out: &mut [Complex],
    ) -> Result<(), Error> {
        let slots = self.slots();
        if out.len() != slots {
            return Err(Error::LengthMismatch {
                what: "decoded slots",
                expected: slots,
                found: out.len(),
            });
        }
        let ctx = self.params.ctx();
        let half = ctx.n() / 2;
        let gap = self.gap;
        // Independent blocks of slots (in parallel with the `parallel` feature).
        const BLOCK: usize = 256;
        crate::par::chunks_mut(out, BLOCK, |b, o| {
            let (mut re, mut im) = ([0.0f64; BLOCK], [0.0f64; BLOCK]);
            let len = o.len();
            let (Some(re), Some(im)) = (re.get_mut(..len), im.get_mut(..len)) else {
                return;
            };
            let first = b * BLOCK * gap;
            poly.coeffs_f64_into(ctx, first, gap, re);
            poly.coeffs_f64_into(ctx, half + first, gap, im);
            for ((c, &x), &y) in o.iter_mut().zip(re.iter()).zip(im.iter()) {
                *c = Complex::new(x / scale, y / scale);
            }
        });
        self.fft.coeffs_to_slots(out)
    }

    /// Decodes a plaintext to complex slots.
    pub fn decode_complex(&self, pt: &Plaintext) -> Result<Vec<Complex>, Error> {
        let mut coeff = Poly::empty();
        pt.poly.to_coeff_into(self.params.ctx(), &mut coeff);
        let mut out = alloc::vec![Complex::ZERO; self.slots()];
        self.decode_coeff_into(&coeff, pt.scale, &mut out)?;
        Ok(out)
    }

    /// Decodes a plaintext to the real parts of its slots.
    pub fn decode(&self, pt: &Plaintext) -> Result<Vec<f64>, Error> {
        Ok(self.decode_complex(pt)?.into_iter().map(|c| c.re).collect())
    }
}

/// A rounded coefficient: an `i64`, or for magnitudes of `2^62` and more an exact
/// `mantissa · 2^shift` with a 53-bit mantissa.
#[derive(Clone, Copy)]
enum Rounded {
    Small(i64),
    Wide { mant: i64, shift: u64 },
}

impl Rounded {
    /// Rounds `x`; `None` for NaN, infinities and magnitudes of `limit` or more (they would wrap
    /// modulo Q).
    fn new(x: f64, limit: f64) -> Option<Self> {
        let r = libm::round(x);
        if !r.is_finite() || libm::fabs(r) >= limit {
            return None;
        }
        if libm::fabs(r) < SMALL_LIMIT {
            return Some(Self::Small(r as i64));
        }
        let (frac, exp) = libm::frexp(r);
        let shift = u64::try_from(exp - 53).ok()?;
        Some(Self::Wide {
            mant: libm::ldexp(frac, 53) as i64,
            shift,
        })
    }

    fn reduce(self, m: &crate::math::Modulus) -> u64 {
        match self {
            Self::Small(v) => m.reduce_i64(v),
            Self::Wide { mant, shift } => m.mul(m.reduce_i64(mant), m.pow(2, shift)),
        }
    }
}

/// Precision of a computed vector against a reference, in bits: `−log2 |error|` per slot.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Precision {
    /// Worst slot.
    pub min_bits: f64,
    /// `−log2` of the mean absolute error.
    pub mean_bits: f64,
    /// Median over slots.
    pub median_bits: f64,
}

impl Precision {
    /// Compares complex vectors (the error of a slot is the modulus of the difference).
    pub fn of_complex(want: &[Complex], got: &[Complex]) -> Self {
        let errs: Vec<f64> = want.iter().zip(got).map(|(w, g)| (*w - *g).abs()).collect();
        Self::from_errors(errs)
    }

    /// Compares real vectors.
    pub fn of_real(want: &[f64], got: &[f64]) -> Self {
        let errs: Vec<f64> = want
            .iter()
            .zip(got)
            .map(|(w, g)| libm::fabs(w - g))
            .collect();
        Self::from_errors(errs)
    }

    fn from_errors(mut errs: Vec<f64>) -> Self {
        let bits = |e: f64| -libm::log2(e.max(f64::MIN_POSITIVE));
        if errs.is_empty() {
            return Self {
                min_bits: f64::INFINITY,
                mean_bits: f64::INFINITY,
                median_bits: f64::INFINITY,
            };
        }
        let mean = errs.iter().sum::<f64>() / errs.len() as f64;
        errs.sort_by(f64::total_cmp);
        let max = errs.last().copied().unwrap_or(0.0);
        let median = errs.get(errs.len() / 2).copied().unwrap_or(0.0);
        Self {
            min_bits: bits(max),
            mean_bits: bits(mean),
            median_bits: bits(median),
        }
    }
}

#[cfg(test)]
mod tests;
