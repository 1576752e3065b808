//! RNS polynomials over `Z_Q[X]/(X^N + 1)` with the representation in the type.
//!
//! An [`RnsContext`] holds the modulus chain `q_0 … q_L` (the ciphertext modulus Q) and the
//! special primes `p_0 … p_{k-1}` (P, used only inside key switching), their NTT tables and the
//! constants for rescaling, basis extension and division by P.
//!
//! A [`Poly<R>`] stores its limbs contiguously: `q_0 … q_level`, then, if it is extended,
//! `p_0 … p_{k-1}`. `R` is [`Coeff`] (coefficients) or [`Ntt`] (evaluations in the NTT order of
//! [`crate::ntt`]); products exist only for `Poly<Ntt>`, so mixing domains does not compile.
//!
//! Allocation: every hot operation exists in an `_into`/`_assign` form that does not allocate
//! when the output already has the capacity (see the `*_scratch_len` functions for the scratch
//! it needs); `_new`-style helpers allocate.

use alloc::vec::Vec;
use core::marker::PhantomData;

use rand_core::{CryptoRng, RngCore};

use crate::Error;
use crate::math::Modulus;
use crate::ntt::{NttTable, automorphism_permutation};
use crate::simd::Op;

mod sealed {
    pub trait Sealed {}
}

/// The representation of a [`Poly`]: [`Coeff`] or [`Ntt`].
pub trait Representation: sealed::Sealed + Copy + core::fmt::Debug + Default {}

/// Coefficient representation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Coeff;
/// Evaluation (NTT) representation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ntt;
impl sealed::Sealed for Coeff {}
impl sealed::Sealed for Ntt {}
impl Representation for Coeff {}
impl Representation for Ntt {}

/// Coefficients processed together by the base converter's blocked loops.
const BLOCK: usize = 64;
/// Coefficients per block in [`BaseConverter::rows_into`] (the `z_j` of a block stay in L1).
const ROWS_BLOCK: usize = 512;

/// Precomputed exact (centred) base conversion from a basis `B = {b_j}` to target moduli.
///
/// For `y` given by its residues mod each `b_j`, computes the residues of the centred
/// representative `x ∈ (-B/2, B/2)` of `y mod B` modulo each target `t`:
/// `x = Σ_j [y_j (B/b_j)^-1]_{b_j} (B/b_j) − v B`, with `v` the nearest integer to
/// `Σ_j [y_j (B/b_j)^-1]_{b_j} / b_j`, computed in f64. This is exact except when `y mod B` lies
/// within about `k·2^-52·B` of `B/2`, where the result may be off by exactly `B` (harmless for
/// every use here: it changes a rounding by one unit).
#[derive(Clone, Debug)]
pub struct BaseConverter {
    src: Vec<Modulus>,
    dst: Vec<Modulus>,
    /// `(B/b_j)^-1 mod b_j` and its Shoup constant.
    hat_inv: Vec<(u64, u64)>,
    /// `1 / b_j` as f64.
    src_inv_f64: Vec<f64>,
    /// Row-major `[dst][src]`: `(B/b_j) mod t_i`.
    hat_mod_dst: Vec<u64>,
    /// `(−B) mod t_i`: the correction `−v·B` is accumulated as one more product.
    neg_b_mod_dst: Vec<u64>,
    /// For the 52-bit SIMD rows: `(B/b_j)·2^52 mod t_i` (row-major like `hat_mod_dst`), and
    /// `(2^52 mod t_i, 2^104 mod t_i)`.
    hat52_mod_dst: Vec<u64>,
    r52_r104: Vec<(u64, u64)>,
    /// Whether some source prime is `2^52` or more.
    big_src: bool,
    /// Whether `Σ_j (b_j − 1)·t + k·t < 2^126` for every target `t`: then a row's whole sum,
    /// correction included, is accumulated in 128 bits and reduced once.
    single_pass: bool,
}

