//! Wall-clock time per operation kind (`std` only): a [`Backend`] wrapper for cost reports and
//! the terminal app's time split. Place it *inside* [`crate::refresh::AutoRefresh`] so that
//! refreshes are timed apart from the products that trigger them.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use std::time::{Duration, Instant};

use crate::backend::{Backend, OpCounts, PlainId};

/// Time spent per kind of operation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpTimes {
    /// Ciphertext products (tensor, relinearisation, rescale).
    pub mult: Duration,
    /// Plaintext and constant products.
    pub cmult: Duration,
    /// Rotations.
    pub rot: Duration,
    /// Additions and subtractions.
    pub add: Duration,
    /// Refreshes (bootstrapping or the hospital round trip).
    pub refresh: Duration,
}

impl OpTimes {
    /// All of it.
    pub fn total(&self) -> Duration {
        self.mult + self.cmult + self.rot + self.add + self.refresh
    }
}

impl core::ops::Sub for OpTimes {
    type Output = Self;
    fn sub(self, o: Self) -> Self {
        Self {
            mult: self.mult.saturating_sub(o.mult),
            cmult: self.cmult.saturating_sub(o.cmult),
            rot: self.rot.saturating_sub(o.rot),
            add: self.add.saturating_sub(o.add),
            refresh: self.refresh.saturating_sub(o.refresh),
        }
    }
}

/// How many operations ran at each level (an operation's cost grows with the primes its
/// operands carry): rotations, ciphertext products (one per pair of a sum) and plaintext or
/// constant products, keyed by the level of their input.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpLevels {
    /// Rotations by input level.
    pub rot: BTreeMap<usize, u64>,
    /// Ciphertext products by the lower operand's level.
    pub mult: BTreeMap<usize, u64>,
    /// Plaintext and constant products by input level.
    pub cmult: BTreeMap<usize, u64>,
}

fn bump(map: &mut BTreeMap<usize, u64>, level: usize, n: u64) {
    *map.entry(level).or_insert(0) += n;
}

/// Times every operation of the wrapped backend and counts them by level.
#[derive(Clone, Debug)]
pub struct Timed<B> {
    /// The wrapped backend.
    pub inner: B,
    /// Accumulated times.
    pub times: OpTimes,
    /// Operations by level (reset it to count a span of work).
    pub levels: OpLevels,
}

impl<B> Timed<B> {
    /// Wraps `inner` with zero times.
    pub fn new(inner: B) -> Self {
        Self {
            inner,
            times: OpTimes::default(),
            levels: OpLevels::default(),
        }
    }
}

fn timed<T>(slot: &mut Duration, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let out = f();
    *slot += t.elapsed();
    out
}

impl<B: Backend> Backend for Timed<B> {
    type Vector = B::Vector;
    type Error = B::Error;

