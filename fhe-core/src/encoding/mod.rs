//! CKKS encoding: the canonical embedding between complex slot vectors and plaintext
//! polynomials.
//!
//! - [`fft`]: the special FFT over the rotation group 5^j (slots ↔ real coefficients), pure f64;
//! - the RNS encoder (rounding at a scale into a ring polynomial) builds on it.

pub mod fft;