impl BaseConverter {
    /// Tables for converting from `src` to `dst` (all distinct primes).
    pub fn new(src: &[Modulus], dst: &[Modulus]) -> Self {
        let hat_inv = src
            .iter()
            .enumerate()
            .map(|(j, m)| {
                let hat = src
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != j)
                    .fold(1u64, |acc, (_, o)| m.mul(acc, m.reduce(o.value())));
                let inv = m.inv(hat).unwrap_or(0);
                (inv, m.shoup(inv))
            })
            .collect();
        let mut hat_mod_dst = Vec::with_capacity(src.len() * dst.len());
        let mut neg_b_mod_dst = Vec::with_capacity(dst.len());
        let mut r52_r104 = Vec::with_capacity(dst.len());
        for t in dst {
            for j in 0..src.len() {
                let hat = src
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != j)
                    .fold(1u64, |acc, (_, o)| t.mul(acc, t.reduce(o.value())));
                hat_mod_dst.push(hat);
            }
            let b_mod = src
                .iter()
                .fold(1u64, |acc, o| t.mul(acc, t.reduce(o.value())));
            neg_b_mod_dst.push(t.neg(b_mod));
            let r52 = t.reduce_u128(1u128 << 52);
            let r104 = t.mul(r52, r52);
            r52_r104.push((r52, r104));
        }
        let hat52_mod_dst = hat_mod_dst
            .iter()
            .enumerate()
            .map(|(i, &h)| {
                let t = dst.get(i / src.len().max(1)).copied();
                t.map_or(0, |t| t.mul(h, t.reduce_u128(1u128 << 52)))
            })
            .collect();
        // Largest possible row sum: Σ_j z_j·h_j + v·(−B mod t) with z_j < b_j, h_j < t and
        // v ≤ k (v rounds Σ_j z_j / b_j < k).
        let max_t = dst.iter().map(|t| u128::from(t.value())).max().unwrap_or(0);
        let sum_b: u128 =
            src.iter().map(|b| u128::from(b.value())).sum::<u128>() + src.len() as u128;
        let single_pass = sum_b
            .checked_mul(max_t)
            .is_some_and(|bound| bound < 1u128 << 126);
        Self {
            src: src.to_vec(),
            dst: dst.to_vec(),
            hat_inv,
            src_inv_f64: src.iter().map(|m| 1.0 / m.value() as f64).collect(),
            hat_mod_dst,
            neg_b_mod_dst,
            hat52_mod_dst,
            r52_r104,
            big_src: src.iter().any(|b| b.value() >> 52 != 0),
            single_pass,
        }
    }

    /// Number of source moduli.
    pub fn src_len(&self) -> usize {
        self.src.len()
    }

    /// Number of target moduli.
    pub fn dst_len(&self) -> usize {
        self.dst.len()
    }

    /// Scratch (in u64 words) that [`BaseConverter::convert`] needs for `n` coefficients.
    pub fn scratch_len(&self, n: usize) -> usize {
        n * (self.src.len() + 1)
    }

    /// First half of a conversion, for the `src_len` limbs of `n` residues in `src`: writes
    /// `z_j = [y_j · (B/b_j)^-1]_{b_j}` (`src_len · n` words) and then the correction
    /// `v = round(Σ_j z_j / b_j)` (`n` words) into `zv`.
    pub fn prepare(&self, src: &[u64], zv: &mut [u64], n: usize) {
        let k = self.src.len();
        let (z, v) = zv.split_at_mut((k * n).min(zv.len()));
        crate::par::chunks_mut_zip(z, src, n, |j, zl, yl| {
            if let (Some(m), Some(&(hi, his))) = (self.src.get(j), self.hat_inv.get(j)) {
                for (zc, &yc) in zl.iter_mut().zip(yl) {
                    *zc = m.mul_shoup(yc, hi, his);
                }
            }
        });
        let z: &[u64] = z;
        // v in independent spans of coefficients; within a span, blocks of BLOCK.
        const SPAN: usize = 2048;
        let span = if n.is_multiple_of(SPAN) { SPAN } else { n };
        crate::par::chunks_mut(v, span, |s, vs| {
            let mut f = [0.0f64; BLOCK];
            for (b, vb) in vs.chunks_mut(BLOCK).enumerate() {
                let start = s * span + b * BLOCK;
                f.fill(0.0);
                for (zl, &inv) in z.chunks_exact(n).zip(&self.src_inv_f64) {
                    let zs = zl.iter().skip(start).take(vb.len());
                    for (a, &zc) in f.iter_mut().zip(zs) {
                        *a += zc as f64 * inv;
                    }
                }
                for (vc, &a) in vb.iter_mut().zip(&f) {
                    *vc = libm::round(a) as u64;
                }
            }
        });
    }

    /// Second half: target row `row` of the conversion, from the output of
    /// [`BaseConverter::prepare`], into `out` (`n` words). Products (and the correction `−v·B`)
    /// are accumulated lazily in 128 bits and reduced once per coefficient when the bound
    /// allows it (always for primes of up to 60 bits and up to 60 source limbs), else once
    /// per 16 terms.
    pub fn row(&self, zv: &[u64], row: usize, out: &mut [u64], n: usize) {
        self.row_range(zv, row, 0, out, n);
    }

    /// Rows `first..first + out.len() / n` of the conversion into `out` (consecutive limbs of
    /// `n` words), blocked over the coefficients so that each block of the `z_j` is read
    /// from cache for every row; the rows are split into one group per thread.
    pub fn rows_into(&self, zv: &[u64], first: usize, out: &mut [u64], n: usize) {
        if n == 0 {
            return;
        }
        let rows = out.len() / n;
        let groups = crate::par::threads().clamp(1, rows.max(1));
        let per_group = rows.div_ceil(groups);
        crate::par::chunks_mut(out, per_group * n, |g, out_g| {
            let first_g = first + g * per_group;
            for c0 in (0..n).step_by(ROWS_BLOCK) {
                let len = ROWS_BLOCK.min(n - c0);
                for (r, limb) in out_g.chunks_exact_mut(n).enumerate() {
                    if let Some(o) = limb.get_mut(c0..c0 + len) {
                        self.row_range(zv, first_g + r, c0, o, n);
                    }
                }
            }
        });
    }

    /// Coefficients `c0..c0 + out.len()` of target row `row`.
    fn row_range(&self, zv: &[u64], row: usize, c0: usize, out: &mut [u64], n: usize) {
        let k = self.src.len();
        let (Some(t), Some(hats), Some(&neg_b)) = (
            self.dst.get(row),
            self.hat_mod_dst.get(row * k..(row + 1) * k),
            self.neg_b_mod_dst.get(row),
        ) else {
            return;
        };
        let len = out.len();
        let (z, v) = zv.split_at((k * n).min(zv.len()));
        let Some(v) = v.get(c0..c0 + len) else {
            return;
        };
        if let (Some(hats52), Some(&(r52, r104))) = (
            self.hat52_mod_dst.get(row * k..(row + 1) * k),
            self.r52_r104.get(row),
        ) {
            let simd_row = crate::simd::ConvRow {
                t,
                z,
                n,
                c0,
                hats,
                hats52,
                v,
                neg_b,
                big: self.big_src,
                r52,
                r104,
            };
            if crate::simd::conv_row(&simd_row, out) {
                return;
            }
        }
        let neg_b = u128::from(neg_b);
        if self.single_pass {
            // Four coefficients at a time, the accumulators in registers.
            let done = len / 4 * 4;
            for (c4, (ob, vb)) in out.chunks_exact_mut(4).zip(v.chunks_exact(4)).enumerate() {
                let c = c0 + 4 * c4;
                let (Ok(ob), Ok(vb)) = (<&mut [u64; 4]>::try_from(ob), <&[u64; 4]>::try_from(vb))
                else {
                    continue;
                };
                let mut a = vb.map(|x| u128::from(x) * neg_b);
                for (zl, &h) in z.chunks_exact(n).zip(hats) {
                    if let Some(&[z0, z1, z2, z3]) = zl.get(c..c + 4) {
                        let h = u128::from(h);
                        a[0] += u128::from(z0) * h;
                        a[1] += u128::from(z1) * h;
                        a[2] += u128::from(z2) * h;
                        a[3] += u128::from(z3) * h;
                    }
                }
                *ob = a.map(|x| t.reduce_u128(x));
            }
            for (i, (o, &vc)) in out.iter_mut().zip(v).enumerate().skip(done) {
                let mut a = u128::from(vc) * neg_b;
                for (zl, &h) in z.chunks_exact(n).zip(hats) {
                    a += u128::from(zl.get(c0 + i).copied().unwrap_or(0)) * u128::from(h);
                }
                *o = t.reduce_u128(a);
            }
            return;
        }
        let mut acc = [0u128; BLOCK];
        for (b, (ob, vb)) in out.chunks_mut(BLOCK).zip(v.chunks(BLOCK)).enumerate() {
            for (a, &vc) in acc.iter_mut().zip(vb) {
                *a = u128::from(vc) * neg_b;
            }
            for (j, (zl, &h)) in z.chunks_exact(n).zip(hats).enumerate() {
                let zs = zl.iter().skip(c0 + b * BLOCK).take(ob.len());
                let h = u128::from(h);
                for (a, &zc) in acc.iter_mut().zip(zs) {
                    *a += u128::from(zc) * h;
                }
                if j % 16 == 15 {
                    for a in acc.iter_mut() {
                        *a = u128::from(t.reduce_u128_any(*a));
                    }
                }
            }
            for (o, &a) in ob.iter_mut().zip(&acc) {
                *o = t.reduce_u128_any(a);
            }
        }
    }

    /// Converts `n` coefficients: `src` holds `src_len` limbs of `n` residues (coefficient
    /// domain), `dst` receives the first `dst.len() / n` target limbs. `scratch` needs
    /// [`BaseConverter::scratch_len`] words.
    pub fn convert(&self, src: &[u64], dst: &mut [u64], n: usize, scratch: &mut [u64]) {
        let len = ((self.src.len() + 1) * n).min(scratch.len());
        let z = scratch.get_mut(..len).unwrap_or_default();
        self.prepare(src, z, n);
        self.rows_into(z, 0, dst, n);
    }
}

/// The shared part of a rescale from level `l`: the last limb in coefficient form and the
/// constants `q_l^-1 mod q_i`.
struct Rescaler<'a> {
    ctx: &'a RnsContext,
    ql: Modulus,
    last: &'a [u64],
    invs: &'a [(u64, u64)],
}

impl<'a> Rescaler<'a> {
    /// Inverse-transforms `last` (limb `l`, NTT form) in place.
    fn new(ctx: &'a RnsContext, l: usize, last: &'a mut [u64]) -> Result<Self, Error> {
        let tl = ctx.ntt.get(l).ok_or(Error::LevelTooLow {
            have: ctx.max_level(),
            need: l,
        })?;
        tl.inverse(last)?;
        let start = l * (l - 1) / 2;
        Ok(Self {
            ctx,
            ql: *tl.modulus(),
            last,
            invs: ctx.rescale_inv.get(start..start + l).unwrap_or_default(),
        })
    }

