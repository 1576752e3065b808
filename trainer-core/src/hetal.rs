//! HETAL's block packing and its two encrypted matrix products, **DiagABT** (the logits
//! `X·Wᵀ`) and **DiagATB** (the gradient `Xᵀ·(P − Y)`), on any [`ComplexSlots`] backend: the
//! complex plaintext mirror ([`Mirror::complex`](crate::backend::Mirror::complex)) and CKKS
//! ([`crate::ckks::CkksBackend`]).
//!
//! The trainer does not use them: its own diagonal layout ([`crate::layout`]) keeps the model
//! in the form the next forward pass needs and shares the rotated data between the two
//! products. These are here to measure that choice against HETAL's on equal terms (the same
//! backends, the same op counting; `docs/TRAINING.md`, "HETAL's products").
//!
//! HETAL's own code for these products is inside a closed SDK; what is public is the packing
//! rule and the operation counts of its Table 6 (`../shared/REFERENCES.md`). The algorithms
//! below are a reconstruction that performs exactly those counts wherever a mini-batch fits
//! one row block (`a ≤ s0`, which HETAL's packing rule gives whenever `a ≤ slots / c`), with
//! DiagABT's rotation term read as `(c/2)(⌈b/s1⌉ + 2⌈a/s0⌉ log2 s1)`: the printed
//! `(c/2)(1 + …)` gives 44 at HETAL's (1024, 769, 8) where its table quotes 140. Both pair two
//! classes per product in the real and imaginary parts of the slots, so each product ends
//! with one conjugation per output vector to keep the real part; the table lists none
//! ([`OpCounts::conj`]).
//!
//! **Packing.** Classes are padded to `c_pad`, a power of two (at least 2); a block has
//! `s0 = min(max(a, c_pad) rounded up to a power of two, slots / c_pad)` rows of
//! `s1 = slots / s0` slots, row-major (slot `r·s1 + f`):
//! - data `X` (`a × b`): blocks `(i, j)`, `⌈a/s0⌉ × ⌈b/s1⌉` of them, zero-padded;
//! - model `W` (`c × b`): one block per column block, row `r` holding `W[r mod c_pad]`
//!   (tiled down the block);
//! - class matrices (logits, `P − Y`; `a × c`): one block per row block, row `r` holding
//!   the sample's classes tiled along the row (column `f` holds class `f mod c_pad`).
//!
//! **DiagABT.** With `h = c_pad/2`, `W_k = rot_rows(W, k) + i·rot_rows(W, k + h)` (one
//! rotation by `h·s1` and `h − 1` hoisted rotations by `k·s1` per column block). For each row
//! block and `k < h`: `D = Σ_j X_ij ⊙ W_kj` (one relinearisation), a row sum (`log2 s1`
//! rotations) leaves `L[r][r+k] + i·L[r][r+k+h]` in column 0, a mask keeps column 0, a
//! replication (`log2 s1` rotations) copies it along the row, and a complex diagonal mask
//! puts the real part on the columns of class `r + k` and the imaginary part on those of
//! class `r + k + h`. The sum over `k` plus its conjugate is the logits, tiled. Three levels.
//!
//! **DiagATB.** `colrot(E, k)` turns every row of a class matrix by `k` columns: two
//! rotations (`k` and `k − s1`) and a mask for the columns that wrap. With
//! `E_k = colrot(E, k) + i·colrot(E, k + h)`, for each column block and `k < h`:
//! `D = Σ_i X_ij ⊙ E_ki`, a column sum (`log2 s0` rotations) leaves
//! `G[f+k][f] + i·G[f+k+h][f]` in every row of column `f`, and a complex diagonal mask puts
//! them on the rows of those classes: the gradient comes out in the model's layout, tiled.
//! [`AtbVariant::FewestOps`] (Table 6's counts) builds `E_0` and then `E_k = colrot(E_0, k)`:
//! `E` loses two levels before the product. [`AtbVariant::SaveLevel`] builds every
//! `colrot(E, k)` from `E` itself: one level, for `2(h − 1)` more rotations and `h − 1` more
//! masks per row block. It pays where `E` (the softmax's output) is the operand that decides
//! the gradient's level and one level less would cost a refresh.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::fmt;

use fhe_core::encoding::Complex;

use crate::backend::{ComplexSlots, OpCounts, PlainId, rotate_sum};

/// How DiagATB turns the class matrix ([module docs](self)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AtbVariant {
    /// HETAL's Table 6 counts; the class matrix loses two levels before the product.
    FewestOps,
    /// One level fewer on the class matrix, for more rotations and masks.
    SaveLevel,
}

