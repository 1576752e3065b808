//! Keys: the secret key, the public key, and hybrid key-switching keys (relinearisation and
//! Galois/rotation keys), all from one [`SecretKey`].
//!
//! **Hybrid key switching** (dnum digits over Q, special primes P): the Q limbs are split into
//! `dnum` digits `D_0 … D_{dnum-1}` of `α = ⌈(L+1)/dnum⌉` limbs. A key from `s'` to `s` holds,
//! for each digit `i`, `(b_i, a_i)` over `Q·P` with `b_i = −a_i·s + e_i + P·Q̂_i·[Q̂_i^-1]_{D_i}·s'`
//! (`Q̂_i = Q/D_i`). The gadget factor is `[P]_{q_k}` on the limbs of digit `i` and zero on every
//! other limb. At level `l` a digit is restricted to its limbs `≤ l`; the CRT identity still
//! holds there, so one key (stored at the top level) serves every level.
//!
//! **Seeded compression.** Every uniform `a` half is expanded from a 32-byte seed with
//! ChaCha20, so files store the seed instead of the polynomials.
//!
//! **Secrets.** [`SecretKey`] is zeroized on drop, prints redacted, and has no serialization into
//! any file kind the cloud receives (its file kind is `SecretKey`, hospital only).

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use rand_chacha::ChaCha20Rng;
use rand_core::{CryptoRng, RngCore, SeedableRng};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::Error;
use crate::params::{Params, SecretDist};
use crate::ring::{Ntt, Poly};
use crate::sampling::{Gaussian, sparse_ternary, ternary};

/// A 32-byte PRNG seed for the uniform halves of public objects.
pub type Seed = [u8; 32];

/// Draws a fresh seed.
pub fn fresh_seed<R: RngCore + CryptoRng>(rng: &mut R) -> Seed {
    let mut s = [0u8; 32];
    rng.fill_bytes(&mut s);
    s
}

/// The deterministic PRNG that expands a seed.
pub fn seeded_rng(seed: &Seed) -> ChaCha20Rng {
    ChaCha20Rng::from_seed(*seed)
}

/// Gaussian error polynomial (σ = 3.2) at `level`, NTT form; the integer buffer is wiped.
pub(crate) fn gaussian_poly<R: RngCore + CryptoRng>(
    params: &Params,
    level: usize,
    ext: bool,
    rng: &mut R,
) -> Result<Poly<Ntt>, Error> {
    let mut e = Zeroizing::new(alloc::vec![0i64; params.n()]);
    Gaussian::default().sample(rng, &mut e);
    Poly::<Ntt>::from_small_ntt(params.ctx(), level, ext, &e)
}

/// The secret key `s`, kept as small coefficients and in NTT form over `Q_L·P`.
pub struct SecretKey {
    params: Params,
    coeffs: Vec<i64>,
    poly: Poly<Ntt>,
}

impl core::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SecretKey")
            .field("params", &self.params.fingerprint())
            .finish_non_exhaustive()
    }
}

impl Drop for SecretKey {
    fn drop(&mut self) {
        self.coeffs.zeroize();
        self.poly.zeroize();
    }
}

impl ZeroizeOnDrop for SecretKey {}

impl SecretKey {
    /// Samples a secret with the parameters' distribution.
    pub fn generate<R: RngCore + CryptoRng>(params: &Params, rng: &mut R) -> Result<Self, Error> {
        let mut coeffs = Zeroizing::new(alloc::vec![0i64; params.n()]);
        match params.secret() {
            SecretDist::Ternary => ternary(rng, &mut coeffs),
            SecretDist::SparseTernary { hamming_weight } => {
                sparse_ternary(rng, hamming_weight, &mut coeffs)?;
            }
        }
        Self::from_coeffs(params, &coeffs)
    }

