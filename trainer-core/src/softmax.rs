//! The softmax approximation (normalize-and-square), on any [`Backend`].
//!
//! Input: the logits `z` at the class slots (zero elsewhere), already scaled to
//! `u = z / 2^r` (the scaling is folded into the class mask of the logit step). With
//! `B = 2^r` the logit bound:
//!
//! 1. `a = E(u)·mask / hi₀` where `E` is the degree-[`SoftmaxApprox::exp_degree`] Chebyshev
//!    interpolant of `exp` on `[−1, 1]` (so `a ≈ exp(z/B)`), `hi₀ = c·e`. The mask and `1/hi₀`
//!    are folded into the coefficients (plaintext multiplications), so padded slots are exactly 0.
//! 2. `p = a / Σ_class a`: the class sum `S ∈ [lo, hi] = [E(−1), E(1)]/e` (for `|z| ≤ B`), and
//!    `1/S` by **centred Goldschmidt**: with `α = 2/(lo + hi)` and `ε = 1 − αS`
//!    (`|ε| ≤ (hi − lo)/(hi + lo)`), `1/S = α Π_j (1 + ε^(2^j))`, with
//!    [`SoftmaxApprox::first_steps`] factors (relative error `−ε^(2^k)`, never above 1). The
//!    factor `α` costs no level: `α(1 + ε)` is a second constant product of `S`, beside `ε`.
//! 3. `r` rounds of `p ← p² / Σ p²`, each inverse centred on its own range: if the previous
//!    normalisation left `Σ p ∈ [σ, 1]`, then `Σ p² ∈ [σ²/c, 1]`. The first `r − 1` rounds use
//!    [`SoftmaxApprox::round_steps`] factors, the last [`SoftmaxApprox::last_steps`]. After the
//!    rounds `p ≈ softmax(z)` (`softmax(z/B)^B` renormalised).
//!
//! Each normalisation multiplies a row by one scalar, and the next round's `p²/Σp²` does not
//! see a common factor, so only the **last** normalisation's error reaches the output; the
//! earlier ones only have to keep the next range inside Goldschmidt's `(0, 2/α)`, which the
//! constants guarantee ([`SoftmaxApprox::centres`] computes every `α` and range).
//!
//! Every range above is guaranteed for `|z| ≤ B`; beyond it the iteration still converges
//! while `αS < 2`. Depth: `⌈log2(deg+1)⌉ + 1` for the exponential, `k + 1` per normalisation.

use alloc::vec::Vec;

use crate::backend::{Backend, PlainId};

/// Named constants of the approximation (see the module docs).
#[derive(Clone, Debug, PartialEq)]
pub struct SoftmaxApprox {
    /// `r`: squaring rounds; the logit bound is `B = 2^r`.
    pub rounds: u32,
    /// Degree of the exponential's Chebyshev interpolant on `[−1, 1]`.
    pub exp_degree: usize,
    /// Goldschmidt factors of the first normalisation (range about `[e^-2, 1]`; its error
    /// cancels in the next round, so few factors do).
    pub first_steps: u32,
    /// Goldschmidt factors of the normalisation of every squaring round but the last (range
    /// about `[1/c, 1]`; errors cancel as above).
    pub round_steps: u32,
    /// Goldschmidt factors of the last round's normalisation: its relative error `ε^(2^k)`
    /// (`|ε| ≤ (c − 1)/(c + 1)` about) is the output's.
    pub last_steps: u32,
}

impl Default for SoftmaxApprox {
    /// `r = 4` (`B = 16`), degree 7, factors 4 / 5 / 6: depth 38, 55 products. For `c ≤ 11`
    /// the last normalisation's relative error is below `1e-5`.
    fn default() -> Self {
        Self {
            rounds: 4,
            exp_degree: 7,
            first_steps: 4,
            round_steps: 5,
            last_steps: 6,
        }
    }
}

