//! The slot-vector backend the training algorithm is written against, and the plaintext
//! mirror.
//!
//! Every operation that consumes a level says so; both backends track levels the same way, so
//! the algorithm's refresh decisions (and therefore its step order) are identical on the
//! encrypted backend and on the mirror.

use alloc::vec::Vec;
use core::fmt;
use core::ops::{Add, Mul, Sub};

use fhe_core::encoding::Complex;

/// A handle to a registered plaintext operand (mask or constant vector).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PlainId(pub usize);

/// Operation counts, as in HETAL's cost tables: ciphertext–ciphertext multiplications
/// (`mult`, each followed by one relinearisation unless summed), plaintext/constant
/// multiplications (`cmult`), rotations (`rot`), plus relinearisations, additions, refreshes
/// and conjugations (`conj`: a key switch like a rotation, which HETAL's tables do not list;
/// only the complex-slot products of [`crate::hetal`] use it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpCounts {
    pub mult: u64,
    pub cmult: u64,
    pub rot: u64,
    pub relin: u64,
    pub add: u64,
    pub refresh: u64,
    pub conj: u64,
}

impl core::ops::Sub for OpCounts {
    type Output = Self;
    fn sub(self, o: Self) -> Self {
        Self {
            mult: self.mult - o.mult,
            cmult: self.cmult - o.cmult,
            rot: self.rot - o.rot,
            relin: self.relin - o.relin,
            add: self.add - o.add,
            refresh: self.refresh - o.refresh,
            conj: self.conj - o.conj,
        }
    }
}

/// Slot-vector operations. `level` counts the multiplications a vector can still absorb.
pub trait Backend {
    /// A (possibly encrypted) slot vector.
    type Vector: Clone;
    /// The backend's error.
    type Error: fmt::Debug + fmt::Display;

    /// Slots per vector.
    fn slots(&self) -> usize;
    /// The level of a freshly encrypted or refreshed vector.
    fn top_level(&self) -> usize;
    /// The level of `v`.
    fn level(&self, v: &Self::Vector) -> usize;
    /// Registers a plaintext operand.
    fn plain(&mut self, values: Vec<f64>) -> PlainId;
    /// `a + b` (at the lower level).
    fn add(&mut self, a: &Self::Vector, b: &Self::Vector) -> Result<Self::Vector, Self::Error>;
    /// `a − b`.
    fn sub(&mut self, a: &Self::Vector, b: &Self::Vector) -> Result<Self::Vector, Self::Error>;
    /// `a + c` in every slot.
    fn add_const(&mut self, a: &Self::Vector, c: f64) -> Result<Self::Vector, Self::Error>;
    /// `a + p` for a registered plaintext.
    fn add_plain(&mut self, a: &Self::Vector, p: PlainId) -> Result<Self::Vector, Self::Error>;
    /// `c·a`; one level.
    fn mul_const(&mut self, a: &Self::Vector, c: f64) -> Result<Self::Vector, Self::Error>;
    /// `a ⊙ p`; one level.
    fn mul_plain(&mut self, a: &Self::Vector, p: PlainId) -> Result<Self::Vector, Self::Error>;
    /// `a ⊙ b`; one level.
    fn mul(&mut self, a: &Self::Vector, b: &Self::Vector) -> Result<Self::Vector, Self::Error> {
        self.mul_sum(&[(a, b)])
    }
    /// `Σ a_i ⊙ b_i` with a single relinearisation and rescale; one level.
    fn mul_sum(
        &mut self,
        pairs: &[(&Self::Vector, &Self::Vector)],
    ) -> Result<Self::Vector, Self::Error>;
    /// `a` rotated left by `step` slots.
    fn rotate(&mut self, a: &Self::Vector, step: i64) -> Result<Self::Vector, Self::Error>;
    /// `a` rotated by each step (hoisted on the encrypted backend).
    fn rotate_many(
        &mut self,
        a: &Self::Vector,
        steps: &[i64],
    ) -> Result<Vec<Self::Vector>, Self::Error> {
        steps.iter().map(|&s| self.rotate(a, s)).collect()
    }
    /// `v` brought back to the top level (bootstrapping or the hospital-aided refresh).
    fn refresh(&mut self, v: &Self::Vector) -> Result<Self::Vector, Self::Error>;
    /// Refreshes several vectors; backends that can refresh two for the price of one (a
    /// bootstrapping of `a + i·b`) pair them up.
    fn refresh_many(&mut self, vs: &[&Self::Vector]) -> Result<Vec<Self::Vector>, Self::Error> {
        vs.iter().map(|v| self.refresh(v)).collect()
    }
    /// The period (in slots) that vectors given to [`Backend::refresh`] must repeat with,
    /// when it is shorter than the vector: a bootstrapping at fewer slots than the vector
    /// has (`N/4` instead of `N/2`, about a third faster) refreshes a vector that repeats
    /// with that period and nothing else. `None`: any vector. The trainer folds its packs
    /// for a period of half the slots ([`crate::layout::Layout::folded_class_mask`]).
    /// Required (no default), so that a wrapper cannot drop it by accident.
    fn refresh_period(&self) -> Option<usize>;
    /// Whether `v` would be refreshed before it has gone through `levels` more
    /// level-consuming operations ([`crate::refresh::AutoRefresh`]); `false` for backends
    /// that refresh nothing by themselves.
    fn needs_refresh(&self, v: &Self::Vector, levels: usize) -> bool {
        let _ = (v, levels);
        false
    }
    /// [`Backend::refresh_many`] of vectors that are lowered to `level` right after
    /// ([`crate::refresh::AutoRefresh::window`]): a backend may produce them there directly
    /// (the hospital then re-encrypts on that level's primes, not the top's).
    fn refresh_many_to(
        &mut self,
        vs: &[&Self::Vector],
        level: usize,
    ) -> Result<Vec<Self::Vector>, Self::Error> {
        let rs = self.refresh_many(vs)?;
        rs.iter().map(|r| self.lower(r, level)).collect()
    }
    /// [`Backend::reserve`] of several vectors at once, so that the refreshes among them can
    /// be paired ([`Backend::refresh_many`]).
    fn reserve_many(
        &mut self,
        vs: &[&Self::Vector],
        levels: usize,
    ) -> Result<Vec<Option<Self::Vector>>, Self::Error> {
        vs.iter().map(|v| self.reserve(v, levels)).collect()
    }
    /// `v` at `level` when that is below its own (the levels above are dropped), else `v`.
    /// No level is consumed beyond the dropped ones; on the encrypted backend every later
    /// operation on the result is cheaper (fewer primes).
    fn lower(&mut self, v: &Self::Vector, level: usize) -> Result<Self::Vector, Self::Error>;
    /// A refreshed copy of `v` when `v` cannot go through `levels` more level-consuming
    /// operations without an automatic refresh ([`crate::refresh::AutoRefresh`]); `None` when
    /// it can, or when the backend refreshes nothing by itself. The trainer calls this where
    /// one vector is about to fan out into many (a packed softmax into its chunks), so that
    /// one refresh replaces many.
    fn reserve(
        &mut self,
        v: &Self::Vector,
        levels: usize,
    ) -> Result<Option<Self::Vector>, Self::Error> {
        let _ = (v, levels);
        Ok(None)
    }
    /// Operations performed so far.
    fn counts(&self) -> OpCounts;
}

