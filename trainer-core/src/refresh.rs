//! Automatic refresh: a [`Backend`] wrapper that brings every operand of a level-consuming
//! operation back to the top level (through the inner backend's `refresh`: bootstrapping or the
//! hospital-aided protocol) when its level is below `min_level + 1`.
//!
//! The policy is deterministic and depends only on levels, which the mirror tracks exactly like
//! the encrypted backend, so both refresh at the same points of the same step.

use alloc::vec::Vec;

use crate::backend::{Backend, OpCounts, PlainId};

/// Refreshed copies of the two operands of a product (`None`: used as they are).
type Refreshed<V> = (Option<V>, Option<V>);

/// The window ([`AutoRefresh::window`]) for the hospital-aided refresh: refreshed values keep
/// 10 levels. At N = 2^16, batch 1024 that roughly halves a step against the full height
/// (`examples/train_cost.rs`, `BLINDTUNER_WINDOW`), for two to three times the refreshes.
pub const HOSPITAL_WINDOW: usize = 10;

/// The lowest level operands of products keep in the hospital-aided mode
/// ([`AutoRefresh::min_level`]): the primes below it hold the statistical mask of the refresh.
pub const HOSPITAL_MIN_LEVEL: usize = 2;

/// The level the hospital encrypts the training, validation and test data at for the
/// hospital-aided mode (capped by the backend's top level, [`crate::ckks::data_level`]):
/// [`HOSPITAL_MIN_LEVEL`] + 3. The data only ever meets three levels of work: the logits (the
/// product with the weights and the class mask) and the gradient (the product with the
/// errors, its mask, then the momentum term of the update), so anything above that would
/// be dropped by the step. Encrypted this low, every rotation and product of the data runs
/// on 6 primes instead of the weights' up to 13 (at N = 2^16, batch 1024: a step of the same
/// cost every time, about a third less rotation work) and the upload is 6 of the top level's
/// 31 primes.
pub const HOSPITAL_DATA_LEVEL: usize = HOSPITAL_MIN_LEVEL + 3;

/// Wraps a backend with the automatic refresh policy.
#[derive(Clone, Debug)]
pub struct AutoRefresh<B> {
    /// The wrapped backend.
    pub inner: B,
    /// Lowest level a value may be at when it is used by a multiplication. The hospital-aided
    /// refresh masks at this level, so it must leave room for the statistical mask.
    pub min_level: usize,
    /// Levels a refreshed value keeps above `min_level` (`None`: all, up to the top). Every
    /// operation's cost grows with the level it runs at, so where a refresh is cheap (the
    /// hospital's) a short window runs the whole step on few primes; where it is dear
    /// (bootstrapping) the full height is kept.
    pub window: Option<usize>,
}

impl<B: Backend> AutoRefresh<B> {
    /// Wraps `inner`.
    pub fn new(inner: B, min_level: usize) -> Self {
        Self {
            inner,
            min_level,
            window: None,
        }
    }

    /// With refreshed values lowered to `min_level + window` ([`Self::window`]).
    pub fn with_window(mut self, window: Option<usize>) -> Self {
        self.window = window;
        self
    }

    /// `v` refreshed into the window.
    fn refreshed(&mut self, v: &B::Vector) -> Result<B::Vector, B::Error> {
        let mut r = self.refreshed_many(&[v])?;
        r.pop().map_or_else(|| self.inner.refresh(v), Ok)
    }

    /// Several vectors refreshed together (paired where the backend can), into the window
    /// ([`Backend::refresh_many_to`]: the hospital answers on the window's primes).
    fn refreshed_many(&mut self, vs: &[&B::Vector]) -> Result<Vec<B::Vector>, B::Error> {
        match self.window {
            Some(w) => self
                .inner
                .refresh_many_to(vs, self.min_level.saturating_add(w)),
            None => self.inner.refresh_many(vs),
        }
    }

    /// Levels a refreshed value has above `min_level`.
    fn capacity(&self) -> usize {
        let top = self.inner.top_level().saturating_sub(self.min_level);
        self.window.map_or(top, |w| w.min(top))
    }

