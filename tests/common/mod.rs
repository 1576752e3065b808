//! Helpers shared by the cross-crate tests.

use trainer_core::data::Dataset;

/// The split `name` of a features file as a trainer dataset.
pub fn split(f: &extractor::features::Features, name: &str) -> Dataset {
    let s = f.splits.iter().find(|s| s.name == name).expect("split");
    let x: Vec<f64> = s.values.to_f32().into_iter().map(f64::from).collect();
    Dataset::new(
        f.dim,
        f.class_names.len(),
        x,
        s.labels.iter().map(|&l| l as usize).collect(),
    )
    .expect("dataset")
}

/// Split `name` standardised as the hospital does it: statistics of the train split, scale
/// `1/√d` (docs/TRAINING.md).
#[allow(dead_code)] // not every test binary uses it
pub fn standardized(f: &extractor::features::Features, name: &str) -> Dataset {
    let st = trainer_core::data::Standardizer::fit(&split(f, "train"), 1.0 / (f.dim as f64).sqrt());
    st.apply(&split(f, name))
}

/// The largest absolute difference between two slot vectors.
#[allow(dead_code)] // not every test binary uses it
pub fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// `n` values uniform in [−1, 1) from `seed` (ChaCha8).
#[allow(dead_code)] // not every test binary uses it
pub fn uniform(n: usize, seed: u64) -> Vec<f64> {
    use rand_core::{RngCore, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| (rng.next_u64() >> 11) as f64 / (1u64 << 52) as f64 - 1.0)
        .collect()
}