    /// A secret key from its coefficients (each −1, 0 or 1), e.g. read from the hospital's file.
    pub fn from_coeffs(params: &Params, coeffs: &[i64]) -> Result<Self, Error> {
        if coeffs.len() != params.n() {
            return Err(Error::LengthMismatch {
                what: "secret key",
                expected: params.n(),
                found: coeffs.len(),
            });
        }
        if coeffs.iter().any(|c| !(-1..=1).contains(c)) {
            return Err(Error::InvalidSecret);
        }
        let ctx = params.ctx();
        let poly = Poly::<Ntt>::from_small_ntt(ctx, ctx.max_level(), true, coeffs)?;
        Ok(Self {
            params: params.clone(),
            coeffs: coeffs.to_vec(),
            poly,
        })
    }

    /// The parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The coefficients (−1, 0, 1). Only for writing the hospital's own key file.
    pub fn coeffs(&self) -> &[i64] {
        &self.coeffs
    }

    /// `s` in NTT form over `Q_L·P` (Q limbs first).
    pub(crate) fn poly(&self) -> &Poly<Ntt> {
        &self.poly
    }

    /// `s` restricted to the Q limbs up to `level` (allocates).
    pub(crate) fn at_level(&self, level: usize) -> Result<Poly<Ntt>, Error> {
        let ctx = self.params.ctx();
        let mut q_only = Poly::<Ntt>::zero(ctx, level, false);
        let len = q_only.data().len();
        q_only
            .data_mut()
            .copy_from_slice(self.poly.data().get(..len).unwrap_or_default());
        Ok(q_only)
    }
}

/// The public key `(b, a) = (−a·s + e, a)` over `Q_L`; `a` is expanded from `seed`.
#[derive(Clone, Debug, PartialEq)]
pub struct PublicKey {
    pub(crate) seed: Seed,
    pub(crate) b: Poly<Ntt>,
    pub(crate) a: Poly<Ntt>,
}

impl PublicKey {
    /// Generates the public key of `sk`.
    pub fn generate<R: RngCore + CryptoRng>(sk: &SecretKey, rng: &mut R) -> Result<Self, Error> {
        let params = &sk.params;
        let ctx = params.ctx();
        let top = ctx.max_level();
        let seed = fresh_seed(rng);
        let a = Poly::<Ntt>::uniform(ctx, top, false, &mut seeded_rng(&seed));
        let mut s = sk.at_level(top)?;
        let mut b = gaussian_poly(params, top, false, rng)?;
        b.mul_sub_assign(ctx, &a, &s)?;
        s.zeroize();
        Ok(Self { seed, b, a })
    }

    /// Rebuilds a public key from its seed and `b` (e.g. after loading a file).
    pub fn from_seed(params: &Params, seed: Seed, b: Poly<Ntt>) -> Result<Self, Error> {
        let ctx = params.ctx();
        if b.level() != ctx.max_level() || b.is_extended() {
            return Err(Error::LevelTooLow {
                have: b.level(),
                need: ctx.max_level(),
            });
        }
        let a = Poly::<Ntt>::uniform(ctx, ctx.max_level(), false, &mut seeded_rng(&seed));
        Ok(Self { seed, b, a })
    }

    /// The seed of the uniform half.
    pub fn seed(&self) -> &Seed {
        &self.seed
    }

    /// The `b` half.
    pub fn b(&self) -> &Poly<Ntt> {
        &self.b
    }
}

/// A hybrid key-switching key (see the module docs): one `(b_i, a_i)` pair per digit over
/// `Q_L·P`, the `a_i` expanded in order from `seed`.
#[derive(Clone, Debug, PartialEq)]
pub struct KeySwitchKey {
    pub(crate) seed: Seed,
    pub(crate) b: Vec<Poly<Ntt>>,
    pub(crate) a: Vec<Poly<Ntt>>,
}

impl KeySwitchKey {
    /// The `a_i` of a key with this seed.
    fn expand(params: &Params, seed: &Seed) -> Vec<Poly<Ntt>> {
        let ctx = params.ctx();
        let mut rng = seeded_rng(seed);
        (0..params.dnum())
            .map(|_| Poly::<Ntt>::uniform(ctx, ctx.max_level(), true, &mut rng))
            .collect()
    }

