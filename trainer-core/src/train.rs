//! One training algorithm for every backend: a Nesterov step on a mini-batch, packed as in
//! [`crate::layout`].
//!
//! Per step, for each data vector (chunk of `rows` samples) `X` with labels `Y`:
//! 1. `rot(X, i)` for `i < c_pad` (hoisted);
//! 2. logits: `t = Σ_i diag_i(Wₗ) ⊙ rot(X, i)` (one relinearisation), block sum
//!    (`log2(block/c_pad)` rotations), `u = t ⊙ mask/B` (class slots of the used rows);
//! 3. `P = softmax(u)` ([`crate::softmax`]); `E = P − Y`; `Ẽ` = `E` replicated over the
//!    diagonal width (`log2(block/c_pad)` rotations);
//!
//! then for each diagonal `i`: `G_i = Σ_chunks Ẽ ⊙ rot(X, i)` (one relinearisation) summed over
//! the rows (`log2(rows)` rotations, which also replicates it), and the NAG update
//! `W' = Wₗ − (η/b)·mask ⊙ G`, `Wₗ' = W' + γ (W' − W)`.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::backend::{Backend, OpCounts, PlainId};
use crate::layout::Layout;
use crate::nag::Schedule;
use crate::session::Chunks;
use crate::softmax::{self, SoftmaxApprox, SoftmaxPlains};

/// A mini-batch: data vectors and their label vectors, and how many rows each holds.
#[derive(Clone, Debug)]
pub struct Batch<V> {
    /// Packed samples ([`Layout::pack_x`]).
    pub x: Vec<V>,
    /// Packed one-hot labels ([`Layout::pack_y`]).
    pub y: Vec<V>,
    /// Rows used in each chunk.
    pub rows: Vec<usize>,
}

impl<V> Batch<V> {
    /// Samples in the batch.
    pub fn samples(&self) -> usize {
        self.rows.iter().sum()
    }
}

/// The model state: the weights and the Nesterov look-ahead, as diagonal vectors.
#[derive(Clone, Debug)]
pub struct State<V> {
    /// `W`, `c_pad` diagonal vectors.
    pub w: Vec<V>,
    /// The look-ahead `Wₗ` the gradient is taken at.
    pub look: Vec<V>,
    /// Steps taken.
    pub step: usize,
}

/// Hyperparameters of a run (default: η = 1, constant momentum 0.9, the default softmax).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TrainConfig {
    /// Learning rate and momentum.
    pub schedule: Schedule,
    /// The softmax approximation.
    pub softmax: SoftmaxApprox,
}

/// Cost of one step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StepReport {
    /// Operations performed.
    pub ops: OpCounts,
}

/// The trainer: the layout, the configuration and the registered plaintext operands.
#[derive(Debug)]
pub struct Trainer {
    layout: Layout,
    config: TrainConfig,
    logit_masks: BTreeMap<usize, PlainId>,
    softmax_plains: BTreeMap<usize, SoftmaxPlains>,
    grad_masks: BTreeMap<u64, PlainId>,
}

impl Trainer {
    /// A trainer for `layout`.
    pub fn new(layout: Layout, config: TrainConfig) -> Self {
        Self {
            layout,
            config,
            logit_masks: BTreeMap::new(),
            softmax_plains: BTreeMap::new(),
            grad_masks: BTreeMap::new(),
        }
    }

    /// The layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// The initial (zero) state, encrypted or encoded by `fresh`.
    pub fn zero_state<V>(&self, mut fresh: impl FnMut(Vec<f64>) -> V) -> State<V> {
        let w: Vec<V> = (0..self.layout.c_pad)
            .map(|_| fresh(alloc::vec![0.0; self.layout.slots]))
            .collect();
        let look = (0..self.layout.c_pad)
            .map(|_| fresh(alloc::vec![0.0; self.layout.slots]))
            .collect();
        State { w, look, step: 0 }
    }

    fn logit_mask<B: Backend>(&mut self, be: &mut B, rows: usize) -> PlainId {
        let (l, b) = (self.layout, self.config.softmax.logit_bound());
        *self
            .logit_masks
            .entry(rows)
            .or_insert_with(|| be.plain(l.class_mask(rows, 1.0 / b)))
    }

