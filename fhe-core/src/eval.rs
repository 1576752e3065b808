//! The evaluator: arithmetic on ciphertexts.
//!
//! Forms: `op_into(.., &mut out, &mut scratch)` (no allocation once `out` and the
//! [`EvalScratch`] exist), `op_assign` and `op_new`. Levels are aligned automatically (the
//! higher operand is read at the lower level); scales must agree to a relative 2^-30
//! ([`Error::ScaleMismatch`] otherwise) and slot counts exactly.

use alloc::sync::Arc;
use alloc::vec::Vec;

use crate::Error;
use crate::ciphertext::Ciphertext;
use crate::encoding::{Complex, Plaintext};
use crate::keys::{EvalKeys, KeySwitchKey, galois_element_conjugate, galois_element_for_rotation};
use crate::keyswitch::{KsScratch, decompose, inner_product, mod_down};
use crate::params::Params;
use crate::ring::{Ntt, Poly};

/// Relative tolerance on scale equality for additions.
pub const SCALE_TOLERANCE: f64 = 9.313_225_746_154_785e-10; // 2^-30

/// Scratch for the evaluator (key switching and rescaling buffers).
#[derive(Debug)]
pub struct EvalScratch {
    ks: KsScratch,
    rescale: Vec<u64>,
}

impl EvalScratch {
    /// Buffers for `params`.
    pub fn new(params: &Params) -> Self {
        let ctx = params.ctx();
        Self {
            ks: KsScratch::new(params),
            rescale: alloc::vec![0; ctx.rescale_scratch_len()],
        }
    }
}

/// Evaluates operations on ciphertexts of one parameter set with optional evaluation keys.
#[derive(Clone, Debug)]
pub struct Evaluator {
    params: Params,
    keys: Option<Arc<EvalKeys>>,
}

fn check_scales(a: f64, b: f64) -> Result<(), Error> {
    if (a / b - 1.0).abs() <= SCALE_TOLERANCE {
        Ok(())
    } else {
        Err(Error::ScaleMismatch { a, b })
    }
}

fn check_slots(a: usize, b: usize) -> Result<(), Error> {
    if a == b {
        Ok(())
    } else {
        Err(Error::SlotsMismatch { a, b })
    }
}

impl Evaluator {
    /// An evaluator without keys (additions, plaintext operations, rescaling).
    pub fn new(params: &Params) -> Self {
        Self {
            params: params.clone(),
            keys: None,
        }
    }

    /// An evaluator with evaluation keys (multiplication with relinearisation, rotations).
    pub fn with_keys(params: &Params, keys: Arc<EvalKeys>) -> Self {
        Self {
            params: params.clone(),
            keys: Some(keys),
        }
    }

    /// The parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The evaluation keys, if any.
    pub fn keys(&self) -> Result<&EvalKeys, Error> {
        self.keys
            .as_deref()
            .ok_or(Error::MissingKey { galois_element: 0 })
    }

    /// A scratch for this evaluator's parameters.
    pub fn scratch(&self) -> EvalScratch {
        EvalScratch::new(&self.params)
    }

    // ----- additions -----

    /// `out = a + b` at the lower of the two levels.
    pub fn add_into(
        &self,
        a: &Ciphertext,
        b: &Ciphertext,
        out: &mut Ciphertext,
    ) -> Result<(), Error> {
        self.add_sub_into(a, b, out, false)
    }

    /// `out = a − b` at the lower of the two levels.
    pub fn sub_into(
        &self,
        a: &Ciphertext,
        b: &Ciphertext,
        out: &mut Ciphertext,
    ) -> Result<(), Error> {
        self.add_sub_into(a, b, out, true)
    }