    fn slots(&self) -> usize {
        self.inner.slots()
    }
    fn top_level(&self) -> usize {
        self.inner.top_level()
    }
    fn refresh_period(&self) -> Option<usize> {
        self.inner.refresh_period()
    }
    fn level(&self, v: &B::Vector) -> usize {
        self.inner.level(v)
    }
    fn plain(&mut self, values: Vec<f64>) -> PlainId {
        self.inner.plain(values)
    }
    fn add(&mut self, a: &B::Vector, b: &B::Vector) -> Result<B::Vector, B::Error> {
        timed(&mut self.times.add, || self.inner.add(a, b))
    }
    fn sub(&mut self, a: &B::Vector, b: &B::Vector) -> Result<B::Vector, B::Error> {
        timed(&mut self.times.add, || self.inner.sub(a, b))
    }
    fn add_const(&mut self, a: &B::Vector, c: f64) -> Result<B::Vector, B::Error> {
        timed(&mut self.times.add, || self.inner.add_const(a, c))
    }
    fn add_plain(&mut self, a: &B::Vector, p: PlainId) -> Result<B::Vector, B::Error> {
        timed(&mut self.times.add, || self.inner.add_plain(a, p))
    }
    fn mul_const(&mut self, a: &B::Vector, c: f64) -> Result<B::Vector, B::Error> {
        bump(&mut self.levels.cmult, self.inner.level(a), 1);
        timed(&mut self.times.cmult, || self.inner.mul_const(a, c))
    }
    fn mul_plain(&mut self, a: &B::Vector, p: PlainId) -> Result<B::Vector, B::Error> {
        bump(&mut self.levels.cmult, self.inner.level(a), 1);
        timed(&mut self.times.cmult, || self.inner.mul_plain(a, p))
    }
    fn mul_sum(&mut self, pairs: &[(&B::Vector, &B::Vector)]) -> Result<B::Vector, B::Error> {
        let low = pairs
            .iter()
            .map(|(a, b)| self.inner.level(a).min(self.inner.level(b)))
            .min();
        if let Some(l) = low {
            bump(&mut self.levels.mult, l, pairs.len() as u64);
        }
        timed(&mut self.times.mult, || self.inner.mul_sum(pairs))
    }
    fn rotate(&mut self, a: &B::Vector, step: i64) -> Result<B::Vector, B::Error> {
        bump(&mut self.levels.rot, self.inner.level(a), 1);
        timed(&mut self.times.rot, || self.inner.rotate(a, step))
    }
    fn rotate_many(&mut self, a: &B::Vector, steps: &[i64]) -> Result<Vec<B::Vector>, B::Error> {
        bump(
            &mut self.levels.rot,
            self.inner.level(a),
            steps.len() as u64,
        );
        timed(&mut self.times.rot, || self.inner.rotate_many(a, steps))
    }
    fn refresh(&mut self, v: &B::Vector) -> Result<B::Vector, B::Error> {
        timed(&mut self.times.refresh, || self.inner.refresh(v))
    }
    fn lower(&mut self, v: &B::Vector, level: usize) -> Result<B::Vector, B::Error> {
        timed(&mut self.times.cmult, || self.inner.lower(v, level))
    }
    fn needs_refresh(&self, v: &B::Vector, levels: usize) -> bool {
        self.inner.needs_refresh(v, levels)
    }
    fn refresh_many(&mut self, vs: &[&B::Vector]) -> Result<Vec<B::Vector>, B::Error> {
        timed(&mut self.times.refresh, || self.inner.refresh_many(vs))
    }
    fn refresh_many_to(
        &mut self,
        vs: &[&B::Vector],
        level: usize,
    ) -> Result<Vec<B::Vector>, B::Error> {
        timed(&mut self.times.refresh, || {
            self.inner.refresh_many_to(vs, level)
        })
    }
    fn reserve_many(
        &mut self,
        vs: &[&B::Vector],
        levels: usize,
    ) -> Result<Vec<Option<B::Vector>>, B::Error> {
        timed(&mut self.times.refresh, || {
            self.inner.reserve_many(vs, levels)
        })
    }
    fn reserve(&mut self, v: &B::Vector, levels: usize) -> Result<Option<B::Vector>, B::Error> {
        timed(&mut self.times.refresh, || self.inner.reserve(v, levels))
    }
    fn counts(&self) -> OpCounts {
        self.inner.counts()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Mirror;
    use crate::refresh::AutoRefresh;

    #[test]
    fn refreshes_are_timed_apart_and_counts_pass_through() {
        let m = Mirror::new(8, 1);
        let mut be = AutoRefresh::new(Timed::new(m.clone()), 0);
        let a = m.vector(alloc::vec![1.0; 8]);
        let b = be.mul(&a, &a).expect("product");
        let c = be.mul(&b, &b).expect("refresh, then product");
        assert_eq!(c.values, alloc::vec![1.0; 8]);
        let counts = be.counts();
        assert_eq!((counts.mult, counts.refresh), (2, 1));
        let t = be.inner.times;
        assert_eq!(t.total(), t.mult + t.refresh);
        assert!(t.rot.is_zero() && t.cmult.is_zero());
        // The second product ran on the refreshed operand, at the top level.
        let want: BTreeMap<usize, u64> = [(1, 2)].into_iter().collect();
        assert_eq!(be.inner.levels.mult, want);
        let r = be.rotate(&c, 1).expect("rotation");
        let _ = be.rotate_many(&r, &[1, 2, 3]).expect("rotations");
        let rot: BTreeMap<usize, u64> = [(0, 4)].into_iter().collect();
        assert_eq!(be.inner.levels.rot, rot);
    }
}