/// A shape that cannot be packed, or inputs that do not match it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShapeError {
    /// A dimension is zero.
    Empty,
    /// The slot count is not a power of two.
    Slots(usize),
    /// `c_pad²` exceeds the slots: a block cannot hold the class tiling both ways.
    TooManyClasses {
        /// Classes rounded up to a power of two.
        c_pad: usize,
        /// Slots per vector.
        slots: usize,
    },
    /// An input has the wrong number of values or blocks.
    Length {
        /// Which input.
        what: &'static str,
        /// What the shape needs.
        expected: usize,
        /// What was given.
        found: usize,
    },
}

impl fmt::Display for ShapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "a matrix dimension is zero"),
            Self::Slots(s) => write!(f, "{s} slots is not a power of two"),
            Self::TooManyClasses { c_pad, slots } => {
                write!(
                    f,
                    "{c_pad} padded classes do not fit {slots} slots both ways"
                )
            }
            Self::Length {
                what,
                expected,
                found,
            } => write!(f, "{what}: expected {expected}, found {found}"),
        }
    }
}

/// An error of the products: a shape mismatch or the backend's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HetalError<E> {
    /// The inputs do not match the shape.
    Shape(ShapeError),
    /// The backend failed.
    Backend(E),
}

impl<E: fmt::Display> fmt::Display for HetalError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Shape(e) => write!(f, "{e}"),
            Self::Backend(e) => write!(f, "{e}"),
        }
    }
}

/// HETAL's packing of an `a × b` data block with `c` classes into vectors of `slots` slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Rows of the data (mini-batch samples).
    pub a: usize,
    /// Columns of the data (features, with the bias column).
    pub b: usize,
    /// Classes.
    pub c: usize,
    /// Classes rounded up to a power of two (at least 2).
    pub c_pad: usize,
    /// Slots per vector.
    pub slots: usize,
    /// Rows of a block.
    pub s0: usize,
    /// Columns of a block.
    pub s1: usize,
}

fn log2(v: usize) -> u64 {
    u64::from(v.max(1).trailing_zeros())
}

fn length(what: &'static str, expected: usize, found: usize) -> Result<(), ShapeError> {
    if expected == found {
        Ok(())
    } else {
        Err(ShapeError::Length {
            what,
            expected,
            found,
        })
    }
}

impl Shape {
    /// HETAL's packing rule for `a × b` data and `c` classes in `slots` slots.
    pub fn new(a: usize, b: usize, c: usize, slots: usize) -> Result<Self, ShapeError> {
        if a == 0 || b == 0 || c == 0 {
            return Err(ShapeError::Empty);
        }
        if !slots.is_power_of_two() {
            return Err(ShapeError::Slots(slots));
        }
        let c_pad = c.next_power_of_two().max(2);
        if c_pad.saturating_mul(c_pad) > slots {
            return Err(ShapeError::TooManyClasses { c_pad, slots });
        }
        let s0 = a.max(c_pad).next_power_of_two().min(slots / c_pad);
        Ok(Self {
            a,
            b,
            c,
            c_pad,
            slots,
            s0,
            s1: slots / s0,
        })
    }

    /// `⌈a/s0⌉`.
    pub fn row_blocks(&self) -> usize {
        self.a.div_ceil(self.s0)
    }

    /// `⌈b/s1⌉`.
    pub fn col_blocks(&self) -> usize {
        self.b.div_ceil(self.s1)
    }

    fn half(&self) -> usize {
        self.c_pad / 2
    }

    /// Blocks of `rows × cols` values (row-major) placed by `at(block, r, f)`, which names
    /// the matrix entry of row `r`, column `f` of `block`, if any.
    fn blocks(
        &self,
        count: usize,
        values: &[f64],
        cols: usize,
        at: impl Fn(usize, usize, usize) -> Option<(usize, usize)>,
    ) -> Vec<Vec<f64>> {
        (0..count)
            .map(|blk| {
                (0..self.slots)
                    .map(|slot| {
                        at(blk, slot / self.s1, slot % self.s1)
                            .and_then(|(row, col)| values.get(row * cols + col))
                            .copied()
                            .unwrap_or(0.0)
                    })
                    .collect()
            })
            .collect()
    }

    /// The data `x` (`a × b`, row-major) as blocks, row block by row block
    /// (`i·⌈b/s1⌉ + j`).
    pub fn encode_data(&self, x: &[f64]) -> Result<Vec<Vec<f64>>, ShapeError> {
        length("data values", self.a * self.b, x.len())?;
        let cb = self.col_blocks();
        Ok(self.blocks(self.row_blocks() * cb, x, self.b, |blk, r, f| {
            let (row, col) = ((blk / cb) * self.s0 + r, (blk % cb) * self.s1 + f);
            (row < self.a && col < self.b).then_some((row, col))
        }))
    }

