//! CKKS bootstrapping: bring a ciphertext at level 0 back to a high level, non-interactively,
//! with public evaluation keys only.
//!
//! For `n` slots (`gap = N/(2n)`) and an input at level 0 and scale `Δ`:
//!
//! 1. **ModRaise** ([`Bootstrapper::mod_raise`]): the residues mod `q_0` are lifted (centred)
//!    to the whole chain. The ciphertext now decrypts to `t = Δ·m + e + q_0·I` with a small
//!    integer polynomial `I` (`|I_k| < K`, see below). For sparse slots (`gap > 1`) the partial
//!    trace `Σ_j σ_{5^{n·j}}` (`log2 gap` rotate-and-add steps) keeps the coefficients of the
//!    subring `Z[X^gap]`, which hold the slots, and multiplies them by `gap`.
//! 2. **CoeffToSlot** ([`Bootstrapper::coeffs_to_slots`]): the slots receive the coefficients of
//!    `t`, divided by `gap·q_0·K`: the special inverse FFT of the encoder
//!    ([`crate::encoding::SlotFft`]) without its bit reversal, its `log2 n` butterfly stages
//!    merged into `cts_levels` sparse linear maps (the *level budget*, "split FFT levels"), each a
//!    baby-step giant-step [`LinearTransform`] costing one level. The output is complex (real
//!    coefficient `i` and `i + n` in one slot); the real and imaginary parts are split with one
//!    conjugation. With sparse slots both halves fit in one ciphertext of `2n` slots (the last
//!    map writes `v` and `−i·v` in the two halves); with full slots they are two ciphertexts.
//! 3. **EvalMod** ([`Bootstrapper::eval_mod`]): for `y = x/K`, `x = t/q_0 = (Δm + e)/q_0 + I`,
//!    a Chebyshev interpolant of `cos(2π(K·y − 1/4)/2^r)` on `[−1, 1]`
//!    ([`EVAL_MOD_DEGREE`]) followed by `r` double-angle steps `c ← 2c² − 1` gives
//!    `sin(2πx) = sin(2π(Δm + e)/q_0) ≈ 2π(Δm + e)/q_0`: the multiple of `q_0` is gone.
//! 4. **SlotToCoeff** ([`Bootstrapper::slots_to_coeffs`]): the forward special FFT (stages in
//!    `stc_levels` maps), with `q_0/(2πΔ_ref)` folded into the first map, recombines the real and
//!    imaginary parts and puts the values back into the slots.
//!
//! **Parameters** ([`BootstrapConfig`]): the *message ratio* `q_0/Δ` sets the error of the sine
//! approximation, relative `(2π)²/6·(Δ/q_0)²·|m|²` (2^-30 at a ratio of 2^18 and `|m| ≤ 1`);
//! `K` bounds `|I|`: `I_k` is a sum of `h + 1` terms uniform in `[−½, ½]` for a secret of
//! Hamming weight `h`, standard deviation `σ_I = √((h + 1)/12)`, and `K` is the power of two at
//! or above `6.5·σ_I` ([`k_for_secret`]: 32 for `h = 192`, 16 for `h = 64`, 512 for a uniform
//! ternary secret at N = 2^16); `r = log2 K − 2` double-angle steps keep the cosine's argument
//! within `±(8π + π/2)`, where the degree-[`EVAL_MOD_DEGREE`] interpolant is accurate to about
//! 2^-50.
//!
//! **Scales.** After ModRaise the ciphertext is *labelled* with the scale `σ = q` of the first
//! EvalMod level (the label is free: the constants of CoeffToSlot absorb it). The linear maps
//! keep scales, the polynomial evaluation lands on exact target scales
//! ([`crate::poly`]), and the double-angle steps are planned backwards so that EvalMod ends at
//! exactly `Δ_ref`. SlotToCoeff then yields `(Δ/Δ_ref)·m` at scale `Δ_ref`, that is `m` at the
//! input's scale `Δ`, which is what the output is labelled with: a bootstrapped ciphertext has
//! the input's scale.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;

use rand_core::{CryptoRng, RngCore};

use crate::Error;
use crate::ciphertext::Ciphertext;
use crate::encoding::{Complex, Encoder, SlotFft};
use crate::eval::{EvalScratch, Evaluator};
use crate::keys::{
    EvalKeys, KeyLevels, SecretKey, galois_element_conjugate, galois_element_for_rotation,
};
use crate::linear::LinearTransform;
use crate::params::{Params, SecretDist};
use crate::poly::Chebyshev;
use crate::ring::{Coeff, Poly};

/// Degree of the Chebyshev interpolant of the scaled cosine in EvalMod. With the argument kept
/// within `±(8π + π/2)` by the double-angle steps, the interpolation error is below 2^-50.
pub const EVAL_MOD_DEGREE: usize = 62;

/// `K` is the power of two at or above this many standard deviations of `I` (the multiple of
/// `q_0` that ModRaise adds): the probability that one coefficient exceeds it is below 10^-10.
pub const K_SIGMAS: f64 = 6.5;

/// The range of the cosine's argument that the Chebyshev interpolant covers, in units of 2π:
/// `K/2^r = K_OVER_2R` (so `r = log2 K − log2 K_OVER_2R`).
pub const K_OVER_2R: f64 = 4.0;

/// Default message ratio `q_0/Δ'`: before ModRaise the level-0 input is multiplied by the
/// integer `c = round(q_0/(ratio·Δ))`, so that the message occupies `q_0/ratio` whatever the
/// user's scale `Δ` (the multiple `I` of `q_0` does not grow). A smaller ratio raises the message
/// above the noise of CoeffToSlot (about `√N·2^2/σ` per slot); a larger one shrinks the error of
/// the sine approximation, relative `(2π)²/6·(|p|/ratio)²` for a coefficient `p` of the encoded
/// polynomial (random slots in `[−1, 1]` give `|p| ≈ 2^-8` at N = 2^16; a constant slot vector of
/// ones gives `p_0 = 1`, where 2^10 still leaves 17 bits). [`BootstrapConfig::new`] uses this
/// for full slots and `√gap` times it for `n` slots (`gap = N/2n`).
pub const MESSAGE_RATIO: f64 = 1024.0;