/// One normalisation's constants: `α`, the range `[lo, hi]` of the sum it divides by, and the
/// lower bound `σ` of the row sum it leaves (`Σ p ∈ [σ, 1]`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Centre {
    /// The centring factor `2/(lo + hi)`.
    pub alpha: f64,
    /// Lowest sum.
    pub lo: f64,
    /// Highest sum.
    pub hi: f64,
    /// Lowest row sum after the normalisation.
    pub sigma: f64,
}

impl Centre {
    fn new(lo: f64, hi: f64, steps: u32) -> Self {
        let eps = (hi - lo) / (hi + lo);
        Self {
            alpha: 2.0 / (lo + hi),
            lo,
            hi,
            sigma: 1.0 - libm::pow(eps, libm::exp2(f64::from(steps))),
        }
    }
}

impl SoftmaxApprox {
    /// Three squaring rounds (`B = 8`): depth 31, 45 products, one bootstrapping fewer per
    /// step than the default where each level is dear (`TrainConfig::bootstrapped`). Logits
    /// are guaranteed within `±8` rather than `±16`; on the full BloodMNIST, OrganAMNIST and
    /// MNIST features the mirror trained with it to early stopping stays equal to exact
    /// training to the digit (`docs/TRAINING.md`).
    pub fn shallow() -> Self {
        Self {
            rounds: 3,
            ..Self::default()
        }
    }

    /// The logit bound `B = 2^r`.
    pub fn logit_bound(&self) -> f64 {
        libm::exp2(f64::from(self.rounds))
    }

    /// Levels the exponential consumes: its powers, then the coefficient products.
    pub fn exp_depth(&self) -> usize {
        (usize::BITS - self.exp_degree.leading_zeros()) as usize + 1
    }

    /// Levels one evaluation consumes.
    pub fn depth(&self) -> usize {
        self.exp_depth()
            + (self.first_steps as usize + 1)
            + self.rounds.saturating_sub(1) as usize * (self.round_steps as usize + 2)
            + usize::from(self.rounds > 0) * (self.last_steps as usize + 2)
    }

    /// Goldschmidt factors of each normalisation: the first, then one per round.
    pub fn steps(&self) -> Vec<u32> {
        let mut v = alloc::vec![self.first_steps];
        for j in 0..self.rounds {
            v.push(if j + 1 == self.rounds {
                self.last_steps
            } else {
                self.round_steps
            });
        }
        v
    }

    /// The constants of every normalisation for `classes` real classes (see the module docs):
    /// the first divides by `S ∈ [E(−1), E(1)]/e`, round `j` by `Σp² ∈ [σ²/c, 1]` with `σ` what
    /// the previous normalisation leaves.
    pub fn centres(&self, classes: usize) -> Vec<Centre> {
        let coeffs = self.exp_coefficients();
        let e = core::f64::consts::E;
        let c = classes.max(1) as f64;
        let steps = self.steps();
        let mut out = Vec::with_capacity(steps.len());
        let mut it = steps.into_iter();
        if let Some(k) = it.next() {
            out.push(Centre::new(
                horner(&coeffs, -1.0) / e,
                horner(&coeffs, 1.0) / e,
                k,
            ));
        }
        for k in it {
            let sigma = out.last().map_or(1.0, |p: &Centre| p.sigma);
            out.push(Centre::new(sigma * sigma / c, 1.0, k));
        }
        out
    }

    /// Power-basis coefficients of the Chebyshev interpolant of `exp` on `[−1, 1]`.
    pub fn exp_coefficients(&self) -> Vec<f64> {
        chebyshev_interpolant(libm::exp, self.exp_degree)
    }

    /// Exact reference of what the approximation computes in f64, for one row of logits
    /// (real classes only). Used by tests and by the mirror's error report.
    pub fn reference(&self, z: &[f64]) -> Vec<f64> {
        let c = z.len() as f64;
        let b = self.logit_bound();
        let coeffs = self.exp_coefficients();
        let hi = c * core::f64::consts::E;
        let mut p: Vec<f64> = z.iter().map(|&v| horner(&coeffs, v / b) / hi).collect();
        for (j, (centre, steps)) in self.centres(z.len()).iter().zip(self.steps()).enumerate() {
            if j > 0 {
                p.iter_mut().for_each(|v| *v *= *v);
            }
            normalise_ref(&mut p, centre.alpha, steps);
        }
        p
    }
}