    /// The model `w` (`c × b`, row-major) as one block per column block, tiled down.
    pub fn encode_model(&self, w: &[f64]) -> Result<Vec<Vec<f64>>, ShapeError> {
        length("model values", self.c * self.b, w.len())?;
        Ok(self.blocks(self.col_blocks(), w, self.b, |j, r, f| {
            let (row, col) = (r % self.c_pad, j * self.s1 + f);
            (row < self.c && col < self.b).then_some((row, col))
        }))
    }

    /// A class matrix `e` (`a × c`, row-major: logits, `P − Y`) as one block per row
    /// block, tiled along the rows.
    pub fn encode_classes(&self, e: &[f64]) -> Result<Vec<Vec<f64>>, ShapeError> {
        length("class values", self.a * self.c, e.len())?;
        Ok(self.blocks(self.row_blocks(), e, self.c, |i, r, f| {
            let (row, col) = (i * self.s0 + r, f % self.c_pad);
            (row < self.a && col < self.c).then_some((row, col))
        }))
    }

    /// The `a × c` class matrix (row-major) read from its blocks (column `k` of each row).
    pub fn decode_classes(&self, blocks: &[Vec<f64>]) -> Result<Vec<f64>, ShapeError> {
        length("class blocks", self.row_blocks(), blocks.len())?;
        let s0 = self.s0;
        Ok(self.read(self.a, self.c, |row, k| {
            blocks.get(row / s0)?.get((row % s0) * self.s1 + k)
        }))
    }

    /// The `c × b` model (row-major) read from its blocks (rows `0 … c − 1`).
    pub fn decode_model(&self, blocks: &[Vec<f64>]) -> Result<Vec<f64>, ShapeError> {
        length("model blocks", self.col_blocks(), blocks.len())?;
        let s1 = self.s1;
        Ok(self.read(self.c, self.b, |k, col| {
            blocks.get(col / s1)?.get(k * s1 + col % s1)
        }))
    }

    fn read<'a>(
        &self,
        rows: usize,
        cols: usize,
        at: impl Fn(usize, usize) -> Option<&'a f64>,
    ) -> Vec<f64> {
        (0..rows * cols)
            .map(|n| at(n / cols, n % cols).copied().unwrap_or(0.0))
            .collect()
    }

    fn row_sum_steps(&self) -> impl Iterator<Item = i64> {
        (0..log2(self.s1)).map(|t| 1i64 << t)
    }

    fn column_sum_steps(&self) -> impl Iterator<Item = i64> + '_ {
        (0..log2(self.s0)).map(|t| (1i64 << t) * self.s1 as i64)
    }

    fn wrap_steps(&self, k: usize) -> [i64; 2] {
        [k as i64, k as i64 - self.s1 as i64]
    }

    /// The column turns DiagATB needs, `colrot(·, k)`.
    fn turns(&self, variant: AtbVariant) -> Vec<usize> {
        match variant {
            AtbVariant::FewestOps => core::iter::once(self.half())
                .chain(1..self.half())
                .collect(),
            AtbVariant::SaveLevel => (1..self.c_pad).collect(),
        }
    }

    /// Every rotation step both products use (both DiagATB variants), for key generation.
    pub fn rotation_steps(&self) -> Vec<i64> {
        let s1 = self.s1 as i64;
        let mut steps: Vec<i64> = (1..=self.half() as i64).map(|k| k * s1).collect();
        steps.extend(self.row_sum_steps().flat_map(|s| [s, -s]));
        steps.extend(self.column_sum_steps());
        steps.extend((1..self.c_pad).flat_map(|k| self.wrap_steps(k)));
        steps.retain(|&s| s.rem_euclid(self.slots as i64) != 0);
        steps.sort_unstable();
        steps.dedup();
        steps
    }

    /// DiagABT's operation counts as [`HetalMatmul::abt`] performs them (additions not
    /// counted). With one row block they are Table 6's: `c` CMult,
    /// `(c/2)⌈a/s0⌉⌈b/s1⌉` Mult, `(c/2)(⌈b/s1⌉ + 2⌈a/s0⌉ log2 s1)` Rot.
    pub fn abt_ops(&self) -> OpCounts {
        let (h, rb, cb) = (
            self.half() as u64,
            self.row_blocks() as u64,
            self.col_blocks() as u64,
        );
        OpCounts {
            mult: h * rb * cb,
            cmult: 2 * h * rb,
            rot: h * cb + 2 * h * rb * log2(self.s1),
            relin: h * rb,
            conj: rb,
            ..OpCounts::default()
        }
    }

    /// DiagATB's operation counts as [`HetalMatmul::atb`] performs them (additions not
    /// counted). With one row block, [`AtbVariant::FewestOps`] has Table 6's:
    /// `1 + (c/2)(⌈a/s0⌉ + ⌈b/s1⌉) − ⌈a/s0⌉` CMult, `(c/2)⌈a/s0⌉⌈b/s1⌉` Mult,
    /// `2 + (c/2)(2⌈a/s0⌉ + log2 s0·⌈b/s1⌉) − 2⌈a/s0⌉` Rot. With more row blocks this
    /// builds the pair vector `E_0` of each row block (2 Rot, 1 CMult each), where the table
    /// counts one.
    pub fn atb_ops(&self, variant: AtbVariant) -> OpCounts {
        let (h, rb, cb) = (
            self.half() as u64,
            self.row_blocks() as u64,
            self.col_blocks() as u64,
        );
        let turns = self.turns(variant).len() as u64;
        OpCounts {
            mult: h * rb * cb,
            cmult: turns * rb + h * cb,
            rot: 2 * turns * rb + h * cb * log2(self.s0),
            relin: h * cb,
            conj: cb,
            ..OpCounts::default()
        }
    }

    /// Levels DiagABT takes below the lower of its inputs (the product, the column mask, the
    /// diagonal mask).
    pub const ABT_DEPTH: usize = 3;

    /// Levels DiagATB's class matrix loses before the product (the column turns): two for
    /// [`AtbVariant::FewestOps`] (one with two classes, which need no second turn), one for
    /// [`AtbVariant::SaveLevel`].
    pub fn atb_turn_depth(&self, variant: AtbVariant) -> usize {
        match variant {
            AtbVariant::FewestOps if self.half() > 1 => 2,
            _ => 1,
        }
    }
}

