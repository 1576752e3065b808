//! Epochs of a training run: how the hospital shuffles and packs its samples into chunks, how
//! the cloud forms mini-batches from chunks each epoch, the encrypted validation loss, and early
//! stopping.
//!
//! **Who shuffles what.** The hospital shuffles its samples once (seeded), packs them into
//! chunks of `layout.rows` samples and encrypts each chunk. The cloud never sees a sample
//! index: each epoch it permutes the *order of the chunks* (seeded by the run's seed and the
//! epoch) and groups `chunks_per_batch` consecutive chunks into one mini-batch. The same
//! permutation drives the mirror and, through [`Plan::sample_batches`], the exact reference.
//!
//! **Validation.** After each epoch the cloud computes, encrypted, the mean Brier score
//! `(1/n) Σ_samples Σ_k (p_k − y_k)²` of the approximate softmax on the validation chunks
//! ([`crate::train::Trainer::validation_loss`]). It needs no logarithm (the cross-entropy
//! would need a polynomial `log` near 0), it is a proper scoring rule, and it lands in one slot.
//! The hospital decrypts that one number and decides with [`EarlyStopping`]; with the hospital
//! offline the run follows its fixed number of epochs.

use alloc::vec::Vec;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::data::Dataset;
use crate::layout::Layout;
use crate::train::Batch;

/// Domain separation of the seeds (samples, per-epoch chunk order).
const SAMPLE_STREAM: u64 = 0x5341_4d50;
const EPOCH_STREAM: u64 = 0x4550_4f43;

fn rng(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(stream);
    r
}

/// `0 … n−1` in a seeded random order (the hospital's sample shuffle).
pub fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    idx.shuffle(&mut rng(seed, SAMPLE_STREAM));
    idx
}

/// Samples packed into chunk vectors (plaintext, hospital side), ready to encrypt.
#[derive(Clone, Debug, PartialEq)]
pub struct PackedChunks {
    /// Data vectors ([`Layout::pack_x`]).
    pub x: Vec<Vec<f64>>,
    /// Label vectors ([`Layout::pack_y`]).
    pub y: Vec<Vec<f64>>,
    /// Rows used in each chunk.
    pub rows: Vec<usize>,
    /// The dataset's sample indices in each chunk (hospital-only knowledge; the cloud gets
    /// only the ciphertexts and `rows`).
    pub members: Vec<Vec<usize>>,
}

/// Packs `data` in the given sample `order` into chunks of `layout.rows` samples.
pub fn pack_chunks(layout: &Layout, data: &Dataset, order: &[usize]) -> PackedChunks {
    let mut out = PackedChunks {
        x: Vec::new(),
        y: Vec::new(),
        rows: Vec::new(),
        members: Vec::new(),
    };
    let order: Vec<usize> = order.iter().copied().filter(|&i| i < data.len()).collect();
    for chunk in order.chunks(layout.rows.max(1)) {
        out.x
            .push(layout.pack_x(chunk.iter().map(|&i| data.row(i))));
        out.y
            .push(layout.pack_y(chunk.iter().map(|&i| data.label(i))));
        out.rows.push(chunk.len());
        out.members.push(chunk.to_vec());
    }
    out
}

impl PackedChunks {
    /// Chunks.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are no chunks.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Every vector mapped through `f` (encryption, or the mirror's `vector`).
    pub fn map<V>(&self, mut f: impl FnMut(&[f64]) -> V) -> Chunks<V> {
        Chunks {
            x: self.x.iter().map(|v| f(v)).collect(),
            y: self.y.iter().map(|v| f(v)).collect(),
            rows: self.rows.clone(),
        }
    }
}

/// A dataset as the cloud holds it: data and label vectors of chunks, and their used rows.
#[derive(Clone, Debug)]
pub struct Chunks<V> {
    /// Data vectors.
    pub x: Vec<V>,
    /// Label vectors.
    pub y: Vec<V>,
    /// Rows used in each chunk.
    pub rows: Vec<usize>,
}

