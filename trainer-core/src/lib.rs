//! `trainer-core`: encrypted Nesterov softmax-head training on CKKS slot vectors, written once
//! against a [`backend::Backend`], with the plaintext mirror and an exact f64 reference.
//!
//! - [`layout`]: how mini-batches, labels and the model are packed into slot vectors;
//! - [`backend`]: the slot-vector operations, op counting, and the plaintext [`backend::Mirror`];
//! - [`ckks`]: the encrypted backend (canonical per-level scales, refresh hook);
//! - [`softmax`]: the polynomial softmax approximation, every constant named;
//! - [`train`]: the Nesterov step on a packed mini-batch, encrypted inference, predicted op counts;
//! - [`refresh`]: the automatic refresh policy (same decisions on every backend);
//! - [`session`]: epochs: shuffling, chunk batches, validation, early stopping;
//! - [`nag`]: learning-rate and momentum schedules;
//! - [`exact`]: plain f64 softmax regression with NAG (the reference);
//! - [`data`]: datasets and the hospital-side standardisation;
//! - [`hetal`]: HETAL's block packing and its DiagABT / DiagATB products, for comparison;
//! - `timing` (feature `std`): wall-clock time per operation kind.
#![no_std]

extern crate alloc;
#[cfg(any(test, feature = "std"))]
extern crate std;

pub mod backend;
pub mod ckks;
pub mod data;
pub mod exact;
pub mod hetal;
pub mod layout;
pub mod nag;
pub mod refresh;
pub mod session;
pub mod softmax;
#[cfg(feature = "std")]
pub mod timing;
pub mod train;

/// Version of the training algorithm's wire-visible conventions (packing, step order).
pub const ALGORITHM_VERSION: u32 = 1;
