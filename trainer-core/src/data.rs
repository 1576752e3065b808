//! In-memory datasets and the hospital-side standardisation.

use alloc::vec::Vec;

/// Feature rows with labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    features: usize,
    classes: usize,
    x: Vec<f64>,
    labels: Vec<usize>,
}

/// Why a dataset is rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataError {
    /// Values and labels disagree in number.
    Shape {
        values: usize,
        features: usize,
        labels: usize,
    },
    /// A label is not below the class count.
    Label { label: usize, classes: usize },
}

impl core::fmt::Display for DataError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Shape {
                values,
                features,
                labels,
            } => write!(
                f,
                "{values} values are not {labels} rows of {features} features"
            ),
            Self::Label { label, classes } => {
                write!(f, "label {label} is not below {classes} classes")
            }
        }
    }
}

impl Dataset {
    /// A dataset of `labels.len()` rows of `features` values.
    pub fn new(
        features: usize,
        classes: usize,
        x: Vec<f64>,
        labels: Vec<usize>,
    ) -> Result<Self, DataError> {
        if x.len() != features * labels.len() {
            return Err(DataError::Shape {
                values: x.len(),
                features,
                labels: labels.len(),
            });
        }
        if let Some(&label) = labels.iter().find(|&&l| l >= classes) {
            return Err(DataError::Label { label, classes });
        }
        Ok(Self {
            features,
            classes,
            x,
            labels,
        })
    }
    /// Rows.
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    /// Features per row.
    pub fn features(&self) -> usize {
        self.features
    }
    /// Classes.
    pub fn classes(&self) -> usize {
        self.classes
    }
    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f64] {
        self.x
            .get(i * self.features..(i + 1) * self.features)
            .unwrap_or_default()
    }
    /// Label of row `i`.
    pub fn label(&self, i: usize) -> usize {
        self.labels.get(i).copied().unwrap_or(0)
    }
    /// All labels.
    pub fn labels(&self) -> &[usize] {
        &self.labels
    }
}

/// Per-feature mean and standard deviation, computed by the hospital on its training split
/// and kept there.
#[derive(Clone, Debug, PartialEq)]
pub struct Standardizer {
    /// Means.
    pub mean: Vec<f64>,
    /// Standard deviations (at least 1e-8).
    pub std: Vec<f64>,
    /// Extra factor applied after standardising (bounds the logits: see `docs/TRAINING.md`).
    pub scale: f64,
}

impl Standardizer {
    /// Statistics of `data`, with `scale` applied after standardising.
    pub fn fit(data: &Dataset, scale: f64) -> Self {
        let f = data.features();
        let n = data.len().max(1) as f64;
        let mut mean = alloc::vec![0.0; f];
        let mut sq = alloc::vec![0.0; f];
        for i in 0..data.len() {
            for ((m, s), &v) in mean.iter_mut().zip(sq.iter_mut()).zip(data.row(i)) {
                *m += v;
                *s += v * v;
            }
        }
        let std = mean
            .iter_mut()
            .zip(&sq)
            .map(|(m, &s)| {
                *m /= n;
                libm::sqrt((s / n - *m * *m).max(0.0)).max(1e-8)
            })
            .collect();
        Self { mean, std, scale }
    }

    /// The standardised copy of `data`.
    pub fn apply(&self, data: &Dataset) -> Dataset {
        let f = data.features();
        let mut x = Vec::with_capacity(data.len() * f);
        for i in 0..data.len() {
            for ((&v, &m), &s) in data.row(i).iter().zip(&self.mean).zip(&self.std) {
                x.push((v - m) / s * self.scale);
            }
        }
        Dataset {
            features: f,
            classes: data.classes(),
            x,
            labels: data.labels.clone(),
        }
    }
}
