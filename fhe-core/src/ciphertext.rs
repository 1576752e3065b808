//! CKKS ciphertexts: polynomials `(c_0, c_1[, c_2])` in NTT form at one level, with the scale
//! and slot count of the message they hold. `c_0 + c_1·s (+ c_2·s²) ≈ Δ·m`.

use alloc::vec::Vec;

use crate::Error;
use crate::keys::Seed;
use crate::ring::{Ntt, Poly};

/// A ciphertext.
#[derive(Clone, Debug, PartialEq)]
pub struct Ciphertext {
    pub(crate) c: Vec<Poly<Ntt>>,
    /// The scale Δ of the message.
    pub scale: f64,
    /// The slot count of the message.
    pub slots: usize,
    /// Set on fresh secret-key encryptions: `c_1` is the expansion of this seed at this level
    /// (files then store only `c_0` and the seed). Cleared by every operation.
    pub(crate) seed: Option<Seed>,
}

impl Ciphertext {
    /// Builds a ciphertext from its polynomials (all NTT form, same level, not extended).
    pub fn from_parts(c: Vec<Poly<Ntt>>, scale: f64, slots: usize) -> Result<Self, Error> {
        let Some(first) = c.first() else {
            return Err(Error::WrongDegree {
                expected: 1,
                found: 0,
            });
        };
        let level = first.level();
        if c.len() < 2 || c.len() > 3 {
            return Err(Error::WrongDegree {
                expected: 1,
                found: c.len().saturating_sub(1),
            });
        }
        if let Some(bad) = c.iter().find(|p| p.level() != level || p.is_extended()) {
            return Err(Error::LevelTooLow {
                have: bad.level(),
                need: level,
            });
        }
        Ok(Self {
            c,
            scale,
            slots,
            seed: None,
        })
    }

    /// A placeholder without polynomials (no allocation), to be filled by an `_into`
    /// operation.
    pub(crate) fn empty() -> Self {
        Self {
            c: Vec::new(),
            scale: 0.0,
            slots: 0,
            seed: None,
        }
    }

    /// The level (number of rescalings left).
    pub fn level(&self) -> usize {
        self.c.first().map_or(0, Poly::level)
    }

    /// The degree: 1 for a normal ciphertext, 2 after a tensor product before relinearisation.
    pub fn degree(&self) -> usize {
        self.c.len().saturating_sub(1)
    }

    /// The polynomials.
    pub fn polys(&self) -> &[Poly<Ntt>] {
        &self.c
    }

    /// The seed of `c_1`, for fresh secret-key encryptions.
    pub fn seed(&self) -> Option<&Seed> {
        self.seed.as_ref()
    }

    /// Drops every polynomial to `level` (no allocation).
    pub fn drop_to_level(&mut self, level: usize) -> Result<(), Error> {
        for p in &mut self.c {
            p.drop_to_level(level)?;
        }
        self.seed = None;
        Ok(())
    }
}