fn horner(coeffs: &[f64], x: f64) -> f64 {
    coeffs.iter().rev().fold(0.0, |acc, &c| acc * x + c)
}

fn normalise_ref(p: &mut [f64], alpha: f64, steps: u32) {
    let s: f64 = p.iter().sum();
    let mut eps = 1.0 - alpha * s;
    let mut prod = alpha * (2.0 - alpha * s);
    for _ in 1..steps {
        eps *= eps;
        prod *= 1.0 + eps;
    }
    p.iter_mut().for_each(|v| *v *= prod);
}

/// Power-basis coefficients of the degree-`deg` interpolant of `f` at the Chebyshev nodes of
/// `[−1, 1]`.
pub fn chebyshev_interpolant(f: fn(f64) -> f64, deg: usize) -> Vec<f64> {
    let n = deg + 1;
    let pi = core::f64::consts::PI;
    // Chebyshev coefficients c_j = (2/n) Σ_k f(x_k) T_j(x_k).
    let nodes: Vec<f64> = (0..n)
        .map(|k| libm::cos(pi * (k as f64 + 0.5) / n as f64))
        .collect();
    let fx: Vec<f64> = nodes.iter().map(|&x| f(x)).collect();
    let cheb: Vec<f64> = (0..n)
        .map(|j| {
            let s: f64 = fx
                .iter()
                .enumerate()
                .map(|(k, &fk)| fk * libm::cos(pi * j as f64 * (k as f64 + 0.5) / n as f64))
                .sum();
            s * 2.0 / n as f64 * if j == 0 { 0.5 } else { 1.0 }
        })
        .collect();
    // T_0 = 1, T_1 = x, T_{j+1} = 2x T_j − T_{j−1}, in the power basis.
    let mut out = alloc::vec![0.0; n];
    let mut t_prev = alloc::vec![0.0; n];
    let mut t_cur = alloc::vec![0.0; n];
    if let Some(v) = t_prev.first_mut() {
        *v = 1.0;
    }
    if let Some(v) = t_cur.get_mut(1) {
        *v = 1.0;
    }
    for (j, &cj) in cheb.iter().enumerate() {
        let t = if j == 0 { &t_prev } else { &t_cur };
        for (o, &tv) in out.iter_mut().zip(t.iter()) {
            *o += cj * tv;
        }
        if j >= 1 {
            let mut next = alloc::vec![0.0; n];
            for (k, nv) in next.iter_mut().enumerate() {
                let shifted = if k >= 1 {
                    2.0 * t_cur.get(k - 1).copied().unwrap_or(0.0)
                } else {
                    0.0
                };
                *nv = shifted - t_prev.get(k).copied().unwrap_or(0.0);
            }
            t_prev = core::mem::replace(&mut t_cur, next);
        }
    }
    out
}

/// Plaintext operands of the softmax for one layout and row count.
#[derive(Clone, Debug)]
pub struct SoftmaxPlains {
    /// `coeff_k · mask / hi₀` for `k ≥ 1`, as plaintext operands.
    pub exp_terms: Vec<PlainId>,
    /// `coeff_0 · mask / hi₀` (added).
    pub exp_const: PlainId,
    /// The class mask (1 on the class slots of the used rows).
    pub mask: PlainId,
    /// Per normalisation: `α` ([`SoftmaxApprox::centres`]), `−α·mask` and `−α²·mask`.
    pub centres: Vec<(f64, PlainId, PlainId)>,
}

/// Evaluates the powers `x^1 … x^deg` with minimal depth (`x^k = x^(2^a) · x^(k − 2^a)`).
fn powers<B: Backend>(be: &mut B, x: &B::Vector, deg: usize) -> Result<Vec<B::Vector>, B::Error> {
    let mut p: Vec<B::Vector> = Vec::with_capacity(deg);
    p.push(x.clone());
    for k in 2..=deg {
        // x^k = x^h · x^(k−h) with h the largest power of two below k (h = k/2 for powers of
        // two), so x^k has depth ⌈log2 k⌉.
        let h = if k.is_power_of_two() {
            k / 2
        } else {
            1usize << (usize::BITS - 1 - k.leading_zeros())
        };
        let (Some(a), Some(b)) = (p.get(h - 1), p.get(k - h - 1)) else {
            break;
        };
        let v = be.mul(a, b)?;
        p.push(v);
    }
    Ok(p)
}