    fn add_sub_into(
        &self,
        a: &Ciphertext,
        b: &Ciphertext,
        out: &mut Ciphertext,
        sub: bool,
    ) -> Result<(), Error> {
        check_scales(a.scale, b.scale)?;
        check_slots(a.slots, b.slots)?;
        let ctx = self.params.ctx();
        let level = a.level().min(b.level());
        let deg = a.c.len().max(b.c.len());
        out.c.resize_with(deg, Poly::empty);
        for (i, o) in out.c.iter_mut().enumerate() {
            match (a.c.get(i), b.c.get(i)) {
                // One pass at the lower level (the higher operand is read at that level).
                (Some(x), Some(y)) if x.level() <= y.level() => {
                    if sub {
                        x.sub_into(ctx, y, o)?;
                    } else {
                        x.add_into(ctx, y, o)?;
                    }
                }
                (Some(x), Some(y)) => {
                    if sub {
                        y.sub_from_into(ctx, x, o)?;
                    } else {
                        y.add_into(ctx, x, o)?;
                    }
                }
                (Some(x), None) => {
                    o.clone_from(x);
                    o.drop_to_level(level)?;
                }
                (None, Some(y)) => {
                    o.clone_from(y);
                    o.drop_to_level(level)?;
                    if sub {
                        o.neg_assign(ctx);
                    }
                }
                (None, None) => {}
            }
        }
        out.scale = a.scale;
        out.slots = a.slots;
        out.seed = None;
        Ok(())
    }

    /// `a += b` (in place; `a` is first dropped to `b`'s level if it is higher).
    pub fn add_assign(&self, a: &mut Ciphertext, b: &Ciphertext) -> Result<(), Error> {
        check_scales(a.scale, b.scale)?;
        check_slots(a.slots, b.slots)?;
        let ctx = self.params.ctx();
        if a.level() > b.level() {
            a.drop_to_level(b.level())?;
        }
        let level = a.level();
        if b.c.len() > a.c.len() {
            a.c.resize_with(b.c.len(), || Poly::zero(ctx, level, false));
        }
        for (x, y) in a.c.iter_mut().zip(&b.c) {
            x.add_assign(ctx, y)?;
        }
        a.seed = None;
        Ok(())
    }

