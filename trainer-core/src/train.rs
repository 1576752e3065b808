//! One training algorithm for every backend: a Nesterov step on a mini-batch, packed as in
//! [`crate::layout`].
//!
//! Per step, for each data vector (chunk of `rows` samples) `X` with labels `Y`:
//! 1. `X` lowered to the weights' level (the products are taken there, and rotations of fewer
//!    primes are cheaper), then `rot(X, i)` for `i < c_pad` (hoisted);
//! 2. logits: `t = Σ_i diag_i(Wₗ) ⊙ rot(X, i)` (one relinearisation), block sum
//!    (`log2(block/c_pad)` rotations), `u = t ⊙ mask/B` (class slots of the used rows);
//! 3. **packed softmax**: the logits of up to [`Layout::pack_width`] chunks are moved into one
//!    vector (chunk `j`'s class slots shifted right by `j·2c_pad`: a tree of `n − 1` rotations
//!    by `−2c_pad·2^t`), one `P = softmax(U)` ([`crate::softmax`]) serves them all, and a tree
//!    of `n − 1` rotations by `+2c_pad·2^t` and a class mask per chunk (one level, skipped for
//!    a single chunk) give each chunk its `P_j` back. Every step is already a rotation key of
//!    the layout. The softmax dominates a step's multiplications, so this divides them by up
//!    to `pack_width` (16 for 8 classes in 256-slot rows). When the backend's refresh needs
//!    vectors periodic with half the slots ([`Backend::refresh_period`]: bootstrapping at
//!    `N/4` slots), the pack is **folded** instead (see [`Layout::folded_class_mask`]): each
//!    chunk's logits are masked in two halves of its rows, the halves packed side by side in
//!    every row block, and the result repeated in both halves of the vector;
//! 4. `E = P − Y`; `Ẽ` = `E` replicated over the diagonal width (`log2(block/c_pad)`
//!    rotations);
//!
//! then for each diagonal `i`: `G_i = Σ_chunks Ẽ ⊙ rot(X, i)` (one relinearisation) summed over
//! the rows (`log2(rows)` rotations, which also replicates it), and the NAG update
//! `W' = Wₗ − (η/b)·mask ⊙ G`, `Wₗ' = W' + γ (W' − W)`.

use alloc::borrow::Cow;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::borrow::Borrow;
use core::ops::Range;

use crate::backend::{Backend, OpCounts, PlainId, rotate_sum};
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

impl<V> State<V> {
    /// The look-ahead's vectors, then the weights'.
    fn vectors(&self) -> impl Iterator<Item = &V> {
        self.look.iter().chain(&self.w)
    }

    /// Replaces the vectors, in the order of [`Self::vectors`].
    fn set_vectors(&mut self, mut vs: Vec<V>) {
        self.w = vs.split_off(self.look.len());
        self.look = vs;
    }
}

/// Hyperparameters of a run (default: η = 1, constant momentum 0.9, the default softmax).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TrainConfig {
    /// Learning rate and momentum.
    pub schedule: Schedule,
    /// The softmax approximation.
    pub softmax: SoftmaxApprox,
    /// Refresh the weights and the look-ahead with **one** refresh, each diagonal packed into
    /// its own row block ([`Trainer::compact_refresh`]), instead of one refresh per diagonal
    /// (`2·c_pad` of them). For bootstrapping, where a refresh costs far more than the
    /// `log2(rows/g) + 2·c_pad·log2 g` rotations of the unpacking (`g = 2·c_pad` rounded up
    /// to a power of two); it costs one level before the refresh and one after.
    pub compact_refresh: bool,
}

impl TrainConfig {
    /// The defaults for a backend that refreshes by bootstrapping: the weights refreshed
    /// compactly ([`Self::compact_refresh`]) and the shallower softmax
    /// ([`SoftmaxApprox::shallow`]: one bootstrapping fewer per step).
    pub fn bootstrapped() -> Self {
        Self {
            compact_refresh: true,
            softmax: SoftmaxApprox::shallow(),
            ..Self::default()
        }
    }
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
    logit_masks: BTreeMap<(usize, usize), PlainId>,
    unit_masks: BTreeMap<(usize, usize), PlainId>,
    softmax_plains: BTreeMap<(Vec<usize>, bool), SoftmaxPlains>,
    grad_masks: BTreeMap<u64, PlainId>,
    row_masks: BTreeMap<(usize, usize), PlainId>,
}