    /// Writes `NTT_i([last]_centred mod q_i)` into `tmp` and returns `(q_i, q_l^-1, Shoup)`:
    /// limb `i` of the result is `(a_i − tmp) · q_l^-1`.
    fn limb(&self, i: usize, tmp: &mut [u64]) -> Option<(Modulus, u64, u64)> {
        let (t, &(inv, inv_s)) = (self.ctx.ntt.get(i)?, self.invs.get(i)?);
        let m = *t.modulus();
        let qi = m.value();
        let ql = self.ql;
        if ql.value() < 2 * qi {
            // |centred| < q_l/2 < q_i: add q_i to negatives, branch-free.
            for (d, &s) in tmp.iter_mut().zip(self.last) {
                let x = ql.center(s);
                *d = (x as u64).wrapping_add(qi & ((x >> 63) as u64));
            }
        } else {
            for (d, &s) in tmp.iter_mut().zip(self.last) {
                *d = m.reduce_i64(ql.center(s));
            }
        }
        // Lengths match by construction.
        t.forward(tmp).ok()?;
        Some((m, inv, inv_s))
    }
}

/// Moduli, NTT tables and precomputed RNS constants for one ring dimension and chain.
#[derive(Debug)]
pub struct RnsContext {
    log_n: u32,
    n: usize,
    q: Vec<Modulus>,
    p: Vec<Modulus>,
    /// NTT tables for q_0..q_L then p_0..p_{k-1}.
    ntt: Vec<NttTable>,
    /// For rescaling level l → l-1: `q_l^-1 mod q_i` (with Shoup), `i < l`; row `l` of a
    /// triangular table stored flat: entries for l start at `l(l-1)/2`.
    rescale_inv: Vec<(u64, u64)>,
    /// For Garner's algorithm: `q_k^-1 mod q_j` for `k < j`, row j at `j(j-1)/2`.
    garner_inv: Vec<u64>,
    /// `P^-1 mod q_i` with Shoup.
    p_inv_mod_q: Vec<(u64, u64)>,
    /// Exact conversion P → Q (all levels use a prefix of the targets).
    p_to_q: Option<BaseConverter>,
    /// Exact conversion Q_l → P for each level l.
    q_to_p: Vec<BaseConverter>,
}

impl RnsContext {
    /// A context for `N = 2^log_n` with chain `q` and special primes `p`. The primes must be
    /// distinct, NTT-friendly for this N and below 2^62 (checked again here; full validation,
    /// including primality and security, is [`crate::params`]'s job).
    pub fn new(log_n: u32, q: &[u64], p: &[u64]) -> Result<Self, Error> {
        if q.is_empty() {
            return Err(Error::EmptyModulusChain);
        }
        let n = 1usize << log_n;
        let qm = q
            .iter()
            .map(|&v| Modulus::new(v))
            .collect::<Result<Vec<_>, _>>()?;
        let pm = p
            .iter()
            .map(|&v| Modulus::new(v))
            .collect::<Result<Vec<_>, _>>()?;
        let ntt = qm
            .iter()
            .chain(&pm)
            .map(|&m| NttTable::new(m, log_n))
            .collect::<Result<Vec<_>, _>>()?;
        let mut rescale_inv = Vec::new();
        for (l, ql) in qm.iter().enumerate().skip(1) {
            for qi in qm.iter().take(l) {
                let inv = qi.inv(ql.value()).ok_or(Error::DuplicateModulus {
                    modulus: ql.value(),
                })?;
                rescale_inv.push((inv, qi.shoup(inv)));
            }
        }
        let mut garner_inv = Vec::new();
        for (j, qj) in qm.iter().enumerate().skip(1) {
            for qk in qm.iter().take(j) {
                garner_inv.push(qj.inv(qk.value()).ok_or(Error::DuplicateModulus {
                    modulus: qk.value(),
                })?);
            }
        }
        let mut p_inv_mod_q = Vec::with_capacity(qm.len());
        for qi in &qm {
            let pp = pm
                .iter()
                .fold(1u64, |acc, pj| qi.mul(acc, qi.reduce(pj.value())));
            let inv = qi.inv(pp).ok_or(Error::DuplicateModulus {
                modulus: qi.value(),
            })?;
            p_inv_mod_q.push((inv, qi.shoup(inv)));
        }
        let p_to_q = (!pm.is_empty()).then(|| BaseConverter::new(&pm, &qm));
        let q_to_p = if pm.is_empty() {
            Vec::new()
        } else {
            (1..=qm.len())
                .map(|l| BaseConverter::new(qm.get(..l).unwrap_or(&[]), &pm))
                .collect()
        };
        Ok(Self {
            log_n,
            n,
            q: qm,
            p: pm,
            ntt,
            rescale_inv,
            garner_inv,
            p_inv_mod_q,
            p_to_q,
            q_to_p,
        })
    }

    /// `log2 N`.
    pub fn log_n(&self) -> u32 {
        self.log_n
    }
    /// The ring dimension N.
    pub fn n(&self) -> usize {
        self.n
    }
    /// The Q chain.
    pub fn q(&self) -> &[Modulus] {
        &self.q
    }
    /// The special primes P.
    pub fn p(&self) -> &[Modulus] {
        &self.p
    }
    /// The top level L (number of Q primes minus one).
    pub fn max_level(&self) -> usize {
        self.q.len() - 1
    }
    /// NTT tables, Q then P.
    pub fn ntt_tables(&self) -> &[NttTable] {
        &self.ntt
    }
    /// Exact base converter Q_level → P, if there are special primes.
    pub fn q_to_p(&self, level: usize) -> Option<&BaseConverter> {
        self.q_to_p.get(level)
    }
    /// Exact base converter P → Q, if there are special primes.
    pub fn p_to_q(&self) -> Option<&BaseConverter> {
        self.p_to_q.as_ref()
    }

    /// Moduli and NTT tables of the limbs of a polynomial at `level`, extended by P or not.
    fn limb_tables(&self, level: usize, ext: bool) -> impl Iterator<Item = &NttTable> {
        let p_start = self.q.len();
        self.ntt
            .iter()
            .take(level + 1)
            .chain(
                self.ntt
                    .iter()
                    .skip(p_start)
                    .take(if ext { self.p.len() } else { 0 }),
            )
    }

    /// The NTT table of limb `j` of a polynomial with `q_limbs` Q limbs (Q limbs first, then P).
    #[inline]
    pub(crate) fn limb_table(&self, q_limbs: usize, j: usize) -> Option<&NttTable> {
        if j < q_limbs {
            self.ntt.get(j)
        } else {
            self.ntt.get(self.q.len() + (j - q_limbs))
        }
    }

    /// The residues of the integer `x` modulo each limb of a polynomial at `level`.
    pub fn scalar_from_i64(&self, x: i64, level: usize, ext: bool) -> Vec<u64> {
        self.limb_tables(level, ext)
            .map(|t| t.modulus().reduce_i64(x))
            .collect()
    }

    /// The NTT-domain index permutation of the automorphism `X → X^k` (`k` odd).
    pub fn galois_permutation(&self, k: usize) -> Vec<u32> {
        automorphism_permutation(self.log_n, k)
            .into_iter()
            .map(|i| i as u32)
            .collect()
    }

    /// Scratch (u64 words) for [`Poly::rescale_assign`] and [`Poly::rescale_into`]: the last
    /// limb and one buffer per limb, so the limbs are independent (`2N` words also work, one
    /// limb after the other).
    pub fn rescale_scratch_len(&self) -> usize {
        self.n * (self.q.len() + 1)
    }

    /// Scratch (u64 words) for [`Poly::mod_down_assign`]: the `k + 1` words per coefficient of
    /// the base conversion and one buffer per Q limb (`(k + 2)·N` words also work, one limb
    /// after the other).
    pub fn mod_down_scratch_len(&self) -> usize {
        self.n * (self.p.len() + 1 + self.q.len())
    }