    /// `a + b`.
    pub fn add_new(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext, Error> {
        let mut out = Ciphertext::empty();
        self.add_into(a, b, &mut out)?;
        Ok(out)
    }

    /// `a − b`.
    pub fn sub_new(&self, a: &Ciphertext, b: &Ciphertext) -> Result<Ciphertext, Error> {
        let mut out = Ciphertext::empty();
        self.sub_into(a, b, &mut out)?;
        Ok(out)
    }

    /// `a = −a`.
    pub fn neg_assign(&self, a: &mut Ciphertext) {
        for p in &mut a.c {
            p.neg_assign(self.params.ctx());
        }
        a.seed = None;
    }

    /// `ct += pt` (same scale; the plaintext is read at the ciphertext's level).
    pub fn add_plain_assign(&self, ct: &mut Ciphertext, pt: &Plaintext) -> Result<(), Error> {
        check_scales(ct.scale, pt.scale)?;
        check_slots(ct.slots, pt.slots)?;
        let c0 = ct.c.first_mut().ok_or(Error::WrongDegree {
            expected: 1,
            found: 0,
        })?;
        c0.add_assign(self.params.ctx(), &pt.poly)?;
        ct.seed = None;
        Ok(())
    }

    /// `ct −= pt`.
    pub fn sub_plain_assign(&self, ct: &mut Ciphertext, pt: &Plaintext) -> Result<(), Error> {
        check_scales(ct.scale, pt.scale)?;
        check_slots(ct.slots, pt.slots)?;
        let c0 = ct.c.first_mut().ok_or(Error::WrongDegree {
            expected: 1,
            found: 0,
        })?;
        c0.sub_assign(self.params.ctx(), &pt.poly)?;
        ct.seed = None;
        Ok(())
    }

    /// `out = ct · pt` (no rescale; the scale becomes the product of the scales), at the lower
    /// of the two levels, in one pass.
    pub fn mul_plain_into(
        &self,
        ct: &Ciphertext,
        pt: &Plaintext,
        out: &mut Ciphertext,
    ) -> Result<(), Error> {
        check_slots(ct.slots, pt.slots)?;
        let ctx = self.params.ctx();
        out.c.resize_with(ct.c.len(), Poly::empty);
        for (o, p) in out.c.iter_mut().zip(&ct.c) {
            if pt.level() < p.level() {
                pt.poly.mul_into(ctx, p, o)?;
            } else {
                p.mul_into(ctx, &pt.poly, o)?;
            }
        }
        out.scale = ct.scale * pt.scale;
        out.slots = ct.slots;
        out.seed = None;
        Ok(())
    }

    /// `ct · pt`.
    pub fn mul_plain_new(&self, ct: &Ciphertext, pt: &Plaintext) -> Result<Ciphertext, Error> {
        let mut out = Ciphertext::empty();
        self.mul_plain_into(ct, pt, &mut out)?;
        Ok(out)
    }

    /// `ct *= pt` (no rescale; the scale becomes the product of the scales).
    pub fn mul_plain_assign(&self, ct: &mut Ciphertext, pt: &Plaintext) -> Result<(), Error> {
        check_slots(ct.slots, pt.slots)?;
        if pt.level() < ct.level() {
            ct.drop_to_level(pt.level())?;
        }
        for p in &mut ct.c {
            p.mul_assign(self.params.ctx(), &pt.poly)?;
        }
        ct.scale *= pt.scale;
        ct.seed = None;
        Ok(())
    }

    /// The NTT-domain values of the constant `re + i·im` (times `factor`) per limb: the
    /// monomial `X^(N/2)` evaluates to `±ψ^(N/2)` at every NTT point, so no transform is needed.
    /// Writes `(value at points with e ≡ 1 mod 4, value at points with e ≡ 3 mod 4)` per limb.
    fn const_values(
        &self,
        c: Complex,
        factor: f64,
        level: usize,
    ) -> Result<Vec<(u64, u64)>, Error> {
        let ctx = self.params.ctx();
        let re = libm::round(c.re * factor);
        let im = libm::round(c.im * factor);
        let limit = 4.611_686_018_427_388e18; // 2^62
        if !(re.is_finite() && im.is_finite() && re.abs() < limit && im.abs() < limit) {
            return Err(Error::EncodingOverflow {
                value: c.re.abs().max(c.im.abs()),
                log_scale: libm::log2(factor),
            });
        }
        Ok(ctx
            .ntt_tables()
            .iter()
            .take(level + 1)
            .map(|t| {
                let m = t.modulus();
                let i_root = m.pow(t.psi(), (t.n() / 2) as u64);
                let (r, i) = (m.reduce_i64(re as i64), m.reduce_i64(im as i64));
                let ii = m.mul(i, i_root);
                (m.add(r, ii), m.sub(r, ii))
            })
            .collect())
    }

    /// `p ← p·c` (`mul`) or `p + c` for a constant with NTT-domain values `vals` (from
    /// [`Self::const_values`]). Index `i` of a limb holds the evaluation at `ζ^e` with
    /// `e = 2·bitrev(i) + 1`, and `e ≡ 1 (mod 4)` exactly when `bitrev(i)` is even, i.e. when
    /// `i`'s top bit is clear: the first half of every limb takes the first value, the second
    /// half the second. Limbs in parallel; the products on the 8-lane kernel where it applies.
    fn apply_const(&self, p: &mut Poly<Ntt>, vals: &[(u64, u64)], mul: bool) {
        let ctx = self.params.ctx();
        let n = ctx.n();
        let tables = ctx.ntt_tables();
        crate::par::chunks_mut(p.data_mut(), n, |j, limb| {
            let (Some(t), Some(&(v1, v3))) = (tables.get(j), vals.get(j)) else {
                return;
            };
            let m = t.modulus();
            let (lo, hi) = limb.split_at_mut(n / 2);
            for (part, v) in [(lo, v1), (hi, v3)] {
                if mul {
                    let op = crate::simd::Op::AccMulConst(v, m.shoup(v));
                    crate::simd::apply(op, m, part, &[], &[], &[]);
                } else {
                    crate::simd::vectorized(
                        #[inline(always)]
                        || part.iter_mut().for_each(|x| *x = m.add(*x, v)),
                    );
                }
            }
        });
    }

    /// `ct += c` for a complex constant (added at the ciphertext's scale).
    pub fn add_const_assign(&self, ct: &mut Ciphertext, c: Complex) -> Result<(), Error> {
        let vals = self.const_values(c, ct.scale, ct.level())?;
        let c0 = ct.c.first_mut().ok_or(Error::WrongDegree {
            expected: 1,
            found: 0,
        })?;
        self.apply_const(c0, &vals, false);
        ct.seed = None;
        Ok(())
    }

    /// `ct *= c` for a complex constant, encoded at scale `q_l` (the prime the next rescale
    /// removes), so that after [`Evaluator::rescale_assign`] the scale is unchanged.
    pub fn mul_const_assign(&self, ct: &mut Ciphertext, c: Complex) -> Result<(), Error> {
        let level = ct.level();
        let q_l = self.params.q().get(level).copied().unwrap_or(1) as f64;
        let vals = self.const_values(c, q_l, level)?;
        for p in &mut ct.c {
            self.apply_const(p, &vals, true);
        }
        ct.scale *= q_l;
        ct.seed = None;
        Ok(())
    }

    /// `ct *= c` for a complex constant encoded at `factor` (the scale becomes
    /// `scale·factor`); with `factor = S'·q_l / S` the next rescale lands exactly on the scale
    /// `S'`, which is how callers keep canonical per-level scales.
    pub fn mul_const_scaled_assign(
        &self,
        ct: &mut Ciphertext,
        c: Complex,
        factor: f64,
    ) -> Result<(), Error> {
        let vals = self.const_values(c, factor, ct.level())?;
        for p in &mut ct.c {
            self.apply_const(p, &vals, true);
        }
        ct.scale *= factor;
        ct.seed = None;
        Ok(())
    }

    /// `ct *= k` for a small integer (no scale change, no level used).
    pub fn mul_int_assign(&self, ct: &mut Ciphertext, k: i64) -> Result<(), Error> {
        let ctx = self.params.ctx();
        let s = ctx.scalar_from_i64(k, ct.level(), false);
        for p in &mut ct.c {
            p.mul_scalar_assign(ctx, &s)?;
        }
        ct.seed = None;
        Ok(())
    }

    // ----- multiplication -----

    /// Tensor product: `out = a ⊗ b` (degree 2, scale `Δ_a·Δ_b`, at the lower level).
    pub fn mul_into(
        &self,
        a: &Ciphertext,
        b: &Ciphertext,
        out: &mut Ciphertext,
    ) -> Result<(), Error> {
        if a.degree() != 1 || b.degree() != 1 {
            return Err(Error::WrongDegree {
                expected: 1,
                found: a.degree().max(b.degree()),
            });
        }
        check_slots(a.slots, b.slots)?;
        let ctx = self.params.ctx();
        let (lo, hi) = if a.level() <= b.level() {
            (a, b)
        } else {
            (b, a)
        };
        let (Some(x0), Some(x1), Some(y0), Some(y1)) =
            (lo.c.first(), lo.c.get(1), hi.c.first(), hi.c.get(1))
        else {
            return Err(Error::WrongDegree {
                expected: 1,
                found: 0,
            });
        };
        out.c.resize_with(3, Poly::empty);
        if let [d0, d1, d2] = out.c.as_mut_slice() {
            x0.mul_into(ctx, y0, d0)?;
            x1.mul_into(ctx, y1, d2)?;
            x0.mul_into(ctx, y1, d1)?;
            d1.mul_add_assign(ctx, x1, y0)?;
        }
        out.scale = a.scale * b.scale;
        out.slots = a.slots;
        out.seed = None;
        Ok(())
    }

    /// Relinearises a degree-2 ciphertext in place with the relinearisation key.
    pub fn relinearize_assign(
        &self,
        ct: &mut Ciphertext,
        scratch: &mut EvalScratch,
    ) -> Result<(), Error> {
        if ct.degree() != 2 {
            return Err(Error::WrongDegree {
                expected: 2,
                found: ct.degree(),
            });
        }
        let key = &self.keys()?.relin_key()?.0;
        let c2 = ct.c.pop().ok_or(Error::WrongDegree {
            expected: 2,
            found: 0,
        })?;
        self.switch_and_add(ct, &c2, key, None, scratch)?;
        Ok(())
    }

    /// `out = relin(ct)` for a degree-2 `ct`, written in one pass (`ct` is left unchanged).
    pub fn relinearize_into(
        &self,
        ct: &Ciphertext,
        out: &mut Ciphertext,
        scratch: &mut EvalScratch,
    ) -> Result<(), Error> {
        let (Some(c0), Some(c1), Some(c2), 2) =
            (ct.c.first(), ct.c.get(1), ct.c.get(2), ct.degree())
        else {
            return Err(Error::WrongDegree {
                expected: 2,
                found: ct.degree(),
            });
        };
        let key = &self.keys()?.relin_key()?.0;
        let ctx = self.params.ctx();
        decompose(&self.params, c2, &mut scratch.ks)?;
        inner_product(&self.params, key, None, &mut scratch.ks)?;
        mod_down(&self.params, &mut scratch.ks)?;
        out.c.resize_with(2, Poly::empty);
        if let [o0, o1] = out.c.as_mut_slice() {
            c0.add_into(ctx, &scratch.ks.u0, o0)?;
            c1.add_into(ctx, &scratch.ks.u1, o1)?;
        }
        out.scale = ct.scale;
        out.slots = ct.slots;
        out.seed = None;
        Ok(())
    }

    /// `relin(ct)` for a degree-2 `ct`.
    pub fn relinearize_new(
        &self,
        ct: &Ciphertext,
        scratch: &mut EvalScratch,
    ) -> Result<Ciphertext, Error> {
        let mut out = Ciphertext::empty();
        self.relinearize_into(ct, &mut out, scratch)?;
        Ok(out)
    }

    /// Key-switches `c` with `key` (after the automorphism `perm`, if any) and adds the result to
    /// `(c_0, c_1)` of `ct`.
    fn switch_and_add(
        &self,
        ct: &mut Ciphertext,
        c: &Poly<Ntt>,
        key: &KeySwitchKey,
        perm: Option<&[u32]>,
        scratch: &mut EvalScratch,
    ) -> Result<(), Error> {
        let ctx = self.params.ctx();
        decompose(&self.params, c, &mut scratch.ks)?;
        inner_product(&self.params, key, perm, &mut scratch.ks)?;
        mod_down(&self.params, &mut scratch.ks)?;
        if let [c0, c1] = ct.c.as_mut_slice() {
            c0.add_assign(ctx, &scratch.ks.u0)?;
            c1.add_assign(ctx, &scratch.ks.u1)?;
        }
        ct.seed = None;
        Ok(())
    }

    /// `out = relin(a ⊗ b)`.
    pub fn mul_relin_into(
        &self,
        a: &Ciphertext,
        b: &Ciphertext,
        out: &mut Ciphertext,
        scratch: &mut EvalScratch,
    ) -> Result<(), Error> {
        self.mul_into(a, b, out)?;
        self.relinearize_assign(out, scratch)
    }

    /// `relin(a ⊗ b)`.
    pub fn mul_relin_new(
        &self,
        a: &Ciphertext,
        b: &Ciphertext,
        scratch: &mut EvalScratch,
    ) -> Result<Ciphertext, Error> {
        let mut out = Ciphertext::empty();
        self.mul_relin_into(a, b, &mut out, scratch)?;
        Ok(out)
    }

    /// Divides by the last prime of the ciphertext's level (exact rounding): one level down,
    /// scale divided by that prime.
    pub fn rescale_assign(
        &self,
        ct: &mut Ciphertext,
        scratch: &mut EvalScratch,
    ) -> Result<(), Error> {
        let level = ct.level();
        let q = self
            .params
            .q()
            .get(level)
            .copied()
            .ok_or(Error::LevelTooLow {
                have: level,
                need: 1,
            })?;
        for p in &mut ct.c {
            p.rescale_assign(self.params.ctx(), &mut scratch.rescale)?;
        }
        ct.scale /= q as f64;
        ct.seed = None;
        Ok(())
    }

    /// `out = ct` divided by the last prime of its level (exact rounding), written in one pass
    /// (`ct` is left unchanged).
    pub fn rescale_into(
        &self,
        ct: &Ciphertext,
        out: &mut Ciphertext,
        scratch: &mut EvalScratch,
    ) -> Result<(), Error> {
        let level = ct.level();
        let q = self
            .params
            .q()
            .get(level)
            .copied()
            .ok_or(Error::LevelTooLow {
                have: level,
                need: 1,
            })?;
        out.c.resize_with(ct.c.len(), Poly::empty);
        for (o, p) in out.c.iter_mut().zip(&ct.c) {
            p.rescale_into(self.params.ctx(), o, &mut scratch.rescale)?;
        }
        out.scale = ct.scale / q as f64;
        out.slots = ct.slots;
        out.seed = None;
        Ok(())
    }

    /// `ct` divided by the last prime of its level.
    pub fn rescale_new(
        &self,
        ct: &Ciphertext,
        scratch: &mut EvalScratch,
    ) -> Result<Ciphertext, Error> {
        let mut out = Ciphertext::empty();
        self.rescale_into(ct, &mut out, scratch)?;
        Ok(out)
    }

    // ----- automorphisms -----

    /// `out = σ_k(ct)` for a Galois element with a key (rotation or conjugation).
    pub fn apply_galois_into(
        &self,
        ct: &Ciphertext,
        k: usize,
        out: &mut Ciphertext,
        scratch: &mut EvalScratch,
    ) -> Result<(), Error> {
        if ct.degree() != 1 {
            return Err(Error::WrongDegree {
                expected: 1,
                found: ct.degree(),
            });
        }
        if k == 1 {
            out.clone_from(ct);
            return Ok(());
        }
        let gk = self.keys()?.galois_key(k)?;
        let (Some(c0), Some(c1)) = (ct.c.first(), ct.c.get(1)) else {
            return Err(Error::WrongDegree {
                expected: 1,
                found: 0,
            });
        };
        decompose(&self.params, c1, &mut scratch.ks)?;
        self.finish_galois(c0, gk.element, &gk.perm, &gk.key, ct, out, scratch)
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "internal step shared by the hoisted and single forms"
    )]
    fn finish_galois(
        &self,
        c0: &Poly<Ntt>,
        _k: usize,
        perm: &[u32],
        key: &KeySwitchKey,
        ct: &Ciphertext,
        out: &mut Ciphertext,
        scratch: &mut EvalScratch,
    ) -> Result<(), Error> {
        let ctx = self.params.ctx();
        inner_product(&self.params, key, Some(perm), &mut scratch.ks)?;
        mod_down(&self.params, &mut scratch.ks)?;
        out.c.resize_with(2, Poly::empty);
        if let [o0, o1] = out.c.as_mut_slice() {
            c0.automorphism_add_into(ctx, perm, &scratch.ks.u0, o0)?;
            o1.clone_from(&scratch.ks.u1);
        }
        out.scale = ct.scale;
        out.slots = ct.slots;
        out.seed = None;
        Ok(())
    }

