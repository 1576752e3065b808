//! The exact reference: ordinary f64 softmax regression trained with Nesterov accelerated
//! gradient, no approximations. It measures what the approximations cost.

use alloc::vec::Vec;

use crate::data::Dataset;
use crate::nag::Schedule;

/// A linear softmax model: `W` is `classes × (features + 1)` row-major, the last column the bias.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    /// Number of classes.
    pub classes: usize,
    /// Features per sample (without the bias).
    pub features: usize,
    /// Weights, row-major, `classes × (features + 1)`.
    pub w: Vec<f64>,
}

impl Model {
    /// The zero model.
    pub fn zeros(classes: usize, features: usize) -> Self {
        Self {
            classes,
            features,
            w: alloc::vec![0.0; classes * (features + 1)],
        }
    }

    /// Logits of one sample.
    pub fn logits(&self, x: &[f64], out: &mut [f64]) {
        let d = self.features + 1;
        for (k, o) in out.iter_mut().enumerate().take(self.classes) {
            let row = self.w.get(k * d..(k + 1) * d).unwrap_or_default();
            let (wx, bias) = row.split_at(self.features.min(row.len()));
            *o = wx.iter().zip(x).map(|(a, b)| a * b).sum::<f64>()
                + bias.first().copied().unwrap_or(0.0);
        }
    }

    /// Predicted class of one sample.
    pub fn predict(&self, x: &[f64]) -> usize {
        let mut z = alloc::vec![0.0; self.classes];
        self.logits(x, &mut z);
        argmax(&z)
    }

    /// Accuracy on a dataset.
    pub fn accuracy(&self, data: &Dataset) -> f64 {
        if data.is_empty() {
            return 0.0;
        }
        let correct = (0..data.len())
            .filter(|&i| self.predict(data.row(i)) == data.label(i))
            .count();
        correct as f64 / data.len() as f64
    }

    /// Mean Brier score `(1/n) Σ Σ_k (p_k − y_k)²` on a dataset (the validation loss the
    /// encrypted run computes, here with the exact softmax).
    pub fn brier(&self, data: &Dataset) -> f64 {
        let mut z = alloc::vec![0.0; self.classes];
        let mut total = 0.0;
        for i in 0..data.len() {
            self.logits(data.row(i), &mut z);
            softmax(&mut z);
            let y = data.label(i);
            total += z
                .iter()
                .enumerate()
                .map(|(k, p)| {
                    let d = p - if k == y { 1.0 } else { 0.0 };
                    d * d
                })
                .sum::<f64>();
        }
        total / data.len().max(1) as f64
    }

    /// Mean cross-entropy loss on a dataset.
    pub fn loss(&self, data: &Dataset) -> f64 {
        let mut z = alloc::vec![0.0; self.classes];
        let mut total = 0.0;
        for i in 0..data.len() {
            self.logits(data.row(i), &mut z);
            let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let lse = m + libm::log(z.iter().map(|v| libm::exp(v - m)).sum::<f64>());
            total += lse - z.get(data.label(i)).copied().unwrap_or(0.0);
        }
        total / data.len().max(1) as f64
    }

    /// Largest |logit| over a dataset (the bound the encrypted softmax must cover).
    pub fn max_abs_logit(&self, data: &Dataset) -> f64 {
        let mut z = alloc::vec![0.0; self.classes];
        let mut m = 0.0f64;
        for i in 0..data.len() {
            self.logits(data.row(i), &mut z);
            m = z.iter().fold(m, |acc, v| acc.max(v.abs()));
        }
        m
    }
}

/// Index of the largest entry (first on ties).
pub fn argmax(z: &[f64]) -> usize {
    z.iter()
        .enumerate()
        .fold((0, f64::NEG_INFINITY), |(bi, bv), (i, &v)| {
            if v > bv { (i, v) } else { (bi, bv) }
        })
        .0
}

/// Exact softmax of `z` in place.
pub fn softmax(z: &mut [f64]) {
    let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut s = 0.0;
    for v in z.iter_mut() {
        *v = libm::exp(*v - m);
        s += *v;
    }
    for v in z.iter_mut() {
        *v /= s;
    }
}

/// Gradient of the mean cross-entropy over `batch` (indices into `data`) at `model`, into
/// `grad` (same shape as `model.w`).
pub fn gradient(model: &Model, data: &Dataset, batch: &[usize], grad: &mut [f64]) {
    let d = model.features + 1;
    grad.fill(0.0);
    let mut p = alloc::vec![0.0; model.classes];
    for &i in batch {
        let x = data.row(i);
        model.logits(x, &mut p);
        softmax(&mut p);
        if let Some(t) = p.get_mut(data.label(i)) {
            *t -= 1.0;
        }
        for (k, &e) in p.iter().enumerate() {
            let row = grad.get_mut(k * d..(k + 1) * d).unwrap_or_default();
            for (g, &xv) in row.iter_mut().zip(x.iter().chain(core::iter::once(&1.0))) {
                *g += e * xv;
            }
        }
    }
    let scale = 1.0 / batch.len().max(1) as f64;
    grad.iter_mut().for_each(|g| *g *= scale);
}

/// Exact Nesterov accelerated gradient, one mini-batch at a time:
/// `w_{t+1} = y_t − η_t ∇L(y_t)`, `y_{t+1} = w_{t+1} + γ_t (w_{t+1} − w_t)`.
#[derive(Clone, Debug)]
pub struct Nag {
    /// The weights `w_t`.
    pub w: Model,
    look: Model,
    grad: Vec<f64>,
    prev: Vec<f64>,
    /// Steps taken.
    pub t: usize,
}

impl Nag {
    /// Zero weights.
    pub fn new(classes: usize, features: usize) -> Self {
        let w = Model::zeros(classes, features);
        let n = w.w.len();
        Self {
            look: w.clone(),
            w,
            grad: alloc::vec![0.0; n],
            prev: alloc::vec![0.0; n],
            t: 0,
        }
    }

    /// One step on the samples `batch` of `data`.
    pub fn step(&mut self, data: &Dataset, batch: &[usize], schedule: &Schedule) {
        gradient(&self.look, data, batch, &mut self.grad);
        let (eta, gamma) = (schedule.learning_rate(self.t), schedule.momentum(self.t));
        self.prev.copy_from_slice(&self.w.w);
        for ((wn, yv), g) in self.w.w.iter_mut().zip(&self.look.w).zip(&self.grad) {
            *wn = yv - eta * g;
        }
        for ((yv, wn), wp) in self.look.w.iter_mut().zip(&self.w.w).zip(&self.prev) {
            *yv = wn + gamma * (wn - wp);
        }
        self.t += 1;
    }
}

/// Trains with NAG ([`Nag`]) over the given mini-batches per epoch. Returns the model after
/// each epoch.
pub fn train(data: &Dataset, epochs: &[Vec<Vec<usize>>], schedule: &Schedule) -> Vec<Model> {
    let mut nag = Nag::new(data.classes(), data.features());
    let mut out = Vec::with_capacity(epochs.len());
    for batches in epochs {
        for batch in batches {
            nag.step(data, batch, schedule);
        }
        out.push(nag.w.clone());
    }
    out
}
