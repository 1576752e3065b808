//! The softmax approximation (normalize-and-square), on any [`Backend`].
//!
//! Input: the logits `z` at the class slots (zero elsewhere), already scaled to
//! `u = z / 2^r` (the scaling is folded into the class mask of the logit step). With
//! `B = 2^r` the logit bound:
//!
//! 1. `a = E(u)·mask / hi₀` where `E` is the degree-[`SoftmaxApprox::exp_degree`] Chebyshev
//!    interpolant of `exp` on `[−1, 1]` (so `a ≈ exp(z/B)`), `hi₀ = c·e`. The mask and `1/hi₀`
//!    are folded into the coefficients (plaintext multiplications), so padded slots are exactly 0.
//! 2. `p = a / Σ_class a`: the class sum `S ∈ [c/e, c·e]/hi₀ ⊂ (0, 1]` (for `|z| ≤ B`), and
//!    `1/S` by Goldschmidt's iteration `1/S = Π_j (1 + ε^(2^j))`, `ε = 1 − S`, with
//!    [`SoftmaxApprox::first_steps`] factors (error `ε^(2^k)`).
//! 3. `r` rounds of `p ← p² / Σ p²` (`Σ p² ∈ [1/c, 1]`), each inverse with
//!    [`SoftmaxApprox::round_steps`] Goldschmidt factors. After the rounds `p ≈ softmax(z)`
//!    (`softmax(z/B)^B` renormalised).
//!
//! Every range above is guaranteed for `|z| ≤ B`; beyond it the iteration still converges
//! while `S < 2`. Depth: `⌈log2(deg+1)⌉ + 1` for the exponential, `k + 1` per normalisation.

use alloc::vec::Vec;

use crate::backend::{Backend, PlainId};

/// Named constants of the approximation (see the module docs).
#[derive(Clone, Debug, PartialEq)]
pub struct SoftmaxApprox {
    /// `r`: squaring rounds; the logit bound is `B = 2^r`.
    pub rounds: u32,
    /// Degree of the exponential's Chebyshev interpolant on `[−1, 1]`.
    pub exp_degree: usize,
    /// Goldschmidt factors of the first normalisation (range `[e^-2, 1]`).
    pub first_steps: u32,
    /// Goldschmidt factors of each squaring round's normalisation (range `[1/c, 1]`).
    pub round_steps: u32,
}

impl Default for SoftmaxApprox {
    fn default() -> Self {
        Self {
            rounds: 4,
            exp_degree: 7,
            first_steps: 6,
            round_steps: 7,
        }
    }
}

impl SoftmaxApprox {
    /// The logit bound `B = 2^r`.
    pub fn logit_bound(&self) -> f64 {
        libm::exp2(f64::from(self.rounds))
    }

    /// Levels one evaluation consumes.
    pub fn depth(&self) -> usize {
        let exp = (usize::BITS - self.exp_degree.leading_zeros()) as usize + 1;
        exp + (self.first_steps as usize + 1)
            + self.rounds as usize * (self.round_steps as usize + 2)
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
        normalise_ref(&mut p, self.first_steps);
        for _ in 0..self.rounds {
            p.iter_mut().for_each(|v| *v *= *v);
            normalise_ref(&mut p, self.round_steps);
        }
        p
    }
}

fn horner(coeffs: &[f64], x: f64) -> f64 {
    coeffs.iter().rev().fold(0.0, |acc, &c| acc * x + c)
}

fn normalise_ref(p: &mut [f64], steps: u32) {
    let s: f64 = p.iter().sum();
    let mut eps = 1.0 - s;
    let mut prod = 1.0 + eps;
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
    /// The class mask (for `1 − S` on the class slots only).
    pub mask: PlainId,
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

/// `x · (1/S)` by Goldschmidt with `steps` factors, where `S` (in `(0, 2)` on the class slots)
/// is the class sum of `x`.
fn normalise<B: Backend>(
    be: &mut B,
    x: &B::Vector,
    mask: PlainId,
    sum_steps: &[i64],
    steps: u32,
) -> Result<B::Vector, B::Error> {
    let s = class_sum(be, x, sum_steps)?;
    // ε = 1 − S on every slot (padded slots get 1 − S there too; x is zero there, so the
    // product stays zero).
    let neg = be.mul_const(&s, -1.0)?;
    let _ = mask;
    let mut eps = be.add_const(&neg, 1.0)?;
    let mut prod = be.add_const(&eps, 1.0)?;
    for _ in 1..steps {
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
    let a = be.add_plain(&terms, plains.exp_const)?;
    let mut p = normalise(be, &a, plains.mask, sum_steps, approx.first_steps)?;
    for _ in 0..approx.rounds {
        let sq = be.mul(&p, &p)?;
        p = normalise(be, &sq, plains.mask, sum_steps, approx.round_steps)?;
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
    fn reference_tracks_exact_softmax_within_bound() {
        let a = SoftmaxApprox::default();
        for z in [
            alloc::vec![0.0, 0.0, 0.0],
            alloc::vec![15.0, -15.0, 3.0, 0.5, -2.0, 7.0, 14.0, 0.0, 1.0, -8.0, 2.0],
            alloc::vec![-3.0, 1.0, 2.0, 0.1, -0.4, 0.0, 5.0, -1.0],
        ] {
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