    /// Scratch (u64 words) for [`Poly::extend_to_p_assign`].
    pub fn extend_scratch_len(&self) -> usize {
        self.n * (self.q.len() + 1)
    }
}

/// A polynomial in RNS form: limbs `q_0 … q_level` and, if extended, `p_0 … p_{k-1}`.
#[derive(PartialEq, Eq)]
pub struct Poly<R: Representation> {
    n: usize,
    q_limbs: usize,
    p_limbs: usize,
    data: Vec<u64>,
    _repr: PhantomData<R>,
}

impl<R: Representation> Clone for Poly<R> {
    fn clone(&self) -> Self {
        Self {
            n: self.n,
            q_limbs: self.q_limbs,
            p_limbs: self.p_limbs,
            data: self.data.clone(),
            _repr: PhantomData,
        }
    }

    /// Reuses `self`'s buffer (no allocation when the capacity suffices).
    fn clone_from(&mut self, source: &Self) {
        self.n = source.n;
        self.q_limbs = source.q_limbs;
        self.p_limbs = source.p_limbs;
        self.data.clone_from(&source.data);
    }
}

impl<R: Representation> core::fmt::Debug for Poly<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Poly")
            .field("repr", &R::default())
            .field("n", &self.n)
            .field("level", &self.level())
            .field("p_limbs", &self.p_limbs)
            .finish_non_exhaustive()
    }
}

impl<R: Representation> zeroize::Zeroize for Poly<R> {
    fn zeroize(&mut self) {
        self.data.zeroize();
    }
}

impl<R: Representation> Poly<R> {
    /// The zero polynomial at `level`, extended by the special primes if `ext`.
    pub fn zero(ctx: &RnsContext, level: usize, ext: bool) -> Self {
        let p_limbs = if ext { ctx.p.len() } else { 0 };
        Self {
            n: ctx.n,
            q_limbs: level + 1,
            p_limbs,
            data: alloc::vec![0; ctx.n * (level + 1 + p_limbs)],
            _repr: PhantomData,
        }
    }

    /// A placeholder with no storage (no allocation); give it a shape with
    /// [`Poly::into_zeroed`] before use.
    pub fn empty() -> Self {
        Self {
            n: 0,
            q_limbs: 1,
            p_limbs: 0,
            data: Vec::new(),
            _repr: PhantomData,
        }
    }

    /// Reuses this polynomial's buffer for a zero polynomial of any representation at `level`
    /// (no allocation when the capacity suffices).
    pub fn into_zeroed<S: Representation>(
        mut self,
        ctx: &RnsContext,
        level: usize,
        ext: bool,
    ) -> Poly<S> {
        let p_limbs = if ext { ctx.p.len() } else { 0 };
        self.data.clear();
        self.data.resize(ctx.n * (level + 1 + p_limbs), 0);
        Poly {
            n: ctx.n,
            q_limbs: level + 1,
            p_limbs,
            data: core::mem::take(&mut self.data),
            _repr: PhantomData,
        }
    }

    /// Builds a polynomial from raw limbs (checked: length and reduction of every residue).
    pub fn from_limbs(
        ctx: &RnsContext,
        level: usize,
        ext: bool,
        data: Vec<u64>,
    ) -> Result<Self, Error> {
        if level > ctx.max_level() {
            return Err(Error::LevelTooLow {
                have: ctx.max_level(),
                need: level,
            });
        }
        let p_limbs = if ext { ctx.p.len() } else { 0 };
        let want = ctx.n * (level + 1 + p_limbs);
        if data.len() != want {
            return Err(Error::LengthMismatch {
                what: "polynomial limbs",
                expected: want,
                found: data.len(),
            });
        }
        for (j, (limb, t)) in data
            .chunks_exact(ctx.n)
            .zip(ctx.limb_tables(level, ext))
            .enumerate()
        {
            let q = t.modulus().value();
            if limb.iter().any(|&c| c >= q) {
                return Err(Error::CoefficientNotReduced {
                    limb: j,
                    modulus: q,
                });
            }
        }
        Ok(Self {
            n: ctx.n,
            q_limbs: level + 1,
            p_limbs,
            data,
            _repr: PhantomData,
        })
    }

    /// The level (number of Q limbs minus one).
    pub fn level(&self) -> usize {
        self.q_limbs - 1
    }
    /// Whether the polynomial carries the special-prime limbs.
    pub fn is_extended(&self) -> bool {
        self.p_limbs > 0
    }
    /// Ring dimension.
    pub fn n(&self) -> usize {
        self.n
    }
    /// All residues, limb after limb.
    pub fn data(&self) -> &[u64] {
        &self.data
    }
    /// All residues, mutable (the caller keeps them reduced).
    pub fn data_mut(&mut self) -> &mut [u64] {
        &mut self.data
    }
    /// Limb `j` (Q limbs first, then P limbs).
    pub fn limb(&self, j: usize) -> Option<&[u64]> {
        self.data.chunks_exact(self.n).nth(j)
    }
    /// Limb `j`, mutable.
    pub fn limb_mut(&mut self, j: usize) -> Option<&mut [u64]> {
        self.data.chunks_exact_mut(self.n).nth(j)
    }

    /// `other` is usable as a right operand of `self`: the same shape, or both without P limbs
    /// and `other` at a level at least as high (its lower limbs are used).
    fn same_shape(&self, other: &Self) -> Result<(), Error> {
        let prefix_ok = self.p_limbs == 0 && other.p_limbs == 0 && other.q_limbs >= self.q_limbs;
        let exact = self.q_limbs == other.q_limbs && self.p_limbs == other.p_limbs;
        if !(exact || prefix_ok) || self.n != other.n {
            return Err(Error::LengthMismatch {
                what: "polynomial limbs",
                expected: self.data.len(),
                found: other.data.len(),
            });
        }
        Ok(())
    }

    /// Gives the polynomial the shape (`level`, `ext`) without clearing it (no allocation when
    /// the capacity suffices); the caller overwrites every limb.
    pub(crate) fn set_shape(&mut self, ctx: &RnsContext, level: usize, ext: bool) {
        self.n = ctx.n;
        self.q_limbs = level + 1;
        self.p_limbs = if ext { ctx.p.len() } else { 0 };
        crate::par::resize_zeroed(&mut self.data, self.n * (self.q_limbs + self.p_limbs));
    }

    /// Makes `out` the same shape as `self` without reallocating when it has the capacity.
    fn shape_like<S: Representation>(&self, out: &mut Poly<S>) {
        out.n = self.n;
        out.q_limbs = self.q_limbs;
        out.p_limbs = self.p_limbs;
        crate::par::resize_zeroed(&mut out.data, self.data.len());
    }