/// The masks the products register, by kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Mask {
    /// Column 0 of every row (DiagABT, before the replication).
    Column0,
    /// DiagABT's diagonal mask of pair `k`.
    AbtDiagonal(usize),
    /// DiagATB's diagonal mask of pair `k`.
    AtbDiagonal(usize),
    /// The last `k` columns of every row (the wrap of `colrot(·, k)`).
    Wrap(usize),
}

/// HETAL's two products for one [`Shape`], with their masks registered once per backend.
#[derive(Clone, Debug)]
pub struct HetalMatmul {
    shape: Shape,
    masks: BTreeMap<Mask, PlainId>,
}

type Out<B> = Result<
    Vec<<B as crate::backend::Backend>::Vector>,
    HetalError<<B as crate::backend::Backend>::Error>,
>;

impl HetalMatmul {
    /// The products for `shape`; use one per backend (masks are registered with it).
    pub fn new(shape: Shape) -> Self {
        Self {
            shape,
            masks: BTreeMap::new(),
        }
    }

    /// The shape.
    pub fn shape(&self) -> &Shape {
        &self.shape
    }

    fn mask<B: ComplexSlots>(&mut self, be: &mut B, kind: Mask) -> PlainId {
        let sh = self.shape;
        *self.masks.entry(kind).or_insert_with(|| {
            let (c, h) = (sh.c_pad, sh.half());
            // The pair masks carry ½: the real part is taken as (v + conj v).
            let pair = |on: usize, off: usize| {
                if on % c == off % c {
                    Complex::new(0.5, 0.0)
                } else if on % c == (off + h) % c {
                    Complex::new(0.0, -0.5)
                } else {
                    Complex::ZERO
                }
            };
            let values = (0..sh.slots)
                .map(|slot| {
                    let (r, f) = (slot / sh.s1, slot % sh.s1);
                    match kind {
                        Mask::Column0 => Complex::new(if f == 0 { 1.0 } else { 0.0 }, 0.0),
                        Mask::AbtDiagonal(k) => pair(f, r + k),
                        Mask::AtbDiagonal(k) => pair(r, f + k),
                        Mask::Wrap(k) => Complex::new(if f + k >= sh.s1 { 1.0 } else { 0.0 }, 0.0),
                    }
                })
                .collect();
            be.plain_complex(values)
        })
    }

    /// `v + conj(v)`: twice the real part (the masks carry the ½).
    fn real_part<B: ComplexSlots>(
        be: &mut B,
        v: Option<B::Vector>,
    ) -> Result<B::Vector, HetalError<B::Error>> {
        let v = v.ok_or(HetalError::Shape(ShapeError::Empty))?;
        let conj = be.conjugate(&v).map_err(HetalError::Backend)?;
        be.add(&v, &conj).map_err(HetalError::Backend)
    }

