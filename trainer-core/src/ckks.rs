//! The encrypted backend: slot vectors are CKKS ciphertexts (`fhe-core`).
//!
//! **Canonical scales.** Every ciphertext at level `l` has the scale `S_l` of
//! [`fhe_core::math::canonical_scales`] (`S_{l-1} = S_l²/q_l`; with a scale-tracking chain all
//! stay near `2^log_scale`). Products of two level-`l` ciphertexts land on `S_{l-1}` by
//! themselves; constants and plaintexts are encoded at `σ = S_{l-1}·q_l/S_l`; an operand above
//! the level of the other is brought down with a multiplication by 1 encoded the same way.
//! So additions always see equal scales, exactly.
//!
//! Fresh vectors (from the hospital) and refreshed ones are at level `L − 1` (the refresh lands
//! at `L` with the old scale and is re-scaled onto `S_{L-1}`); the mirror is built with the
//! same top level.

use alloc::borrow::Cow;
use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;

use fhe_core::Error;
use fhe_core::bootstrap::{BootstrapConfig, Bootstrapper};
use fhe_core::ciphertext::Ciphertext;
use fhe_core::encoding::{Complex, Encoder, Plaintext};
use fhe_core::eval::{EvalScratch, Evaluator};
use fhe_core::keys::SecretKey;
use fhe_core::keys::{EvalKeys, KeyLevels};
use fhe_core::math::canonical_scales;
use fhe_core::params::Params;
use fhe_core::refresh::{mask, reencrypt_masked_at, unmask};
use rand_core::{CryptoRng, RngCore};

use crate::backend::{Backend, ComplexSlots, OpCounts, PlainId};

/// Brings a low-level ciphertext back up (bootstrapping, or the hospital-aided protocol of
/// [`fhe_core::refresh`]).
pub trait Refresher {
    /// An encryption of the same values at `level` or above (at any scale: the backend aligns
    /// it). The hospital-aided refresh answers at `level` (fewer primes to encrypt, send and
    /// unmask); bootstrapping ends where it ends.
    fn refresh(&mut self, ct: &Ciphertext, level: usize) -> Result<Ciphertext, Error>;
    /// Two refreshed ciphertexts; a refresher that can do two for the price of one
    /// ([`Bootstrap`]) overrides this.
    fn refresh_pair(
        &mut self,
        a: &Ciphertext,
        b: &Ciphertext,
        level: usize,
    ) -> Result<(Ciphertext, Ciphertext), Error> {
        Ok((self.refresh(a, level)?, self.refresh(b, level)?))
    }
    /// The period (in slots) the refreshed vectors must repeat with, when shorter than a
    /// vector ([`Backend::refresh_period`]); `None` for any vector.
    fn period(&self) -> Option<usize> {
        None
    }
}

/// The highest level the bootstrapped trainer uses each evaluation key at: bootstrapping's
/// ([`Bootstrapper::key_levels`]) and the trainer's rotations and products at its working top
/// `top` or below. The cloud cuts its keys to these levels
/// ([`fhe_core::keys::EvalKeys::truncate`]): at `n16_boot` the trainer's own rotation keys
/// then take 4 digits of 13 limbs instead of 9 of 31.
pub fn bootstrap_key_levels(
    params: &Params,
    layout: &crate::layout::Layout,
    boot: &Bootstrapper,
    top: usize,
) -> KeyLevels {
    let mut levels = boot.key_levels();
    levels.use_rotations(params, &layout.all_steps(), top);
    levels
}

/// The bootstrapping configuration of a trainer with `layout` on `params`: at **half** the
/// backend's slots (`N/4`) when the layout can fold its packs
/// ([`crate::layout::Layout::can_fold`]), so that every bootstrapping of a step (the packed
/// softmax's, the compact weights refresh's) runs one EvalMod instead of two; full slots
/// otherwise. The trainer folds whenever the backend reports that period
/// ([`Backend::refresh_period`]).
pub fn bootstrap_config(params: &Params, layout: &crate::layout::Layout) -> BootstrapConfig {
    let full = params.max_slots();
    let slots = if layout.can_fold() && layout.slots == full {
        full / 2
    } else {
        full
    };
    BootstrapConfig::new(params, slots)
}

