//! Slot layout of mini-batches and of the model (the packing).
//!
//! A slot vector of `slots` entries is cut into `rows = slots / block` row blocks of `block`
//! slots. Row block `r` of a **data** vector holds sample `r` of the chunk:
//!
//! ```text
//! | x_0 … x_{d-1} (features, then the bias 1) | 0 … (to d_pad) | x_0 … x_{c_pad-1} (copy) | 0 … |
//!   0                                          d                d_pad                      d_pad + c_pad   block
//! ```
//!
//! The copy of the first `c_pad` entries makes every in-row rotation by `i < c_pad` read
//! `x[(j + i) mod d_pad]` at position `j < d_pad` without crossing into the next row.
//!
//! The **model** `W` (`c × d`, padded to `c_pad × d_pad`) is held as its `c_pad` generalised
//! diagonals `diag_i[j] = W[j mod c_pad][(j + i) mod d_pad]` (`j < d_pad`, zero beyond),
//! replicated in every row block. Then, with `t = Σ_i diag_i ⊙ rot(X, i)`, the logit of class
//! `k` of sample `r` is `Σ_m t[r·block + k + m·c_pad]` (`m < block / c_pad`): a block sum of
//! `log2(block / c_pad)` rotations, landing at slot `r·block + k`.
//!
//! **Labels** are one-hot at the class slots `r·block + k`, `k < c`.

use alloc::vec::Vec;

/// Dimensions of the packing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Slots per vector.
    pub slots: usize,
    /// Features per sample including the bias entry.
    pub d: usize,
    /// `d` rounded up to a multiple of `c_pad`.
    pub d_pad: usize,
    /// Classes.
    pub c: usize,
    /// Classes rounded up to a power of two.
    pub c_pad: usize,
    /// Slots per row block (a power of two ≥ `d_pad + c_pad`).
    pub block: usize,
    /// Row blocks per vector.
    pub rows: usize,
}

/// Why a layout cannot be built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// The slot count is not a power of two.
    SlotsNotPowerOfTwo(usize),
    /// One row block does not fit.
    TooWide { block: usize, slots: usize },
    /// Zero features or fewer than two classes.
    Empty,
}

impl core::fmt::Display for LayoutError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::SlotsNotPowerOfTwo(s) => write!(f, "slot count {s} is not a power of two"),
            Self::TooWide { block, slots } => {
                write!(
                    f,
                    "a row block needs {block} slots but a vector has {slots}"
                )
            }
            Self::Empty => write!(f, "need at least one feature and two classes"),
        }
    }
}

impl Layout {
    /// The layout for `features` features (the bias is added) and `classes` classes.
    pub fn new(slots: usize, features: usize, classes: usize) -> Result<Self, LayoutError> {
        if !slots.is_power_of_two() {
            return Err(LayoutError::SlotsNotPowerOfTwo(slots));
        }
        if features == 0 || classes < 2 {
            return Err(LayoutError::Empty);
        }
        let d = features + 1;
        let c = classes;
        let c_pad = c.next_power_of_two();
        let d_pad = d.div_ceil(c_pad) * c_pad;
        let block = (d_pad + c_pad).next_power_of_two();
        if block > slots {
            return Err(LayoutError::TooWide { block, slots });
        }
        Ok(Self {
            slots,
            d,
            d_pad,
            c,
            c_pad,
            block,
            rows: slots / block,
        })
    }