    /// `acc + v`, or `v` when there is no sum yet.
    fn accumulate<B: ComplexSlots>(
        be: &mut B,
        acc: Option<B::Vector>,
        v: B::Vector,
    ) -> Result<Option<B::Vector>, B::Error> {
        Ok(Some(match acc {
            Some(a) => be.add(&a, &v)?,
            None => v,
        }))
    }

    /// The logits `X·Wᵀ` (one class block per row block, tiled along the rows) of the data
    /// blocks `x` ([`Shape::encode_data`]) and the model blocks `w`
    /// ([`Shape::encode_model`]). [`Shape::ABT_DEPTH`] levels; counts [`Shape::abt_ops`].
    pub fn abt<B: ComplexSlots>(&mut self, be: &mut B, x: &[B::Vector], w: &[B::Vector]) -> Out<B> {
        let sh = self.shape;
        let (rb, cb, h) = (sh.row_blocks(), sh.col_blocks(), sh.half());
        length("data blocks", rb * cb, x.len()).map_err(HetalError::Shape)?;
        length("model blocks", cb, w.len()).map_err(HetalError::Shape)?;
        let s1 = sh.s1 as i64;
        // W_k = rot_rows(W, k) + i·rot_rows(W, k + h), per column block.
        let mut wk: Vec<Vec<B::Vector>> = Vec::with_capacity(cb);
        for wj in w {
            let mut paired = || -> Result<Vec<B::Vector>, B::Error> {
                let shifted = be.rotate(wj, h as i64 * s1)?;
                let im = be.mul_i(&shifted)?;
                let w0 = be.add(wj, &im)?;
                let steps: Vec<i64> = (1..h as i64).map(|k| k * s1).collect();
                let mut all = if steps.is_empty() {
                    Vec::new()
                } else {
                    be.rotate_many(&w0, &steps)?
                };
                all.insert(0, w0);
                Ok(all)
            };
            wk.push(paired().map_err(HetalError::Backend)?);
        }
        let col0 = self.mask(be, Mask::Column0);
        let mut out = Vec::with_capacity(rb);
        for xi in x.chunks(cb) {
            let mut acc = None;
            for k in 0..h {
                let diag = self.mask(be, Mask::AbtDiagonal(k));
                let pair = |be: &mut B| -> Result<B::Vector, B::Error> {
                    let pairs: Vec<(&B::Vector, &B::Vector)> =
                        xi.iter().zip(wk.iter().filter_map(|p| p.get(k))).collect();
                    let d = be.mul_sum(&pairs)?;
                    let d = rotate_sum(be, d, sh.row_sum_steps())?;
                    let d = be.mul_plain(&d, col0)?;
                    let d = rotate_sum(be, d, sh.row_sum_steps().map(|s| -s))?;
                    be.mul_plain(&d, diag)
                };
                let d = pair(be).map_err(HetalError::Backend)?;
                acc = Self::accumulate(be, acc, d).map_err(HetalError::Backend)?;
            }
            out.push(Self::real_part(be, acc)?);
        }
        Ok(out)
    }

    /// `colrot(v, k)`: every row turned left by `k` columns (two rotations, one mask for
    /// the columns that wrap into the next row; one level).
    fn colrot<B: ComplexSlots>(
        &mut self,
        be: &mut B,
        turned: &[B::Vector],
        k: usize,
    ) -> Result<B::Vector, HetalError<B::Error>> {
        let wrap = self.mask(be, Mask::Wrap(k));
        let [near, far] = turned else {
            return Err(HetalError::Shape(ShapeError::Length {
                what: "column turn rotations",
                expected: 2,
                found: turned.len(),
            }));
        };
        let mut step = || -> Result<B::Vector, B::Error> {
            let diff = be.sub(far, near)?;
            let fix = be.mul_plain(&diff, wrap)?;
            be.add(near, &fix)
        };
        step().map_err(HetalError::Backend)
    }