    fn fresh(&mut self, v: &B::Vector) -> Result<Option<B::Vector>, B::Error> {
        if self.inner.level(v) <= self.min_level {
            Ok(Some(self.refreshed(v)?))
        } else {
            Ok(None)
        }
    }
}

impl<B: Backend> Backend for AutoRefresh<B> {
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
        self.inner.add(a, b)
    }
    fn sub(&mut self, a: &B::Vector, b: &B::Vector) -> Result<B::Vector, B::Error> {
        self.inner.sub(a, b)
    }
    fn add_const(&mut self, a: &B::Vector, c: f64) -> Result<B::Vector, B::Error> {
        self.inner.add_const(a, c)
    }
    fn add_plain(&mut self, a: &B::Vector, p: PlainId) -> Result<B::Vector, B::Error> {
        self.inner.add_plain(a, p)
    }
    fn mul_const(&mut self, a: &B::Vector, c: f64) -> Result<B::Vector, B::Error> {
        match self.fresh(a)? {
            Some(f) => self.inner.mul_const(&f, c),
            None => self.inner.mul_const(a, c),
        }
    }
    fn mul_plain(&mut self, a: &B::Vector, p: PlainId) -> Result<B::Vector, B::Error> {
        match self.fresh(a)? {
            Some(f) => self.inner.mul_plain(&f, p),
            None => self.inner.mul_plain(a, p),
        }
    }
    fn mul_sum(&mut self, pairs: &[(&B::Vector, &B::Vector)]) -> Result<B::Vector, B::Error> {
        // Every stale operand (a squaring's once), refreshed together so they can be paired.
        let mut stale: Vec<&B::Vector> = Vec::new();
        for (a, b) in pairs {
            for v in [*a, *b] {
                if self.inner.level(v) <= self.min_level
                    && !stale.iter().any(|s| core::ptr::eq(*s, v))
                {
                    stale.push(v);
                }
            }
        }
        let fresh = self.refreshed_many(&stale)?;
        let find = |v: &B::Vector| {
            stale
                .iter()
                .position(|s| core::ptr::eq(*s, v))
                .and_then(|i| fresh.get(i).cloned())
        };
        let owned: Vec<Refreshed<B::Vector>> =
            pairs.iter().map(|(a, b)| (find(a), find(b))).collect();
        let refs: Vec<(&B::Vector, &B::Vector)> = pairs
            .iter()
            .zip(&owned)
            .map(|((a, b), (fa, fb))| (fa.as_ref().unwrap_or(a), fb.as_ref().unwrap_or(b)))
            .collect();
        self.inner.mul_sum(&refs)
    }
    fn rotate(&mut self, a: &B::Vector, step: i64) -> Result<B::Vector, B::Error> {
        self.inner.rotate(a, step)
    }
    fn rotate_many(&mut self, a: &B::Vector, steps: &[i64]) -> Result<Vec<B::Vector>, B::Error> {
        self.inner.rotate_many(a, steps)
    }
    /// Into the window, as the automatic refreshes.
    fn refresh(&mut self, v: &B::Vector) -> Result<B::Vector, B::Error> {
        self.refreshed(v)
    }
    fn lower(&mut self, v: &B::Vector, level: usize) -> Result<B::Vector, B::Error> {
        self.inner.lower(v, level)
    }
    /// Refreshes `v` when it is below `min_level + levels`: the last of `levels` operations in
    /// a row would otherwise meet it at `min_level` and refresh it then. With a window, a `v`
    /// above it (a fresh encryption) is lowered into it, so what follows runs on few primes.
    fn refresh_many(&mut self, vs: &[&B::Vector]) -> Result<Vec<B::Vector>, B::Error> {
        self.inner.refresh_many(vs)
    }
    /// [`Backend::reserve`] of each, with the refreshes among them made together.
    fn reserve_many(
        &mut self,
        vs: &[&B::Vector],
        levels: usize,
    ) -> Result<Vec<Option<B::Vector>>, B::Error> {
        let stale: Vec<&B::Vector> = vs
            .iter()
            .copied()
            .filter(|v| self.needs_refresh(v, levels))
            .collect();
        let mut fresh = self.refreshed_many(&stale)?.into_iter();
        let mut out = Vec::with_capacity(vs.len());
        for v in vs {
            out.push(if self.needs_refresh(v, levels) {
                fresh.next()
            } else {
                self.reserve(v, levels)?
            });
        }
        Ok(out)
    }
    /// More levels than a refresh gives (the window, or the top) cannot be reserved: then only
    /// a vector with no level left needs a refresh now, and the computation refreshes
    /// along the way.
    fn needs_refresh(&self, v: &B::Vector, levels: usize) -> bool {
        let levels = if levels > self.capacity() { 1 } else { levels };
        self.inner.level(v) < self.min_level + levels
    }
    fn reserve(&mut self, v: &B::Vector, levels: usize) -> Result<Option<B::Vector>, B::Error> {
        if self.needs_refresh(v, levels) {
            return Ok(Some(self.refreshed(v)?));
        }
        let level = self.inner.level(v);
        match self.window {
            Some(w) if level > self.min_level + w.max(levels) => {
                Ok(Some(self.inner.lower(v, self.min_level + w.max(levels))?))
            }
            _ => Ok(None),
        }
    }
    fn counts(&self) -> OpCounts {
        self.inner.counts()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::backend::Mirror;

    #[test]
    fn reserve_refreshes_exactly_when_the_levels_would_run_out() {
        let m = Mirror::new(4, 6);
        let mut be = AutoRefresh::new(m.clone(), 2);
        let mut v = m.vector(alloc::vec![0.5; 4]);
        v.level = 5;
        // Levels 5, 4, 3 are above the minimum: three operations fit, four do not.
        assert!(be.reserve(&v, 3).unwrap().is_none());
        assert_eq!(be.counts().refresh, 0);
        let r = be.reserve(&v, 4).unwrap().unwrap();
        assert_eq!((r.level, r.values.clone()), (6, v.values.clone()));
        assert_eq!(be.counts().refresh, 1);
        // What reserve promised: `levels` multiplications without an automatic refresh.
        let mut w = r;
        for _ in 0..4 {
            w = be.mul_const(&w, 1.0).unwrap();
        }
        assert_eq!((w.level, be.counts().refresh), (2, 1));
        // With a window, refreshed values land at min_level + window, and values above it are
        // lowered into it.
        let mut wb = AutoRefresh::new(Mirror::new(4, 20), 2).with_window(Some(5));
        let r = wb.reserve(&v, 4).unwrap().unwrap();
        assert_eq!(r.level, 7);
        let mut high = m.vector(alloc::vec![0.5; 4]);
        high.level = 20;
        assert_eq!(wb.reserve(&high, 2).unwrap().unwrap().level, 7);
        assert_eq!(wb.reserve(&high, 9).unwrap().unwrap().level, 11);
        assert_eq!(wb.counts().refresh, 1);
        let mut low = m.vector(alloc::vec![0.5; 4]);
        low.level = 2;
        let f = wb.mul_const(&low, 1.0).unwrap();
        assert_eq!((f.level, wb.counts().refresh), (6, 2));
        // More levels than a refresh gives (the window's 5) cannot be reserved: a vector that
        // can still take one is left for the computation to refresh along the way, one that
        // cannot is refreshed.
        let mut mid = m.vector(alloc::vec![0.5; 4]);
        mid.level = 3;
        assert!(!wb.needs_refresh(&mid, 9));
        assert!(wb.reserve(&mid, 9).unwrap().is_none());
        assert!(wb.needs_refresh(&low, 9));
        assert_eq!(wb.reserve(&low, 9).unwrap().unwrap().level, 7);
        assert!(wb.needs_refresh(&mid, 2) && !wb.needs_refresh(&mid, 1));
        // The plain mirror refreshes nothing by itself.
        let mut plain = m.clone();
        assert!(plain.reserve(&v, 100).unwrap().is_none());
    }
}
