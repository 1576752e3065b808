//! Polynomial evaluation on ciphertexts in the Chebyshev basis.
//!
//! A [`Chebyshev`] series `p(x) = Σ_{i≤d} c_i T_i(x)` on an interval `[a, b]` is interpolated in
//! f64 at the Chebyshev nodes and evaluated homomorphically by the baby-step giant-step
//! recursion of the Chebyshev basis:
//!
//! - baby steps `T_1 … T_m` (`m` a power of two near `√d`) by `T_{2k} = 2T_k² − 1` and
//!   `T_{2k+1} = 2T_{k+1}T_k − T_1`; giant steps `T_{2m}, T_{4m}, …` by squaring;
//! - `p = q·T_D + r` with `D` the largest power of two below the length, using
//!   `T_{D+j} = 2T_D T_j − T_{D−j}`; `q` and `r` recursively, leaves (length ≤ `m`) as linear
//!   combinations of baby steps.
//!
//! **Scales are exact.** Every addition lines its operands up on one scale by multiplying the
//! other operand by a constant encoded at the ratio of the scales (no level is spent on it), and
//! every leaf lands on a requested scale, so [`Evaluator::eval_chebyshev_new`] returns its result
//! at exactly the `target_scale` asked for whatever the primes of the chain are. The depth is
//! `⌈log2(d + 1)⌉ + 1` levels (one more for an interval other than `[−1, 1]`), see
//! [`Chebyshev::depth`].

use alloc::vec::Vec;

use crate::Error;
use crate::ciphertext::Ciphertext;
use crate::encoding::Complex;
use crate::eval::{EvalScratch, Evaluator};

/// A polynomial in the Chebyshev basis on `[a, b]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Chebyshev {
    coeffs: Vec<f64>,
    a: f64,
    b: f64,
}

impl Chebyshev {
    /// The series with these coefficients (`coeffs[i]` multiplies `T_i`) on `[a, b]`.
    pub fn new(coeffs: Vec<f64>, a: f64, b: f64) -> Result<Self, Error> {
        if coeffs.is_empty() || coeffs.iter().any(|c| !c.is_finite()) {
            return Err(Error::LengthMismatch {
                what: "Chebyshev coefficients (finite, at least one)",
                expected: 1,
                found: coeffs.len(),
            });
        }
        if !(a.is_finite() && b.is_finite() && a < b) {
            return Err(Error::EncodingOverflow {
                value: b - a,
                log_scale: 0.0,
            });
        }
        Ok(Self { coeffs, a, b })
    }

    /// Interpolates `f` at the `degree + 1` Chebyshev nodes of `[a, b]`.
    pub fn interpolate(
        f: impl Fn(f64) -> f64,
        degree: usize,
        a: f64,
        b: f64,
    ) -> Result<Self, Error> {
        let n = degree + 1;
        let nf = n as f64;
        let pi = core::f64::consts::PI;
        let values: Vec<f64> = (0..n)
            .map(|k| {
                let t = libm::cos(pi * (k as f64 + 0.5) / nf);
                f(0.5 * (b - a) * t + 0.5 * (b + a))
            })
            .collect();
        let coeffs = (0..n)
            .map(|j| {
                let s: f64 = values
                    .iter()
                    .enumerate()
                    .map(|(k, v)| v * libm::cos(pi * j as f64 * (k as f64 + 0.5) / nf))
                    .sum();
                if j == 0 { s / nf } else { 2.0 * s / nf }
            })
            .collect();
        Self::new(coeffs, a, b)
    }

    /// The coefficients.
    pub fn coeffs(&self) -> &[f64] {
        &self.coeffs
    }

    /// The degree.
    pub fn degree(&self) -> usize {
        self.coeffs.len() - 1
    }

    /// The interval `[a, b]`.
    pub fn interval(&self) -> (f64, f64) {
        (self.a, self.b)
    }

    fn is_unit(&self) -> bool {
        self.a == -1.0 && self.b == 1.0
    }