/// The number type of the mirror's slots: `f64` for the trainer, [`Complex`] for the
/// complex-slot products of [`crate::hetal`].
pub trait MirrorScalar:
    Copy + PartialEq + fmt::Debug + Add<Output = Self> + Sub<Output = Self> + Mul<Output = Self>
{
    /// `0`.
    const ZERO: Self;
    /// The real number `x`.
    fn real(x: f64) -> Self;
}

impl MirrorScalar for f64 {
    const ZERO: Self = 0.0;
    fn real(x: f64) -> Self {
        x
    }
}

impl MirrorScalar for Complex {
    const ZERO: Self = Complex::ZERO;
    fn real(x: f64) -> Self {
        Complex::new(x, 0.0)
    }
}

/// A slot vector of the mirror: values and the level a ciphertext would be at.
#[derive(Clone, Debug, PartialEq)]
pub struct MirrorVector<T = f64> {
    /// Slot values.
    pub values: Vec<T>,
    /// Level.
    pub level: usize,
}

/// Errors of the mirror (the same conditions the encrypted backend reports).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MirrorError {
    /// An operation needed a level that was not left.
    LevelExhausted,
    /// Unknown plaintext handle or wrong length.
    BadOperand,
    /// A refreshed vector did not repeat with the refresh period
    /// ([`Mirror::with_refresh_period`]): a sparse bootstrapping would have averaged it.
    NotPeriodic {
        /// The period.
        period: usize,
        /// The first slot that differs from its copy one period on.
        slot: usize,
    },
}

impl fmt::Display for MirrorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LevelExhausted => {
                write!(f, "no level left for a multiplication (refresh earlier)")
            }
            Self::BadOperand => write!(f, "unknown plaintext operand or wrong vector length"),
            Self::NotPeriodic { period, slot } => write!(
                f,
                "a refreshed vector does not repeat with period {period} (slot {slot} differs)"
            ),
        }
    }
}