    /// A key switching from `s_from` (NTT form over `Q_L·P`) to `sk`.
    pub fn generate<R: RngCore + CryptoRng>(
        sk: &SecretKey,
        s_from: &Poly<Ntt>,
        rng: &mut R,
    ) -> Result<Self, Error> {
        let params = &sk.params;
        let ctx = params.ctx();
        let top = ctx.max_level();
        let n = params.n();
        let seed = fresh_seed(rng);
        let a = Self::expand(params, &seed);
        let ks = params.ks();
        // [P]_{q_k} for each Q limb.
        let p_mod_q: Vec<u64> = ctx
            .q()
            .iter()
            .map(|m| {
                ctx.p()
                    .iter()
                    .fold(1u64, |acc, p| m.mul(acc, m.reduce(p.value())))
            })
            .collect();
        let mut b = Vec::with_capacity(a.len());
        for (d, ai) in a.iter().enumerate() {
            let mut bi = gaussian_poly(params, top, true, rng)?;
            bi.mul_sub_assign(ctx, ai, &sk.poly)?;
            let (lo, hi) = ks.digit_range(top, d);
            for k in lo..hi {
                let (Some(m), Some(&pm)) = (ctx.q().get(k), p_mod_q.get(k)) else {
                    continue;
                };
                let src = s_from.limb(k).ok_or(Error::LevelTooLow {
                    have: s_from.level(),
                    need: k,
                })?;
                let dst = bi
                    .data_mut()
                    .get_mut(k * n..(k + 1) * n)
                    .unwrap_or_default();
                let pms = m.shoup(pm);
                for (x, &sv) in dst.iter_mut().zip(src) {
                    *x = m.add(*x, m.mul_shoup(sv, pm, pms));
                }
            }
            b.push(bi);
        }
        Ok(Self { seed, b, a })
    }

    /// Rebuilds a key from its seed and `b` halves.
    pub fn from_seed(params: &Params, seed: Seed, b: Vec<Poly<Ntt>>) -> Result<Self, Error> {
        if b.len() != params.dnum() {
            return Err(Error::LengthMismatch {
                what: "key-switching digits",
                expected: params.dnum(),
                found: b.len(),
            });
        }
        let top = params.max_level();
        if let Some(bad) = b.iter().find(|p| p.level() != top || !p.is_extended()) {
            return Err(Error::LevelTooLow {
                have: bad.level(),
                need: top,
            });
        }
        Ok(Self {
            a: Self::expand(params, &seed),
            seed,
            b,
        })
    }

    /// The seed of the uniform halves.
    pub fn seed(&self) -> &Seed {
        &self.seed
    }

    /// The highest ciphertext level this key switches (the chain's top unless
    /// [`Self::truncate`]d).
    pub fn level(&self) -> usize {
        self.b.first().map_or(0, Poly::level)
    }

    /// Cuts the key to ciphertexts at `level` or below: the digits and the `Q` limbs above
    /// `level` are dropped and their memory released (the `P` limbs stay). A key switch at a
    /// level above is then an error ([`Error::LevelTooLow`]). Each prime of an RNS key is an
    /// independent sample, so what is kept is exactly the key restricted to `Q_level·P`. At
    /// N = 2^16 with 9 digits of 3 limbs, a key cut to level 9 takes 4 digits of 13 limbs
    /// instead of 9 of 31, a fifth of the memory. A truncated key cannot be serialised (the
    /// format holds whole keys), so this is for the side that only evaluates.
    pub fn truncate(&mut self, params: &Params, level: usize) -> Result<(), Error> {
        let level = level.min(self.level());
        let digits = params.ks().digits_at(level);
        self.b.truncate(digits);
        self.a.truncate(digits);
        for p in self.b.iter_mut().chain(self.a.iter_mut()) {
            p.drop_to_level(level)?;
            p.shrink_to_fit();
        }
        self.b.shrink_to_fit();
        self.a.shrink_to_fit();
        Ok(())
    }