    /// `E_k = colrot(E, k) + i·colrot(E, k + h)` for `k < h`, of one class block.
    fn paired_turns<B: ComplexSlots>(
        &mut self,
        be: &mut B,
        e: &B::Vector,
        variant: AtbVariant,
    ) -> Out<B> {
        let h = self.shape.half();
        let plus_i = |be: &mut B, re: &B::Vector, im: &B::Vector| {
            let im = be.mul_i(im)?;
            be.add(re, &im)
        };
        match variant {
            AtbVariant::FewestOps => {
                let steps = self.shape.wrap_steps(h);
                let r = be.rotate_many(e, &steps).map_err(HetalError::Backend)?;
                let turned = self.colrot(be, &r, h)?;
                let e0 = plus_i(be, e, &turned).map_err(HetalError::Backend)?;
                let mut out = Vec::with_capacity(h);
                for k in 1..h {
                    let steps = self.shape.wrap_steps(k);
                    let r = be.rotate_many(&e0, &steps).map_err(HetalError::Backend)?;
                    out.push(self.colrot(be, &r, k)?);
                }
                out.insert(0, e0);
                Ok(out)
            }
            AtbVariant::SaveLevel => {
                let turns = self.shape.turns(variant);
                let steps: Vec<i64> = turns
                    .iter()
                    .flat_map(|&k| self.shape.wrap_steps(k))
                    .collect();
                let r = be.rotate_many(e, &steps).map_err(HetalError::Backend)?;
                let mut cols = Vec::with_capacity(self.shape.c_pad);
                cols.push(e.clone());
                for (k, pair) in turns.iter().zip(r.chunks(2)) {
                    cols.push(self.colrot(be, pair, *k)?);
                }
                let (low, high) = cols.split_at(h);
                low.iter()
                    .zip(high)
                    .map(|(re, im)| plus_i(be, re, im).map_err(HetalError::Backend))
                    .collect()
            }
        }
    }

    /// The gradient `(Xᵀ·E)ᵀ` (`c × b`, in the model's layout: one block per column block)
    /// of the data blocks `x` and the class blocks `e` ([`Shape::encode_classes`], e.g.
    /// `P − Y`). Counts [`Shape::atb_ops`]; `e` loses [`Shape::atb_turn_depth`] levels, then
    /// the product and the diagonal mask take two.
    pub fn atb<B: ComplexSlots>(
        &mut self,
        be: &mut B,
        x: &[B::Vector],
        e: &[B::Vector],
        variant: AtbVariant,
    ) -> Out<B> {
        let sh = self.shape;
        let (rb, cb, h) = (sh.row_blocks(), sh.col_blocks(), sh.half());
        length("data blocks", rb * cb, x.len()).map_err(HetalError::Shape)?;
        length("class blocks", rb, e.len()).map_err(HetalError::Shape)?;
        let mut ek = Vec::with_capacity(rb);
        for ei in e {
            ek.push(self.paired_turns(be, ei, variant)?);
        }
        let mut out = Vec::with_capacity(cb);
        for j in 0..cb {
            let mut acc = None;
            for k in 0..h {
                let diag = self.mask(be, Mask::AtbDiagonal(k));
                let pair = |be: &mut B| -> Result<B::Vector, B::Error> {
                    let pairs: Vec<(&B::Vector, &B::Vector)> = x
                        .iter()
                        .skip(j)
                        .step_by(cb)
                        .zip(ek.iter().filter_map(|p| p.get(k)))
                        .collect();
                    let d = be.mul_sum(&pairs)?;
                    let d = rotate_sum(be, d, sh.column_sum_steps())?;
                    be.mul_plain(&d, diag)
                };
                let d = pair(be).map_err(HetalError::Backend)?;
                acc = Self::accumulate(be, acc, d).map_err(HetalError::Backend)?;
            }
            out.push(Self::real_part(be, acc)?);
        }
        Ok(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::backend::{Backend, Mirror, MirrorVector};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// `n` values uniform in [−1, 1).
    fn values(n: usize, seed: u64) -> Vec<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n).map(|_| rng.random_range(-1.0..1.0)).collect()
    }

    /// `X·Wᵀ` (`a × c`) and `Eᵀ·X` (`c × b`) in f64.
    fn reference(sh: &Shape, x: &[f64], w: &[f64], e: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let (a, b, c) = (sh.a, sh.b, sh.c);
        let logits = (0..a * c)
            .map(|n| {
                (0..b)
                    .map(|f| x[(n / c) * b + f] * w[(n % c) * b + f])
                    .sum()
            })
            .collect();
        let grad = (0..c * b)
            .map(|n| (0..a).map(|r| e[r * c + n / b] * x[r * b + n % b]).sum())
            .collect();
        (logits, grad)
    }

    fn complex(
        m: &Mirror<Complex>,
        blocks: Vec<Vec<f64>>,
        level: usize,
    ) -> Vec<MirrorVector<Complex>> {
        blocks
            .into_iter()
            .map(|v| m.vector_at(v.into_iter().map(|x| Complex::new(x, 0.0)).collect(), level))
            .collect()
    }

    /// The real parts of the output vectors' slots.
    fn real_parts(out: &[MirrorVector<Complex>]) -> Vec<Vec<f64>> {
        out.iter()
            .map(|v| v.values.iter().map(|z| z.re).collect())
            .collect()
    }