/// `K` for a secret distribution (see the module docs).
pub fn k_for_secret(params: &Params) -> f64 {
    let h = match params.secret() {
        SecretDist::SparseTernary { hamming_weight } => hamming_weight as f64,
        SecretDist::Ternary => 2.0 * params.n() as f64 / 3.0,
    };
    let sigma = libm::sqrt((h + 1.0) / 12.0);
    let mut k = K_OVER_2R;
    while k < K_SIGMAS * sigma {
        k *= 2.0;
    }
    k
}

/// How to bootstrap: slot count, level budgets and the EvalMod constants.
#[derive(Clone, Debug, PartialEq)]
pub struct BootstrapConfig {
    /// Slot count `n` (a power of two, at most N/2).
    pub slots: usize,
    /// Levels (linear maps) of CoeffToSlot.
    pub cts_levels: usize,
    /// Levels (linear maps) of SlotToCoeff.
    pub stc_levels: usize,
    /// `K`: `|I| < K` for the multiple of `q_0` that ModRaise adds (a power of two ≥ 4).
    pub k: f64,
    /// Degree of the Chebyshev interpolant of the scaled cosine.
    pub degree: usize,
    /// The scale EvalMod ends at (`Δ_ref`); the output is relabelled with the input's scale.
    pub output_scale: f64,
    /// `q_0/Δ'` for the message `Δ'·m` that EvalMod sees (see [`MESSAGE_RATIO`]).
    pub message_ratio: f64,
}

impl BootstrapConfig {
    /// The default for `params` and `slots`: level budget (3, 3), `K` from the secret
    /// distribution, [`EVAL_MOD_DEGREE`], `Δ_ref = q_0/2π` (so that SlotToCoeff needs no
    /// constant and its output integers are `Δ·m` directly).
    pub fn new(params: &Params, slots: usize) -> Self {
        let q0 = params.q().first().copied().unwrap_or(1) as f64;
        Self {
            slots,
            cts_levels: 3,
            stc_levels: 3,
            k: k_for_secret(params),
            degree: EVAL_MOD_DEGREE,
            output_scale: q0 / (2.0 * core::f64::consts::PI),
            // Fewer slots: larger coefficients for the same slot values, so a larger ratio.
            message_ratio: MESSAGE_RATIO
                * libm::sqrt((params.max_slots() / slots.clamp(1, params.max_slots())) as f64),
        }
    }

    /// Double-angle steps `r = log2(K / K_OVER_2R)`.
    pub fn double_angle(&self) -> u32 {
        let mut r = 0;
        let mut k = self.k;
        while k > K_OVER_2R {
            k /= 2.0;
            r += 1;
        }
        r
    }
}

/// `max(1, round(q_0/(ratio·Δ)))`.
fn message_multiplier(q0: f64, ratio: f64, scale: f64) -> i64 {
    let c = libm::round(q0 / (ratio * scale));
    if c.is_finite() && c >= 1.0 {
        (c as i64).min(1 << 40)
    } else {
        1
    }
}

/// A sparse linear map on `slots` slots by diagonals: `out_j = Σ_k d_k[j]·in_{(j+k) mod slots}`.
type Diags = BTreeMap<usize, Vec<Complex>>;

fn add_entry(d: &mut Diags, slots: usize, k: usize, j: usize, v: Complex) {
    let e = d
        .entry(k % slots)
        .or_insert_with(|| alloc::vec![Complex::ZERO; slots]);
    if let Some(x) = e.get_mut(j) {
        *x += v;
    }
}

/// `a ∘ b` (`b` first).
fn compose(a: &Diags, b: &Diags, slots: usize) -> Diags {
    let mut out = Diags::new();
    for (&ka, da) in a {
        for (&kb, db) in b {
            let k = (ka + kb) % slots;
            let e = out
                .entry(k)
                .or_insert_with(|| alloc::vec![Complex::ZERO; slots]);
            for (j, (x, &av)) in e.iter_mut().zip(da).enumerate() {
                if let Some(&bv) = db.get((j + ka) % slots) {
                    *x += av * bv;
                }
            }
        }
    }
    out
}

fn identity(slots: usize) -> Diags {
    let mut d = Diags::new();
    d.insert(0, alloc::vec![Complex::ONE; slots]);
    d
}

fn scale_diags(d: &mut Diags, c: f64) {
    for v in d.values_mut() {
        for x in v.iter_mut() {
            *x = x.scale(c);
        }
    }
}

/// One butterfly stage (half length `h`) of the inverse special FFT (`inverse`, CoeffToSlot) or
/// of the forward one (SlotToCoeff), as diagonals.
fn stage(twiddles: &[Complex], slots: usize, inverse: bool) -> Diags {
    let h = twiddles.len();
    let mut d = Diags::new();
    for j in 0..slots {
        let t = j % (2 * h);
        if t < h {
            let w = twiddles.get(t).copied().unwrap_or(Complex::ONE);
            add_entry(&mut d, slots, 0, j, Complex::ONE);
            add_entry(&mut d, slots, h, j, if inverse { Complex::ONE } else { w });
        } else {
            let w = twiddles.get(t - h).copied().unwrap_or(Complex::ONE);
            if inverse {
                // out_j = (in_{j−h} − in_j)·conj(w)
                add_entry(&mut d, slots, slots - h, j, w.conj());
                add_entry(&mut d, slots, 0, j, -w.conj());
            } else {
                // out_j = in_{j−h} − w·in_j
                add_entry(&mut d, slots, slots - h, j, Complex::ONE);
                add_entry(&mut d, slots, 0, j, -w);
            }
        }
    }
    d
}

/// Splits `stages` (in application order) into `groups` consecutive runs, larger ones first,
/// and multiplies each run out.
fn grouped(stages: &[Diags], groups: usize, slots: usize) -> Vec<Diags> {
    let groups = groups.clamp(1, stages.len().max(1));
    let (base, extra) = (stages.len() / groups, stages.len() % groups);
    let mut out = Vec::with_capacity(groups);
    let mut it = stages.iter();
    for g in 0..groups {
        let size = base + usize::from(g < extra);
        let mut m = identity(slots);
        for s in it.by_ref().take(size) {
            m = compose(s, &m, slots);
        }
        out.push(m);
    }
    out
}

