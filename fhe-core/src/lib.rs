#![doc = include_str!("../README.md")]
#![no_std]
#![cfg_attr(docsrs, feature(doc_cfg))]

extern crate alloc;
#[cfg(any(test, feature = "std"))]
extern crate std;

pub mod bootstrap;
pub mod ciphertext;
pub mod encoding;
pub mod encrypt;
pub mod error;
pub mod eval;
pub mod format;
pub mod keys;
pub mod keyswitch;
pub mod linear;
pub mod math;
pub mod ntt;
mod par;
pub mod params;
pub mod poly;
pub mod refresh;
pub mod ring;
pub mod sampling;
mod simd;
pub mod wire;

pub use error::Error;