    /// The largest distance of the output vectors from the real vectors `want` (imaginary
    /// parts included).
    fn distance(got: &[MirrorVector<Complex>], want: &[Vec<f64>]) -> f64 {
        assert_eq!(got.len(), want.len());
        got.iter()
            .zip(want)
            .flat_map(|(g, w)| {
                g.values
                    .iter()
                    .zip(w)
                    .map(|(z, &x)| (*z - Complex::new(x, 0.0)).abs())
            })
            .fold(0.0, f64::max)
    }

    fn without_adds(c: OpCounts) -> OpCounts {
        OpCounts { add: 0, ..c }
    }

    const SHAPES: [(usize, usize, usize, usize); 6] = [
        (16, 100, 4, 1024),
        (5, 37, 3, 256),
        (10, 9, 2, 64),
        (7, 12, 5, 512),
        // More rows than a block holds: two row blocks.
        (300, 20, 8, 2048),
        (128, 128, 4, 1 << 15),
    ];

    /// On the mirror both products give the f64 matrix products, laid out exactly as the
    /// encoders lay them out (every slot, padding and tiling included, imaginary parts
    /// gone), with the predicted operation counts and levels.
    #[test]
    fn products_are_the_matrix_products_in_hetal_layout() {
        for (n, &(a, b, c, slots)) in SHAPES.iter().enumerate() {
            let sh = Shape::new(a, b, c, slots).unwrap();
            let (x, w, e) = (
                values(a * b, 3 * n as u64),
                values(c * b, 5),
                values(a * c, 7),
            );
            let (logits, grad) = reference(&sh, &x, &w, &e);
            let top = 12;
            let mut m = Mirror::complex(slots, top);
            let xs = complex(&m, sh.encode_data(&x).unwrap(), top);
            let ws = complex(&m, sh.encode_model(&w).unwrap(), top);
            // The class matrix comes out of a softmax, lower than the data.
            let es = complex(&m, sh.encode_classes(&e).unwrap(), top - 3);
            let mut hm = HetalMatmul::new(sh);

            let before = m.counts();
            let out = hm.abt(&mut m, &xs, &ws).unwrap();
            assert_eq!(without_adds(m.counts() - before), sh.abt_ops(), "{sh:?}");
            let want = sh.encode_classes(&logits).unwrap();
            assert!(
                distance(&out, &want) < 1e-9,
                "{sh:?}: {}",
                distance(&out, &want)
            );
            assert!(out.iter().all(|v| v.level == top - Shape::ABT_DEPTH));
            let back = sh.decode_classes(&real_parts(&out)).unwrap();
            assert!(back.iter().zip(&logits).all(|(g, w)| (g - w).abs() < 1e-9));

            for variant in [AtbVariant::FewestOps, AtbVariant::SaveLevel] {
                let before = m.counts();
                let out = hm.atb(&mut m, &xs, &es, variant).unwrap();
                assert_eq!(
                    without_adds(m.counts() - before),
                    sh.atb_ops(variant),
                    "{sh:?} {variant:?}"
                );
                let want = sh.encode_model(&grad).unwrap();
                assert!(distance(&out, &want) < 1e-9, "{sh:?} {variant:?}");
                let level = top - 3 - sh.atb_turn_depth(variant) - 2;
                assert!(out.iter().all(|v| v.level == level), "{variant:?}");
                let back = sh.decode_model(&real_parts(&out)).unwrap();
                assert!(back.iter().zip(&grad).all(|(g, w)| (g - w).abs() < 1e-9));
            }
        }
    }

    /// HETAL's Table 6 (`../shared/REFERENCES.md`) for one row block, with DiagABT's rotation
    /// term read as `(c/2)(⌈b/s1⌉ + 2⌈a/s0⌉ log2 s1)`.
    fn table_6(sh: &Shape) -> (OpCounts, OpCounts) {
        let (c, ra, rb) = (
            sh.c_pad as u64,
            sh.row_blocks() as u64,
            sh.col_blocks() as u64,
        );
        let (l0, l1) = (log2(sh.s0), log2(sh.s1));
        let abt = OpCounts {
            cmult: c,
            mult: c / 2 * ra * rb,
            rot: c / 2 * (rb + 2 * ra * l1),
            ..OpCounts::default()
        };
        let atb = OpCounts {
            cmult: 1 + c / 2 * (ra + rb) - ra,
            mult: c / 2 * ra * rb,
            rot: 2 + c / 2 * (2 * ra + l0 * rb) - 2 * ra,
            ..OpCounts::default()
        };
        (abt, atb)
    }