    /// The `b` halves, one per digit.
    pub fn b(&self) -> &[Poly<Ntt>] {
        &self.b
    }
}

/// The Galois element of a left rotation by `step` slots: `5^step mod 2N` (negative steps
/// rotate right).
pub fn galois_element_for_rotation(params: &Params, step: i64) -> usize {
    let half = params.max_slots() as i64;
    let r = step.rem_euclid(half) as u64;
    let two_n = 2 * params.n() as u64;
    crate::math::pow_mod_vt(5, r, two_n) as usize
}

/// The Galois element of complex conjugation: `2N − 1`.
pub fn galois_element_conjugate(params: &Params) -> usize {
    2 * params.n() - 1
}

/// A Galois key: switches `σ_k(s)` back to `s`, so a ciphertext can be moved through the
/// automorphism `X → X^k`.
#[derive(Clone, Debug, PartialEq)]
pub struct GaloisKey {
    pub(crate) element: usize,
    pub(crate) key: KeySwitchKey,
    pub(crate) perm: Vec<u32>,
}

impl GaloisKey {
    /// Generates the key for Galois element `k` (odd, below 2N).
    pub fn generate<R: RngCore + CryptoRng>(
        sk: &SecretKey,
        k: usize,
        rng: &mut R,
    ) -> Result<Self, Error> {
        let ctx = sk.params.ctx();
        let perm = ctx.galois_permutation(k);
        let mut s_k = Poly::zero(ctx, 0, false);
        sk.poly.automorphism_into(&perm, &mut s_k)?;
        let key = KeySwitchKey::generate(sk, &s_k, rng)?;
        s_k.zeroize();
        Ok(Self {
            element: k,
            key,
            perm,
        })
    }

    /// Rebuilds a Galois key from its parts.
    pub fn from_parts(params: &Params, element: usize, key: KeySwitchKey) -> Result<Self, Error> {
        if element.is_multiple_of(2) || element >= 2 * params.n() {
            return Err(Error::UnknownCode {
                what: "Galois element",
                code: element as u64,
            });
        }
        Ok(Self {
            element,
            perm: params.ctx().galois_permutation(element),
            key,
        })
    }

    /// The Galois element.
    pub fn element(&self) -> usize {
        self.element
    }

    /// The key-switching key.
    pub fn key(&self) -> &KeySwitchKey {
        &self.key
    }
}

/// The relinearisation key: switches `s²` to `s`.
#[derive(Clone, Debug, PartialEq)]
pub struct RelinKey(pub KeySwitchKey);

impl RelinKey {
    /// Generates the relinearisation key of `sk`.
    pub fn generate<R: RngCore + CryptoRng>(sk: &SecretKey, rng: &mut R) -> Result<Self, Error> {
        let ctx = sk.params.ctx();
        let mut s2 = Poly::zero(ctx, 0, false);
        sk.poly.mul_into(ctx, &sk.poly, &mut s2)?;
        let k = KeySwitchKey::generate(sk, &s2, rng)?;
        s2.zeroize();
        Ok(Self(k))
    }
}

/// The highest ciphertext level each key is used at ([`EvalKeys::truncate`]): keys not named
/// are kept whole.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyLevels {
    /// The relinearisation key's level (`None`: whole).
    pub relin: Option<usize>,
    /// Galois keys' levels by Galois element.
    pub galois: BTreeMap<usize, usize>,
}

impl KeyLevels {
    /// Uses the rotations `steps` and the relinearisation key up to `level` (on top of what is
    /// recorded: each level is the highest asked for).
    pub fn use_rotations(&mut self, params: &Params, steps: &[i64], level: usize) {
        for &s in steps {
            self.use_element(galois_element_for_rotation(params, s), level);
        }
        self.use_relin(level);
    }