    /// The words of `other` that line up with `self`'s limbs (all of them, or the lower Q limbs
    /// of a higher-level operand; see [`Poly::same_shape`]).
    fn aligned<'a>(&self, other: &'a Self) -> &'a [u64] {
        other.data.get(..self.data.len()).unwrap_or_default()
    }

    /// `self_j = op(q_j, self_j, other_j)` on every limb (in parallel with `parallel`).
    fn zip_assign<F>(&mut self, ctx: &RnsContext, other: &Self, op: F) -> Result<(), Error>
    where
        F: Fn(&Modulus, &mut [u64], &[u64]) + Send + Sync,
    {
        self.same_shape(other)?;
        let (n, ql) = (self.n, self.q_limbs);
        let b = self.aligned(other);
        crate::par::chunks_mut_zip(&mut self.data, b, n, |j, x, y| {
            if let Some(t) = ctx.limb_table(ql, j) {
                op(t.modulus(), x, y);
            }
        });
        Ok(())
    }

    /// `out[i] = op(q_j, self[i], other[i])` on every residue, `out` shaped like `self`: one
    /// pass, written once (no zero-filling first).
    fn zip_into<F>(
        &self,
        ctx: &RnsContext,
        other: &Self,
        out: &mut Self,
        op: F,
    ) -> Result<(), Error>
    where
        F: Fn(&Modulus, u64, u64) -> u64 + Send + Sync,
    {
        self.same_shape(other)?;
        let (n, ql) = (self.n, self.q_limbs);
        let b = self.aligned(other);
        // With more than one thread, limbs in parallel into an output that already has the
        // size; a fresh output is written once, in order (zero-filling it first would cost a
        // second pass over memory, more than a second thread gains on this memory-bound loop).
        if crate::par::threads() > 1 && out.data.len() == self.data.len() {
            self.shape_like(out);
            crate::par::chunks_mut_zip2(&mut out.data, &self.data, b, n, |j, o, x, y| {
                if let Some(t) = ctx.limb_table(ql, j) {
                    let m = t.modulus();
                    for ((z, &u), &v) in o.iter_mut().zip(x).zip(y) {
                        *z = op(m, u, v);
                    }
                }
            });
        } else {
            out.n = self.n;
            out.q_limbs = self.q_limbs;
            out.p_limbs = self.p_limbs;
            out.data.clear();
            out.data.reserve(self.data.len());
            let data = &mut out.data;
            crate::simd::vectorized(
                #[inline(always)]
                || {
                    for (j, (x, y)) in self.data.chunks_exact(n).zip(b.chunks_exact(n)).enumerate()
                    {
                        match ctx.limb_table(ql, j) {
                            Some(t) => {
                                let m = t.modulus();
                                data.extend(x.iter().zip(y).map(|(&u, &v)| op(m, u, v)));
                            }
                            None => data.extend(core::iter::repeat_n(0, n)),
                        }
                    }
                },
            );
        }
        Ok(())
    }

    /// `self += other`.
    pub fn add_assign(&mut self, ctx: &RnsContext, other: &Self) -> Result<(), Error> {
        self.zip_assign(ctx, other, |m, a, b| {
            a.iter_mut().zip(b).for_each(|(x, &y)| *x = m.add(*x, y));
        })
    }

    /// `self -= other`.
    pub fn sub_assign(&mut self, ctx: &RnsContext, other: &Self) -> Result<(), Error> {
        self.zip_assign(ctx, other, |m, a, b| {
            a.iter_mut().zip(b).for_each(|(x, &y)| *x = m.sub(*x, y));
        })
    }

    /// `self = -self`.
    pub fn neg_assign(&mut self, ctx: &RnsContext) {
        let (n, ql) = (self.n, self.q_limbs);
        crate::par::chunks_mut(&mut self.data, n, |j, a| {
            if let Some(t) = ctx.limb_table(ql, j) {
                let m = t.modulus();
                a.iter_mut().for_each(|x| *x = m.neg(*x));
            }
        });
    }

    /// `out = self + other`.
    pub fn add_into(&self, ctx: &RnsContext, other: &Self, out: &mut Self) -> Result<(), Error> {
        self.zip_into(ctx, other, out, |m, x, y| m.add(x, y))
    }

    /// `out = self - other`.
    pub fn sub_into(&self, ctx: &RnsContext, other: &Self, out: &mut Self) -> Result<(), Error> {
        self.zip_into(ctx, other, out, |m, x, y| m.sub(x, y))
    }

    /// `out = other - self` (`other` at the same or a higher level, read at `self`'s).
    pub fn sub_from_into(
        &self,
        ctx: &RnsContext,
        other: &Self,
        out: &mut Self,
    ) -> Result<(), Error> {
        self.zip_into(ctx, other, out, |m, x, y| m.sub(y, x))
    }

    /// Multiplies limb `j` by `scalar[j]` (one residue per limb, reduced), e.g. from
    /// [`RnsContext::scalar_from_i64`].
    pub fn mul_scalar_assign(&mut self, ctx: &RnsContext, scalar: &[u64]) -> Result<(), Error> {
        let limbs = self.q_limbs + self.p_limbs;
        if scalar.len() != limbs {
            return Err(Error::LengthMismatch {
                what: "RNS scalar",
                expected: limbs,
                found: scalar.len(),
            });
        }
        let (n, ql) = (self.n, self.q_limbs);
        crate::par::chunks_mut(&mut self.data, n, |j, a| {
            if let (Some(t), Some(&s)) = (ctx.limb_table(ql, j), scalar.get(j)) {
                let m = t.modulus();
                let ss = m.shoup(s);
                a.iter_mut().for_each(|x| *x = m.mul_shoup(*x, s, ss));
            }
        });
        Ok(())
    }

    /// Releases the memory of limbs dropped by [`Poly::drop_to_level`] (kept by default, so
    /// that a buffer can grow back without allocating).
    pub fn shrink_to_fit(&mut self) {
        self.data.shrink_to_fit();
    }

    /// Drops Q limbs down to `level` (keeps the P limbs if extended). Never allocates.
    pub fn drop_to_level(&mut self, level: usize) -> Result<(), Error> {
        if level > self.level() {
            return Err(Error::LevelTooLow {
                have: self.level(),
                need: level,
            });
        }
        let n = self.n;
        let keep = (level + 1) * n;
        let p_start = self.q_limbs * n;
        let p_len = self.p_limbs * n;
        self.data.copy_within(p_start..p_start + p_len, keep);
        self.data.truncate(keep + p_len);
        self.q_limbs = level + 1;
        Ok(())
    }

    /// A polynomial with the given small signed coefficients (secrets, errors), reduced into
    /// every limb branch-free. Coefficient domain; convert with [`Poly::into_ntt`].
    pub fn from_small(
        ctx: &RnsContext,
        level: usize,
        ext: bool,
        coeffs: &[i64],
    ) -> Result<Poly<Coeff>, Error> {
        if coeffs.len() != ctx.n {
            return Err(Error::LengthMismatch {
                what: "small polynomial",
                expected: ctx.n,
                found: coeffs.len(),
            });
        }
        let mut p = Poly::<Coeff>::zero(ctx, level, ext);
        let bound = small_bound(coeffs);
        crate::par::chunks_mut(&mut p.data, ctx.n, |j, limb| {
            if let Some(t) = ctx.limb_table(level + 1, j) {
                reduce_small_into(t.modulus(), coeffs, bound, limb);
            }
        });
        Ok(p)
    }
}

/// The largest `|c|` (computed without branches on the values).
fn small_bound(coeffs: &[i64]) -> u64 {
    coeffs.iter().fold(0u64, |a, &c| a.max(c.unsigned_abs()))
}

/// `limb[i] = coeffs[i] mod q`, given `bound ≥ max |coeffs[i]|`. Below `q` the reduction is one
/// conditional addition (branch-free); the running time depends only on whether the bound of
/// the distribution is below `q`.
fn reduce_small_into(m: &Modulus, coeffs: &[i64], bound: u64, limb: &mut [u64]) {
    if bound < m.value() {
        let q = m.value();
        for (x, &c) in limb.iter_mut().zip(coeffs) {
            *x = (c as u64).wrapping_add(q & ((c >> 63) as u64));
        }
    } else {
        for (x, &c) in limb.iter_mut().zip(coeffs) {
            *x = m.reduce_i64(c);
        }
    }
}