    /// Packs up to `rows` samples (each `d − 1` features; the bias 1 is appended) into a data
    /// vector. Missing rows are zero.
    pub fn pack_x<'a>(&self, samples: impl IntoIterator<Item = &'a [f64]>) -> Vec<f64> {
        let mut v = alloc::vec![0.0; self.slots];
        for (row, x) in v.chunks_exact_mut(self.block).zip(samples) {
            let feats = x
                .iter()
                .copied()
                .take(self.d - 1)
                .chain(core::iter::once(1.0));
            for (dst, val) in row.iter_mut().zip(feats) {
                *dst = val;
            }
            let (head, tail) = row.split_at_mut(self.d_pad);
            for (dst, src) in tail.iter_mut().zip(head.iter()).take(self.c_pad) {
                *dst = *src;
            }
        }
        v
    }

    /// One-hot labels at the class slots.
    pub fn pack_y(&self, labels: impl IntoIterator<Item = usize>) -> Vec<f64> {
        let mut v = alloc::vec![0.0; self.slots];
        for (row, k) in v.chunks_exact_mut(self.block).zip(labels) {
            if let Some(s) = row.get_mut(k) {
                *s = 1.0;
            }
        }
        v
    }

    /// The `c_pad` diagonal vectors of `w` (`c` rows of `d` entries, row-major).
    pub fn pack_w(&self, w: &[f64]) -> Vec<Vec<f64>> {
        (0..self.c_pad)
            .map(|i| {
                let mut v = alloc::vec![0.0; self.slots];
                for row in v.chunks_exact_mut(self.block) {
                    for (j, s) in row.iter_mut().enumerate().take(self.d_pad) {
                        let (k, m) = (j % self.c_pad, (j + i) % self.d_pad);
                        if k < self.c && m < self.d {
                            *s = w.get(k * self.d + m).copied().unwrap_or(0.0);
                        }
                    }
                }
                v
            })
            .collect()
    }

    /// The model `W` (`c × d`, row-major) from its diagonals, read in row block 0 (entry
    /// `W[k][m]` sits in diagonal `(m − k) mod c_pad` at position `m − i`).
    pub fn unpack_w(&self, diags: &[Vec<f64>]) -> Vec<f64> {
        let mut w = alloc::vec![0.0; self.c * self.d];
        for k in 0..self.c {
            for m in 0..self.d {
                // Find j < d_pad, i < c_pad with j ≡ k (mod c_pad) and (j + i) ≡ m (mod d_pad).
                let i = (m + self.c_pad - k % self.c_pad) % self.c_pad;
                let j = (m + self.d_pad - i) % self.d_pad;
                let v = diags.get(i).and_then(|d| d.get(j)).copied().unwrap_or(0.0);
                if let Some(dst) = w.get_mut(k * self.d + m) {
                    *dst = v;
                }
            }
        }
        w
    }

    /// Mask (times `factor`) of the real class slots `k < c` in the first `rows_used` rows.
    pub fn class_mask(&self, rows_used: usize, factor: f64) -> Vec<f64> {
        self.class_mask_rows(0..rows_used, factor)
    }

    /// Mask (times `factor`) of the real class slots `k < c` in the rows of `range`.
    pub fn class_mask_rows(&self, range: core::ops::Range<usize>, factor: f64) -> Vec<f64> {
        let mut v = alloc::vec![0.0; self.slots];
        for (r, row) in v.chunks_exact_mut(self.block).enumerate() {
            if range.contains(&r) {
                for s in row.iter_mut().take(self.c) {
                    *s = factor;
                }
            }
        }
        v
    }

    /// Whether a pack can be **folded** to half the period ([`Self::folded_class_mask`]):
    /// at least two rows, and room for a second set of class groups in the right half of
    /// every row block.
    pub fn can_fold(&self) -> bool {
        self.rows >= 2 && self.pack_width() >= 2
    }

    /// Chunks of one folded pack: half of [`Self::pack_width`].
    pub fn fold_width(&self) -> usize {
        (self.pack_width() / 2).max(1)
    }

    /// The class mask of a **folded** pack, a vector periodic with period `slots / 2` (what a
    /// bootstrapping at `slots / 2` slots needs, see `crate::ckks::bootstrap_config`). With
    /// `h = rows / 2`, row block `r < h` holds chunk `j`'s class groups of sample row `r` at
    /// offset `j·stride` and those of sample row `r + h` at offset `block/2 + j·stride`; row
    /// block `r + h` is a copy of row block `r`. Chunk `j` has `rows[j]` used rows.
    pub fn folded_class_mask(&self, rows: &[usize], factor: f64) -> Vec<f64> {
        let mut v = alloc::vec![0.0; self.slots];
        let (stride, half) = (self.pack_stride(), self.rows / 2);
        for (j, &used) in rows.iter().enumerate().take(self.fold_width()) {
            for (r, row) in v.chunks_exact_mut(self.block).enumerate() {
                let sample = r % half.max(1);
                for (offset, s) in [(0, sample), (self.block / 2, sample + half)] {
                    if s < used {
                        for x in row.iter_mut().skip(offset + j * stride).take(self.c) {
                            *x = factor;
                        }
                    }
                }
            }
        }
        v
    }

    /// Chunks whose logits share one softmax evaluation: `block / (2·c_pad)`. Chunk `j` of a
    /// pack has its class slots at offset `j ·` [`Self::pack_stride`] of every row block (class
    /// groups with a zero gap of `c_pad` between them, which the windowed class sum of
    /// [`Self::class_sum_steps`] needs).
    pub fn pack_width(&self) -> usize {
        (self.block / self.pack_stride()).max(1)
    }

    /// Slot offset between the class groups of two consecutive chunks in a pack: `2·c_pad`.
    pub fn pack_stride(&self) -> usize {
        2 * self.c_pad
    }

    /// Mask (times `factor`) of the real class slots of a pack of chunks: chunk `j`'s class
    /// slots `j·stride + k`, `k < c`, in its first `rows[j]` rows.
    pub fn packed_class_mask(&self, rows: &[usize], factor: f64) -> Vec<f64> {
        let mut v = alloc::vec![0.0; self.slots];
        let stride = self.pack_stride();
        for (j, &used) in rows.iter().enumerate().take(self.pack_width()) {
            for row in v.chunks_exact_mut(self.block).take(used) {
                for s in row.iter_mut().skip(j * stride).take(self.c) {
                    *s = factor;
                }
            }
        }
        v
    }

    /// Mask (times `factor`) of the diagonal positions `j < d_pad` in every row block.
    pub fn diag_mask(&self, factor: f64) -> Vec<f64> {
        let mut v = alloc::vec![0.0; self.slots];
        for row in v.chunks_exact_mut(self.block) {
            for s in row.iter_mut().take(self.d_pad) {
                *s = factor;
            }
        }
        v
    }

    /// Rotation steps of the logit block sum: `c_pad · 2^j` up to `block / 2`.
    pub fn block_sum_steps(&self) -> Vec<i64> {
        doubling(self.c_pad, self.block)
    }

    /// Rotation steps that spread the class values over the diagonal width (negative
    /// `c_pad · 2^j`, replication).
    pub fn replicate_steps(&self) -> Vec<i64> {
        doubling(self.c_pad, self.block)
            .into_iter()
            .map(|s| -s)
            .collect()
    }

    /// Rotation steps that sum over the rows of a vector (`block · 2^j`).
    pub fn row_sum_steps(&self) -> Vec<i64> {
        doubling(self.block, self.slots)
    }

    /// Rotation steps that give every class slot the sum over the class slots of its row:
    /// rotate-and-add by `1, 2, …, c_pad` (a window of `2·c_pad` that, at the `c_pad` slots
    /// ending at class 0, covers exactly the class slots, the rest of the window being zero
    /// padding), then one rotation by `−(c_pad − 1)` (the last entry) to move those sums onto
    /// the class slots.
    pub fn class_sum_steps(&self) -> Vec<i64> {
        let mut s = doubling(1, 2 * self.c_pad);
        s.push(-(self.c_pad as i64 - 1));
        s
    }

    /// Rotation steps that sum every slot of a vector into every slot: `1, 2, 4, …, slots/2`
    /// (all already among the class-sum, block-sum and row-sum steps).
    pub fn total_sum_steps(&self) -> Vec<i64> {
        doubling(1, self.slots)
    }

    /// The in-row rotations of the data for the diagonal products: `1 … c_pad − 1`.
    pub fn diag_steps(&self) -> Vec<i64> {
        (1..self.c_pad as i64).collect()
    }

    /// Every rotation step the trainer uses (for key generation).
    pub fn all_steps(&self) -> Vec<i64> {
        let mut s: Vec<i64> = self
            .diag_steps()
            .into_iter()
            .chain(self.block_sum_steps())
            .chain(self.replicate_steps())
            .chain(self.row_sum_steps())
            .chain(self.class_sum_steps())
            .collect();
        s.sort_unstable();
        s.dedup();
        s
    }
}