/// The sum over the class slots of each row, in every class slot, for `v` zero outside the
/// class slots: rotate-and-add by all but the last of `steps`, then rotate by the last
/// ([`crate::layout::Layout::class_sum_steps`]).
pub fn class_sum<B: Backend>(
    be: &mut B,
    v: &B::Vector,
    steps: &[i64],
) -> Result<B::Vector, B::Error> {
    let Some((&shift, doubling)) = steps.split_last() else {
        return Ok(v.clone());
    };
    let mut acc = v.clone();
    for &s in doubling {
        let r = be.rotate(&acc, s)?;
        acc = be.add(&acc, &r)?;
    }
    be.rotate(&acc, shift)
}

/// `x · (1/S)` by centred Goldschmidt with `steps` factors, where `S` (in `(0, 2/α)` on the
/// class slots) is the class sum of `x`.
fn normalise<B: Backend>(
    be: &mut B,
    x: &B::Vector,
    plains: &SoftmaxPlains,
    centre: (f64, PlainId, PlainId),
    sum_steps: &[i64],
    steps: u32,
) -> Result<B::Vector, B::Error> {
    let (alpha, neg_alpha, neg_alpha_sq) = centre;
    // The whole normalisation (`steps` factors, then the product with `x`) at once: one
    // refresh of `x` here when it has too few levels, rather than refreshes of the sum, of
    // both chains and of `x` along the way.
    let reserved = be.reserve(x, steps as usize + 1)?;
    let x = reserved.as_ref().unwrap_or(x);
    let s = class_sum(be, x, sum_steps)?;
    // ε = 1 − αS on the class slots and 0 elsewhere, α(1 + ε) = 2α − α²S (2α elsewhere): one
    // plaintext product of S each. Off the class slots every factor is then 1 and the
    // product stays 2α: nothing there grows to 2^k, which would cost a bootstrapping
    // precision in every slot (its error scales with the largest coefficient).
    let neg = be.mul_plain(&s, neg_alpha)?;
    let mut eps = be.add_plain(&neg, plains.mask)?;
    let first = be.mul_plain(&s, neg_alpha_sq)?;
    let mut prod = be.add_const(&first, 2.0 * alpha)?;
    for _ in 1..steps {
        // Both chains lose a level per factor: refreshed together when they run out.
        let mut r = be.reserve_many(&[&eps, &prod], 1)?.into_iter();
        if let Some(Some(e)) = r.next() {
            eps = e;
        }
        if let Some(Some(p)) = r.next() {
            prod = p;
        }
        eps = be.mul(&eps, &eps)?;
        let factor = be.add_const(&eps, 1.0)?;
        prod = be.mul(&prod, &factor)?;
    }
    be.mul(x, &prod)
}