impl Poly<Ntt> {
    /// [`Poly::from_small`] followed by [`Poly::into_ntt`], limb by limb (each limb is
    /// transformed while it is still in cache).
    pub fn from_small_ntt(
        ctx: &RnsContext,
        level: usize,
        ext: bool,
        coeffs: &[i64],
    ) -> Result<Self, Error> {
        if coeffs.len() != ctx.n {
            return Err(Error::LengthMismatch {
                what: "small polynomial",
                expected: ctx.n,
                found: coeffs.len(),
            });
        }
        let mut p = Self::zero(ctx, level, ext);
        let bound = small_bound(coeffs);
        crate::par::chunks_mut(&mut p.data, ctx.n, |j, limb| {
            if let Some(t) = ctx.limb_table(level + 1, j) {
                reduce_small_into(t.modulus(), coeffs, bound, limb);
                // Lengths match by construction.
                let _ = t.forward(limb);
            }
        });
        Ok(p)
    }

    /// Gives `out` the shape (`level`, not extended), reusing its buffer, and writes limb `j`
    /// with `fill(j, q_j, limb)` (which must write every entry) followed by the forward NTT,
    /// limb by limb (in parallel with the `parallel` feature).
    pub(crate) fn fill_limbs_ntt<F>(ctx: &RnsContext, level: usize, out: &mut Self, fill: F)
    where
        F: Fn(usize, &Modulus, &mut [u64]) + Send + Sync,
    {
        out.set_shape(ctx, level, false);
        crate::par::chunks_mut(&mut out.data, ctx.n, |j, limb| {
            if let Some(t) = ctx.ntt.get(j) {
                fill(j, t.modulus(), limb);
                let _ = t.forward(limb);
            }
        });
    }

    /// A polynomial with independent uniform residues (uniform mod `Q·P` by the CRT), drawn in
    /// the NTT domain directly (the NTT is a bijection).
    pub fn uniform<G: RngCore + CryptoRng>(
        ctx: &RnsContext,
        level: usize,
        ext: bool,
        rng: &mut G,
    ) -> Self {
        let mut p = Self::zero(ctx, level, ext);
        let n = ctx.n;
        for (t, limb) in ctx.limb_tables(level, ext).zip(p.data.chunks_exact_mut(n)) {
            crate::sampling::uniform_mod(rng, t.modulus().value(), limb);
        }
        p
    }

    /// `self_j = op(self_j, a_j, b_j)` limb by limb with a [`crate::simd`] kernel.
    fn apply_assign(
        &mut self,
        ctx: &RnsContext,
        op: Op,
        a: &Self,
        b: Option<&Self>,
    ) -> Result<(), Error> {
        self.same_shape(a)?;
        if let Some(b) = b {
            self.same_shape(b)?;
        }
        let (n, ql) = (self.n, self.q_limbs);
        let x = self.aligned(a);
        let y = b.map_or(&[][..], |b| self.aligned(b));
        crate::par::chunks_mut(&mut self.data, n, |j, acc| {
            if let Some(t) = ctx.limb_table(ql, j) {
                let r = j * n..(j + 1) * n;
                let (xa, yb) = (
                    x.get(r.clone()).unwrap_or_default(),
                    y.get(r).unwrap_or_default(),
                );
                crate::simd::apply(op, t.modulus(), acc, xa, yb, &[]);
            }
        });
        Ok(())
    }

    /// `self *= other` (pointwise).
    pub fn mul_assign(&mut self, ctx: &RnsContext, other: &Self) -> Result<(), Error> {
        self.apply_assign(ctx, Op::AccMul, other, None)
    }

    /// `out = self * other` (pointwise).
    pub fn mul_into(&self, ctx: &RnsContext, other: &Self, out: &mut Self) -> Result<(), Error> {
        self.same_shape(other)?;
        self.shape_like(out);
        let (n, ql) = (self.n, self.q_limbs);
        let b = self.aligned(other);
        crate::par::chunks_mut_zip2(&mut out.data, &self.data, b, n, |j, o, x, y| {
            if let Some(t) = ctx.limb_table(ql, j) {
                crate::simd::apply(Op::Mul, t.modulus(), o, x, y, &[]);
            }
        });
        Ok(())
    }

    /// `self += a * b` (pointwise multiply-accumulate).
    pub fn mul_add_assign(&mut self, ctx: &RnsContext, a: &Self, b: &Self) -> Result<(), Error> {
        self.apply_assign(ctx, Op::AccMulAdd, a, Some(b))
    }

    /// `self -= a * b` (pointwise), in one pass.
    pub fn mul_sub_assign(&mut self, ctx: &RnsContext, a: &Self, b: &Self) -> Result<(), Error> {
        self.apply_assign(ctx, Op::AccMulSub, a, Some(b))
    }

    /// `out = self + a ⊙ b` in one pass, where `b` holds at least as many limbs as `self`
    /// (e.g. the secret key's limbs, read at `self`'s level without copying them). `a` must be
    /// shaped like `self` or a higher-level operand (see [`Poly::same_shape`]).
    pub fn mul_add_limbs_into(
        &self,
        ctx: &RnsContext,
        a: &Self,
        b: &[u64],
        out: &mut Self,
    ) -> Result<(), Error> {
        self.same_shape(a)?;
        let len = self.data.len();
        let b = b.get(..len).ok_or(Error::LengthMismatch {
            what: "polynomial limbs",
            expected: len,
            found: b.len(),
        })?;
        let x = self.aligned(a);
        let (n, ql) = (self.n, self.q_limbs);
        self.shape_like(out);
        crate::par::chunks_mut_zip2(&mut out.data, &self.data, x, n, |j, o, c, u| {
            let (Some(t), Some(v)) = (ctx.limb_table(ql, j), b.get(j * n..(j + 1) * n)) else {
                return;
            };
            crate::simd::apply(Op::MulAdd, t.modulus(), o, u, v, c);
        });
        Ok(())
    }

    /// `out = σ_k(self)` for the automorphism `X → X^k`, given `perm =
    /// ctx.galois_permutation(k)`. Never allocates when `out` has the capacity.
    pub fn automorphism_into(&self, perm: &[u32], out: &mut Self) -> Result<(), Error> {
        if perm.len() != self.n {
            return Err(Error::LengthMismatch {
                what: "Galois permutation",
                expected: self.n,
                found: perm.len(),
            });
        }
        self.shape_like(out);
        crate::par::chunks_mut_zip(&mut out.data, &self.data, self.n, |_, dst, src| {
            for (d, &j) in dst.iter_mut().zip(perm) {
                *d = src.get(j as usize).copied().unwrap_or(0);
            }
        });
        Ok(())
    }

    /// `out = σ_k(self) + other` in one pass (`perm` as for [`Poly::automorphism_into`];
    /// `other` shaped like `self`).
    pub fn automorphism_add_into(
        &self,
        ctx: &RnsContext,
        perm: &[u32],
        other: &Self,
        out: &mut Self,
    ) -> Result<(), Error> {
        if perm.len() != self.n {
            return Err(Error::LengthMismatch {
                what: "Galois permutation",
                expected: self.n,
                found: perm.len(),
            });
        }
        self.same_shape(other)?;
        self.shape_like(out);
        let ql = self.q_limbs;
        let b = self.aligned(other);
        crate::par::chunks_mut_zip2(&mut out.data, &self.data, b, self.n, |j, dst, src, y| {
            let Some(t) = ctx.limb_table(ql, j) else {
                return;
            };
            let m = t.modulus();
            for ((d, &p), &v) in dst.iter_mut().zip(perm).zip(y) {
                *d = m.add(src.get(p as usize).copied().unwrap_or(0), v);
            }
        });
        Ok(())
    }