    /// Evaluates in f64 (Clenshaw).
    pub fn eval_f64(&self, x: f64) -> f64 {
        let u = (2.0 * x - self.a - self.b) / (self.b - self.a);
        let (mut b1, mut b2) = (0.0, 0.0);
        for &c in self.coeffs.iter().skip(1).rev() {
            let b0 = 2.0 * u * b1 - b2 + c;
            b2 = b1;
            b1 = b0;
        }
        u * b1 - b2 + self.coeffs.first().copied().unwrap_or(0.0)
    }

    /// Levels that [`Evaluator::eval_chebyshev_new`] consumes.
    pub fn depth(&self) -> usize {
        let plan = Plan::new(self.coeffs.len(), usize::MAX / 2);
        let top = usize::MAX / 2;
        let out = plan.level_of(&self.coeffs).unwrap_or(top);
        top - out + usize::from(!self.is_unit())
    }
}

/// Baby-step size and the levels of `T_i` for an input at `x_level` (`T_i` sits at
/// `x_level − ⌈log2 i⌉`).
struct Plan {
    m: usize,
    x_level: usize,
}

fn ceil_log2(i: usize) -> usize {
    i.next_power_of_two().trailing_zeros() as usize
}

impl Plan {
    fn new(len: usize, x_level: usize) -> Self {
        // m = 2^⌈(⌈log2 len⌉)/2⌉, at least 2.
        let lg = ceil_log2(len.max(2));
        let m = 1usize << lg.div_ceil(2).max(1);
        Self { m, x_level }
    }

    fn t_level(&self, i: usize) -> Option<usize> {
        self.x_level.checked_sub(ceil_log2(i))
    }

    /// `(q, r)` with `p = q·T_D + r`.
    fn split(c: &[f64], d: usize) -> (Vec<f64>, Vec<f64>) {
        let len = c.len();
        let mut q = Vec::with_capacity(len - d);
        let mut r: Vec<f64> = c.iter().take(d).copied().collect();
        q.push(c.get(d).copied().unwrap_or(0.0));
        for j in 1..len - d {
            let cj = c.get(d + j).copied().unwrap_or(0.0);
            q.push(2.0 * cj);
            if let Some(x) = r.get_mut(d - j) {
                *x -= cj;
            }
        }
        (q, r)
    }

    fn giant(&self, len: usize) -> usize {
        // Largest power of two strictly below len (≥ m when len > m).
        let mut d = self.m;
        while 2 * d < len {
            d *= 2;
        }
        d
    }

    /// The level of the result for these coefficients (`None`: a constant, no ciphertext).
    fn level_of(&self, c: &[f64]) -> Option<usize> {
        let len = c.len();
        if len <= 1 {
            return None;
        }
        if len <= self.m {
            return self.t_level(len - 1).and_then(|l| l.checked_sub(1));
        }
        let d = self.giant(len);
        let (q, r) = Self::split(c, d);
        let td = self.t_level(d)?;
        let lq = self.level_of(&q).unwrap_or(usize::MAX);
        let lr = self.level_of(&r).unwrap_or(usize::MAX);
        lq.min(td).min(lr).checked_sub(1)
    }
}

impl Evaluator {
    /// Evaluates `poly` on every slot of `ct`; the result is at exactly `target_scale`,
    /// [`Chebyshev::depth`] levels below `ct`.
    ///
    /// # Errors
    /// [`Error::LevelTooLow`] if `ct` has too few levels; key and scale errors from the
    /// evaluator.
    pub fn eval_chebyshev_new(
        &self,
        ct: &Ciphertext,
        poly: &Chebyshev,
        target_scale: f64,
        scratch: &mut EvalScratch,
    ) -> Result<Ciphertext, Error> {
        let need = poly.depth();
        if ct.level() < need {
            return Err(Error::LevelTooLow {
                have: ct.level(),
                need,
            });
        }
        // Map [a, b] → [−1, 1] (one level) unless already there.
        let x = if poly.is_unit() {
            ct.clone()
        } else {
            let (a, b) = poly.interval();
            let mut x = ct.clone();
            self.mul_const_assign(&mut x, Complex::new(2.0 / (b - a), 0.0))?;
            self.rescale_assign(&mut x, scratch)?;
            self.add_const_assign(&mut x, Complex::new(-(a + b) / (b - a), 0.0))?;
            x
        };
        let plan = Plan::new(poly.coeffs.len(), x.level());
        let powers = self.chebyshev_powers(&x, &plan, poly.coeffs.len(), scratch)?;
        match self.cheb_rec(&poly.coeffs, target_scale, &plan, &powers, scratch)? {
            Node::Ct(c) => Ok(c),
            Node::Const(v) => {
                // A constant polynomial: v·(x·0) + v keeps the ciphertext shape.
                let mut out = x;
                self.mul_const_scaled_assign(&mut out, Complex::ZERO, 1.0)?;
                out.scale = target_scale;
                self.add_const_assign(&mut out, Complex::new(v, 0.0))?;
                Ok(out)
            }
        }
    }