    fn table_fields(c: OpCounts) -> (u64, u64, u64) {
        (c.cmult, c.mult, c.rot)
    }

    /// The counts performed are Table 6's wherever the batch fits one row block, including
    /// the two examples REFERENCES.md quotes for DiagABT: (128, 128, 4) → 4 / 2 / 34 and
    /// (1024, 769, 8) → 8 / 100 / 140 (CMult / Mult / Rot, 2^15 slots).
    #[test]
    fn counts_are_hetal_table_6() {
        let mut shapes: Vec<Shape> = SHAPES
            .iter()
            .map(|&(a, b, c, s)| Shape::new(a, b, c, s).unwrap())
            .filter(|sh| sh.row_blocks() == 1)
            .collect();
        let quoted = [((128, 128, 4), (4, 2, 34)), ((1024, 769, 8), (8, 100, 140))];
        for &((a, b, c), abt) in &quoted {
            let sh = Shape::new(a, b, c, 1 << 15).unwrap();
            assert_eq!(table_fields(table_6(&sh).0), abt);
            shapes.push(sh);
        }
        assert!(shapes.len() >= 6);
        for sh in shapes {
            let (abt, atb) = table_6(&sh);
            assert_eq!(table_fields(sh.abt_ops()), table_fields(abt), "{sh:?}");
            assert_eq!(
                table_fields(sh.atb_ops(AtbVariant::FewestOps)),
                table_fields(atb),
                "{sh:?}"
            );
            // Measured, not just predicted, at HETAL's own point.
            if (sh.a, sh.b, sh.c) == (1024, 769, 8) {
                let mut m = Mirror::complex(sh.slots, 10);
                let zeros = |n: usize| alloc::vec![alloc::vec![0.0; sh.slots]; n];
                let xs = complex(&m, zeros(sh.col_blocks()), 10);
                let ws = complex(&m, zeros(sh.col_blocks()), 10);
                let es = complex(&m, zeros(1), 10);
                let mut hm = HetalMatmul::new(sh);
                hm.abt(&mut m, &xs, &ws).unwrap();
                assert_eq!(table_fields(m.counts()), (8, 100, 140));
                let before = m.counts();
                hm.atb(&mut m, &xs, &es, AtbVariant::FewestOps).unwrap();
                assert_eq!(table_fields(m.counts() - before), table_fields(atb));
            }
        }
    }

    /// The rotation steps cover every rotation the products make, and nothing else is
    /// needed: a mirror that refuses other steps would be the same as keys for these.
    #[test]
    fn rotation_steps_cover_both_products() {
        for &(a, b, c, slots) in &SHAPES {
            let sh = Shape::new(a, b, c, slots).unwrap();
            let steps = sh.rotation_steps();
            let mut used: Vec<i64> = (1..=sh.half() as i64).map(|k| k * sh.s1 as i64).collect();
            used.extend(sh.row_sum_steps().flat_map(|s| [s, -s]));
            used.extend(sh.column_sum_steps());
            for v in [AtbVariant::FewestOps, AtbVariant::SaveLevel] {
                used.extend(sh.turns(v).into_iter().flat_map(|k| sh.wrap_steps(k)));
            }
            assert!(used.iter().all(|s| steps.contains(s)), "{sh:?}");
            assert!(
                steps
                    .iter()
                    .all(|&s| s != 0 && s.unsigned_abs() < slots as u64)
            );
        }
    }

    #[test]
    fn bad_shapes_and_inputs_are_errors() {
        assert_eq!(Shape::new(0, 3, 2, 64), Err(ShapeError::Empty));
        assert_eq!(Shape::new(4, 3, 2, 96), Err(ShapeError::Slots(96)));
        assert_eq!(
            Shape::new(4, 3, 9, 128),
            Err(ShapeError::TooManyClasses {
                c_pad: 16,
                slots: 128
            })
        );
        let sh = Shape::new(4, 3, 2, 64).unwrap();
        assert!(matches!(
            sh.encode_data(&[0.0; 11]),
            Err(ShapeError::Length { expected: 12, .. })
        ));
        let mut m = Mirror::complex(64, 5);
        let mut hm = HetalMatmul::new(sh);
        let one = complex(&m, alloc::vec![alloc::vec![0.0; 64]], 5);
        let two = complex(&m, alloc::vec![alloc::vec![0.0; 64]; 2], 5);
        assert!(matches!(
            hm.abt(&mut m, &two, &one),
            Err(HetalError::Shape(_))
        ));
        assert!(matches!(
            hm.atb(&mut m, &one, &two, AtbVariant::SaveLevel),
            Err(HetalError::Shape(_))
        ));
    }
}