/// The level a training backend works from: the highest `l ≤ L − 1` such that the primes
/// `q_1 … q_{l+1}` are all within one bit of the scale, so that canonical scales anchored at
/// `S_{l+1} = 2^log_scale` stay near it. `L − 1` for the training presets (scale-tracking or
/// uniform chains); below the bootstrapping primes of a bootstrappable chain.
pub fn working_top(params: &Params) -> usize {
    let ls = params.log_scale();
    let near = params
        .q()
        .iter()
        .skip(1)
        .take_while(|&&q| libm::fabs(libm::log2(q as f64) - ls) <= 1.0)
        .count();
    near.saturating_sub(1)
        .clamp(1, params.max_level().saturating_sub(1).max(1))
}

/// Canonical scales anchored at `S_{top+1} = 2^log_scale` (levels above `top + 1`, which the
/// backend only reads ciphertexts from, carry the parameters' scale).
pub fn working_scales(params: &Params, top: usize) -> Vec<f64> {
    let q = params.q();
    let mut scales = canonical_scales(q.get(..=top + 1).unwrap_or(q), params.scale());
    scales.resize(q.len(), params.scale());
    scales
}

/// The level the hospital encrypts data (samples, labels) at for `params`: on a chain without
/// bootstrapping primes, [`crate::refresh::HOSPITAL_DATA_LEVEL`] (or the working top when
/// that is lower), where the hospital-aided step needs it; on a bootstrappable chain the
/// working top: there every level the data has spares the weights a bootstrapping (the
/// gradient's products are taken at the data's level, so data at the top lets the weights
/// go two steps between their refreshes instead of one).
pub fn data_level(params: &Params) -> usize {
    let top = working_top(params);
    if top + 1 < params.max_level() {
        top
    } else {
        top.min(crate::refresh::HOSPITAL_DATA_LEVEL)
    }
}

/// The scale data is encrypted with at [`data_level`]: the canonical scale the backend works
/// with there ([`working_scales`] anchored at [`working_top`]).
pub fn data_scale(params: &Params) -> f64 {
    working_scales(params, working_top(params))
        .get(data_level(params))
        .copied()
        .unwrap_or(params.scale())
}

/// How masked refresh requests reach the hospital and come back: in process
/// ([`LocalHospital`]), through files, or over a socket.
pub trait Transport {
    /// The hospital's answer to one masked ciphertext: a fresh encryption of the same (masked)
    /// values at `level` ([`fhe_core::refresh::reencrypt_masked_at`]).
    fn reencrypt(&mut self, masked: &Ciphertext, level: usize) -> Result<Ciphertext, Error>;
}

/// The cloud's side of the hospital-aided refresh ([`fhe_core::refresh`]): mask the
/// ciphertext with a fresh uniform mask of `message_bits + stat_bits + log2 N` bits, send it
/// through the transport, unmask the answer.
#[derive(Debug)]
pub struct MaskedRefresh<R, T> {
    params: Params,
    rng: R,
    /// Statistical security of the mask, in bits (λ).
    pub stat_bits: u32,
    /// Bound on `|message| / scale`, in bits: the mask covers `log2(scale) + margin_bits`.
    pub margin_bits: u32,
    /// The way to the hospital.
    pub transport: T,
    /// Requests sent so far.
    pub requests: u64,
}

impl<R: RngCore + CryptoRng, T: Transport> MaskedRefresh<R, T> {
    /// λ = 40 statistical bits and values below `2^10` in magnitude (the trainer's values are
    /// probabilities, standardised features and weights).
    pub fn new(params: &Params, rng: R, transport: T) -> Self {
        Self {
            params: params.clone(),
            rng,
            stat_bits: 40,
            margin_bits: 10,
            transport,
            requests: 0,
        }
    }
}

impl<R: RngCore + CryptoRng, T: Transport> Refresher for MaskedRefresh<R, T> {
    fn refresh(&mut self, ct: &Ciphertext, level: usize) -> Result<Ciphertext, Error> {
        self.requests += 1;
        let bits = libm::ceil(libm::log2(ct.scale)) as u32 + self.margin_bits;
        let (masked, m) = mask(&self.params, ct, bits, self.stat_bits, &mut self.rng)?;
        let fresh = self.transport.reencrypt(&masked, level)?;
        unmask(&self.params, fresh, &m)
    }
}

/// The hospital in the same process (demos, tests, benchmarks): answers masked requests with
/// its secret key. It sees only masked values.
pub struct LocalHospital<R> {
    params: Params,
    sk: SecretKey,
    rng: R,
    /// Requests answered.
    pub answered: u64,
}