    /// `2·a·b − c` (`c` optional) then a rescale; `minus_one` subtracts 1 after the rescale.
    fn two_ab_minus(
        &self,
        a: &Ciphertext,
        b: &Ciphertext,
        c: Option<&Ciphertext>,
        minus_one: bool,
        scratch: &mut EvalScratch,
    ) -> Result<Ciphertext, Error> {
        let mut prod = self.mul_relin_new(a, b, scratch)?;
        self.mul_int_assign(&mut prod, 2)?;
        if let Some(c) = c {
            let mut t = c.clone();
            if t.level() > prod.level() {
                t.drop_to_level(prod.level())?;
            }
            let f = prod.scale / t.scale;
            self.mul_const_scaled_assign(&mut t, Complex::ONE, f)?;
            t.scale = prod.scale;
            self.sub_assign_aligned(&mut prod, &t)?;
        }
        self.rescale_assign(&mut prod, scratch)?;
        if minus_one {
            self.add_const_assign(&mut prod, Complex::new(-1.0, 0.0))?;
        }
        Ok(prod)
    }

    fn sub_assign_aligned(&self, a: &mut Ciphertext, b: &Ciphertext) -> Result<(), Error> {
        let mut nb = b.clone();
        self.neg_assign(&mut nb);
        self.add_assign(a, &nb)
    }

    /// `T_0 … T_m` (index 0 unused) and the giant steps `T_{2m}, T_{4m}, …` needed for `len`.
    fn chebyshev_powers(
        &self,
        x: &Ciphertext,
        plan: &Plan,
        len: usize,
        scratch: &mut EvalScratch,
    ) -> Result<Vec<Option<Ciphertext>>, Error> {
        let mut top = plan.m;
        while top < len {
            top *= 2;
        }
        let mut t: Vec<Option<Ciphertext>> = alloc::vec![None; top + 1];
        if let Some(s) = t.get_mut(1) {
            *s = Some(x.clone());
        }
        let get = |t: &[Option<Ciphertext>], i: usize| -> Result<Ciphertext, Error> {
            t.get(i)
                .and_then(Option::as_ref)
                .cloned()
                .ok_or(Error::LevelTooLow { have: 0, need: i })
        };
        for i in 2..=plan.m.min(top) {
            let v = if i % 2 == 0 {
                let h = get(&t, i / 2)?;
                self.two_ab_minus(&h, &h, None, true, scratch)?
            } else {
                let (a, b) = (get(&t, i / 2 + 1)?, get(&t, i / 2)?);
                self.two_ab_minus(&a, &b, Some(x), false, scratch)?
            };
            if let Some(s) = t.get_mut(i) {
                *s = Some(v);
            }
        }
        let mut d = plan.m;
        while 2 * d < len {
            let h = get(&t, d)?;
            let v = self.two_ab_minus(&h, &h, None, true, scratch)?;
            if let Some(s) = t.get_mut(2 * d) {
                *s = Some(v);
            }
            d *= 2;
        }
        Ok(t)
    }

