//! Facade of the blindtuner workspace: re-exports the core crates so the cross-crate tests in
//! `tests/` and the criterion benchmarks in `benches/` can name them from one place.
//! The crates themselves are `fhe-core`, `trainer-core`, `extractor` and `tui`.

pub use fhe_core;
pub use trainer_core;