    /// Uses Galois element `k` up to `level`.
    pub fn use_element(&mut self, k: usize, level: usize) {
        let e = self.galois.entry(k).or_insert(level);
        *e = (*e).max(level);
    }

    /// Uses the relinearisation key up to `level`.
    pub fn use_relin(&mut self, level: usize) {
        self.relin = Some(self.relin.map_or(level, |l| l.max(level)));
    }

    /// Cuts the relinearisation key to its level, if one is recorded.
    fn cut_relin(&self, params: &Params, key: &mut RelinKey) -> Result<(), Error> {
        match self.relin {
            Some(l) => key.0.truncate(params, l),
            None => Ok(()),
        }
    }

    /// Cuts the Galois key of element `k` to its level, if one is recorded.
    fn cut_galois(&self, params: &Params, k: usize, key: &mut GaloisKey) -> Result<(), Error> {
        match self.galois.get(&k) {
            Some(&l) => key.key.truncate(params, l),
            None => Ok(()),
        }
    }
}

/// The evaluation keys the cloud receives: relinearisation plus Galois keys by element.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EvalKeys {
    /// Relinearisation key.
    pub relin: Option<RelinKey>,
    /// Galois keys by Galois element.
    pub galois: BTreeMap<usize, GaloisKey>,
}

impl EvalKeys {
    /// Generates the relinearisation key, a rotation key for each of `rotations` (slot steps,
    /// negative = right) and, if `conjugate`, the conjugation key.
    pub fn generate<R: RngCore + CryptoRng>(
        sk: &SecretKey,
        rotations: &[i64],
        conjugate: bool,
        rng: &mut R,
    ) -> Result<Self, Error> {
        Self::generate_truncated(sk, rotations, conjugate, &KeyLevels::default(), rng)
    }

    /// [`Self::generate`], each key cut to its level in `levels` as soon as it is made
    /// ([`KeySwitchKey::truncate`]), so that the whole set never sits in memory uncut; keys
    /// `levels` does not name are kept whole.
    pub fn generate_truncated<R: RngCore + CryptoRng>(
        sk: &SecretKey,
        rotations: &[i64],
        conjugate: bool,
        levels: &KeyLevels,
        rng: &mut R,
    ) -> Result<Self, Error> {
        let params = &sk.params;
        let mut relin = RelinKey::generate(sk, rng)?;
        levels.cut_relin(params, &mut relin)?;
        let mut keys = Self {
            relin: Some(relin),
            galois: BTreeMap::new(),
        };
        let elements = rotations
            .iter()
            .map(|&r| galois_element_for_rotation(params, r))
            .chain(conjugate.then(|| galois_element_conjugate(params)));
        for k in elements {
            if k != 1 && !keys.galois.contains_key(&k) {
                let mut key = GaloisKey::generate(sk, k, rng)?;
                levels.cut_galois(params, k, &mut key)?;
                keys.galois.insert(k, key);
            }
        }
        Ok(keys)
    }

    /// Cuts every key named in `levels` to its level ([`KeySwitchKey::truncate`]).
    pub fn truncate(&mut self, params: &Params, levels: &KeyLevels) -> Result<(), Error> {
        if let Some(r) = self.relin.as_mut() {
            levels.cut_relin(params, r)?;
        }
        for (&k, key) in &mut self.galois {
            levels.cut_galois(params, k, key)?;
        }
        Ok(())
    }

    /// The Galois key for element `k`.
    pub fn galois_key(&self, k: usize) -> Result<&GaloisKey, Error> {
        self.galois
            .get(&k)
            .ok_or(Error::MissingKey { galois_element: k })
    }

    /// The relinearisation key.
    pub fn relin_key(&self) -> Result<&RelinKey, Error> {
        self.relin
            .as_ref()
            .ok_or(Error::MissingKey { galois_element: 0 })
    }
}
