//! `extractor`: DEiT ONNX features from MedMNIST `.npz` files and image folders — the first step
//! on the hospital's side (DESIGN.md §1).
//!
//! - [`source`], [`npz`], [`folder`]: labelled images in named splits, and row selection;
//! - [`preprocess`]: RGB, Pillow-exact bilinear resize to 224, ImageNet normalisation;
//! - [`runtime`], [`model`], [`extract`] (feature `onnx`, on by default): ONNX Runtime through
//!   `ort` (loaded at run time from a library file), the model session, the batched loop;
//! - [`features`]: the `Features` file other crates read (no ONNX Runtime needed);
//! - [`fixtures`]: small committed feature files, embedded;
//! - feature `tract` (off by default): [`model::Model::load_tract`] runs the model in the pure-Rust
//!   tract engine instead, with no ONNX Runtime library (about half the speed).
//!
//! See `docs/EXTRACTOR.md` for set-up, formats and measured speed.

pub mod error;
#[cfg(feature = "onnx")]
pub mod extract;
pub mod features;
pub mod fixtures;
pub mod folder;
#[cfg(feature = "onnx")]
pub mod model;
pub mod npz;
pub mod preprocess;
#[cfg(feature = "onnx")]
pub mod runtime;
pub mod source;
#[cfg(feature = "tract")]
mod tract;

pub use error::{Error, Result};
pub use features::{Features, Precision, Split, Values};
pub use source::{Selection, Source};