impl<R> core::fmt::Debug for LocalHospital<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("LocalHospital")
            .field("params", &self.params.fingerprint())
            .field("answered", &self.answered)
            .finish_non_exhaustive()
    }
}

impl<R: RngCore + CryptoRng> LocalHospital<R> {
    /// The hospital with its secret key.
    pub fn new(params: &Params, sk: SecretKey, rng: R) -> Self {
        Self {
            params: params.clone(),
            sk,
            rng,
            answered: 0,
        }
    }
}

impl<R: RngCore + CryptoRng> Transport for LocalHospital<R> {
    fn reencrypt(&mut self, masked: &Ciphertext, level: usize) -> Result<Ciphertext, Error> {
        self.answered += 1;
        reencrypt_masked_at(&self.params, &self.sk, masked, level, &mut self.rng)
    }
}

/// Bootstrapping as the refresh: the cloud alone, with public keys only
/// ([`fhe_core::bootstrap`]). The evaluation keys must hold the bootstrapping rotations
/// ([`Bootstrapper::generate_keys`]); build the backend with
/// [`CkksBackend::with_top_level`]`(bootstrapper.levels_after() − 1)` so that bootstrapped
/// ciphertexts are aligned onto the working levels' canonical scales.
pub struct Bootstrap {
    boot: Bootstrapper,
    eval: Evaluator,
    scratch: EvalScratch,
    /// Bootstrappings performed.
    pub count: u64,
    /// Of those, the ones that refreshed two ciphertexts at once
    /// ([`Bootstrapper::bootstrap_pair`]).
    pub paired: u64,
}

impl core::fmt::Debug for Bootstrap {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Bootstrap")
            .field("slots", &self.boot.config().slots)
            .field("levels_after", &self.boot.levels_after())
            .field("count", &self.count)
            .finish_non_exhaustive()
    }
}

impl Bootstrap {
    /// The cloud's bootstrapper with its evaluation keys.
    pub fn new(params: &Params, boot: Bootstrapper, keys: Arc<EvalKeys>) -> Self {
        let eval = Evaluator::with_keys(params, keys);
        let scratch = eval.scratch();
        Self {
            boot,
            eval,
            scratch,
            count: 0,
            paired: 0,
        }
    }

    /// The level bootstrapped ciphertexts come out at.
    pub fn levels_after(&self) -> usize {
        self.boot.levels_after()
    }
}

impl Bootstrap {
    /// `ct` seen at the bootstrapper's slot count: a vector of more slots that repeats with
    /// that period **is** the sparse encoding of one period, so it is only relabelled.
    fn sparse_view<'c>(&self, ct: &'c Ciphertext) -> Cow<'c, Ciphertext> {
        let slots = self.boot.config().slots;
        if ct.slots > slots && ct.slots.is_multiple_of(slots) {
            let mut v = ct.clone();
            v.slots = slots;
            Cow::Owned(v)
        } else {
            Cow::Borrowed(ct)
        }
    }
}

impl Refresher for Bootstrap {
    /// Bootstraps `ct`. With a bootstrapper of fewer slots than `ct` has ([`Self::period`]),
    /// `ct` must repeat with that period; the result then holds the average over the periods
    /// (the partial trace of the sparse bootstrapping), that is `ct`'s values.
    fn refresh(&mut self, ct: &Ciphertext, _level: usize) -> Result<Ciphertext, Error> {
        self.count += 1;
        let view = self.sparse_view(ct);
        let mut out = self.boot.bootstrap(&self.eval, &view, &mut self.scratch)?;
        out.slots = ct.slots;
        Ok(out)
    }

    fn period(&self) -> Option<usize> {
        let slots = self.boot.config().slots;
        (slots < self.eval.params().max_slots()).then_some(slots)
    }

    /// One bootstrapping for both when their scales agree (the working levels' canonical
    /// scales make that the rule at equal levels), two otherwise.
    fn refresh_pair(
        &mut self,
        a: &Ciphertext,
        b: &Ciphertext,
        level: usize,
    ) -> Result<(Ciphertext, Ciphertext), Error> {
        if libm::fabs(a.scale - b.scale) > a.scale * 1e-12 {
            return Ok((self.refresh(a, level)?, self.refresh(b, level)?));
        }
        self.count += 1;
        self.paired += 1;
        let (va, vb) = (self.sparse_view(a), self.sparse_view(b));
        let (mut ra, mut rb) = self
            .boot
            .bootstrap_pair(&self.eval, &va, &vb, &mut self.scratch)?;
        (ra.slots, rb.slots) = (a.slots, b.slots);
        Ok((ra, rb))
    }
}