impl<V: Clone> Chunks<V> {
    /// Chunks.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are no chunks.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Samples over all chunks.
    pub fn samples(&self) -> usize {
        self.rows.iter().sum()
    }

    /// The mini-batch of the chunks `idx` (indices out of range are skipped).
    pub fn batch(&self, idx: &[usize]) -> Batch<V> {
        let mut b = Batch {
            x: Vec::with_capacity(idx.len()),
            y: Vec::with_capacity(idx.len()),
            rows: Vec::with_capacity(idx.len()),
        };
        for &i in idx {
            if let (Some(x), Some(y), Some(&r)) = (self.x.get(i), self.y.get(i), self.rows.get(i)) {
                b.x.push(x.clone());
                b.y.push(y.clone());
                b.rows.push(r);
            }
        }
        b
    }
}

/// The shape of a run: epochs, batch size in chunks, seed, early stopping.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Plan {
    /// Maximum number of epochs.
    pub epochs: usize,
    /// Chunks per mini-batch (`chunks_per_batch · layout.rows` samples at most).
    pub chunks_per_batch: usize,
    /// Seed of the per-epoch chunk permutation.
    pub seed: u64,
    /// Stop after this many epochs without improvement of the validation loss (`None`: run
    /// all epochs).
    pub patience: Option<usize>,
    /// An improvement must lower the best validation loss by more than this.
    pub min_delta: f64,
}

impl Default for Plan {
    fn default() -> Self {
        Self {
            epochs: 10,
            chunks_per_batch: 1,
            seed: 0,
            patience: Some(3),
            min_delta: 1e-4,
        }
    }
}

impl Plan {
    /// The mini-batches (chunk indices) of `epoch` over `n_chunks` chunks: a seeded permutation
    /// of the chunks, cut into groups of `chunks_per_batch` (the last may be smaller).
    pub fn epoch_batches(&self, n_chunks: usize, epoch: usize) -> Vec<Vec<usize>> {
        let mut idx: Vec<usize> = (0..n_chunks).collect();
        // One ChaCha stream per epoch.
        let mut r = rng(
            self.seed,
            (EPOCH_STREAM << 32) | (epoch as u64 & 0xffff_ffff),
        );
        idx.shuffle(&mut r);
        idx.chunks(self.chunks_per_batch.max(1))
            .map(<[usize]>::to_vec)
            .collect()
    }

    /// Steps per epoch over `n_chunks` chunks.
    pub fn steps_per_epoch(&self, n_chunks: usize) -> usize {
        n_chunks.div_ceil(self.chunks_per_batch.max(1))
    }

    /// The same mini-batches as sample indices (for the exact reference), through the chunks'
    /// members.
    pub fn sample_batches(&self, chunks: &PackedChunks, epoch: usize) -> Vec<Vec<usize>> {
        self.epoch_batches(chunks.len(), epoch)
            .iter()
            .map(|b| {
                b.iter()
                    .filter_map(|&c| chunks.members.get(c))
                    .flatten()
                    .copied()
                    .collect()
            })
            .collect()
    }

    /// An early-stopping tracker for this plan.
    pub fn early_stopping(&self) -> EarlyStopping {
        EarlyStopping::new(self.patience, self.min_delta)
    }
}

/// What an epoch's validation loss means for the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A new best: keep this epoch's model.
    Improved,
    /// Not better than the best, patience left.
    Worse,
    /// Patience exhausted: stop and keep the best epoch's model.
    Stop,
}

/// Early stopping on the validation loss, decided by the hospital from one decrypted number per
/// epoch. Plain fields, so a checkpoint can store it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EarlyStopping {
    /// Epochs without improvement tolerated (`None`: never stop early).
    pub patience: Option<usize>,
    /// Minimum decrease that counts as an improvement.
    pub min_delta: f64,
    /// Best loss so far.
    pub best: Option<f64>,
    /// Epoch of the best loss.
    pub best_epoch: usize,
    /// Epochs since the best.
    pub bad_epochs: usize,
}