    /// `out = ct` rotated left by `step` slots (negative: right).
    pub fn rotate_into(
        &self,
        ct: &Ciphertext,
        step: i64,
        out: &mut Ciphertext,
        scratch: &mut EvalScratch,
    ) -> Result<(), Error> {
        self.apply_galois_into(
            ct,
            galois_element_for_rotation(&self.params, step),
            out,
            scratch,
        )
    }

    /// `ct` rotated left by `step` slots.
    pub fn rotate_new(
        &self,
        ct: &Ciphertext,
        step: i64,
        scratch: &mut EvalScratch,
    ) -> Result<Ciphertext, Error> {
        let mut out = Ciphertext::empty();
        self.rotate_into(ct, step, &mut out, scratch)?;
        Ok(out)
    }

    /// The complex conjugate of every slot.
    pub fn conjugate_new(
        &self,
        ct: &Ciphertext,
        scratch: &mut EvalScratch,
    ) -> Result<Ciphertext, Error> {
        let mut out = Ciphertext::empty();
        self.apply_galois_into(
            ct,
            galois_element_conjugate(&self.params),
            &mut out,
            scratch,
        )?;
        Ok(out)
    }

    /// Hoisted rotations: one decomposition of `c_1`, then one inner product and ModDown per
    /// step. `outs` receives one ciphertext per step (resized as needed).
    pub fn rotate_hoisted_into(
        &self,
        ct: &Ciphertext,
        steps: &[i64],
        outs: &mut Vec<Ciphertext>,
        scratch: &mut EvalScratch,
    ) -> Result<(), Error> {
        if ct.degree() != 1 {
            return Err(Error::WrongDegree {
                expected: 1,
                found: ct.degree(),
            });
        }
        let (Some(c0), Some(c1)) = (ct.c.first(), ct.c.get(1)) else {
            return Err(Error::WrongDegree {
                expected: 1,
                found: 0,
            });
        };
        outs.resize_with(steps.len(), || ct.clone());
        let keys = self.keys()?;
        let mut decomposed = false;
        for (&step, out) in steps.iter().zip(outs.iter_mut()) {
            let k = galois_element_for_rotation(&self.params, step);
            if k == 1 {
                out.clone_from(ct);
                continue;
            }
            let gk = keys.galois_key(k)?;
            if !decomposed {
                decompose(&self.params, c1, &mut scratch.ks)?;
                decomposed = true;
            }
            self.finish_galois(c0, k, &gk.perm, &gk.key, ct, out, scratch)?;
        }
        Ok(())
    }