impl Trainer {
    /// A trainer for `layout`.
    pub fn new(layout: Layout, config: TrainConfig) -> Self {
        Self {
            layout,
            config,
            logit_masks: BTreeMap::new(),
            unit_masks: BTreeMap::new(),
            softmax_plains: BTreeMap::new(),
            grad_masks: BTreeMap::new(),
            row_masks: BTreeMap::new(),
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

    /// 1 on every row block `b ≡ j (mod period)`, 0 elsewhere.
    fn row_mask<B: Backend>(&mut self, be: &mut B, j: usize, period: usize) -> PlainId {
        let l = self.layout;
        *self.row_masks.entry((j, period)).or_insert_with(|| {
            let period = period.max(1);
            be.plain(
                (0..l.slots)
                    .map(|s| f64::from(u8::from((s / l.block.max(1)) % period == j)))
                    .collect(),
            )
        })
    }

    /// Refreshes vectors that are the same in every row block (the weights' diagonals and
    /// the look-ahead's) with one refresh: vector `j` masked to the row blocks `≡ j (mod g)`
    /// (`k` vectors rounded up to a power of two) and all of them summed (one level: a vector
    /// periodic with period `g` blocks, as a refresh at fewer slots needs), refreshed, then
    /// per vector its blocks masked again (one level) and spread over all rows by `log2 g`
    /// rotations. `None` when the vectors do not fit one per row block.
    pub fn compact_refresh<B: Backend>(
        &mut self,
        be: &mut B,
        vs: &[&B::Vector],
    ) -> Result<Option<Vec<B::Vector>>, B::Error> {
        let Some(packed) = self.compact_pack(be, vs)? else {
            return Ok(None);
        };
        let spread = be.refresh(&packed)?;
        self.compact_unpack(be, &spread, vs.len()).map(Some)
    }

    /// The one vector [`Self::compact_refresh`] refreshes: vector `j` masked to the row
    /// blocks `≡ j (mod g)`, all summed (one level). `None` when they do not fit.
    fn compact_pack<B: Backend>(
        &mut self,
        be: &mut B,
        vs: &[&B::Vector],
    ) -> Result<Option<B::Vector>, B::Error> {
        let l = self.layout;
        let g = vs.len().next_power_of_two();
        if vs.is_empty() || g > l.rows {
            return Ok(None);
        }
        let mut packed: Option<B::Vector> = None;
        for (j, v) in vs.iter().enumerate() {
            let m = self.row_mask(be, j, g);
            let t = be.mul_plain(v, m)?;
            packed = Some(match packed {
                None => t,
                Some(a) => be.add(&a, &t)?,
            });
        }
        Ok(packed)
    }

    /// The `k` vectors back from a refreshed [`Self::compact_pack`]: per vector its blocks
    /// masked (one level) and spread over all rows (`log2 g` rotations).
    fn compact_unpack<B: Backend>(
        &mut self,
        be: &mut B,
        spread: &B::Vector,
        k: usize,
    ) -> Result<Vec<B::Vector>, B::Error> {
        let l = self.layout;
        let g = k.next_power_of_two();
        let period = (l.block * g) as i64;
        let steps = l.row_sum_steps();
        let mut out = Vec::with_capacity(k);
        for j in 0..k {
            let m = self.row_mask(be, j, g);
            let t = be.mul_plain(spread, m)?;
            let t = rotate_sum(be, t, steps.iter().copied().filter(|&s| s < period))?;
            out.push(t);
        }
        Ok(out)
    }

    /// Whether the state rides along with the packed probabilities' refresh
    /// ([`Self::probabilities`]): with the compact refresh, when the new look-ahead (one
    /// level below the weights and the look-ahead, at most) would come out below the logits'
    /// two levels plus the exponential's, which the next step's softmax then starts with
    /// before its first refresh; and only when every vector has the packing mask's level.
    fn rides_along<B: Backend>(&self, be: &B, state: &State<B::Vector>) -> bool {
        let want = self.config.softmax.exp_depth() + 3;
        let low = state.vectors().any(|v| be.needs_refresh(v, want));
        self.config.compact_refresh && low && maskable(be, state)
    }

    /// `p` refreshed together with the whole state: the state packed as in
    /// [`Self::compact_refresh`], both lowered to one level (one canonical scale), refreshed
    /// together (one bootstrapping of `p + i·packed`), the state unpacked in place.
    fn refresh_with_state<B: Backend>(
        &mut self,
        be: &mut B,
        p: B::Vector,
        state: &mut State<B::Vector>,
    ) -> Result<B::Vector, B::Error> {
        let all: Vec<&B::Vector> = state.vectors().collect();
        let k = all.len();
        let Some(packed) = self.compact_pack(be, &all)? else {
            return be.refresh(&p);
        };
        let level = be.level(&p).min(be.level(&packed));
        let (p, packed) = (be.lower(&p, level)?, be.lower(&packed, level)?);
        let mut fresh = be.refresh_many(&[&p, &packed])?.into_iter();
        let (Some(p), Some(spread)) = (fresh.next(), fresh.next()) else {
            return Ok(p);
        };
        state.set_vectors(self.compact_unpack(be, &spread, k)?);
        Ok(p)
    }

    /// Before a step: with [`TrainConfig::compact_refresh`], the weights and the look-ahead
    /// are refreshed together by [`Self::compact_refresh`] when the weights cannot take the
    /// momentum's level or the look-ahead has fewer than four: the data's rotations are
    /// taken at its level, so the gradient product, its mask and the update leave the new
    /// weights three levels below it, and the next compact refresh needs one for its packing
    /// mask. Otherwise (and always without it, or when a vector has no level left for the
    /// packing mask) the look-ahead is reserved on its own and the weights later in the step.
    fn reserve_state<B: Backend>(
        &mut self,
        be: &mut B,
        state: &mut State<B::Vector>,
    ) -> Result<(), B::Error> {
        if self.config.compact_refresh {
            let stale = state.look.iter().any(|v| be.needs_refresh(v, 4))
                || state.w.iter().any(|v| be.needs_refresh(v, 1));
            if stale && maskable(be, state) {
                let all: Vec<&B::Vector> = state.vectors().collect();
                if let Some(fresh) = self.compact_refresh(be, &all)? {
                    state.set_vectors(fresh);
                }
            }
        }
        reserve_in_place(be, &mut state.look, 2)
    }

    /// Whether packs are folded for `be` ([`Layout::folded_class_mask`]): its refresh needs
    /// vectors periodic with half the slots ([`Backend::refresh_period`]).
    fn folds<B: Backend>(&self, be: &B) -> bool {
        self.layout.can_fold() && be.refresh_period() == Some(self.layout.slots / 2)
    }

    /// The row ranges a chunk with `rows` used rows is split into: all of them, or, folded,
    /// the first and the second half of the row blocks.
    fn parts(&self, rows: usize, fold: bool) -> Vec<Range<usize>> {
        if fold {
            let h = self.layout.rows / 2;
            alloc::vec![0..rows.min(h), h..rows.max(h)]
        } else {
            alloc::vec![0..rows]
        }
    }

    fn logit_mask<B: Backend>(&mut self, be: &mut B, rows: Range<usize>) -> PlainId {
        let (l, b) = (self.layout, self.config.softmax.logit_bound());
        *self
            .logit_masks
            .entry((rows.start, rows.end))
            .or_insert_with(|| be.plain(l.class_mask_rows(rows, 1.0 / b)))
    }

    /// The class mask of some rows of one chunk (unpacking a packed softmax).
    fn unit_mask<B: Backend>(&mut self, be: &mut B, rows: Range<usize>) -> PlainId {
        let l = self.layout;
        *self
            .unit_masks
            .entry((rows.start, rows.end))
            .or_insert_with(|| be.plain(l.class_mask_rows(rows, 1.0)))
    }

    /// `v` masked to the class slots of each row range of `parts`.
    fn split<B: Backend>(
        &mut self,
        be: &mut B,
        v: &B::Vector,
        parts: Vec<Range<usize>>,
    ) -> Result<Vec<B::Vector>, B::Error> {
        parts
            .into_iter()
            .map(|r| {
                let m = self.unit_mask(be, r);
                be.mul_plain(v, m)
            })
            .collect()
    }

    /// The softmax operands of a pack of chunks with `rows` used rows each (folded or not).
    fn softmax_plains<B: Backend>(
        &mut self,
        be: &mut B,
        rows: &[usize],
        fold: bool,
    ) -> SoftmaxPlains {
        let l = self.layout;
        let approx = self.config.softmax.clone();
        let class_mask = |f: f64| {
            if fold {
                l.folded_class_mask(rows, f)
            } else {
                l.packed_class_mask(rows, f)
            }
        };
        self.softmax_plains
            .entry((rows.to_vec(), fold))
            .or_insert_with(|| {
                let coeffs = approx.exp_coefficients();
                let hi = l.c as f64 * core::f64::consts::E;
                let mut it = coeffs.iter().map(|c| c / hi);
                let c0 = it.next().unwrap_or(0.0);
                let exp_const = be.plain(class_mask(c0));
                let exp_terms = it.map(|ck| be.plain(class_mask(ck))).collect();
                let centres = approx
                    .centres(l.c)
                    .iter()
                    .map(|c| {
                        let a = c.alpha;
                        let neg = be.plain(class_mask(-a));
                        let neg_sq = be.plain(class_mask(-a * a));
                        (a, neg, neg_sq)
                    })
                    .collect();
                SoftmaxPlains {
                    exp_terms,
                    exp_const,
                    mask: be.plain(class_mask(1.0)),
                    centres,
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

    /// The logits `u = z / B` of one chunk at the class slots, from its rotations: one vector,
    /// or, folded, one per half of the rows ([`Self::parts`]; the same level).
    fn logits<B: Backend, W: Borrow<B::Vector>>(
        &mut self,
        be: &mut B,
        look: &[W],
        rx: &[B::Vector],
        rows: usize,
        fold: bool,
    ) -> Result<Vec<B::Vector>, B::Error> {
        let pairs: Vec<(&B::Vector, &B::Vector)> =
            look.iter().map(Borrow::borrow).zip(rx).collect();
        let t = be.mul_sum(&pairs)?;
        let t = rotate_sum(be, t, self.layout.block_sum_steps())?;
        self.parts(rows, fold)
            .into_iter()
            .map(|r| {
                let mask = self.logit_mask(be, r);
                be.mul_plain(&t, mask)
            })
            .collect()
    }

    /// `X`, lowered to `level` (the weights' level: the products are taken there anyway, and
    /// rotations of fewer primes are cheaper), and its in-row rotations by `1 … c_pad − 1`.
    fn rotations<B: Backend>(
        &self,
        be: &mut B,
        x: &B::Vector,
        level: usize,
    ) -> Result<Vec<B::Vector>, B::Error> {
        let x = be.lower(x, level)?;
        let mut rx = Vec::with_capacity(self.layout.c_pad);
        rx.extend(be.rotate_many(&x, &self.layout.diag_steps())?);
        rx.insert(0, x);
        Ok(rx)
    }

    /// The weights ready for the logit products with the data vectors `xs`: each refreshed if
    /// it could not absorb the two levels of the logits (the product and the mask,
    /// [`Backend::reserve`]; borrowed otherwise), then lowered to the level the products are
    /// taken at, the lowest among them and the data. Lowering each weight once here saves an
    /// alignment per chunk and product; data the hospital encrypted low
    /// ([`crate::ckks::data_level`]) then keeps every product and rotation of the step on
    /// few primes.
    fn ready<'w, B: Backend>(
        be: &mut B,
        w: &'w [B::Vector],
        xs: &[B::Vector],
    ) -> Result<Ready<'w, B::Vector>, B::Error> {
        let refs: Vec<&B::Vector> = w.iter().collect();
        let reserved: Vec<Cow<'w, B::Vector>> = be
            .reserve_many(&refs, 2)?
            .into_iter()
            .zip(w)
            .map(|(r, v)| r.map_or(Cow::Borrowed(v), Cow::Owned))
            .collect();
        let level = reserved
            .iter()
            .map(|v| be.level(v))
            .chain(xs.iter().map(|x| be.level(x)))
            .min()
            .unwrap_or(0);
        let mut out = Vec::with_capacity(reserved.len());
        for v in reserved {
            out.push(if be.level(&v) > level {
                Cow::Owned(be.lower(&v, level)?)
            } else {
                v
            });
        }
        Ok((out, level))
    }

    /// The packed softmax of a pack of chunks' logits `us` (each chunk's parts from
    /// [`Self::logits`]; `rows` used rows each, at most [`Layout::pack_width`] chunks, or
    /// [`Layout::fold_width`] folded), still packed.
    fn packed_softmax<B: Backend>(
        &mut self,
        be: &mut B,
        us: Vec<Vec<B::Vector>>,
        rows: &[usize],
        fold: bool,
    ) -> Result<Option<B::Vector>, B::Error> {
        match pack_parts(be, &self.layout, us, fold)? {
            Some(u) => self.softmax_of(be, &u, rows, fold).map(Some),
            None => Ok(None),
        }
    }

    /// The softmax of packed logits `u` of chunks with `rows` used rows each.
    fn softmax_of<B: Backend>(
        &mut self,
        be: &mut B,
        u: &B::Vector,
        rows: &[usize],
        fold: bool,
    ) -> Result<B::Vector, B::Error> {
        let plains = self.softmax_plains(be, rows, fold);
        softmax::evaluate(
            be,
            &self.config.softmax,
            &plains,
            u,
            &self.layout.class_sum_steps(),
        )
    }

    /// Chunks per softmax evaluation: [`Layout::pack_width`], or [`Layout::fold_width`].
    fn width(&self, fold: bool) -> usize {
        if fold {
            self.layout.fold_width()
        } else {
            self.layout.pack_width()
        }
    }

    /// Approximate class probabilities of chunks whose logits are `us` (`rows` used rows
    /// each): one packed softmax per [`Self::width`] chunks, unpacked (each chunk's
    /// probabilities at its class slots, zero elsewhere). The packed probabilities are first
    /// given room for the unpacking mask and `tail` more levels ([`Backend::reserve`]): one
    /// refresh there replaces one per chunk later.
    fn probabilities<B: Backend>(
        &mut self,
        be: &mut B,
        us: Vec<Vec<B::Vector>>,
        rows: &[usize],
        tail: usize,
        fold: bool,
        mut state: Option<&mut State<B::Vector>>,
    ) -> Result<Vec<B::Vector>, B::Error> {
        let l = self.layout;
        let mut out = Vec::with_capacity(us.len());
        let mut us = us.into_iter();
        for group in rows.chunks(self.width(fold)) {
            let parts: Vec<Vec<B::Vector>> = us.by_ref().take(group.len()).collect();
            let n = parts.len();
            let Some(p) = self.packed_softmax(be, parts, group, fold)? else {
                continue;
            };
            if n == 1 && !fold {
                // A single chunk's softmax is already zero outside its class slots.
                out.push(p);
                continue;
            }
            let p = match state.take() {
                Some(st) if be.needs_refresh(&p, 1 + tail) && self.rides_along(be, st) => {
                    self.refresh_with_state(be, p, st)?
                }
                _ => be.reserve(&p, 1 + tail)?.unwrap_or(p),
            };
            for (pieces, &r) in unpack_parts(be, &l, p, n, fold)?.iter().zip(group) {
                let mut acc: Option<B::Vector> = None;
                for (piece, range) in pieces.iter().zip(self.parts(r, fold)) {
                    let m = self.unit_mask(be, range);
                    let t = be.mul_plain(piece, m)?;
                    acc = Some(match acc {
                        None => t,
                        Some(a) => be.add(&a, &t)?,
                    });
                }
                out.extend(acc);
            }
        }
        Ok(out)
    }

    /// Approximate class probabilities of chunks `xs` (`rows` used rows each) under the
    /// weights `w`, zero outside each chunk's class slots of the used rows. Encrypted
    /// inference uses this; [`Layout::pack_width`] chunks share one softmax.
    pub fn predict_many<B: Backend>(
        &mut self,
        be: &mut B,
        w: &[B::Vector],
        xs: &[B::Vector],
        rows: &[usize],
    ) -> Result<Vec<B::Vector>, B::Error> {
        let fold = self.folds(be);
        let (w, level) = Self::ready(be, w, xs)?;
        let mut us = Vec::with_capacity(xs.len());
        for (x, &r) in xs.iter().zip(rows) {
            let rx = self.rotations(be, x, level)?;
            us.push(self.logits(be, &w, &rx, r, fold)?);
        }
        self.probabilities(be, us, rows, 0, fold, None)
    }

    /// [`Self::predict_many`] of one chunk.
    pub fn predict<B: Backend>(
        &mut self,
        be: &mut B,
        w: &[B::Vector],
        x: &B::Vector,
        rows: usize,
    ) -> Result<B::Vector, B::Error> {
        match self
            .predict_many(be, w, core::slice::from_ref(x), &[rows])?
            .pop()
        {
            Some(p) => Ok(p),
            None => be.mul_const(x, 0.0),
        }
    }

    /// Logits (scaled by `1/B`) of one chunk under `w`: argmax-ready scores.
    pub fn scores<B: Backend>(
        &mut self,
        be: &mut B,
        w: &[B::Vector],
        x: &B::Vector,
        rows: usize,
    ) -> Result<B::Vector, B::Error> {
        let (w, level) = Self::ready(be, w, core::slice::from_ref(x))?;
        let rx = self.rotations(be, x, level)?;
        let mut u = self.logits(be, &w, &rx, rows, false)?;
        match u.pop() {
            Some(u) => Ok(u),
            None => be.mul_const(x, 0.0),
        }
    }

    /// The encrypted mean Brier score `(1/n) Σ_samples Σ_k (p_k − y_k)²` of the approximate
    /// softmax under `w` over the validation chunks `val`, in every slot (the hospital reads
    /// slot 0). The hospital decrypts this one number per epoch
    /// ([`crate::session::EarlyStopping`]).
    ///
    /// Per pack of [`Layout::pack_width`] chunks: the packed softmax, the labels packed the
    /// same way, `d = P − Y`, `d ⊙ d` (one level) and the sum of all slots by rotations; pack
    /// results are added and scaled by `1/n` (one level). Folded packs
    /// ([`Layout::fold_width`] chunks) split the labels by a mask first (one level) and hold
    /// every value twice, so they are scaled by `1/2n`. `None` when `val` has no chunks.
    pub fn validation_loss<B: Backend>(
        &mut self,
        be: &mut B,
        w: &[B::Vector],
        val: &Chunks<B::Vector>,
    ) -> Result<Option<B::Vector>, B::Error> {
        let l = self.layout;
        let fold = self.folds(be);
        let width = self.width(fold);
        let (w, level) = Self::ready(be, w, &val.x)?;
        let mut acc: Option<B::Vector> = None;
        for ((xs, ys), rows) in val
            .x
            .chunks(width)
            .zip(val.y.chunks(width))
            .zip(val.rows.chunks(width))
        {
            let mut us = Vec::with_capacity(xs.len());
            let mut yparts = Vec::with_capacity(xs.len());
            for ((x, y), &r) in xs.iter().zip(ys).zip(rows) {
                let rx = self.rotations(be, x, level)?;
                us.push(self.logits(be, &w, &rx, r, fold)?);
                yparts.push(if fold {
                    self.split(be, y, self.parts(r, fold))?
                } else {
                    alloc::vec![y.clone()]
                });
            }
            let (Some(p), Some(y)) = (
                self.packed_softmax(be, us, rows, fold)?,
                pack_parts(be, &l, yparts, fold)?,
            ) else {
                continue;
            };
            let d = be.sub(&p, &y)?;
            let sq = be.mul(&d, &d)?;
            let s = rotate_sum(be, sq, l.total_sum_steps())?;
            acc = Some(match acc {
                None => s,
                Some(a) => be.add(&a, &s)?,
            });
        }
        let copies = if fold { 2.0 } else { 1.0 };
        acc.map(|a| be.mul_const(&a, 1.0 / (copies * val.samples().max(1) as f64)))
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
        let fold = self.folds(be);
        let compact = self.config.compact_refresh;
        self.reserve_state(be, state)?;
        let mut rxs = Vec::with_capacity(batch.x.len());
        let mut us = Vec::with_capacity(batch.x.len());
        {
            let (look, level) = Self::ready(be, &state.look, &batch.x)?;
            for (x, &rows) in batch.x.iter().zip(&batch.rows) {
                // With the compact refresh the data's rotations stay at the data's level
                // (the logit products align them to the weights'): the gradient is taken
                // there, so the weights refreshed with the probabilities keep their levels
                // through the update.
                let at = if compact { be.level(x) } else { level };
                let rx = self.rotations(be, x, at)?;
                us.push(self.logits(be, &look, &rx, rows, fold)?);
                rxs.push(rx);
            }
        }
        // After the unpacking mask: the gradient product, its mask and the momentum step.
        let tail = 3 + usize::from(compact);
        let probs = self.probabilities(be, us, &batch.rows, tail, fold, Some(&mut *state))?;
        let mut errs = Vec::with_capacity(batch.x.len());
        for ((p, y), rx) in probs.iter().zip(&batch.y).zip(&rxs) {
            let e = be.sub(p, y)?;
            let mut e = rotate_sum(be, e, l.replicate_steps())?;
            // Each error meets `c_pad` rotations of its data: lowered to theirs once here
            // rather than aligned in every product (no copy when it is there already).
            let level = rx.first().map_or(0, |r| be.level(r));
            if be.level(&e) > level {
                e = be.lower(&e, level)?;
            }
            errs.push(e);
        }
        let t = state.step;
        let eta = self.config.schedule.learning_rate(t);
        let gamma = self.config.schedule.momentum(t);
        let factor = -eta / batch.samples().max(1) as f64;
        let gmask = self.grad_mask(be, factor);
        // With the compact refresh, the look-ahead's share of the step, `(1 + γ)·step`, comes
        // from `G` directly: the new look-ahead `(1 + γ)·Wₗ − γ·W + (1 + γ)·step` is then one
        // level below the old weights and `G`, not two below `G`, which keeps the next
        // step's exponential clear of a bootstrapping. (Where refreshes are cheap a higher
        // level only makes the next step's products dearer, so the other mode keeps the
        // cheaper form.)
        let gmask_look = if compact {
            Some(self.grad_mask(be, factor * (1.0 + gamma)))
        } else {
            None
        };
        // The momentum term γ·W needs a level of every W: refreshed together if at all.
        reserve_in_place(be, &mut state.w, 1)?;
        let mut new_w = Vec::with_capacity(l.c_pad);
        let mut new_look = Vec::with_capacity(l.c_pad);
        for i in 0..l.c_pad {
            let pairs: Vec<(&B::Vector, &B::Vector)> = errs
                .iter()
                .zip(&rxs)
                .filter_map(|(e, rx)| rx.get(i).map(|r| (e, r)))
                .collect();
            let g = be.mul_sum(&pairs)?;
            let g = rotate_sum(be, g, l.row_sum_steps())?;
            let (Some(look_i), Some(w_i)) = (state.look.get(i), state.w.get(i)) else {
                continue;
            };
            let w_next = match gmask_look {
                Some(gl) => {
                    // Two products of `G`: refreshed once here if it has no level left.
                    let g = be.reserve(&g, 1)?.unwrap_or(g);
                    let step = be.mul_plain(&g, gmask)?;
                    let step_look = be.mul_plain(&g, gl)?;
                    let a = be.mul_const(look_i, 1.0 + gamma)?;
                    let b = be.mul_const(w_i, gamma)?;
                    let momentum = be.sub(&a, &b)?;
                    new_look.push(be.add(&momentum, &step_look)?);
                    be.add(look_i, &step)?
                }
                None => {
                    let step = be.mul_plain(&g, gmask)?;
                    let w_next = be.add(look_i, &step)?;
                    let a = be.mul_const(&w_next, 1.0 + gamma)?;
                    let b = be.mul_const(w_i, gamma)?;
                    new_look.push(be.sub(&a, &b)?);
                    w_next
                }
            };
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

/// Whether every vector of `state` has the level of the compact refresh's packing mask.
fn maskable<B: Backend>(be: &B, state: &State<B::Vector>) -> bool {
    state.vectors().all(|v| !be.needs_refresh(v, 1))
}

/// Weights ready for the logit products (borrowed where nothing was refreshed) and their
/// lowest level.
type Ready<'w, V> = (Vec<Cow<'w, V>>, usize);

/// [`Backend::reserve_many`] of `vs`, each refreshed one replacing its original.
fn reserve_in_place<B: Backend>(
    be: &mut B,
    vs: &mut [B::Vector],
    levels: usize,
) -> Result<(), B::Error> {
    let refs: Vec<&B::Vector> = vs.iter().collect();
    let reserved = be.reserve_many(&refs, levels)?;
    for (v, r) in vs.iter_mut().zip(reserved) {
        if let Some(r) = r {
            *v = r;
        }
    }
    Ok(())
}

/// Packs `parts` (each zero outside its class slots) into one vector, part `j` shifted right by
/// `j·stride` slots: pairs are joined level by level, the right one rotated by
/// `−stride·2^t` (`n − 1` rotations). `None` for no parts.
fn pack<B: Backend>(
    be: &mut B,
    parts: Vec<B::Vector>,
    stride: usize,
) -> Result<Option<B::Vector>, B::Error> {
    let mut items = parts;
    let mut span = 1usize;
    while items.len() > 1 {
        let mut next = Vec::with_capacity(items.len().div_ceil(2));
        let mut it = items.into_iter();
        while let Some(a) = it.next() {
            match it.next() {
                Some(b) => {
                    let r = be.rotate(&b, -((stride * span) as i64))?;
                    next.push(be.add(&a, &r)?);
                }
                None => next.push(a),
            }
        }
        items = next;
        span *= 2;
    }
    Ok(items.into_iter().next())
}

/// Packs each chunk's parts ([`Trainer::logits`]) into one vector: [`pack`] of the single
/// parts; folded, [`pack`] of the first halves plus [`pack`] of the second halves moved to
/// the right half of every row block (`−block/2`), plus the sum rotated by `slots/2`
/// (`2n` rotations for `n` chunks). Every step is a rotation key of the layout
/// ([`Layout::replicate_steps`], [`Layout::row_sum_steps`]).
fn pack_parts<B: Backend>(
    be: &mut B,
    l: &Layout,
    parts: Vec<Vec<B::Vector>>,
    fold: bool,
) -> Result<Option<B::Vector>, B::Error> {
    let stride = l.pack_stride();
    if !fold {
        return pack(be, parts.into_iter().flatten().collect(), stride);
    }
    let (mut lo, mut hi) = (
        Vec::with_capacity(parts.len()),
        Vec::with_capacity(parts.len()),
    );
    for p in parts {
        let mut it = p.into_iter();
        lo.extend(it.next());
        hi.extend(it.next());
    }
    let (Some(lo), Some(hi)) = (pack(be, lo, stride)?, pack(be, hi, stride)?) else {
        return Ok(None);
    };
    let hi = be.rotate(&hi, -((l.block / 2) as i64))?;
    let s = be.add(&lo, &hi)?;
    let r = be.rotate(&s, (l.slots / 2) as i64)?;
    be.add(&s, &r).map(Some)
}

/// The inverse of [`pack_parts`] up to the masks: per chunk `j < n`, the rotation that
/// brings each of its parts back to offset 0 of its rows ([`unpack`]; folded, also
/// [`unpack`] of the vector rotated by `block/2`: `2n − 1` rotations).
fn unpack_parts<B: Backend>(
    be: &mut B,
    l: &Layout,
    p: B::Vector,
    n: usize,
    fold: bool,
) -> Result<Vec<Vec<B::Vector>>, B::Error> {
    let stride = l.pack_stride();
    if !fold {
        return Ok(unpack(be, p, n, stride)?
            .into_iter()
            .map(|v| alloc::vec![v])
            .collect());
    }
    let right = be.rotate(&p, (l.block / 2) as i64)?;
    let lo = unpack(be, p, n, stride)?;
    let hi = unpack(be, right, n, stride)?;
    Ok(lo
        .into_iter()
        .zip(hi)
        .map(|(a, b)| alloc::vec![a, b])
        .collect())
}

/// The inverse of [`pack`] up to a mask: `rot(p, j·stride)` for `j < n` (part `j` back at
/// offset 0, the other parts elsewhere), by a tree of `n − 1` rotations by `+stride·2^t`.
fn unpack<B: Backend>(
    be: &mut B,
    p: B::Vector,
    n: usize,
    stride: usize,
) -> Result<Vec<B::Vector>, B::Error> {
    let mut items: Vec<(usize, B::Vector)> = alloc::vec![(0, p)];
    let mut span = n.next_power_of_two() / 2;
    while span >= 1 {
        let mut next = Vec::with_capacity(2 * items.len());
        for (offset, v) in items {
            let far = offset + span;
            let r = if far < n {
                Some(be.rotate(&v, (stride * span) as i64)?)
            } else {
                None
            };
            next.push((offset, v));
            if let Some(r) = r {
                next.push((far, r));
            }
        }
        items = next;
        span /= 2;
    }
    Ok(items.into_iter().map(|(_, v)| v).collect())
}

/// The operation counts of one step predicted from the layout (refreshes excluded): `chunks`
/// data vectors under `config` (its softmax constants; with
/// [`TrainConfig::compact_refresh`] the update's second gradient mask, though not the
/// compact refresh itself), packs folded or not ([`Layout::folded_class_mask`]).
pub fn predicted_step_ops(l: &Layout, chunks: u64, config: &TrainConfig, fold: bool) -> OpCounts {
    let approx = &config.softmax;
    let compact = config.compact_refresh;
    let lg = |v: usize| u64::from(usize::BITS - 1 - v.leading_zeros());
    let c_pad = l.c_pad as u64;
    let class_sum = lg(l.c_pad) + 2;
    let normalisations = 1 + u64::from(approx.rounds);
    let deg = approx.exp_degree as u64;
    // Softmax: powers (deg − 1 mults), per normalisation: steps − 1 squarings of ε and as many
    // products, the final multiply, and one squaring per round; two constant products (ε and
    // α(1 + ε)) per normalisation.
    let sm_mult = (deg - 1)
        + approx
            .steps()
            .iter()
            .map(|&k| (u64::from(k) - 1) * 2 + 1)
            .sum::<u64>()
        + u64::from(approx.rounds);
    let sm_cmult = deg + 2 * normalisations;
    let sm_rot = normalisations * class_sum;
    // Packs of `pack_width` chunks share one softmax; each chunk of a pack of two or more is
    // unpacked by a class mask, and a pack of n costs n − 1 rotations in and n − 1 out.
    // Folded: two logit masks per chunk, a pack of n costs 2n rotations in and 2n − 1 out,
    // and every chunk is unpacked by two masks.
    let (width, pack_rot, chunk_masks) = if fold {
        let width = l.fold_width() as u64;
        let packs = chunks.div_ceil(width);
        (width, 4 * chunks - packs, 4 * chunks)
    } else {
        let width = l.pack_width() as u64;
        let packs = chunks.div_ceil(width);
        let (full, rest) = (chunks / width, chunks % width);
        let unpacked = full * if width > 1 { width } else { 0 } + if rest > 1 { rest } else { 0 };
        (width, 2 * (chunks - packs), chunks + unpacked)
    };
    let packs = chunks.div_ceil(width);
    let (fwd, grad) = predicted_matmul_ops(l, chunks);
    OpCounts {
        mult: fwd.mult + grad.mult + packs * sm_mult,
        // The products' masks (one logit mask per chunk, one gradient mask per class) are in
        // `fwd` and `grad`; the rest: the second logit mask of folded chunks, the unpacking
        // masks, the softmax's constants, and the update's two constant products per class
        // (three with the compact refresh's second gradient mask).
        cmult: fwd.cmult
            + grad.cmult
            + (chunk_masks - chunks)
            + packs * sm_cmult
            + c_pad * (2 + u64::from(compact)),
        rot: fwd.rot + grad.rot + packs * sm_rot + pack_rot,
        relin: fwd.relin + grad.relin + packs * sm_mult,
        ..OpCounts::default()
    }
}

/// The two matrix products of a step in our diagonal layout, for `chunks` data vectors,
/// unfolded: the logits (`c_pad − 1` hoisted rotations of each `X`, `Σ diag_i ⊙ rot(X, i)`
/// with one relinearisation, the block sum and the logit mask) and the gradient (each error's
/// replication over the diagonal width, `Σ_chunks Ẽ ⊙ rot(X, i)` per class with one
/// relinearisation, the row sums and the gradient mask, which carries `−η/b`). The rotated
/// data is shared by the two. [`predicted_step_ops`] adds the softmax, the packing and the
/// update; [`crate::hetal`] compares these with HETAL's DiagABT / DiagATB.
pub fn predicted_matmul_ops(l: &Layout, chunks: u64) -> (OpCounts, OpCounts) {
    let lg = |v: usize| u64::from(usize::BITS - 1 - v.leading_zeros());
    let c_pad = l.c_pad as u64;
    let block_sum = lg(l.block / l.c_pad);
    let forward = OpCounts {
        mult: chunks * c_pad,
        cmult: chunks,
        rot: chunks * ((c_pad - 1) + block_sum),
        relin: chunks,
        ..OpCounts::default()
    };
    let gradient = OpCounts {
        mult: chunks * c_pad,
        cmult: c_pad,
        rot: chunks * block_sum + c_pad * lg(l.rows),
        relin: c_pad,
        ..OpCounts::default()
    };
    (forward, gradient)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::backend::{Mirror, MirrorVector};

    /// Distinct values at the class slots of chunk `j`'s first `rows[j]` rows, zero elsewhere.
    fn class_values(l: &Layout, rows: &[usize]) -> Vec<Vec<f64>> {
        rows.iter()
            .enumerate()
            .map(|(j, &r)| {
                let m = l.class_mask(r, 1.0);
                m.iter()
                    .enumerate()
                    .map(|(s, &v)| v * (1.0 + (s * 7 + j * 13) as f64 * 0.01))
                    .collect()
            })
            .collect()
    }

    /// Pack and unpack at every pack size put each chunk's class values where the docs say,
    /// with `n − 1` rotations each way, all of them rotation keys of the layout.
    #[test]
    fn pack_and_unpack_move_class_groups_with_layout_steps() {
        for (slots, features, classes) in [(256, 5, 3), (1024, 20, 2), (2048, 40, 5)] {
            let l = Layout::new(slots, features, classes).unwrap();
            let keys = l.all_steps();
            let mut be = Mirror::new(l.slots, 10);
            let stride = l.pack_stride();
            for n in 1..=l.pack_width() {
                let rows: Vec<usize> = (0..n).map(|j| l.rows - j % 2).collect();
                let parts = class_values(&l, &rows);
                let vs = parts.iter().map(|p| be.vector(p.clone())).collect();
                let before = be.counts().rot;
                let packed = pack(&mut be, vs, stride).unwrap().unwrap();
                assert_eq!(be.counts().rot - before, n as u64 - 1);
                let mask = l.packed_class_mask(&rows, 1.0);
                for s in 0..l.slots {
                    let (j, k) = ((s % l.block) / stride, (s % l.block) % stride);
                    let want = if j < n && k < l.c {
                        parts[j][s - j * stride]
                    } else {
                        0.0
                    };
                    assert_eq!(packed.values[s], want, "n {n} slot {s}");
                    assert_eq!(mask[s] != 0.0, want != 0.0, "mask, n {n} slot {s}");
                }
                let back = unpack(&mut be, packed, n, stride).unwrap();
                assert_eq!(back.len(), n);
                for (j, v) in back.iter().enumerate() {
                    let m = l.class_mask(rows[j], 1.0);
                    let got: Vec<f64> = v.values.iter().zip(&m).map(|(a, b)| a * b).collect();
                    assert_eq!(got, parts[j], "n {n} part {j}");
                }
                assert_eq!(be.counts().rot - before, 2 * (n as u64 - 1));
            }
            // Every rotation the packing uses has a key.
            for t in 0..l.pack_width().trailing_zeros() {
                let s = (stride << t) as i64;
                assert!(keys.contains(&s) && keys.contains(&-s), "step {s}");
            }
        }
    }

    /// Folded packs: each chunk's two row halves side by side, the vector repeating with
    /// period `slots/2` (values where the folded class mask says, nothing else), and back
    /// to every chunk's rows with `2n − 1` rotations, all of them keys of the layout.
    #[test]
    fn folded_packs_repeat_with_half_the_slots_and_unpack_to_every_row() {
        for (slots, features, classes) in [(256, 5, 3), (1024, 20, 2), (2048, 40, 5)] {
            let l = Layout::new(slots, features, classes).unwrap();
            assert!(l.can_fold());
            let keys = l.all_steps();
            let mut be = Mirror::new(l.slots, 10);
            let (stride, half) = (l.pack_stride(), l.rows / 2);
            for n in 1..=l.fold_width() {
                // Full chunks and ones ending in either half.
                let rows: Vec<usize> = (0..n)
                    .map(|j| [l.rows, l.rows - 1, half.max(1) - 1][j % 3])
                    .collect();
                let values = class_values(&l, &rows);
                let parts: Vec<Vec<MirrorVector>> = values
                    .iter()
                    .zip(&rows)
                    .map(|(v, &r)| {
                        [0..r.min(half), half..r.max(half)]
                            .into_iter()
                            .map(|range| {
                                let m = l.class_mask_rows(range, 1.0);
                                be.vector(v.iter().zip(&m).map(|(a, b)| a * b).collect())
                            })
                            .collect()
                    })
                    .collect();
                let before = be.counts().rot;
                let packed = pack_parts(&mut be, &l, parts, true).unwrap().unwrap();
                assert_eq!(be.counts().rot - before, 2 * n as u64);
                let p = &packed.values;
                assert_eq!(p[..slots / 2], p[slots / 2..], "n {n}: not periodic");
                let mask = l.folded_class_mask(&rows, 1.0);
                for s in 0..slots {
                    let (r, o) = (s / l.block, s % l.block);
                    let (sample, o) = if o >= l.block / 2 {
                        (r % half + half, o - l.block / 2)
                    } else {
                        (r % half, o)
                    };
                    let (j, k) = (o / stride, o % stride);
                    let want = if j < n && k < l.c {
                        values[j][sample * l.block + k]
                    } else {
                        0.0
                    };
                    assert_eq!(p[s], want, "n {n} slot {s}");
                    assert_eq!(mask[s] != 0.0, want != 0.0, "mask, n {n} slot {s}");
                }
                let back = unpack_parts(&mut be, &l, packed, n, true).unwrap();
                assert_eq!(be.counts().rot - before, 4 * n as u64 - 1);
                for (j, pieces) in back.iter().enumerate() {
                    let mut got = alloc::vec![0.0; slots];
                    for (v, range) in pieces.iter().zip([0..half, half..l.rows]) {
                        let m = l.class_mask_rows(range.start..range.end.min(rows[j]), 1.0);
                        for ((g, a), b) in got.iter_mut().zip(&v.values).zip(&m) {
                            *g += a * b;
                        }
                    }
                    assert_eq!(got, values[j], "n {n} chunk {j}");
                }
            }
            for s in [
                -(l.block as i64 / 2),
                l.block as i64 / 2,
                l.slots as i64 / 2,
            ] {
                assert!(keys.contains(&s), "step {s}");
            }
        }
    }

    /// The mirror of a sparse refresh refuses a vector that does not repeat with the period.
    #[test]
    fn mirror_refresh_checks_the_period() {
        let mut m = Mirror::new(8, 3).with_refresh_period(Some(4));
        assert_eq!(m.refresh_period(), Some(4));
        let ok = m.vector(alloc::vec![1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0, 4.0]);
        assert_eq!(m.refresh(&ok).unwrap().values, ok.values);
        let bad = m.vector(alloc::vec![1.0, 2.0, 3.0, 4.0, 1.0, 2.5, 3.0, 4.0]);
        assert_eq!(
            m.refresh(&bad),
            Err(crate::backend::MirrorError::NotPeriodic { period: 4, slot: 1 })
        );
        assert_eq!(
            m.counts().refresh,
            1,
            "only the periodic vector was refreshed"
        );
        assert_eq!(
            Mirror::new(8, 3)
                .with_refresh_period(Some(8))
                .refresh_period(),
            None
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod compact_tests {
    use super::*;
    use crate::backend::{Mirror, MirrorVector};
    use crate::refresh::AutoRefresh;

    /// `k` vectors that repeat one row block each, at `level`.
    fn replicated(m: &Mirror, l: &Layout, k: usize, level: usize) -> Vec<MirrorVector> {
        (0..k)
            .map(|j| {
                let block: Vec<f64> = (0..l.block)
                    .map(|i| ((i * 7 + j * 3) % 11) as f64 * 0.1 - 0.5)
                    .collect();
                m.vector_at(block.repeat(l.rows), level)
            })
            .collect()
    }

    /// One refresh, the rotations the docs count, the values back in every row block, two
    /// levels below the top; and `None` when the vectors do not fit one per row block.
    #[test]
    fn compact_refresh_brings_back_replicated_vectors_with_one_refresh() {
        for (slots, features, classes) in [(4096, 20, 5), (8192, 192, 8)] {
            let l = Layout::new(slots, features, classes).unwrap();
            let k = 2 * l.c_pad;
            let g = k.next_power_of_two();
            assert!(g <= l.rows, "{slots} slots: {} rows", l.rows);
            // The packed vector repeats with period g blocks, so a refresh at half the
            // slots takes it (the mirror checks).
            let m = Mirror::new(l.slots, 9).with_refresh_period(Some(l.slots / 2));
            let mut be = AutoRefresh::new(m.clone(), 0);
            let mut t = Trainer::new(l, TrainConfig::bootstrapped());
            let vs = replicated(&m, &l, k, 2);
            let refs: Vec<&MirrorVector> = vs.iter().collect();
            let before = be.counts();
            let out = t.compact_refresh(&mut be, &refs).unwrap().unwrap();
            let c = be.counts() - before;
            assert_eq!(c.refresh, 1);
            assert_eq!(c.rot, k as u64 * u64::from(g.trailing_zeros()));
            assert_eq!(out.len(), k);
            for (o, v) in out.iter().zip(&vs) {
                assert_eq!(o.level, 8, "refreshed, then the unpacking mask");
                assert_eq!(o.values, v.values);
            }
            let too_many = replicated(&m, &l, l.rows + 1, 2);
            let refs: Vec<&MirrorVector> = too_many.iter().collect();
            assert!(t.compact_refresh(&mut be, &refs).unwrap().is_none());
        }
    }

    /// Training with the compact refresh takes the same steps (the same weights on the
    /// mirror) as without, for far fewer refreshes.
    #[test]
    fn compact_refresh_changes_the_cost_and_not_the_steps() {
        let l = Layout::new(8192, 192, 8).unwrap();
        let m = Mirror::new(l.slots, 9);
        let x: Vec<f64> = (0..l.slots)
            .map(|i| ((i * 13) % 17) as f64 * 0.02 - 0.16)
            .collect();
        let rows = l.rows;
        let y = l.pack_y((0..rows).map(|r| r % l.c));
        // Two chunks (a packed softmax, unpacked), as in every real batch.
        let batch = Batch {
            x: alloc::vec![m.vector(x.clone()), m.vector(x)],
            y: alloc::vec![m.vector(y.clone()), m.vector(y)],
            rows: alloc::vec![rows, rows],
        };
        let run = |config: TrainConfig| {
            let mut t = Trainer::new(l, config);
            let mut be = AutoRefresh::new(m.clone(), 0);
            let mut s = t.zero_state(|v| m.vector(v));
            for _ in 0..10 {
                t.step(&mut be, &mut s, &batch).unwrap();
            }
            (s.w, be.counts().refresh)
        };
        let (w_plain, r_plain) = run(TrainConfig {
            compact_refresh: false,
            ..TrainConfig::bootstrapped()
        });
        let (w_compact, r_compact) = run(TrainConfig::bootstrapped());
        for (a, b) in w_plain.iter().zip(&w_compact) {
            let worst = a
                .values
                .iter()
                .zip(&b.values)
                .map(|(p, q)| (p - q).abs())
                .fold(0.0, f64::max);
            assert!(worst < 1e-12, "weights differ by {worst}");
        }
        assert!(
            r_compact < r_plain,
            "refreshes: {r_compact} compact, {r_plain} one per diagonal"
        );
    }
}
