//! Helpers shared by the integration tests: where the assets and the tiny model are, and
//! skipping (loudly) when the shared assets or the ONNX Runtime library are absent.
#![allow(dead_code)]

pub mod data;

use std::path::{Path, PathBuf};

use extractor::runtime::{self, Runtime};

/// `../shared/assets` beside the repository.
pub fn assets() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/assets")
}

/// An asset file, or `None` after printing why the test is skipped.
pub fn asset(name: &str) -> Option<PathBuf> {
    let p = assets().join(name);
    if p.is_file() {
        Some(p)
    } else {
        eprintln!("skipping: {} not found", p.display());
        None
    }
}

/// The committed tiny model (`fixtures/tiny_model/`).
pub fn tiny_model(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/tiny_model")
        .join(name)
}

/// The ONNX Runtime, or `None` after printing why the test is skipped. Only "not found" skips;
/// a library that is there but does not load fails the test.
pub fn runtime() -> Option<&'static Runtime> {
    match runtime::load(None) {
        Ok(rt) => Some(rt),
        Err(extractor::Error::RuntimeNotFound { .. }) => {
            eprintln!(
                "skipping: ONNX Runtime library not found (run scripts/setup-ort.sh or set ORT_DYLIB_PATH)"
            );
            None
        }
        Err(e) => panic!("ONNX Runtime present but not loadable: {e}"),
    }
}

/// A fresh empty temporary folder for one test.
pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("extractor-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}