    fn softmax_plains<B: Backend>(&mut self, be: &mut B, rows: usize) -> SoftmaxPlains {
        let l = self.layout;
        let approx = self.config.softmax.clone();
        self.softmax_plains
            .entry(rows)
            .or_insert_with(|| {
                let coeffs = approx.exp_coefficients();
                let hi = l.c as f64 * core::f64::consts::E;
                let mut it = coeffs.iter().map(|c| c / hi);
                let c0 = it.next().unwrap_or(0.0);
                let exp_const = be.plain(l.class_mask(rows, c0));
                let exp_terms = it.map(|ck| be.plain(l.class_mask(rows, ck))).collect();
                let mask = be.plain(l.class_mask(rows, 1.0));
                SoftmaxPlains {
                    exp_terms,
                    exp_const,
                    mask,
                }
            })
            .clone()
    }

    fn grad_mask<B: Backend>(&mut self, be: &mut B, factor: f64) -> PlainId {
        let l = self.layout;
        *self
            .grad_masks
            .entry(factor.to_bits())
            .or_insert_with(|| be.plain(l.diag_mask(factor)))
    }

    /// The logits `u = z / B` of one chunk at the class slots, from its rotations.
    fn logits<B: Backend>(
        &mut self,
        be: &mut B,
        look: &[B::Vector],
        rx: &[B::Vector],
        rows: usize,
    ) -> Result<B::Vector, B::Error> {
        let pairs: Vec<(&B::Vector, &B::Vector)> = look.iter().zip(rx).collect();
        let mut t = be.mul_sum(&pairs)?;
        for s in self.layout.block_sum_steps() {
            let r = be.rotate(&t, s)?;
            t = be.add(&t, &r)?;
        }
        let mask = self.logit_mask(be, rows);
        be.mul_plain(&t, mask)
    }

    /// `X` and its in-row rotations by `1 … c_pad − 1`.
    fn rotations<B: Backend>(&self, be: &mut B, x: &B::Vector) -> Result<Vec<B::Vector>, B::Error> {
        let mut rx = Vec::with_capacity(self.layout.c_pad);
        rx.push(x.clone());
        rx.extend(be.rotate_many(x, &self.layout.diag_steps())?);
        Ok(rx)
    }

    /// Approximate class probabilities of one chunk under the weights `w` (zero outside the
    /// class slots of the used rows). Encrypted inference uses this.
    pub fn predict<B: Backend>(
        &mut self,
        be: &mut B,
        w: &[B::Vector],
        x: &B::Vector,
        rows: usize,
    ) -> Result<B::Vector, B::Error> {
        let rx = self.rotations(be, x)?;
        let u = self.logits(be, w, &rx, rows)?;
        let plains = self.softmax_plains(be, rows);
        softmax::evaluate(
            be,
            &self.config.softmax,
            &plains,
            &u,
            &self.layout.class_sum_steps(),
        )
    }

    /// Logits (scaled by `1/B`) of one chunk under `w`: argmax-ready scores.
    pub fn scores<B: Backend>(
        &mut self,
        be: &mut B,
        w: &[B::Vector],
        x: &B::Vector,
        rows: usize,
    ) -> Result<B::Vector, B::Error> {
        let rx = self.rotations(be, x)?;
        self.logits(be, w, &rx, rows)
    }

    /// The encrypted mean Brier score `(1/n) Σ_samples Σ_k (p_k − y_k)²` of the approximate
    /// softmax under `w` over the validation chunks `val`, in slot 0 (and every class slot).
    /// The hospital decrypts this one number per epoch
    /// ([`crate::session::EarlyStopping`]).
    ///
    /// Per chunk: the prediction ([`Self::predict`]), `d = P − Y`, `d ⊙ d` (one level), the
    /// class sum and the row sum by rotations; chunk results are added and scaled by `1/n`
    /// (one level). `None` when `val` has no chunks.
    pub fn validation_loss<B: Backend>(
        &mut self,
        be: &mut B,
        w: &[B::Vector],
        val: &Chunks<B::Vector>,
    ) -> Result<Option<B::Vector>, B::Error> {
        let l = self.layout;
        let mut acc: Option<B::Vector> = None;
        for ((x, y), &rows) in val.x.iter().zip(&val.y).zip(&val.rows) {
            let p = self.predict(be, w, x, rows)?;
            let d = be.sub(&p, y)?;
            let sq = be.mul(&d, &d)?;
            let mut s = softmax::class_sum(be, &sq, &l.class_sum_steps())?;
            for st in l.row_sum_steps() {
                let r = be.rotate(&s, st)?;
                s = be.add(&s, &r)?;
            }
            acc = Some(match acc {
                None => s,
                Some(a) => be.add(&a, &s)?,
            });
        }
        acc.map(|a| be.mul_const(&a, 1.0 / val.samples().max(1) as f64))
            .transpose()
    }

