//! `fhe-core`: a `no_std` + `alloc` RNS-CKKS library.
//!
//! Layers, lowest first (a module only uses the ones above it in this list):
//! - [`math`]: arithmetic modulo word-size primes (Barrett, Shoup), NTT-friendly prime generation;
//! - [`ntt`]: the negacyclic number-theoretic transform (own backend, optional `tfhe-ntt`);
//! - [`sampling`]: uniform, ternary, sparse-ternary and discrete-Gaussian samplers;
//! - [`ring`]: RNS polynomials with their representation in the type, basis extension, rescale;
//! - [`params`]: unchecked literal → validated parameters, security check, named presets;
//! - [`encoding`]: the CKKS canonical embedding, slots ↔ plaintext polynomials.
//! - [`keys`]: secret, public and hybrid key-switching keys (relinearisation, Galois);
//! - [`ciphertext`], [`encrypt`]: encryption with the public or secret key, decryption;
//! - [`keyswitch`]: ModUp / inner product / ModDown, hoistable;
//! - [`eval`]: the evaluator (add, multiply, relinearise, rescale, rotate, conjugate, ...);
//! - [`wire`]: the `BLTN` file header shared by every object that crosses the wire.
//!
//! ```
//! use fhe_core::encoding::{Encoder, Plaintext, Precision};
//! use fhe_core::params::presets;
//! use fhe_core::ring::Poly;
//!
//! // Validated 128-bit parameters at N = 2^13.
//! let params = presets::n13().validate()?;
//! let ctx = params.ctx();
//! let enc = Encoder::new(&params, 8)?;
//! let v = [0.5, -0.25, 1.0, 0.0, 0.125, -1.0, 0.75, 0.3];
//! let pt = enc.encode(&v)?;
//!
//! // Rotating the slots by one is the automorphism X -> X^5, an index permutation in the NTT
//! // domain.
//! let mut rotated = Poly::zero(ctx, 0, false);
//! pt.poly.automorphism_into(&ctx.galois_permutation(5), &mut rotated)?;
//! let got = enc.decode(&Plaintext { poly: rotated, ..pt })?;
//! let want: Vec<f64> = (0..8).map(|i| v[(i + 1) % 8]).collect();
//! assert!(Precision::of_real(&want, &got).min_bits > 30.0);
//! # Ok::<(), fhe_core::Error>(())
//! ```
#![no_std]
#![cfg_attr(docsrs, feature(doc_cfg))]

extern crate alloc;
#[cfg(any(test, feature = "std"))]
extern crate std;

pub mod ciphertext;
pub mod encoding;
pub mod encrypt;
pub mod error;
pub mod eval;
pub mod keys;
pub mod keyswitch;
pub mod math;
pub mod ntt;
mod par;
pub mod params;
pub mod ring;
pub mod sampling;
mod simd;
pub mod wire;

pub use error::Error;