    /// `Σ c_i·ct_i + constant`, landing at exactly `target` one level below the lowest term.
    fn lincomb(
        &self,
        terms: &[(&Ciphertext, f64)],
        constant: f64,
        target: f64,
        scratch: &mut EvalScratch,
    ) -> Result<Ciphertext, Error> {
        let level = terms
            .iter()
            .map(|(c, _)| c.level())
            .min()
            .ok_or(Error::LevelTooLow { have: 0, need: 1 })?;
        let q_l = *self.params().q().get(level).ok_or(Error::LevelTooLow {
            have: level,
            need: 1,
        })? as f64;
        let pre = target * q_l;
        let mut acc: Option<Ciphertext> = None;
        for &(c, coeff) in terms {
            let mut t = c.clone();
            t.drop_to_level(level)?;
            let f = pre / t.scale;
            self.mul_const_scaled_assign(&mut t, Complex::new(coeff, 0.0), f)?;
            t.scale = pre;
            match acc.as_mut() {
                None => acc = Some(t),
                Some(a) => self.add_assign(a, &t)?,
            }
        }
        let mut out = acc.ok_or(Error::LevelTooLow { have: 0, need: 1 })?;
        self.rescale_assign(&mut out, scratch)?;
        out.scale = target;
        if constant != 0.0 {
            self.add_const_assign(&mut out, Complex::new(constant, 0.0))?;
        }
        Ok(out)
    }

    fn cheb_rec(
        &self,
        c: &[f64],
        target: f64,
        plan: &Plan,
        t: &[Option<Ciphertext>],
        scratch: &mut EvalScratch,
    ) -> Result<Node, Error> {
        let len = c.len();
        let missing = |i: usize| Error::LevelTooLow { have: 0, need: i };
        if len <= 1 {
            return Ok(Node::Const(c.first().copied().unwrap_or(0.0)));
        }
        if len <= plan.m {
            let terms: Vec<(&Ciphertext, f64)> = (1..len)
                .map(|i| {
                    t.get(i)
                        .and_then(Option::as_ref)
                        .map(|ct| (ct, c.get(i).copied().unwrap_or(0.0)))
                        .ok_or(missing(i))
                })
                .collect::<Result<_, _>>()?;
            let c0 = c.first().copied().unwrap_or(0.0);
            return Ok(Node::Ct(self.lincomb(&terms, c0, target, scratch)?));
        }
        let d = plan.giant(len);
        let td = t.get(d).and_then(Option::as_ref).ok_or(missing(d))?;
        let (q, r) = Plan::split(c, d);
        let lr = plan.level_of(&r).unwrap_or(usize::MAX);
        if q.len() == 1 {
            let q0 = q.first().copied().unwrap_or(0.0);
            return match self.cheb_rec(&r, target, plan, t, scratch)? {
                Node::Ct(rc) => Ok(Node::Ct(self.lincomb(
                    &[(td, q0), (&rc, 1.0)],
                    0.0,
                    target,
                    scratch,
                )?)),
                Node::Const(v) => Ok(Node::Ct(self.lincomb(&[(td, q0)], v, target, scratch)?)),
            };
        }
        let lq = plan.level_of(&q).unwrap_or(usize::MAX);
        let level = lq.min(td.level()).min(lr);
        let q_l = *self.params().q().get(level).ok_or(Error::LevelTooLow {
            have: level,
            need: 1,
        })? as f64;
        let pre = target * q_l;
        let Node::Ct(qc) = self.cheb_rec(&q, pre / td.scale, plan, t, scratch)? else {
            return Err(missing(d));
        };
        let mut prod = self.mul_relin_new(&qc, td, scratch)?;
        if prod.level() < level {
            return Err(Error::LevelTooLow {
                have: prod.level(),
                need: level,
            });
        }
        prod.drop_to_level(level)?;
        prod.scale = pre;
        let mut constant = 0.0;
        match self.cheb_rec(&r, target, plan, t, scratch)? {
            Node::Ct(mut rc) => {
                rc.drop_to_level(level)?;
                let f = pre / rc.scale;
                self.mul_const_scaled_assign(&mut rc, Complex::ONE, f)?;
                rc.scale = pre;
                self.add_assign(&mut prod, &rc)?;
            }
            Node::Const(v) => constant = v,
        }
        self.rescale_assign(&mut prod, scratch)?;
        prod.scale = target;
        if constant != 0.0 {
            self.add_const_assign(&mut prod, Complex::new(constant, 0.0))?;
        }
        Ok(Node::Ct(prod))
    }
}