    /// Converts to the coefficient representation in place (no allocation).
    pub fn into_coeff(mut self, ctx: &RnsContext) -> Poly<Coeff> {
        let (n, ql) = (self.n, self.q_limbs);
        crate::par::chunks_mut(&mut self.data, n, |j, limb| {
            if let Some(t) = ctx.limb_table(ql, j) {
                // Lengths match by construction.
                let _ = t.inverse(limb);
            }
        });
        Poly {
            n,
            q_limbs: self.q_limbs,
            p_limbs: self.p_limbs,
            data: core::mem::take(&mut self.data),
            _repr: PhantomData,
        }
    }

    /// `out = INTT(self)`, without allocating when `out` has the capacity.
    pub fn to_coeff_into(&self, ctx: &RnsContext, out: &mut Poly<Coeff>) {
        self.shape_like(out);
        let ql = self.q_limbs;
        crate::par::chunks_mut_zip(&mut out.data, &self.data, self.n, |j, o, x| {
            o.copy_from_slice(x);
            if let Some(t) = ctx.limb_table(ql, j) {
                let _ = t.inverse(o);
            }
        });
    }

    /// Checks that `self` can be rescaled; returns its level `l ≥ 1`.
    fn rescale_check(&self, scratch: &[u64], need: usize) -> Result<usize, Error> {
        let l = self.level();
        if l == 0 {
            return Err(Error::LevelTooLow { have: 0, need: 1 });
        }
        if self.is_extended() {
            return Err(Error::LengthMismatch {
                what: "rescale of a P-extended polynomial",
                expected: 0,
                found: self.p_limbs,
            });
        }
        if scratch.len() < need {
            return Err(Error::LengthMismatch {
                what: "rescale scratch",
                expected: need,
                found: scratch.len(),
            });
        }
        Ok(l)
    }

    /// Divides by the last Q prime with rounding (CKKS rescale): level `l` → `l − 1`.
    /// `scratch` needs [`RnsContext::rescale_scratch_len`] words (`N` suffice, one limb after
    /// the other). Never allocates.
    pub fn rescale_assign(&mut self, ctx: &RnsContext, scratch: &mut [u64]) -> Result<(), Error> {
        let n = self.n;
        let l = self.rescale_check(scratch, n)?;
        let (head, last) = self.data.split_at_mut(l * n);
        let r = Rescaler::new(ctx, l, last)?;
        let limb_op = |i: usize, limb: &mut [u64], tmp: &mut [u64]| {
            if let Some((m, inv, inv_s)) = r.limb(i, tmp) {
                crate::simd::apply(Op::AccSubMulConst(inv, inv_s), &m, limb, tmp, &[], &[]);
            }
        };
        match scratch.get_mut(..l * n) {
            // One buffer per limb: the limbs are independent.
            Some(bufs) if crate::par::threads() > 1 => {
                crate::par::chunks_mut_pair(head, bufs, n, limb_op);
            }
            _ => {
                let tmp = scratch.get_mut(..n).unwrap_or_default();
                for (i, limb) in head.chunks_exact_mut(n).enumerate() {
                    limb_op(i, limb, tmp);
                }
            }
        }
        self.data.truncate(l * n);
        self.q_limbs = l;
        Ok(())
    }

    /// `out = self` rescaled (see [`Poly::rescale_assign`]), written in one pass; `self` is left
    /// unchanged. `scratch` needs [`RnsContext::rescale_scratch_len`] words (`2N` suffice).
    pub fn rescale_into(
        &self,
        ctx: &RnsContext,
        out: &mut Self,
        scratch: &mut [u64],
    ) -> Result<(), Error> {
        let n = self.n;
        let l = self.rescale_check(scratch, 2 * n)?;
        let (last, bufs) = scratch.split_at_mut(n);
        let (head, top) = self.data.split_at(l * n);
        last.copy_from_slice(top.get(..n).unwrap_or_default());
        let r = Rescaler::new(ctx, l, last)?;
        out.n = n;
        out.q_limbs = l;
        out.p_limbs = 0;
        match bufs.get_mut(..l * n) {
            Some(bufs) if crate::par::threads() > 1 => {
                crate::par::resize_zeroed(&mut out.data, l * n);
                crate::par::chunks_mut_pair(&mut out.data, bufs, n, |i, o, tmp| {
                    let (Some((m, inv, inv_s)), Some(a)) =
                        (r.limb(i, tmp), head.get(i * n..(i + 1) * n))
                    else {
                        return;
                    };
                    crate::simd::apply(Op::SubMulConst(inv, inv_s), &m, o, a, tmp, &[]);
                });
            }
            _ => {
                let tmp = bufs.get_mut(..n).unwrap_or_default();
                out.data.clear();
                out.data.reserve(l * n);
                for (i, a) in head.chunks_exact(n).enumerate() {
                    match r.limb(i, tmp) {
                        Some((m, inv, inv_s)) => out.data.extend(
                            a.iter()
                                .zip(tmp.iter())
                                .map(|(&x, &t)| m.mul_shoup(m.sub(x, t), inv, inv_s)),
                        ),
                        None => out.data.extend(core::iter::repeat_n(0, n)),
                    }
                }
            }
        }
        Ok(())
    }

    /// Divides a P-extended polynomial by P with rounding and drops the P limbs (the last step
    /// of hybrid key switching). `scratch` needs [`RnsContext::mod_down_scratch_len`] words
    /// (at least `(k + 2)·N` for `k` special primes; with one buffer per Q limb the limbs are
    /// processed independently, in parallel with the `parallel` feature).
    pub fn mod_down_assign(&mut self, ctx: &RnsContext, scratch: &mut [u64]) -> Result<(), Error> {
        if !self.is_extended() {
            return Err(Error::MissingSpecialPrimes);
        }
        let conv = ctx.p_to_q.as_ref().ok_or(Error::MissingSpecialPrimes)?;
        let n = self.n;
        let k = self.p_limbs;
        let need = (k + 2) * n;
        if scratch.len() < need {
            return Err(Error::LengthMismatch {
                what: "mod-down scratch",
                expected: need,
                found: scratch.len(),
            });
        }
        let (z, bufs) = scratch.split_at_mut((k + 1) * n);
        let q_len = self.q_limbs;
        let (qpart, ppart) = self.data.split_at_mut(q_len * n);
        let p_tables = ctx.ntt.get(ctx.q.len()..).unwrap_or_default();
        crate::par::chunks_mut(ppart, n, |j, limb| {
            if let Some(t) = p_tables.get(j) {
                let _ = t.inverse(limb);
            }
        });
        conv.prepare(ppart, z, n);
        let z: &[u64] = z;
        let combine = |i: usize, limb: &mut [u64], tmp: &mut [u64]| {
            let (Some(t), Some(&(inv, inv_s))) = (ctx.ntt.get(i), ctx.p_inv_mod_q.get(i)) else {
                return;
            };
            let _ = t.forward(tmp);
            let op = Op::AccSubMulConst(inv, inv_s);
            crate::simd::apply(op, t.modulus(), limb, tmp, &[], &[]);
        };
        let limb_op = |i: usize, limb: &mut [u64], tmp: &mut [u64]| {
            conv.row(z, i, tmp, n);
            combine(i, limb, tmp);
        };
        match bufs.get_mut(..q_len * n) {
            // All rows at once (blocked over the coefficients), then limb by limb.
            Some(bufs) => {
                conv.rows_into(z, 0, bufs, n);
                crate::par::chunks_mut_pair(qpart, bufs, n, combine);
            }
            _ => {
                let tmp = bufs.get_mut(..n).unwrap_or_default();
                for (i, limb) in qpart.chunks_exact_mut(n).enumerate() {
                    limb_op(i, limb, tmp);
                }
            }
        }
        self.data.truncate(q_len * n);
        self.p_limbs = 0;
        Ok(())
    }
}