/// The plaintext mirror: f64 slot vectors (complex ones for [`crate::hetal`]), same
/// operations, same level accounting.
#[derive(Clone, Debug)]
pub struct Mirror<T = f64> {
    slots: usize,
    top: usize,
    plains: Vec<Vec<T>>,
    counts: OpCounts,
    period: Option<usize>,
}

impl Mirror {
    /// A mirror with `slots` slots whose fresh vectors are at `top_level`.
    pub fn new(slots: usize, top_level: usize) -> Self {
        Self::with_slots(slots, top_level)
    }
}

impl Mirror<Complex> {
    /// A mirror of complex slot vectors ([`ComplexSlots`]) with `slots` slots whose fresh
    /// vectors are at `top_level`.
    pub fn complex(slots: usize, top_level: usize) -> Self {
        Self::with_slots(slots, top_level)
    }
}

impl<T: MirrorScalar> Mirror<T> {
    fn with_slots(slots: usize, top_level: usize) -> Self {
        Self {
            slots,
            top: top_level,
            plains: Vec::new(),
            counts: OpCounts::default(),
            period: None,
        }
    }

    /// The mirror of a backend whose refresh needs vectors that repeat with `period` slots
    /// ([`Backend::refresh_period`]): it reports the same period, and refreshing a vector
    /// that does not repeat exactly is an error ([`MirrorError::NotPeriodic`]), so a mirror
    /// run proves the encrypted run never bootstraps a vector a sparse bootstrapping would
    /// spoil.
    pub fn with_refresh_period(mut self, period: Option<usize>) -> Self {
        self.period = period.filter(|&p| p > 0 && p < self.slots);
        self
    }

    /// A vector at the top level.
    pub fn vector(&self, values: Vec<T>) -> MirrorVector<T> {
        self.vector_at(values, self.top)
    }

    /// A vector at `level` (at most the top), as data encrypted below the top
    /// ([`crate::ckks::data_level`]).
    pub fn vector_at(&self, values: Vec<T>, level: usize) -> MirrorVector<T> {
        MirrorVector {
            values,
            level: level.min(self.top),
        }
    }

    fn lower_of(&self, a: &MirrorVector<T>, b: &MirrorVector<T>) -> usize {
        a.level.min(b.level)
    }

    fn next(level: usize) -> Result<usize, MirrorError> {
        level.checked_sub(1).ok_or(MirrorError::LevelExhausted)
    }

    fn zip(a: &MirrorVector<T>, b: &MirrorVector<T>, f: impl Fn(T, T) -> T) -> Vec<T> {
        a.values
            .iter()
            .zip(&b.values)
            .map(|(&x, &y)| f(x, y))
            .collect()
    }
}

impl<T: MirrorScalar> Backend for Mirror<T> {
    type Vector = MirrorVector<T>;
    type Error = MirrorError;