/// Cache key of an encoded plaintext: (id, level, for addition).
type PlainKey = (usize, usize, bool);

/// The CKKS backend.
pub struct CkksBackend<R> {
    params: Params,
    encoder: Encoder,
    eval: Evaluator,
    scratch: EvalScratch,
    scales: Vec<f64>,
    /// Registered plaintext operands (real ones with zero imaginary parts).
    plains: Vec<Vec<Complex>>,
    /// Encoded plaintexts by (id, level, for addition).
    cache: BTreeMap<PlainKey, Plaintext>,
    refresher: R,
    counts: OpCounts,
    top: usize,
}

impl<R> core::fmt::Debug for CkksBackend<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CkksBackend")
            .field("params", &self.params.fingerprint())
            .field("counts", &self.counts)
            .finish_non_exhaustive()
    }
}

impl<R: Refresher> CkksBackend<R> {
    /// A backend over full slot vectors (`N/2` slots) with the cloud's evaluation keys.
    pub fn new(params: &Params, keys: Arc<EvalKeys>, refresher: R) -> Result<Self, Error> {
        let encoder = Encoder::new(params, params.max_slots())?;
        let eval = Evaluator::with_keys(params, keys);
        let scratch = eval.scratch();
        let top = working_top(params);
        Ok(Self {
            params: params.clone(),
            encoder,
            eval,
            scratch,
            scales: working_scales(params, top),
            plains: Vec::new(),
            cache: BTreeMap::new(),
            refresher,
            counts: OpCounts::default(),
            top,
        })
    }

    /// The canonical scale of `level`.
    pub fn scale_at(&self, level: usize) -> f64 {
        self.scales.get(level).copied().unwrap_or(1.0)
    }

    /// The level fresh vectors are encrypted at ([`working_top`], `L − 1` for the training
    /// presets).
    pub fn fresh_level(&self) -> usize {
        self.top
    }

    /// The same backend with fresh and refreshed vectors at `level` instead of `L − 1`. With
    /// bootstrapping this is one below the level bootstrapping ends at, so that every
    /// refreshed ciphertext is aligned onto the canonical scale from above.
    pub fn with_top_level(mut self, level: usize) -> Result<Self, Error> {
        let max = self.params.max_level().saturating_sub(1);
        if level == 0 || level > max {
            return Err(Error::LevelTooLow {
                have: max,
                need: level.max(1),
            });
        }
        // Re-anchor the canonical scales: `S_{level+1}` is the parameters' scale, as `S_L` is
        // for the whole chain, so the working levels keep scales near `2^log_scale` whatever
        // the (bootstrapping) primes above them are.
        self.scales = working_scales(&self.params, level);
        self.cache.clear();
        self.top = level;
        Ok(self)
    }

    /// `ct` (at or above the working top level) brought onto the top level and its canonical
    /// scale: how data encrypted higher up the chain (at `L − 1`) joins a backend that works
    /// below the bootstrapping levels ([`Self::with_top_level`]). One constant product.
    pub fn to_top(&mut self, ct: &Ciphertext) -> Result<Ciphertext, Error> {
        if ct.level() < self.top {
            return Err(Error::LevelTooLow {
                have: ct.level(),
                need: self.top,
            });
        }
        let top = self.top;
        self.align(ct, top)
    }

    /// The encoder (for the hospital side of tests and demos).
    pub fn encoder(&self) -> &Encoder {
        &self.encoder
    }

    /// The refresher.
    pub fn refresher_mut(&mut self) -> &mut R {
        &mut self.refresher
    }

    /// `σ = S_{l-1}·q_l / S` for a multiplication at level `l` of a value at scale `S`.
    fn factor(&self, level: usize, scale: f64) -> f64 {
        let q = self.params.q().get(level).copied().unwrap_or(1) as f64;
        self.scale_at(level.saturating_sub(1)) * q / scale
    }

    fn rescale_snap(&mut self, ct: &mut Ciphertext) -> Result<(), Error> {
        self.eval.rescale_assign(ct, &mut self.scratch)?;
        ct.scale = self.scale_at(ct.level());
        Ok(())
    }

    /// `ct` at `level` (≤ its own) with the canonical scale of that level.
    fn align(&mut self, ct: &Ciphertext, level: usize) -> Result<Ciphertext, Error> {
        Ok(self.aligned(ct, level)?.into_owned())
    }