    /// Hoisted rotations, allocating the outputs.
    pub fn rotate_hoisted_new(
        &self,
        ct: &Ciphertext,
        steps: &[i64],
        scratch: &mut EvalScratch,
    ) -> Result<Vec<Ciphertext>, Error> {
        let mut outs = Vec::new();
        self.rotate_hoisted_into(ct, steps, &mut outs, scratch)?;
        Ok(outs)
    }

    /// `ct ← Σ_{i<n} rot(ct, i·batch)` by `log2 n` rotate-and-add steps (`n` a power of two);
    /// with a negative `batch` this replicates instead. Needs the keys for `±batch·2^j`.
    pub fn inner_sum_assign(
        &self,
        ct: &mut Ciphertext,
        batch: i64,
        n: usize,
        scratch: &mut EvalScratch,
    ) -> Result<(), Error> {
        if n == 0 || !n.is_power_of_two() {
            return Err(Error::InvalidSlots {
                slots: n,
                max: self.params.max_slots(),
            });
        }
        let mut rotated = ct.clone();
        let mut step = batch;
        let mut span = 1;
        while span < n {
            self.rotate_into(ct, step, &mut rotated, scratch)?;
            self.add_assign(ct, &rotated)?;
            step *= 2;
            span *= 2;
        }
        Ok(())
    }

    /// The rotation steps [`Evaluator::inner_sum_assign`] needs for `batch` and `n`.
    pub fn inner_sum_steps(batch: i64, n: usize) -> Vec<i64> {
        let mut steps = Vec::new();
        let mut step = batch;
        let mut span = 1;
        while span < n {
            steps.push(step);
            step *= 2;
            span *= 2;
        }
        steps
    }
}