impl EarlyStopping {
    /// A tracker with no observation yet.
    pub fn new(patience: Option<usize>, min_delta: f64) -> Self {
        Self {
            patience,
            min_delta,
            best: None,
            best_epoch: 0,
            bad_epochs: 0,
        }
    }

    /// Records the validation loss of `epoch`. A non-finite loss never counts as an
    /// improvement.
    pub fn observe(&mut self, epoch: usize, loss: f64) -> Verdict {
        let better = loss.is_finite()
            && match self.best {
                None => true,
                Some(b) => loss < b - self.min_delta,
            };
        if better {
            self.best = Some(loss);
            self.best_epoch = epoch;
            self.bad_epochs = 0;
            return Verdict::Improved;
        }
        self.bad_epochs += 1;
        match self.patience {
            Some(p) if self.bad_epochs >= p => Verdict::Stop,
            _ => Verdict::Worse,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffles_are_seeded_permutations() {
        let a = shuffled(1000, 1);
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..1000).collect::<Vec<_>>());
        assert_eq!(a, shuffled(1000, 1));
        assert_ne!(a, shuffled(1000, 2));
        assert_ne!(a, sorted);
    }

    #[test]
    fn epochs_permute_chunks_differently() {
        let p = Plan {
            chunks_per_batch: 3,
            seed: 5,
            ..Plan::default()
        };
        let e0 = p.epoch_batches(10, 0);
        let e1 = p.epoch_batches(10, 1);
        assert_eq!(e0.len(), 4);
        assert_eq!(p.steps_per_epoch(10), 4);
        assert_eq!(e0.last().map(Vec::len), Some(1));
        let mut all: Vec<usize> = e0.iter().flatten().copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        assert_ne!(e0, e1);
        assert_eq!(e0, p.epoch_batches(10, 0));
    }

    #[test]
    fn early_stopping_waits_for_patience() {
        let mut s = EarlyStopping::new(Some(2), 0.01);
        assert_eq!(s.observe(0, 1.0), Verdict::Improved);
        assert_eq!(s.observe(1, 0.995), Verdict::Worse, "below min_delta");
        assert_eq!(s.observe(2, 0.5), Verdict::Improved);
        assert_eq!(s.observe(3, f64::NAN), Verdict::Worse);
        assert_eq!(s.observe(4, 0.6), Verdict::Stop);
        assert_eq!((s.best, s.best_epoch), (Some(0.5), 2));
        let mut never = EarlyStopping::new(None, 0.0);
        never.observe(0, 1.0);
        for e in 1..20 {
            assert_eq!(never.observe(e, 2.0), Verdict::Worse);
        }
    }

    #[test]
    fn packing_keeps_every_sample_once() {
        let data = Dataset::new(
            3,
            2,
            (0..30).map(f64::from).collect(),
            (0..10).map(|i| i % 2).collect(),
        )
        .expect("dataset");
        let l = Layout::new(64, 3, 2).expect("layout");
        let order = shuffled(10, 3);
        let p = pack_chunks(&l, &data, &order);
        assert_eq!(p.rows.iter().sum::<usize>(), 10);
        assert!(p.rows.iter().all(|&r| r <= l.rows));
        let flat: Vec<usize> = p.members.iter().flatten().copied().collect();
        assert_eq!(flat, order);
        let plan = Plan {
            chunks_per_batch: 2,
            ..Plan::default()
        };
        let sb = plan.sample_batches(&p, 0);
        let mut all: Vec<usize> = sb.iter().flatten().copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        let c = p.map(<[f64]>::to_vec);
        let b = c.batch(&[0, 99]);
        assert_eq!(b.rows, alloc::vec![p.rows[0]]);
    }
}