    /// `ct` at `level` (≤ its own) with the canonical scale of that level; borrowed when it is
    /// already there (no copy on the common path of additions and products).
    fn aligned<'a>(
        &mut self,
        ct: &'a Ciphertext,
        level: usize,
    ) -> Result<Cow<'a, Ciphertext>, Error> {
        if ct.level() == level {
            return Ok(Cow::Borrowed(ct));
        }
        let mut out = ct.clone();
        out.drop_to_level(level + 1)?;
        let f = self.factor(level + 1, out.scale);
        self.eval
            .mul_const_scaled_assign(&mut out, Complex::ONE, f)?;
        self.rescale_snap(&mut out)?;
        Ok(Cow::Owned(out))
    }

    /// Encodes plaintext `p` for `level` (once; cached) and returns its cache key.
    fn encode_cached(
        &mut self,
        p: PlainId,
        level: usize,
        for_add: bool,
        scale: f64,
    ) -> Result<PlainKey, Error> {
        let key = (p.0, level, for_add);
        if !self.cache.contains_key(&key) {
            let values = self.plains.get(p.0).ok_or(Error::LengthMismatch {
                what: "plaintext operand",
                expected: self.plains.len(),
                found: p.0,
            })?;
            let pt = self.encoder.encode_complex_at(values, scale, level)?;
            self.cache.insert(key, pt);
        }
        Ok(key)
    }

    /// The cached plaintext of `key` ([`Self::encode_cached`]).
    fn cached(&self, key: PlainKey) -> Result<&Plaintext, Error> {
        self.cache.get(&key).ok_or(Error::Malformed {
            what: "plaintext cache",
        })
    }
}

impl<R: Refresher> Backend for CkksBackend<R> {
    type Vector = Ciphertext;
    type Error = Error;