/// The power-of-two baby-step size minimising `babies + 2·giants` for these diagonals.
fn best_n1(diags: &Diags, slots: usize) -> usize {
    let mut best = (usize::MAX, 1);
    let mut n1 = 1;
    while n1 <= slots {
        let babies: BTreeSet<usize> = diags.keys().map(|k| k % n1).collect();
        let giants: BTreeSet<usize> = diags.keys().map(|k| k / n1).collect();
        let cost = babies.len() + 2 * giants.len();
        if cost < best.0 {
            best = (cost, n1);
        }
        n1 *= 2;
    }
    best.1
}

/// The `2n`-slot form of an `n`-slot map whose output is written as `[v, −i·v]` (last
/// CoeffToSlot map with sparse slots; the input is `n`-periodic).
fn widen_cts(d: &Diags, n: usize) -> Diags {
    let mut out = Diags::new();
    for (&k, v) in d {
        let w: Vec<Complex> = (0..2 * n)
            .map(|j| {
                let x = v.get(j % n).copied().unwrap_or(Complex::ZERO);
                if j < n {
                    x
                } else {
                    x * Complex::new(0.0, -1.0)
                }
            })
            .collect();
        out.insert(k, w);
    }
    out
}

/// The `2n`-slot form of an `n`-slot map applied to `w_lo + i·w_hi` (first SlotToCoeff map
/// with sparse slots), with its output repeated in both halves.
fn widen_stc(d: &Diags, n: usize) -> Diags {
    let two_n = 2 * n;
    let mut out = Diags::new();
    for big_j in 0..two_n {
        let j = big_j % n;
        for (&k, v) in d {
            let a = v.get(j).copied().unwrap_or(Complex::ZERO);
            let c1 = (j + k) % n;
            for (c, val) in [(c1, a), (c1 + n, a * Complex::I)] {
                add_entry(&mut out, two_n, (c + two_n - big_j) % two_n, big_j, val);
            }
        }
    }
    out
}

/// Precomputed bootstrapping for one parameter set and slot count.
#[derive(Clone, Debug)]
pub struct Bootstrapper {
    params: Params,
    config: BootstrapConfig,
    gap: usize,
    /// Real and imaginary parts share one ciphertext of `2n` slots.
    sparse: bool,
    sigma: f64,
    cts: Vec<LinearTransform>,
    stc: Vec<LinearTransform>,
    cheb: Chebyshev,
    cts_const: f64,
    stc_const: f64,
    c0: i64,
    eval_mod_level: usize,
    trace_steps: Vec<i64>,
}