    /// One Nesterov step on `batch`.
    pub fn step<B: Backend>(
        &mut self,
        be: &mut B,
        state: &mut State<B::Vector>,
        batch: &Batch<B::Vector>,
    ) -> Result<StepReport, B::Error> {
        let before = be.counts();
        let l = self.layout;
        let mut rxs = Vec::with_capacity(batch.x.len());
        let mut errs = Vec::with_capacity(batch.x.len());
        for ((x, y), &rows) in batch.x.iter().zip(&batch.y).zip(&batch.rows) {
            let rx = self.rotations(be, x)?;
            let u = self.logits(be, &state.look, &rx, rows)?;
            let plains = self.softmax_plains(be, rows);
            let p = softmax::evaluate(be, &self.config.softmax, &plains, &u, &l.class_sum_steps())?;
            let mut e = be.sub(&p, y)?;
            for s in l.replicate_steps() {
                let r = be.rotate(&e, s)?;
                e = be.add(&e, &r)?;
            }
            rxs.push(rx);
            errs.push(e);
        }
        let t = state.step;
        let eta = self.config.schedule.learning_rate(t);
        let gamma = self.config.schedule.momentum(t);
        let factor = -eta / batch.samples().max(1) as f64;
        let gmask = self.grad_mask(be, factor);
        let mut new_w = Vec::with_capacity(l.c_pad);
        let mut new_look = Vec::with_capacity(l.c_pad);
        for i in 0..l.c_pad {
            let pairs: Vec<(&B::Vector, &B::Vector)> = errs
                .iter()
                .zip(&rxs)
                .filter_map(|(e, rx)| rx.get(i).map(|r| (e, r)))
                .collect();
            let mut g = be.mul_sum(&pairs)?;
            for s in l.row_sum_steps() {
                let r = be.rotate(&g, s)?;
                g = be.add(&g, &r)?;
            }
            let step = be.mul_plain(&g, gmask)?;
            let (Some(look_i), Some(w_i)) = (state.look.get(i), state.w.get(i)) else {
                continue;
            };
            let w_next = be.add(look_i, &step)?;
            let a = be.mul_const(&w_next, 1.0 + gamma)?;
            let b = be.mul_const(w_i, gamma)?;
            new_look.push(be.sub(&a, &b)?);
            new_w.push(w_next);
        }
        state.w = new_w;
        state.look = new_look;
        state.step += 1;
        Ok(StepReport {
            ops: be.counts() - before,
        })
    }
}

/// The operation counts of one step predicted from the layout (refreshes excluded): `chunks`
/// data vectors, softmax constants `approx`.
pub fn predicted_step_ops(l: &Layout, chunks: u64, approx: &SoftmaxApprox) -> OpCounts {
    let lg = |v: usize| u64::from(usize::BITS - 1 - v.leading_zeros());
    let c_pad = l.c_pad as u64;
    let block_sum = lg(l.block / l.c_pad);
    let class_sum = lg(l.c_pad) + 2;
    let normalisations = 1 + u64::from(approx.rounds);
    let deg = approx.exp_degree as u64;
    // Softmax: powers (deg − 1 mults), per normalisation: steps − 1 squarings of ε and as many
    // products, the final multiply, and one squaring per round.
    let sm_mult = (deg - 1)
        + (u64::from(approx.first_steps) - 1) * 2
        + 1
        + u64::from(approx.rounds) * (1 + (u64::from(approx.round_steps) - 1) * 2 + 1);
    let sm_cmult = deg + normalisations;
    let sm_rot = normalisations * class_sum;
    OpCounts {
        mult: chunks * (c_pad + sm_mult) + chunks * c_pad,
        cmult: chunks * (1 + sm_cmult) + c_pad * 3,
        rot: chunks * ((c_pad - 1) + block_sum + sm_rot + block_sum) + c_pad * lg(l.rows),
        relin: chunks * (1 + sm_mult) + c_pad,
        add: 0,
        refresh: 0,
    }
}