enum Node {
    Const(f64),
    Ct(Ciphertext),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::{Encoder, Precision};
    use crate::encrypt::{decrypt, encrypt_sk};
    use crate::keys::{EvalKeys, SecretKey};
    use crate::params::{Moduli, ParamsLiteral, SecretDist, Security};
    use alloc::sync::Arc;
    use rand_chacha::ChaCha20Rng;
    use rand_core::{RngCore, SeedableRng};

    #[test]
    fn interpolation_matches_the_function() {
        let f = |x: f64| libm::exp(x) * libm::sin(3.0 * x);
        let p = Chebyshev::interpolate(f, 40, -2.0, 1.0).unwrap();
        for i in 0..=100 {
            let x = -2.0 + 3.0 * i as f64 / 100.0;
            assert!((p.eval_f64(x) - f(x)).abs() < 1e-12, "x = {x}");
        }
        assert_eq!(p.degree(), 40);
    }

    #[test]
    fn depth_is_log_degree_plus_one() {
        for (deg, depth) in [
            (1, 1),
            (2, 2),
            (3, 3),
            (7, 4),
            (15, 5),
            (31, 6),
            (40, 7),
            (63, 7),
        ] {
            let p = Chebyshev::new(alloc::vec![0.5; deg + 1], -1.0, 1.0).unwrap();
            assert!(p.depth() <= depth, "degree {deg}: {} > {depth}", p.depth());
            assert!(p.depth() >= ceil_log2(deg + 1), "degree {deg}");
        }
        let p = Chebyshev::new(alloc::vec![0.5; 8], 0.0, 2.0).unwrap();
        assert_eq!(
            p.depth(),
            Chebyshev::new(alloc::vec![0.5; 8], -1.0, 1.0)
                .unwrap()
                .depth()
                + 1
        );
    }

    fn params() -> crate::params::Params {
        ParamsLiteral {
            log_n: 10,
            q: Moduli::Bits(alloc::vec![60, 50, 50, 50, 50, 50, 50, 50, 50, 50]),
            p: Moduli::Bits(alloc::vec![61, 61]),
            log_scale: 50.0,
            dnum: 5,
            secret: SecretDist::Ternary,
            security: Security::InsecureForTestsOnly,
        }
        .validate()
        .unwrap()
    }

    #[test]
    fn encrypted_evaluation_matches_f64_at_the_target_scale() {
        let params = params();
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let sk = SecretKey::generate(&params, &mut rng).unwrap();
        let keys = EvalKeys::generate(&sk, &[], false, &mut rng).unwrap();
        let eval = Evaluator::with_keys(&params, Arc::new(keys));
        let mut scratch = eval.scratch();
        let enc = Encoder::new(&params, 64).unwrap();
        let xs: Vec<f64> = (0..64)
            .map(|_| (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 6.0 - 3.0)
            .collect();
        let ct = encrypt_sk(&params, &sk, &enc.encode(&xs).unwrap(), &mut rng).unwrap();
        let f = |x: f64| libm::cos(2.0 * x) + 0.25 * x;
        for deg in [5usize, 12, 27] {
            let p = Chebyshev::interpolate(f, deg, -3.0, 3.0).unwrap();
            let target = 1.5 * (1u64 << 45) as f64;
            let out = eval
                .eval_chebyshev_new(&ct, &p, target, &mut scratch)
                .unwrap();
            assert_eq!(out.scale, target);
            assert_eq!(out.level(), params.max_level() - p.depth(), "degree {deg}");
            let got = enc.decode(&decrypt(&params, &sk, &out).unwrap()).unwrap();
            let want: Vec<f64> = xs.iter().map(|&x| p.eval_f64(x)).collect();
            let prec = Precision::of_real(&want, &got);
            assert!(prec.min_bits > 25.0, "degree {deg}: {prec:?}");
        }
        let too_deep = Chebyshev::interpolate(f, 600, -3.0, 3.0).unwrap();
        assert!(matches!(
            eval.eval_chebyshev_new(&ct, &too_deep, 1.0, &mut scratch),
            Err(Error::LevelTooLow { .. })
        ));
    }
}