/// The approximate softmax of `u = z / B` (class slots; zero elsewhere).
pub fn evaluate<B: Backend>(
    be: &mut B,
    approx: &SoftmaxApprox,
    plains: &SoftmaxPlains,
    u: &B::Vector,
    sum_steps: &[i64],
) -> Result<B::Vector, B::Error> {
    // One refresh of `u` when the exponential would run out of levels (rather than one per
    // power that does).
    let reserved = be.reserve(u, approx.exp_depth())?;
    let u = reserved.as_ref().unwrap_or(u);
    let pw = powers(be, u, approx.exp_degree)?;
    let mut acc: Option<B::Vector> = None;
    for (xk, &pid) in pw.iter().zip(&plains.exp_terms) {
        let t = be.mul_plain(xk, pid)?;
        acc = Some(match acc {
            None => t,
            Some(a) => be.add(&a, &t)?,
        });
    }
    let Some(terms) = acc else {
        return Ok(u.clone());
    };
    let mut p = be.add_plain(&terms, plains.exp_const)?;
    for (j, (&centre, steps)) in plains.centres.iter().zip(approx.steps()).enumerate() {
        if j > 0 {
            p = be.mul(&p, &p)?;
        }
        p = normalise(be, &p, plains, centre, sum_steps, steps)?;
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chebyshev_exp_interpolant_is_accurate() {
        for (deg, tol) in [(5, 1e-4), (7, 1e-6), (9, 1e-9)] {
            let c = chebyshev_interpolant(libm::exp, deg);
            let worst = (0..=200)
                .map(|i| -1.0 + i as f64 / 100.0)
                .map(|x| (horner(&c, x) - libm::exp(x)).abs())
                .fold(0.0, f64::max);
            assert!(worst < tol, "degree {deg}: {worst}");
        }
    }

    #[test]
    fn centred_constants_keep_every_range_and_only_the_last_error_counts() {
        assert_eq!(SoftmaxApprox::default().depth(), 38);
        assert_eq!(SoftmaxApprox::shallow().depth(), 31);
        for a in [SoftmaxApprox::default(), SoftmaxApprox::shallow()] {
            check_centres(&a);
        }
    }

    fn check_centres(a: &SoftmaxApprox) {
        for c in 2..=16 {
            let centres = a.centres(c);
            assert_eq!(centres.len(), 1 + a.rounds as usize);
            for (j, ct) in centres.iter().enumerate() {
                // Goldschmidt converges: α·S stays in (0, 2) over the whole range.
                assert!(
                    ct.alpha * ct.lo > 0.0 && ct.alpha * ct.hi < 2.0,
                    "c {c} #{j} {ct:?}"
                );
                assert!(ct.sigma > 0.9 && ct.sigma <= 1.0, "c {c} #{j} {ct:?}");
            }
        }
        // The last normalisation's bound for the datasets' class counts.
        for c in [8, 10, 11] {
            let last = a.centres(c).last().copied().unwrap();
            assert!(1.0 - last.sigma < 1e-5, "c {c}: {last:?}");
        }
        // Coarse intermediate normalisations change the output by no more than the last
        // one's error: the row factors cancel.
        let fine = SoftmaxApprox {
            first_steps: 12,
            round_steps: 12,
            last_steps: 12,
            ..a.clone()
        };
        let z = [12.0, -15.0, 3.0, 0.5, -2.0, 7.0, 14.0, 0.0, 1.0, -8.0, 2.0];
        let (p, q) = (a.reference(&z), fine.reference(&z));
        let err = p
            .iter()
            .zip(&q)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max);
        assert!(err < 1e-5, "coarse vs fine: {err}");
        let uniform = a.reference(&[0.0; 11]);
        assert!(
            uniform.iter().all(|&v| (v - 1.0 / 11.0).abs() < 1e-6),
            "{uniform:?}"
        );
    }

    #[test]
    fn reference_tracks_exact_softmax_within_bound() {
        let cases = [
            (SoftmaxApprox::default(), 1.0),
            // Within its bound of 8: the same logits halved.
            (SoftmaxApprox::shallow(), 0.5),
        ];
        for (a, k) in cases {
            check_reference(&a, k);
        }
    }

    fn check_reference(a: &SoftmaxApprox, k: f64) {
        for z in [
            alloc::vec![0.0, 0.0, 0.0],
            alloc::vec![15.0, -15.0, 3.0, 0.5, -2.0, 7.0, 14.0, 0.0, 1.0, -8.0, 2.0],
            alloc::vec![-3.0, 1.0, 2.0, 0.1, -0.4, 0.0, 5.0, -1.0],
        ] {
            let z: Vec<f64> = z.iter().map(|v| v * k).collect();
            let mut want = z.clone();
            crate::exact::softmax(&mut want);
            let got = a.reference(&z);
            let err = want
                .iter()
                .zip(&got)
                .map(|(w, g)| (w - g).abs())
                .fold(0.0, f64::max);
            assert!(err < 2e-3, "{z:?}: max error {err}");
        }
    }
}