    fn slots(&self) -> usize {
        self.params.max_slots()
    }
    fn top_level(&self) -> usize {
        self.fresh_level()
    }
    fn level(&self, v: &Ciphertext) -> usize {
        v.level()
    }
    fn plain(&mut self, values: Vec<f64>) -> PlainId {
        self.plain_complex(values.into_iter().map(|x| Complex::new(x, 0.0)).collect())
    }
    fn add(&mut self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext, Error> {
        self.counts.add += 1;
        let l = a.level().min(b.level());
        let (a, b) = (self.aligned(a, l)?, self.aligned(b, l)?);
        self.eval.add_new(&a, &b)
    }
    fn sub(&mut self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext, Error> {
        self.counts.add += 1;
        let l = a.level().min(b.level());
        let (a, b) = (self.aligned(a, l)?, self.aligned(b, l)?);
        self.eval.sub_new(&a, &b)
    }
    fn add_const(&mut self, a: &Ciphertext, c: f64) -> Result<Ciphertext, Error> {
        self.counts.add += 1;
        let mut out = a.clone();
        self.eval.add_const_assign(&mut out, Complex::new(c, 0.0))?;
        Ok(out)
    }
    fn add_plain(&mut self, a: &Ciphertext, p: PlainId) -> Result<Ciphertext, Error> {
        self.counts.add += 1;
        let key = self.encode_cached(p, a.level(), true, a.scale)?;
        let mut out = a.clone();
        self.eval.add_plain_assign(&mut out, self.cached(key)?)?;
        Ok(out)
    }
    fn mul_const(&mut self, a: &Ciphertext, c: f64) -> Result<Ciphertext, Error> {
        self.counts.cmult += 1;
        let mut out = a.clone();
        let f = self.factor(a.level(), a.scale);
        self.eval
            .mul_const_scaled_assign(&mut out, Complex::new(c, 0.0), f)?;
        self.rescale_snap(&mut out)?;
        Ok(out)
    }
    fn mul_plain(&mut self, a: &Ciphertext, p: PlainId) -> Result<Ciphertext, Error> {
        self.counts.cmult += 1;
        let f = self.factor(a.level(), a.scale);
        let key = self.encode_cached(p, a.level(), false, f)?;
        let mut out = a.clone();
        self.eval.mul_plain_assign(&mut out, self.cached(key)?)?;
        self.rescale_snap(&mut out)?;
        Ok(out)
    }
    fn mul_sum(&mut self, pairs: &[(&Ciphertext, &Ciphertext)]) -> Result<Ciphertext, Error> {
        let l = pairs
            .iter()
            .map(|(a, b)| a.level().min(b.level()))
            .min()
            .ok_or(Error::WrongDegree {
                expected: 1,
                found: 0,
            })?;
        let mut acc: Option<Ciphertext> = None;
        // One product buffer for the whole sum (the `_into` forms reshape it).
        let mut t: Option<Ciphertext> = None;
        for (a, b) in pairs {
            self.counts.mult += 1;
            let (a, b) = (self.aligned(a, l)?, self.aligned(b, l)?);
            match acc.as_mut() {
                None => {
                    let mut first = a.as_ref().clone();
                    self.eval.mul_into(&a, &b, &mut first)?;
                    acc = Some(first);
                }
                Some(sum) => {
                    let buf = t.get_or_insert_with(|| a.as_ref().clone());
                    self.eval.mul_into(&a, &b, buf)?;
                    self.eval.add_assign(sum, buf)?;
                }
            }
        }
        let mut out = acc.ok_or(Error::WrongDegree {
            expected: 1,
            found: 0,
        })?;
        self.counts.relin += 1;
        self.eval.relinearize_assign(&mut out, &mut self.scratch)?;
        self.rescale_snap(&mut out)?;
        Ok(out)
    }
    fn rotate(&mut self, a: &Ciphertext, step: i64) -> Result<Ciphertext, Error> {
        self.counts.rot += 1;
        self.eval.rotate_new(a, step, &mut self.scratch)
    }
    fn rotate_many(&mut self, a: &Ciphertext, steps: &[i64]) -> Result<Vec<Ciphertext>, Error> {
        self.counts.rot += steps.len() as u64;
        self.eval.rotate_hoisted_new(a, steps, &mut self.scratch)
    }
    fn lower(&mut self, v: &Ciphertext, level: usize) -> Result<Ciphertext, Error> {
        self.align(v, level.min(v.level()))
    }
    fn refresh_many(&mut self, vs: &[&Ciphertext]) -> Result<Vec<Ciphertext>, Error> {
        let top = self.fresh_level();
        self.refresh_many_to(vs, top)
    }
    /// Asks the refresher for one level above `level` (capped at the chain's top), so that
    /// aligning onto `level`'s canonical scale is one rescale of few primes.
    fn refresh_many_to(
        &mut self,
        vs: &[&Ciphertext],
        level: usize,
    ) -> Result<Vec<Ciphertext>, Error> {
        let target = level.min(self.fresh_level());
        let ask = (target + 1).min(self.params.max_level());
        let mut out = Vec::with_capacity(vs.len());
        for pair in vs.chunks(2) {
            match pair {
                [a, b] => {
                    self.counts.refresh += 2;
                    let (ra, rb) = self.refresher.refresh_pair(a, b, ask)?;
                    out.push(self.align(&ra, target)?);
                    out.push(self.align(&rb, target)?);
                }
                [a] => {
                    self.counts.refresh += 1;
                    let fresh = self.refresher.refresh(a, ask)?;
                    out.push(self.align(&fresh, target)?);
                }
                _ => {}
            }
        }
        Ok(out)
    }
    fn refresh(&mut self, v: &Ciphertext) -> Result<Ciphertext, Error> {
        let top = self.fresh_level();
        let mut out = self.refresh_many_to(&[v], top)?;
        out.pop().ok_or(Error::WrongDegree {
            expected: 1,
            found: 0,
        })
    }
    fn refresh_period(&self) -> Option<usize> {
        self.refresher.period()
    }
    fn counts(&self) -> OpCounts {
        self.counts
    }
}

impl<R: Refresher> ComplexSlots for CkksBackend<R> {
    fn plain_complex(&mut self, values: Vec<Complex>) -> PlainId {
        self.plains.push(values);
        PlainId(self.plains.len() - 1)
    }
    /// A product with `i` encoded at factor 1: the monomial `X^{N/2}`, exact, no rescale.
    fn mul_i(&mut self, a: &Ciphertext) -> Result<Ciphertext, Error> {
        let mut out = a.clone();
        self.eval
            .mul_const_scaled_assign(&mut out, Complex::I, 1.0)?;
        Ok(out)
    }
    fn conjugate(&mut self, a: &Ciphertext) -> Result<Ciphertext, Error> {
        self.counts.conj += 1;
        self.eval.conjugate_new(a, &mut self.scratch)
    }
}