impl Bootstrapper {
    /// Precomputes the linear maps and the EvalMod polynomial.
    ///
    /// # Errors
    /// [`Error::InvalidSlots`] for a bad slot count, [`Error::LevelTooLow`] if the chain is too
    /// short for the level budgets and EvalMod, [`Error::EncodingOverflow`] for a bad `K`.
    pub fn new(params: &Params, config: BootstrapConfig) -> Result<Self, Error> {
        let n = config.slots;
        let max = params.max_slots();
        if n == 0 || !n.is_power_of_two() || n > max {
            return Err(Error::InvalidSlots { slots: n, max });
        }
        let k = config.k;
        if !(k.is_finite() && k >= K_OVER_2R && libm::exp2(libm::round(libm::log2(k))) == k) {
            return Err(Error::EncodingOverflow {
                value: k,
                log_scale: 0.0,
            });
        }
        if !(config.output_scale.is_finite() && config.output_scale > 1.0) {
            return Err(Error::EncodingOverflow {
                value: config.output_scale,
                log_scale: 0.0,
            });
        }
        let gap = params.n() / (2 * n);
        let sparse = gap > 1;
        let r = config.double_angle();
        let two_r = libm::exp2(f64::from(r));
        let pi = core::f64::consts::PI;
        let cheb = Chebyshev::interpolate(
            |y| libm::cos(2.0 * pi * (k * y - 0.25) / two_r),
            config.degree,
            -1.0,
            1.0,
        )?;
        let top = params.max_level();
        let fft = SlotFft::new(n)?;
        let tw = fft.stage_twiddles();
        let log_n = tw.len();
        let cts_levels = config.cts_levels.clamp(1, log_n.max(1));
        let stc_levels = config.stc_levels.clamp(1, log_n.max(1));
        let eval_mod_depth = cheb.depth() + r as usize;
        let need = cts_levels + eval_mod_depth + stc_levels;
        if top < need {
            return Err(Error::LevelTooLow { have: top, need });
        }
        let eval_mod_level = top - cts_levels;
        let q = params.q();
        let q0 = *q.first().ok_or(Error::EmptyModulusChain)? as f64;
        let sigma = *q.get(eval_mod_level).ok_or(Error::LevelTooLow {
            have: top,
            need: eval_mod_level,
        })? as f64;
        // Values after CoeffToSlot: t/(gap·q_0·K), halved for the conjugate sum.
        let cts_const = sigma / (2.0 * gap as f64 * q0 * k);
        if !(config.message_ratio.is_finite() && config.message_ratio >= 1.0) {
            return Err(Error::EncodingOverflow {
                value: config.message_ratio,
                log_scale: 0.0,
            });
        }
        // The integer the input is multiplied by when it has the parameters' scale; SlotToCoeff
        // divides it out again.
        let c0 = message_multiplier(q0, config.message_ratio, params.scale());
        let stc_const = q0 / (2.0 * pi * config.output_scale * c0 as f64);

        let enc_n = Encoder::new(params, n)?;
        let enc_2n = if sparse {
            Some(Encoder::new(params, 2 * n)?)
        } else {
            None
        };

        // CoeffToSlot: inverse stages, largest half-length first, then 1/n and the constant.
        let inv: Vec<Diags> = tw.iter().rev().map(|t| stage(t, n, true)).collect();
        let mut cts_maps = grouped(&inv, cts_levels, n);
        // The small overall constant is spread over the maps so that every encoded diagonal
        // keeps most of the precision of its prime.
        let per_map = libm::pow(cts_const / n as f64, 1.0 / cts_maps.len() as f64);
        for m in &mut cts_maps {
            scale_diags(m, per_map);
        }
        let mut cts = Vec::with_capacity(cts_maps.len());
        let last = cts_maps.len() - 1;
        for (i, d) in cts_maps.iter().enumerate() {
            let level = top - i;
            let lt = match (&enc_2n, i == last) {
                (Some(e2), true) => {
                    let w = widen_cts(d, n);
                    LinearTransform::new(e2, &w, level, Some(best_n1(&w, 2 * n)))?
                }
                _ => LinearTransform::new(&enc_n, d, level, Some(best_n1(d, n)))?,
            };
            cts.push(lt);
        }

        // SlotToCoeff: forward stages, smallest half-length first, constant in the first map.
        let fwd: Vec<Diags> = tw.iter().map(|t| stage(t, n, false)).collect();
        let mut stc_maps = grouped(&fwd, stc_levels, n);
        if let Some(first) = stc_maps.first_mut() {
            scale_diags(first, stc_const);
        }
        let stc_top = eval_mod_level - eval_mod_depth;
        let mut stc = Vec::with_capacity(stc_maps.len());
        for (i, d) in stc_maps.iter().enumerate() {
            let level = stc_top - i;
            let lt = match (&enc_2n, i == 0) {
                (Some(e2), true) => {
                    let w = widen_stc(d, n);
                    LinearTransform::new(e2, &w, level, Some(best_n1(&w, 2 * n)))?
                }
                _ => LinearTransform::new(&enc_n, d, level, Some(best_n1(d, n)))?,
            };
            stc.push(lt);
        }
        let trace_steps = Evaluator::inner_sum_steps(n as i64, gap);
        Ok(Self {
            params: params.clone(),
            config,
            gap,
            sparse,
            sigma,
            cts,
            stc,
            cheb,
            cts_const,
            stc_const,
            c0,
            eval_mod_level,
            trace_steps,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &BootstrapConfig {
        &self.config
    }

    /// The rotation steps whose keys bootstrapping needs (conjugation is needed too).
    pub fn rotations(&self) -> Vec<i64> {
        let set: BTreeSet<i64> = self
            .cts
            .iter()
            .chain(&self.stc)
            .flat_map(LinearTransform::rotations)
            .chain(self.trace_steps.iter().copied())
            .collect();
        set.into_iter().collect()
    }

    /// The highest level each of bootstrapping's keys is used at: the CoeffToSlot maps'
    /// rotations at their levels (the top three), the partial trace's at the top, the
    /// SlotToCoeff maps' at theirs (at most [`Bootstrapper::eval_mod_level`] minus EvalMod's
    /// depth), the conjugation and relinearisation within EvalMod's levels. Keys cut to these
    /// levels ([`crate::keys::EvalKeys::truncate`]) bootstrap exactly as whole ones.
    pub fn key_levels(&self) -> KeyLevels {
        let params = &self.params;
        let mut levels = KeyLevels::default();
        for lt in self.cts.iter().chain(&self.stc) {
            for s in lt.rotations() {
                levels.use_element(galois_element_for_rotation(params, s), lt.level());
            }
        }
        let top = params.max_level();
        for &s in &self.trace_steps {
            levels.use_element(galois_element_for_rotation(params, s), top);
        }
        levels.use_element(galois_element_conjugate(params), self.eval_mod_level);
        levels.use_relin(self.eval_mod_level);
        levels
    }

    /// The evaluation keys bootstrapping needs (relinearisation, [`Bootstrapper::rotations`],
    /// conjugation) plus the rotations in `extra`, from the secret key.
    pub fn generate_keys<R: RngCore + CryptoRng>(
        &self,
        sk: &SecretKey,
        extra: &[i64],
        rng: &mut R,
    ) -> Result<EvalKeys, Error> {
        self.generate_keys_truncated(sk, extra, &KeyLevels::default(), rng)
    }

    /// [`Bootstrapper::generate_keys`], each key cut to its level in `levels` as it is made
    /// ([`EvalKeys::generate_truncated`]; for the evaluating side only).
    pub fn generate_keys_truncated<R: RngCore + CryptoRng>(
        &self,
        sk: &SecretKey,
        extra: &[i64],
        levels: &KeyLevels,
        rng: &mut R,
    ) -> Result<EvalKeys, Error> {
        let mut steps = self.rotations();
        steps.extend_from_slice(extra);
        EvalKeys::generate_truncated(sk, &steps, true, levels, rng)
    }

    /// The level of a bootstrapped ciphertext.
    pub fn levels_after(&self) -> usize {
        self.stc.last().map_or(0, |lt| lt.level().saturating_sub(1))
    }

    /// The level CoeffToSlot ends at (where EvalMod starts).
    pub fn eval_mod_level(&self) -> usize {
        self.eval_mod_level
    }

    /// The EvalMod interpolant (of `cos(2π(K·y − 1/4)/2^r)` on `[−1, 1]`).
    pub fn eval_mod_poly(&self) -> &Chebyshev {
        &self.cheb
    }

    /// The constant CoeffToSlot multiplies by (after the FFT): `σ/(2·gap·q_0·K)`.
    pub fn cts_constant(&self) -> f64 {
        self.cts_const
    }

    /// The constant SlotToCoeff multiplies by (before the FFT): `q_0/(2π·Δ_ref·c_0)` with
    /// `c_0` the message multiplier at the parameters' scale.
    pub fn stc_constant(&self) -> f64 {
        self.stc_const
    }

    /// ModRaise (and, for sparse slots, the partial trace): `ct` (any level, degree 1) lifted to
    /// the top level, labelled with the scale `σ`.
    pub fn mod_raise(
        &self,
        eval: &Evaluator,
        ct: &Ciphertext,
        scratch: &mut EvalScratch,
    ) -> Result<Ciphertext, Error> {
        if ct.degree() != 1 {
            return Err(Error::WrongDegree {
                expected: 1,
                found: ct.degree(),
            });
        }
        if ct.slots != self.config.slots {
            return Err(Error::SlotsMismatch {
                a: ct.slots,
                b: self.config.slots,
            });
        }
        let ctx = self.params.ctx();
        let n = self.params.n();
        let top = ctx.max_level();
        let q0 = ctx.q().first().ok_or(Error::EmptyModulusChain)?;
        let q0v = q0.value();
        let mut polys = Vec::with_capacity(2);
        let mut low = Poly::<Coeff>::empty();
        for p in &ct.c {
            let mut p0 = p.clone();
            p0.drop_to_level(0)?;
            p0.to_coeff_into(ctx, &mut low);
            let mut lifted = Poly::<Coeff>::zero(ctx, top, false);
            let src = low.limb(0).ok_or(Error::LevelTooLow { have: 0, need: 0 })?;
            for (j, m) in ctx.q().iter().enumerate() {
                let Some(dst) = lifted.limb_mut(j) else {
                    continue;
                };
                for (d, &x) in dst.iter_mut().zip(src.iter().take(n)) {
                    let c = if x > q0v / 2 {
                        x as i64 - q0v as i64
                    } else {
                        x as i64
                    };
                    *d = m.reduce_i64(c);
                }
            }
            polys.push(lifted.into_ntt(ctx));
        }
        let mut out = Ciphertext::from_parts(polys, self.sigma, ct.slots)?;
        if self.gap > 1 {
            eval.inner_sum_assign(&mut out, self.config.slots as i64, self.gap, scratch)?;
        }
        Ok(out)
    }

    /// CoeffToSlot: from the raised ciphertext to the real values `y = x/K` (one ciphertext of
    /// `2n` slots for sparse slots; real and imaginary halves for full slots).
    pub fn coeffs_to_slots(
        &self,
        eval: &Evaluator,
        ct: &Ciphertext,
        scratch: &mut EvalScratch,
    ) -> Result<(Ciphertext, Option<Ciphertext>), Error> {
        let mut x = ct.clone();
        for lt in &self.cts {
            x.slots = lt.slots();
            x = eval.linear_transform_new(&x, lt, scratch)?;
        }
        let conj = eval.conjugate_new(&x, scratch)?;
        let re = eval.add_new(&x, &conj)?;
        if self.sparse {
            return Ok((re, None));
        }
        let mut im = eval.sub_new(&x, &conj)?;
        eval.mul_const_scaled_assign(&mut im, Complex::new(0.0, -1.0), 1.0)?;
        Ok((re, Some(im)))
    }

    /// EvalMod: `y ↦ sin(2πK·y)` on every slot, ending at exactly the scale `Δ_ref`.
    pub fn eval_mod(
        &self,
        eval: &Evaluator,
        ct: &Ciphertext,
        scratch: &mut EvalScratch,
    ) -> Result<Ciphertext, Error> {
        let r = self.config.double_angle() as usize;
        let cheb_level = ct
            .level()
            .checked_sub(self.cheb.depth())
            .ok_or(Error::LevelTooLow {
                have: ct.level(),
                need: self.cheb.depth() + r,
            })?;
        // Scales s_0 … s_r with s_{k+1} = s_k²/q_{cheb_level − k} and s_r = Δ_ref.
        let q = self.params.q();
        let mut scales = alloc::vec![self.config.output_scale; r + 1];
        for kk in (0..r).rev() {
            let ql = *q
                .get(cheb_level.checked_sub(kk).ok_or(Error::LevelTooLow {
                    have: cheb_level,
                    need: r,
                })?)
                .ok_or(Error::LevelTooLow { have: 0, need: r })? as f64;
            let next = scales.get(kk + 1).copied().unwrap_or(1.0);
            if let Some(s) = scales.get_mut(kk) {
                *s = libm::sqrt(next * ql);
            }
        }
        let s0 = scales.first().copied().unwrap_or(1.0);
        let mut c = eval.eval_chebyshev_new(ct, &self.cheb, s0, scratch)?;
        for kk in 0..r {
            let mut sq = eval.mul_relin_new(&c, &c, scratch)?;
            eval.mul_int_assign(&mut sq, 2)?;
            eval.rescale_assign(&mut sq, scratch)?;
            sq.scale = scales.get(kk + 1).copied().unwrap_or(sq.scale);
            eval.add_const_assign(&mut sq, Complex::new(-1.0, 0.0))?;
            c = sq;
        }
        Ok(c)
    }

    /// SlotToCoeff: from the EvalMod output(s) back to slots; the result holds `(Δ/Δ_ref)·m`
    /// at scale `Δ_ref` before [`Bootstrapper::bootstrap`] relabels it.
    pub fn slots_to_coeffs(
        &self,
        eval: &Evaluator,
        re: &Ciphertext,
        im: Option<&Ciphertext>,
        scratch: &mut EvalScratch,
    ) -> Result<Ciphertext, Error> {
        let mut x = match im {
            None => re.clone(),
            Some(im) => {
                let mut t = im.clone();
                eval.mul_const_scaled_assign(&mut t, Complex::I, 1.0)?;
                eval.add_new(re, &t)?
            }
        };
        for lt in &self.stc {
            x.slots = lt.slots();
            x = eval.linear_transform_new(&x, lt, scratch)?;
        }
        x.slots = self.config.slots;
        Ok(x)
    }

    /// Bootstraps `ct` (degree 1, any level, `n` slots): the result holds the same slots at the
    /// same scale, at level [`Bootstrapper::levels_after`].
    ///
    /// # Errors
    /// [`Error::SlotsMismatch`], [`Error::WrongDegree`], [`Error::MissingKey`] if `eval` lacks a
    /// key of [`Bootstrapper::rotations`] or conjugation.
    pub fn bootstrap(
        &self,
        eval: &Evaluator,
        ct: &Ciphertext,
        scratch: &mut EvalScratch,
    ) -> Result<Ciphertext, Error> {
        let q0 = self.params.q().first().copied().unwrap_or(1) as f64;
        let c = message_multiplier(q0, self.config.message_ratio, ct.scale);
        let mut low = ct.clone();
        low.drop_to_level(0)?;
        eval.mul_int_assign(&mut low, c)?;
        let raised = self.mod_raise(eval, &low, scratch)?;
        let (re, im) = self.coeffs_to_slots(eval, &raised, scratch)?;
        let re = self.eval_mod(eval, &re, scratch)?;
        let im = match im {
            Some(im) => Some(self.eval_mod(eval, &im, scratch)?),
            None => None,
        };
        let mut out = self.slots_to_coeffs(eval, &re, im.as_ref(), scratch)?;
        // The output integers are (c/c_0)·Δ·m.
        out.scale = ct.scale * (c as f64 / self.c0 as f64) * (out.scale / self.config.output_scale);
        Ok(out)
    }
}

impl Bootstrapper {
    /// Bootstraps two ciphertexts of **real** slot values with one bootstrapping: `a + i·b` is
    /// bootstrapped and split again with one conjugation, `a = (x + x̄)/2` and
    /// `b = (x − x̄)/(2i)` (multiplying by `±i` is exact and the halving is a scale label, so
    /// neither costs a level: the outputs hold the same values at **twice** the input scale,
    /// at level [`Bootstrapper::levels_after`]). A full-slot bootstrapping costs the same for complex as for
    /// real input, so this halves the count. Both inputs need the same scale; any imaginary
    /// part of their slots would leak into the other output.
    ///
    /// # Errors
    /// [`Error::ScaleMismatch`] for different scales, and those of [`Bootstrapper::bootstrap`].
    pub fn bootstrap_pair(
        &self,
        eval: &Evaluator,
        a: &Ciphertext,
        b: &Ciphertext,
        scratch: &mut EvalScratch,
    ) -> Result<(Ciphertext, Ciphertext), Error> {
        if libm::fabs(a.scale - b.scale) > a.scale * 1e-12 {
            return Err(Error::ScaleMismatch {
                a: a.scale,
                b: b.scale,
            });
        }
        let (mut x, mut ib) = (a.clone(), b.clone());
        x.drop_to_level(0)?;
        ib.drop_to_level(0)?;
        eval.mul_const_scaled_assign(&mut ib, Complex::I, 1.0)?;
        eval.add_assign(&mut x, &ib)?;
        let out = self.bootstrap(eval, &x, scratch)?;
        let conj = eval.conjugate_new(&out, scratch)?;
        let mut re = eval.add_new(&out, &conj)?;
        re.scale *= 2.0;
        let mut im = eval.sub_new(&out, &conj)?;
        eval.mul_const_scaled_assign(&mut im, Complex::new(0.0, -1.0), 1.0)?;
        im.scale *= 2.0;
        Ok((re, im))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::Precision;
    use crate::encrypt::{decrypt, encrypt_sk};
    use crate::params::presets;
    use alloc::sync::Arc;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;
    use std::sync::OnceLock;

    struct Fixture {
        params: Params,
        sk: SecretKey,
        boot: Bootstrapper,
        eval: Evaluator,
    }

    fn fixture(slots: usize) -> &'static Fixture {
        static FULL: OnceLock<Fixture> = OnceLock::new();
        static SPARSE: OnceLock<Fixture> = OnceLock::new();
        let cell = if slots == 512 { &FULL } else { &SPARSE };
        cell.get_or_init(|| {
            let params = presets::toy_insecure_boot().validate().unwrap();
            let mut rng = ChaCha20Rng::seed_from_u64(slots as u64);
            let sk = SecretKey::generate(&params, &mut rng).unwrap();
            let boot = Bootstrapper::new(&params, BootstrapConfig::new(&params, slots)).unwrap();
            let keys = boot.generate_keys(&sk, &[], &mut rng).unwrap();
            let eval = Evaluator::with_keys(&params, Arc::new(keys));
            Fixture {
                params,
                sk,
                boot,
                eval,
            }
        })
    }

    fn uniform(rng: &mut ChaCha20Rng, len: usize) -> Vec<f64> {
        use rand_core::RngCore;
        (0..len)
            .map(|_| (rng.next_u64() >> 11) as f64 / (1u64 << 52) as f64 - 1.0)
            .collect()
    }

    #[test]
    fn k_follows_the_secret_and_the_toy_chain_fits() {
        let toy = presets::toy_insecure_boot().validate().unwrap();
        assert_eq!(k_for_secret(&toy), 16.0);
        let n16 = presets::n16_boot().validate().unwrap();
        assert_eq!(k_for_secret(&n16), 32.0);
        let cfg = BootstrapConfig::new(&n16, 1 << 15);
        assert_eq!(cfg.double_angle(), 3);
        let f = fixture(512);
        assert_eq!(f.boot.levels_after(), 2);
        assert!(
            f.boot.rotations().len() < 80,
            "{}",
            f.boot.rotations().len()
        );
    }

    #[test]
    fn boot_cts_then_stc_is_identity_up_to_the_constants() {
        for slots in [512usize, 64] {
            let f = fixture(slots);
            let enc = Encoder::new(&f.params, slots).unwrap();
            let mut rng = ChaCha20Rng::seed_from_u64(3);
            let (re, im) = (uniform(&mut rng, slots), uniform(&mut rng, slots));
            let z: Vec<Complex> = re
                .iter()
                .zip(&im)
                .map(|(&a, &b)| Complex::new(a, b))
                .collect();
            // At the scale bootstrapping runs CoeffToSlot at (the maps are tested, not the
            // scale of the user's levels).
            let pt = enc
                .encode_complex_at(&z, f.boot.sigma, f.params.max_level())
                .unwrap();
            let ct = encrypt_sk(&f.params, &f.sk, &pt, &mut rng).unwrap();
            let mut scratch = f.eval.scratch();
            let (a, b) = f.boot.coeffs_to_slots(&f.eval, &ct, &mut scratch).unwrap();
            assert_eq!(a.level(), f.boot.eval_mod_level());
            assert_eq!(b.is_some(), slots == 512);
            let out = f
                .boot
                .slots_to_coeffs(&f.eval, &a, b.as_ref(), &mut scratch)
                .unwrap();
            assert_eq!(out.level(), f.boot.levels_after());
            let got = enc
                .decode_complex(&decrypt(&f.params, &f.sk, &out).unwrap())
                .unwrap();
            let c = 2.0 * f.boot.cts_constant() * f.boot.stc_constant();
            let got: Vec<Complex> = got.iter().map(|v| v.scale(1.0 / c)).collect();
            let prec = Precision::of_complex(&z, &got);
            assert!(prec.min_bits > 25.0, "{slots} slots: {prec:?}");
        }
    }

    #[test]
    fn boot_eval_mod_removes_multiples_of_q0_over_its_interval() {
        let f = fixture(512);
        let slots = 512;
        let enc = Encoder::new(&f.params, slots).unwrap();
        let k = f.boot.config().k;
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        // x = I + ε with I an integer in (−K, K) and |ε| ≤ 2^-6 (covering the interval).
        let u = uniform(&mut rng, 2 * slots);
        let xs: Vec<f64> = (0..slots)
            .map(|i| libm::round(u[i] * (k - 1.0)) + u[slots + i] / 64.0)
            .collect();
        let ys: Vec<f64> = xs.iter().map(|x| x / k).collect();
        let level = f.boot.eval_mod_level();
        let pt = enc.encode_at(&ys, f.boot.sigma, level).unwrap();
        let ct = encrypt_sk(&f.params, &f.sk, &pt, &mut rng).unwrap();
        let mut scratch = f.eval.scratch();
        let out = f.boot.eval_mod(&f.eval, &ct, &mut scratch).unwrap();
        assert_eq!(out.scale, f.boot.config().output_scale);
        let got = enc
            .decode(&decrypt(&f.params, &f.sk, &out).unwrap())
            .unwrap();
        let want: Vec<f64> = xs
            .iter()
            .map(|x| libm::sin(2.0 * core::f64::consts::PI * x))
            .collect();
        let prec = Precision::of_real(&want, &got);
        std::eprintln!("EvalMod: {prec:?}");
        assert!(prec.min_bits > 30.0, "{prec:?}");
        // The interpolant itself, in f64, over the whole interval.
        let p = f.boot.eval_mod_poly();
        let r = f.boot.config().double_angle();
        for i in 0..=2000 {
            let y = -1.0 + i as f64 / 1000.0;
            let arg = 2.0 * core::f64::consts::PI * (k * y - 0.25) / libm::exp2(f64::from(r));
            assert!((p.eval_f64(y) - libm::cos(arg)).abs() < 1e-13, "y = {y}");
        }
    }

    fn bootstrap_check(slots: usize, complex: bool) -> Precision {
        let f = fixture(slots);
        let enc = Encoder::new(&f.params, slots).unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(5 + slots as u64);
        let re = uniform(&mut rng, slots);
        let im = if complex {
            uniform(&mut rng, slots)
        } else {
            alloc::vec![0.0; slots]
        };
        let z: Vec<Complex> = re
            .iter()
            .zip(&im)
            .map(|(&a, &b)| Complex::new(a, b))
            .collect();
        let pt = enc.encode_complex_at(&z, f.params.scale(), 0).unwrap();
        let ct = encrypt_sk(&f.params, &f.sk, &pt, &mut rng).unwrap();
        let mut scratch = f.eval.scratch();
        let out = f.boot.bootstrap(&f.eval, &ct, &mut scratch).unwrap();
        assert_eq!(out.level(), f.boot.levels_after());
        assert_eq!((out.scale, out.slots), (ct.scale, slots));
        let got = enc
            .decode_complex(&decrypt(&f.params, &f.sk, &out).unwrap())
            .unwrap();
        // The refreshed ciphertext computes on: one multiplication uses one of the new levels.
        let mut sq = f.eval.mul_relin_new(&out, &out, &mut scratch).unwrap();
        f.eval.rescale_assign(&mut sq, &mut scratch).unwrap();
        let got_sq = enc
            .decode_complex(&decrypt(&f.params, &f.sk, &sq).unwrap())
            .unwrap();
        let want_sq: Vec<Complex> = z.iter().map(|&v| v * v).collect();
        assert!(Precision::of_complex(&want_sq, &got_sq).min_bits > 18.0);
        let p = Precision::of_complex(&z, &got);
        std::eprintln!("bootstrap {slots} slots (complex: {complex}): {p:?}");
        p
    }

    #[test]
    fn boot_full_slots_real_reaches_20_bits() {
        let p = bootstrap_check(512, false);
        assert!(p.min_bits >= 20.0 && p.mean_bits >= 22.0, "{p:?}");
    }

    #[test]
    fn boot_pair_bootstraps_two_real_vectors_at_once() {
        let slots = 512;
        let f = fixture(slots);
        let enc = Encoder::new(&f.params, slots).unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(77);
        let (va, vb) = (uniform(&mut rng, slots), uniform(&mut rng, slots));
        let mut enc_at = |v: &[f64], level: usize| {
            let pt = enc.encode_at(v, f.params.scale(), level).unwrap();
            encrypt_sk(&f.params, &f.sk, &pt, &mut rng).unwrap()
        };
        // Inputs at different levels (the pair drops both to level 0) but the same scale.
        let (ca, cb) = (enc_at(&va, 0), enc_at(&vb, 1));
        let mut scratch = f.eval.scratch();
        let (oa, ob) = f
            .boot
            .bootstrap_pair(&f.eval, &ca, &cb, &mut scratch)
            .unwrap();
        for (o, want, c) in [(&oa, &va, &ca), (&ob, &vb, &cb)] {
            assert_eq!(o.level(), f.boot.levels_after());
            assert!((o.scale - 2.0 * c.scale).abs() < 1e-6 * c.scale);
            let got = enc
                .decode_complex(&decrypt(&f.params, &f.sk, o).unwrap())
                .unwrap();
            let want_c: Vec<Complex> = want.iter().map(|&v| Complex::new(v, 0.0)).collect();
            let p = Precision::of_complex(&want_c, &got);
            std::eprintln!("paired bootstrap: {p:?}");
            assert!(p.min_bits >= 20.0 && p.mean_bits >= 22.0, "{p:?}");
        }
        let mut other = cb.clone();
        other.scale *= 1.5;
        assert!(matches!(
            f.boot.bootstrap_pair(&f.eval, &ca, &other, &mut scratch),
            Err(Error::ScaleMismatch { .. })
        ));
    }

    #[test]
    fn boot_full_slots_complex_reaches_20_bits() {
        let p = bootstrap_check(512, true);
        assert!(p.min_bits >= 20.0, "{p:?}");
    }

    #[test]
    fn boot_sparse_slots_reaches_20_bits() {
        let p = bootstrap_check(64, true);
        assert!(p.min_bits >= 20.0, "{p:?}");
    }

    /// Keys cut to the levels bootstrapping uses them at take less memory and give the very
    /// same ciphertext (every kept limb is the whole key's); a switch above a cut key's level
    /// is an error.
    #[test]
    fn boot_with_keys_cut_to_their_levels_is_the_same_bootstrapping() {
        for slots in [512, 64] {
            let f = fixture(slots);
            let levels = f.boot.key_levels();
            let whole = f.eval.keys().unwrap();
            assert_eq!(
                levels.galois.len(),
                whole.galois.len(),
                "every key has a level"
            );
            let mut cut = whole.clone();
            cut.truncate(&f.params, &levels).unwrap();
            let limbs = |k: &EvalKeys| -> usize {
                k.galois
                    .values()
                    .map(|g| g.key.b.iter().map(|p| p.data().len()).sum::<usize>())
                    .sum()
            };
            // (On this toy chain most keys serve CoeffToSlot at the top; at n16_boot with
            // the trainer's keys most are cut.)
            assert!(
                limbs(&cut) < limbs(whole),
                "{} of {}",
                limbs(&cut),
                limbs(whole)
            );
            let top = f.params.max_level();
            assert!(levels.galois.values().any(|&l| l < top), "{levels:?}");
            let eval_cut = Evaluator::with_keys(&f.params, Arc::new(cut));
            let enc = Encoder::new(&f.params, slots).unwrap();
            let mut rng = ChaCha20Rng::seed_from_u64(3);
            let v = uniform(&mut rng, slots);
            let pt = enc.encode_at(&v, f.params.scale(), 0).unwrap();
            let ct = encrypt_sk(&f.params, &f.sk, &pt, &mut rng).unwrap();
            let mut scratch = f.eval.scratch();
            let a = f.boot.bootstrap(&f.eval, &ct, &mut scratch).unwrap();
            let b = f.boot.bootstrap(&eval_cut, &ct, &mut scratch).unwrap();
            assert_eq!(a, b, "{slots} slots");
            // A rotation key cut below the top cannot switch a top-level ciphertext.
            let (&k, &l) = levels.galois.iter().find(|&(_, &l)| l < top).unwrap();
            let step = (0..slots as i64)
                .find(|&s| crate::keys::galois_element_for_rotation(&f.params, s) == k)
                .expect("a rotation key");
            let pt = enc.encode_at(&v, f.params.scale(), top).unwrap();
            let high = encrypt_sk(&f.params, &f.sk, &pt, &mut rng).unwrap();
            assert!(matches!(
                eval_cut.rotate_new(&high, step, &mut scratch),
                Err(Error::LevelTooLow { have, .. }) if have == l
            ));
        }
    }

    #[test]
    fn boot_rejects_bad_input() {
        let f = fixture(512);
        let mut scratch = f.eval.scratch();
        let enc = Encoder::new(&f.params, 256).unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        let pt = enc.encode_at(&[0.5], f.params.scale(), 0).unwrap();
        let ct = encrypt_sk(&f.params, &f.sk, &pt, &mut rng).unwrap();
        assert!(matches!(
            f.boot.bootstrap(&f.eval, &ct, &mut scratch),
            Err(Error::SlotsMismatch { .. })
        ));
        let no_keys = Evaluator::new(&f.params);
        let enc = Encoder::new(&f.params, 512).unwrap();
        let pt = enc.encode_at(&[0.5], f.params.scale(), 0).unwrap();
        let ct = encrypt_sk(&f.params, &f.sk, &pt, &mut rng).unwrap();
        assert!(matches!(
            f.boot.bootstrap(&no_keys, &ct, &mut scratch),
            Err(Error::MissingKey { .. })
        ));
        let short = presets::toy_insecure_n10().validate().unwrap();
        assert!(matches!(
            Bootstrapper::new(&short, BootstrapConfig::new(&short, 512)),
            Err(Error::LevelTooLow { .. })
        ));
        let mut cfg = BootstrapConfig::new(&f.params, 512);
        cfg.k = 12.0;
        assert!(Bootstrapper::new(&f.params, cfg).is_err());
        assert!(matches!(
            Bootstrapper::new(&f.params, BootstrapConfig::new(&f.params, 3)),
            Err(Error::InvalidSlots { .. })
        ));
    }

    #[test]
    #[ignore = "N=2^16 bootstrapping: minutes and ~GiBs; run with cargo test -p fhe-core --release -- --ignored boot_n16"]
    fn boot_n16_full_slots() {
        let params = presets::n16_boot().validate().unwrap();
        let slots = params.max_slots();
        let mut rng = ChaCha20Rng::seed_from_u64(16);
        let sk = SecretKey::generate(&params, &mut rng).unwrap();
        let boot = Bootstrapper::new(&params, BootstrapConfig::new(&params, slots)).unwrap();
        assert!(boot.levels_after() >= 10);
        let keys = boot.generate_keys(&sk, &[], &mut rng).unwrap();
        let eval = Evaluator::with_keys(&params, Arc::new(keys));
        let enc = Encoder::new(&params, slots).unwrap();
        let z = uniform(&mut rng, slots);
        let ct = encrypt_sk(
            &params,
            &sk,
            &enc.encode_at(&z, params.scale(), 0).unwrap(),
            &mut rng,
        )
        .unwrap();
        let mut scratch = eval.scratch();
        let out = boot.bootstrap(&eval, &ct, &mut scratch).unwrap();
        assert!(out.level() >= 10 && out.scale >= libm::exp2(40.0));
        let got = enc.decode(&decrypt(&params, &sk, &out).unwrap()).unwrap();
        let p = Precision::of_real(&z, &got);
        assert!(p.min_bits >= 16.0 && p.mean_bits >= 20.0, "{p:?}");
    }
}
