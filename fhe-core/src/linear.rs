//! Linear transforms on encrypted slot vectors by their diagonals, with the baby-step
//! giant-step (BSGS) evaluation: `y = Σ_k diag_k ⊙ rot(x, k)` computed as
//! `Σ_j rot( Σ_i rot(diag_{j·n1+i}, −j·n1) ⊙ rot(x, i), j·n1 )`.
//!
//! The baby-step rotations `rot(x, i)` share one key-switching decomposition (hoisting); the
//! diagonals are stored pre-rotated by their giant step, encoded at the scale `q_l` of the level
//! they are applied at, so the result (rescaled once) keeps the input's scale. This is what the
//! encrypted matrix multiplication and bootstrapping build on.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;

use crate::Error;
use crate::ciphertext::Ciphertext;
use crate::encoding::{Complex, Encoder, Plaintext};
use crate::eval::{EvalScratch, Evaluator};

/// A linear map prepared for BSGS evaluation at one level.
#[derive(Clone, Debug)]
pub struct LinearTransform {
    slots: usize,
    level: usize,
    n1: usize,
    /// Pre-rotated, encoded diagonals by index `k ∈ [0, slots)`.
    diags: BTreeMap<usize, Plaintext>,
}

impl LinearTransform {
    /// Prepares the map with the given nonzero diagonals (`diagonals[k][j]` is the matrix entry
    /// `M[j][(j + k) mod slots]`), to be applied to ciphertexts at `level`. `n1` is the baby-step
    /// size (a power of two; `None` picks about `√(number of diagonals)`).
    pub fn new(
        encoder: &Encoder,
        diagonals: &BTreeMap<usize, Vec<Complex>>,
        level: usize,
        n1: Option<usize>,
    ) -> Result<Self, Error> {
        let slots = encoder.slots();
        let params = encoder.params();
        let q_l = params.q().get(level).copied().ok_or(Error::LevelTooLow {
            have: params.max_level(),
            need: level,
        })?;
        if level == 0 {
            return Err(Error::LevelTooLow { have: 0, need: 1 });
        }
        let n1 = match n1 {
            Some(v) if v.is_power_of_two() && v <= slots => v,
            Some(v) => {
                return Err(Error::InvalidSlots {
                    slots: v,
                    max: slots,
                });
            }
            None => {
                let span = diagonals.keys().next_back().map_or(1, |&k| k + 1);
                let mut n1 = 1;
                while n1 * n1 < span {
                    n1 *= 2;
                }
                n1.min(slots)
            }
        };
        let mut diags = BTreeMap::new();
        for (&k, d) in diagonals {
            if k >= slots {
                return Err(Error::LengthMismatch {
                    what: "diagonal index",
                    expected: slots,
                    found: k,
                });
            }
            if d.len() != slots {
                return Err(Error::LengthMismatch {
                    what: "diagonal",
                    expected: slots,
                    found: d.len(),
                });
            }
            // rot(diag, −g) with g the giant step of k.
            let g = (k / n1) * n1;
            let rotated: Vec<Complex> = (0..slots)
                .map(|j| {
                    d.get((j + slots - g) % slots)
                        .copied()
                        .unwrap_or(Complex::ZERO)
                })
                .collect();
            diags.insert(k, encoder.encode_complex_at(&rotated, q_l as f64, level)?);
        }
        Ok(Self {
            slots,
            level,
            n1,
            diags,
        })
    }

    /// The rotation steps whose Galois keys evaluation needs (baby steps `i` and giant steps
    /// `j·n1` that occur).
    pub fn rotations(&self) -> Vec<i64> {
        let steps: BTreeSet<i64> = self
            .diags
            .keys()
            .flat_map(|&k| [(k % self.n1) as i64, ((k / self.n1) * self.n1) as i64])
            .filter(|&s| s != 0)
            .collect();
        steps.into_iter().collect()
    }

    /// The slot count the map acts on.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// The level the diagonals are encoded at.
    pub fn level(&self) -> usize {
        self.level
    }

    /// The baby-step size.
    pub fn n1(&self) -> usize {
        self.n1
    }
}

impl Evaluator {
    /// Applies `lt` to `ct` (dropped to `lt`'s level if higher) and rescales once: the result is
    /// one level lower, at the input's scale.
    pub fn linear_transform_new(
        &self,
        ct: &Ciphertext,
        lt: &LinearTransform,
        scratch: &mut EvalScratch,
    ) -> Result<Ciphertext, Error> {
        if ct.slots != lt.slots {
            return Err(Error::SlotsMismatch {
                a: ct.slots,
                b: lt.slots,
            });
        }
        let mut x = ct.clone();
        if x.level() > lt.level {
            x.drop_to_level(lt.level)?;
        } else if x.level() < lt.level {
            return Err(Error::LevelTooLow {
                have: x.level(),
                need: lt.level,
            });
        }
        let babies: Vec<i64> = (0..lt.n1)
            .filter(|i| lt.diags.keys().any(|k| k % lt.n1 == *i))
            .map(|i| i as i64)
            .collect();
        let rotated = self.rotate_hoisted_new(&x, &babies, scratch)?;
        let by_baby: BTreeMap<i64, &Ciphertext> =
            babies.iter().copied().zip(rotated.iter()).collect();
        let giants: BTreeSet<usize> = lt.diags.keys().map(|k| (k / lt.n1) * lt.n1).collect();
        // Each giant step's inner sum is accumulated in place (`acc += x_i ⊙ diag`, one pass
        // per diagonal, no temporary ciphertexts), rotated into `moved` and added to `total`.
        let ctx = self.params().ctx();
        let level = x.level();
        let pt_scale = lt.diags.values().next().map_or(1.0, |p| p.scale);
        let zero = crate::ring::Poly::zero(ctx, level, false);
        let mut inner = Ciphertext::from_parts(alloc::vec![zero.clone(), zero], 1.0, x.slots)?;
        let mut moved = Ciphertext::empty();
        let mut total: Option<Ciphertext> = None;
        for g in giants {
            let mut first = true;
            for (k, pt) in lt.diags.range(g..g + lt.n1) {
                let xi = by_baby
                    .get(&((k - g) as i64))
                    .ok_or(Error::MissingKey { galois_element: 0 })?;
                for (acc, xp) in inner.c.iter_mut().zip(&xi.c) {
                    if first {
                        xp.mul_into(ctx, &pt.poly, acc)?;
                    } else {
                        acc.mul_add_assign(ctx, xp, &pt.poly)?;
                    }
                }
                first = false;
            }
            if first {
                continue;
            }
            inner.scale = x.scale * pt_scale;
            inner.slots = x.slots;
            inner.seed = None;
            let add = if g == 0 {
                &inner
            } else {
                self.rotate_into(&inner, g as i64, &mut moved, scratch)?;
                &moved
            };
            match total.as_mut() {
                None => total = Some(add.clone()),
                Some(t) => self.add_assign(t, add)?,
            }
        }
        let mut out = total.ok_or(Error::LengthMismatch {
            what: "linear transform diagonals",
            expected: 1,
            found: 0,
        })?;
        self.rescale_assign(&mut out, scratch)?;
        Ok(out)
    }
}