    fn slots(&self) -> usize {
        self.slots
    }
    fn top_level(&self) -> usize {
        self.top
    }
    fn level(&self, v: &MirrorVector<T>) -> usize {
        v.level
    }
    fn plain(&mut self, values: Vec<f64>) -> PlainId {
        self.plains.push(values.into_iter().map(T::real).collect());
        PlainId(self.plains.len() - 1)
    }
    fn add(
        &mut self,
        a: &MirrorVector<T>,
        b: &MirrorVector<T>,
    ) -> Result<MirrorVector<T>, MirrorError> {
        self.counts.add += 1;
        Ok(MirrorVector {
            values: Self::zip(a, b, |x, y| x + y),
            level: self.lower_of(a, b),
        })
    }
    fn sub(
        &mut self,
        a: &MirrorVector<T>,
        b: &MirrorVector<T>,
    ) -> Result<MirrorVector<T>, MirrorError> {
        self.counts.add += 1;
        Ok(MirrorVector {
            values: Self::zip(a, b, |x, y| x - y),
            level: self.lower_of(a, b),
        })
    }
    fn add_const(&mut self, a: &MirrorVector<T>, c: f64) -> Result<MirrorVector<T>, MirrorError> {
        self.counts.add += 1;
        Ok(MirrorVector {
            values: a.values.iter().map(|&x| x + T::real(c)).collect(),
            level: a.level,
        })
    }
    fn add_plain(
        &mut self,
        a: &MirrorVector<T>,
        p: PlainId,
    ) -> Result<MirrorVector<T>, MirrorError> {
        self.counts.add += 1;
        let pv = self.plains.get(p.0).ok_or(MirrorError::BadOperand)?;
        Ok(MirrorVector {
            values: a.values.iter().zip(pv).map(|(&x, &y)| x + y).collect(),
            level: a.level,
        })
    }
    fn mul_const(&mut self, a: &MirrorVector<T>, c: f64) -> Result<MirrorVector<T>, MirrorError> {
        self.counts.cmult += 1;
        Ok(MirrorVector {
            values: a.values.iter().map(|&x| x * T::real(c)).collect(),
            level: Self::next(a.level)?,
        })
    }
    fn mul_plain(
        &mut self,
        a: &MirrorVector<T>,
        p: PlainId,
    ) -> Result<MirrorVector<T>, MirrorError> {
        self.counts.cmult += 1;
        let pv = self.plains.get(p.0).ok_or(MirrorError::BadOperand)?;
        let values = a.values.iter().zip(pv).map(|(&x, &y)| x * y).collect();
        Ok(MirrorVector {
            values,
            level: Self::next(a.level)?,
        })
    }
    fn mul_sum(
        &mut self,
        pairs: &[(&MirrorVector<T>, &MirrorVector<T>)],
    ) -> Result<MirrorVector<T>, MirrorError> {
        let mut values = alloc::vec![T::ZERO; self.slots];
        let mut level = self.top;
        for (a, b) in pairs {
            self.counts.mult += 1;
            level = level.min(a.level).min(b.level);
            for (v, (x, y)) in values.iter_mut().zip(a.values.iter().zip(&b.values)) {
                *v = *v + *x * *y;
            }
        }
        self.counts.relin += 1;
        Ok(MirrorVector {
            values,
            level: Self::next(level)?,
        })
    }
    fn rotate(&mut self, a: &MirrorVector<T>, step: i64) -> Result<MirrorVector<T>, MirrorError> {
        self.counts.rot += 1;
        let n = a.values.len() as i64;
        let values = (0..n)
            .map(|j| {
                a.values
                    .get((j + step).rem_euclid(n.max(1)) as usize)
                    .copied()
                    .unwrap_or(T::ZERO)
            })
            .collect();
        Ok(MirrorVector {
            values,
            level: a.level,
        })
    }
    fn lower(&mut self, v: &MirrorVector<T>, level: usize) -> Result<MirrorVector<T>, MirrorError> {
        Ok(MirrorVector {
            values: v.values.clone(),
            level: v.level.min(level),
        })
    }
    fn refresh_period(&self) -> Option<usize> {
        self.period
    }
    fn refresh(&mut self, v: &MirrorVector<T>) -> Result<MirrorVector<T>, MirrorError> {
        if let Some(period) = self.period {
            let shifted = v.values.iter().skip(period);
            if let Some(slot) = v.values.iter().zip(shifted).position(|(a, b)| a != b) {
                return Err(MirrorError::NotPeriodic { period, slot });
            }
        }
        self.counts.refresh += 1;
        Ok(MirrorVector {
            values: v.values.clone(),
            level: self.top,
        })
    }
    fn counts(&self) -> OpCounts {
        self.counts
    }
}

/// `v ← v + rot(v, s)` for each step in turn: the rotate-and-add sums of the layouts (block,
/// row and class sums, replications).
pub fn rotate_sum<B: Backend + ?Sized>(
    be: &mut B,
    mut v: B::Vector,
    steps: impl IntoIterator<Item = i64>,
) -> Result<B::Vector, B::Error> {
    for s in steps {
        let r = be.rotate(&v, s)?;
        v = be.add(&v, &r)?;
    }
    Ok(v)
}

/// The complex-slot operations HETAL's products use ([`crate::hetal`]) beside the real ones.
pub trait ComplexSlots: Backend {
    /// Registers a plaintext operand with complex slot values (for [`Backend::mul_plain`]).
    fn plain_complex(&mut self, values: Vec<Complex>) -> PlainId;
    /// `i·a`: exact and free on CKKS (a product with the monomial `X^{N/2}`); no level, not
    /// counted.
    fn mul_i(&mut self, a: &Self::Vector) -> Result<Self::Vector, Self::Error>;
    /// The complex conjugate of every slot (a key switch, counted in [`OpCounts::conj`]).
    fn conjugate(&mut self, a: &Self::Vector) -> Result<Self::Vector, Self::Error>;
}

impl ComplexSlots for Mirror<Complex> {
    fn plain_complex(&mut self, values: Vec<Complex>) -> PlainId {
        self.plains.push(values);
        PlainId(self.plains.len() - 1)
    }
    fn mul_i(&mut self, a: &MirrorVector<Complex>) -> Result<MirrorVector<Complex>, MirrorError> {
        Ok(MirrorVector {
            values: a.values.iter().map(|x| x.mul_i()).collect(),
            level: a.level,
        })
    }
    fn conjugate(
        &mut self,
        a: &MirrorVector<Complex>,
    ) -> Result<MirrorVector<Complex>, MirrorError> {
        self.counts.conj += 1;
        Ok(MirrorVector {
            values: a.values.iter().map(|x| x.conj()).collect(),
            level: a.level,
        })
    }
}
