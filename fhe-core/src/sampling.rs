//! Samplers (temporary minimal version; the full module lands from the `encoding` branch).

use rand_core::{CryptoRng, RngCore};

/// Uniform values in `[0, q)` by rejection sampling.
pub fn uniform_mod<R: RngCore + CryptoRng>(rng: &mut R, q: u64, out: &mut [u64]) {
    let mask = u64::MAX >> (q - 1).leading_zeros();
    for x in out.iter_mut() {
        loop {
            let v = rng.next_u64() & mask;
            if v < q {
                *x = v;
                break;
            }
        }
    }
}