impl Poly<Coeff> {
    /// Converts to the NTT representation in place (no allocation).
    pub fn into_ntt(mut self, ctx: &RnsContext) -> Poly<Ntt> {
        let (n, ql) = (self.n, self.q_limbs);
        crate::par::chunks_mut(&mut self.data, n, |j, limb| {
            if let Some(t) = ctx.limb_table(ql, j) {
                // Lengths match by construction.
                let _ = t.forward(limb);
            }
        });
        Poly {
            n,
            q_limbs: self.q_limbs,
            p_limbs: self.p_limbs,
            data: core::mem::take(&mut self.data),
            _repr: PhantomData,
        }
    }

    /// `out = NTT(self)`, without allocating when `out` has the capacity.
    pub fn to_ntt_into(&self, ctx: &RnsContext, out: &mut Poly<Ntt>) {
        self.shape_like(out);
        let ql = self.q_limbs;
        crate::par::chunks_mut_zip(&mut out.data, &self.data, self.n, |j, o, x| {
            o.copy_from_slice(x);
            if let Some(t) = ctx.limb_table(ql, j) {
                let _ = t.forward(o);
            }
        });
    }

    /// `out = σ_k(self)` for `X → X^k` (`k` odd) in the coefficient domain:
    /// `X^i ↦ ±X^(i·k mod N)`.
    pub fn automorphism_into(&self, ctx: &RnsContext, k: usize, out: &mut Self) {
        self.shape_like(out);
        let n = self.n;
        let ql = self.q_limbs;
        let mask = 2 * n - 1;
        crate::par::chunks_mut_zip(&mut out.data, &self.data, n, |j, dst, src| {
            let Some(t) = ctx.limb_table(ql, j) else {
                return;
            };
            let m = t.modulus();
            for (i, &c) in src.iter().enumerate() {
                let e = (i * k) & mask;
                let (idx, v) = if e < n { (e, c) } else { (e - n, m.neg(c)) };
                if let Some(d) = dst.get_mut(idx) {
                    *d = v;
                }
            }
        });
    }

    /// Extends a polynomial over Q_level by the P limbs (exact centred base conversion); the
    /// result is in the coefficient domain. `scratch` needs [`RnsContext::extend_scratch_len`].
    pub fn extend_to_p_assign(
        &mut self,
        ctx: &RnsContext,
        scratch: &mut [u64],
    ) -> Result<(), Error> {
        if self.is_extended() {
            return Ok(());
        }
        let conv = ctx
            .q_to_p(self.level())
            .ok_or(Error::MissingSpecialPrimes)?;
        let n = self.n;
        let k = ctx.p.len();
        let old = self.data.len();
        self.data.resize(old + k * n, 0);
        let (src, dst) = self.data.split_at_mut(old);
        conv.convert(src, dst, n, scratch);
        self.p_limbs = k;
        Ok(())
    }

    /// `out[k]` = the centred value of coefficient `start + k·gap` as f64, exactly as
    /// [`Poly::coeff_f64`] gives it (indices past `N` give 0).
    ///
    /// Fast path: a coefficient whose centred value `x` satisfies `|x| < q_0/2` is `[y_0]_{q_0}`
    /// centred, which is confirmed by `x ≡ y_j (mod q_j)` on every other limb (its balanced
    /// mixed-radix digits above the first are then zero, so the f64 is the same). Only the
    /// coefficients that fail the check go through the full reconstruction; the running time
    /// therefore depends on how many coefficients exceed `q_0/2` in magnitude (a matter of the
    /// scale and size of the message) and on nothing else about the values.
    pub fn coeffs_f64_into(&self, ctx: &RnsContext, start: usize, gap: usize, out: &mut [f64]) {
        const BLOCK: usize = 256;
        let n = self.n;
        let (Some(q0), Some(limb0)) = (ctx.q.first(), self.data.get(..n)) else {
            out.fill(0.0);
            return;
        };
        let upper = self.data.get(n..self.q_limbs * n).unwrap_or_default();
        let index = |k: usize| start.saturating_add(k.saturating_mul(gap));
        for (b, o) in out.chunks_mut(BLOCK).enumerate() {
            let k0 = b * BLOCK;
            let mut x = [0i64; BLOCK];
            let mut ok = [true; BLOCK];
            for (k, xi) in x.iter_mut().enumerate().take(o.len()) {
                *xi = q0.center(limb0.get(index(k0 + k)).copied().unwrap_or(0));
            }
            for (limb, m) in upper.chunks_exact(n).zip(ctx.q.iter().skip(1)) {
                for (k, (xi, f)) in x.iter().zip(ok.iter_mut()).enumerate().take(o.len()) {
                    let y = limb.get(index(k0 + k)).copied().unwrap_or(0);
                    *f &= m.reduce_i64(*xi) == y;
                }
            }
            for (k, ((v, &xi), &f)) in o.iter_mut().zip(&x).zip(&ok).enumerate() {
                let i = index(k0 + k);
                *v = if i >= n {
                    0.0
                } else if f {
                    xi as f64
                } else {
                    self.coeff_f64(ctx, i)
                };
            }
        }
    }

    /// The centred value of coefficient `i` as f64, reconstructed exactly (Garner's mixed-radix
    /// algorithm with signed digits) from the Q limbs, then rounded once to f64.
    pub fn coeff_f64(&self, ctx: &RnsContext, i: usize) -> f64 {
        let mut digits = [0i64; 64];
        self.signed_mixed_radix(ctx, i, &mut digits);
        // x = d_0 + q_0 (d_1 + q_1 (d_2 + …)).
        let l = self.q_limbs;
        let mut acc = 0.0f64;
        for (d, m) in digits.iter().take(l).zip(ctx.q.iter()).rev() {
            acc = acc * m.value() as f64 + *d as f64;
        }
        acc
    }

    /// Signed mixed-radix digits `d_j ∈ [-(q_j-1)/2, (q_j-1)/2]` of the centred coefficient `i`:
    /// `x = Σ d_j · q_0…q_{j-1}`. `digits` needs `level + 1` entries (at most 64 are used).
    pub fn signed_mixed_radix(&self, ctx: &RnsContext, i: usize, digits: &mut [i64]) {
        // y = x + H with H = (Q-1)/2, whose mixed-radix digits are (q_j - 1)/2; Garner on y:
        // v_j = ((…((y_j − v_0) q_0^-1 − v_1) q_1^-1 …) − v_{j-1}) q_{j-1}^-1 mod q_j.
        let n = self.n;
        let l = self.q_limbs.min(digits.len()).min(64);
        let mut v = [0u64; 64];
        for (j, (limb, mj)) in self.data.chunks_exact(n).zip(&ctx.q).take(l).enumerate() {
            let mut y = mj.add(limb.get(i).copied().unwrap_or(0), (mj.value() - 1) / 2);
            let invs = ctx
                .garner_inv
                .iter()
                .skip(j * j.saturating_sub(1) / 2)
                .take(j);
            for (&vk, &inv) in v.iter().zip(invs) {
                y = mj.mul(mj.sub(y, mj.reduce(vk)), inv);
            }
            if let Some(s) = v.get_mut(j) {
                *s = y;
            }
        }
        for ((d, &vj), m) in digits.iter_mut().zip(v.iter()).zip(&ctx.q).take(l) {
            *d = vj as i64 - ((m.value() - 1) / 2) as i64;
        }
    }
}

#[cfg(test)]
mod tests;
