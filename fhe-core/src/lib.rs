//! `fhe-core`: a `no_std` + `alloc` RNS-CKKS library.
//!
//! Layers, lowest first (a module only uses the ones above it in this list):
//! - [`math`]: arithmetic modulo word-size primes (Barrett, Shoup), NTT-friendly prime generation;
//! - [`ntt`]: the negacyclic number-theoretic transform (own backend, optional `tfhe-ntt`);
//! - [`sampling`]: uniform, ternary, sparse-ternary and discrete-Gaussian samplers;
//! - [`ring`]: RNS polynomials with their representation in the type, basis extension, rescale;
//! - [`params`]: unchecked literal → validated parameters, security check, named presets;
//! - [`encoding`]: the CKKS canonical embedding, slots ↔ plaintext polynomials.
//! - [`wire`]: the `BLTN` file header shared by every object that crosses the wire.
#![no_std]
#![cfg_attr(docsrs, feature(doc_cfg))]

extern crate alloc;
#[cfg(any(test, feature = "std"))]
extern crate std;

pub mod encoding;
pub mod error;
pub mod math;
pub mod ntt;
pub mod params;
pub mod ring;
pub mod sampling;
pub mod wire;

pub use error::Error;