/// `start, 2·start, …` while below `end`.
fn doubling(start: usize, end: usize) -> Vec<i64> {
    let mut v = Vec::new();
    let mut s = start;
    while s < end {
        v.push(s as i64);
        s *= 2;
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn rot(v: &[f64], k: i64) -> Vec<f64> {
        let n = v.len() as i64;
        (0..n)
            .map(|j| v[((j + k).rem_euclid(n)) as usize])
            .collect()
    }

    #[test]
    fn dimensions() {
        let l = Layout::new(1 << 15, 192, 8).unwrap();
        assert_eq!(
            (l.d, l.d_pad, l.c_pad, l.block, l.rows),
            (193, 200, 8, 256, 128)
        );
        let l = Layout::new(1 << 15, 192, 11).unwrap();
        assert_eq!(
            (l.d, l.d_pad, l.c_pad, l.block, l.rows),
            (193, 208, 16, 256, 128)
        );
        assert_eq!(
            Layout::new(1000, 3, 2),
            Err(LayoutError::SlotsNotPowerOfTwo(1000))
        );
        assert!(matches!(
            Layout::new(64, 100, 4),
            Err(LayoutError::TooWide { .. })
        ));
        assert_eq!(Layout::new(64, 3, 1), Err(LayoutError::Empty));
    }

    #[test]
    fn diagonal_products_and_block_sum_give_logits() {
        let l = Layout::new(256, 5, 3).unwrap(); // d 6, c_pad 4, d_pad 8, block 16, rows 16
        let w: Vec<f64> = (0..l.c * l.d).map(|i| (i as f64 * 0.37).sin()).collect();
        let xs: Vec<Vec<f64>> = (0..l.rows)
            .map(|r| (0..5).map(|m| ((r * 5 + m) as f64).cos()).collect())
            .collect();
        let x = l.pack_x(xs.iter().map(Vec::as_slice));
        let diags = l.pack_w(&w);
        assert_eq!(l.unpack_w(&diags), w);
        let mut t = alloc::vec![0.0; l.slots];
        for (i, d) in diags.iter().enumerate() {
            for (tj, (a, b)) in t.iter_mut().zip(d.iter().zip(rot(&x, i as i64))) {
                *tj += a * b;
            }
        }
        for s in l.block_sum_steps() {
            let r = rot(&t, s);
            t.iter_mut().zip(r).for_each(|(a, b)| *a += b);
        }
        for (r, xr) in xs.iter().enumerate() {
            for k in 0..l.c {
                let want: f64 = (0..l.d)
                    .map(|m| w[k * l.d + m] * if m < 5 { xr[m] } else { 1.0 })
                    .sum();
                assert!(
                    (t[r * l.block + k] - want).abs() < 1e-12,
                    "row {r} class {k}"
                );
            }
        }
    }
}
