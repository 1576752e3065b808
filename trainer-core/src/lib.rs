//! `trainer-core`: the encrypted Nesterov softmax-head trainer, written once against a slot
//! backend, with a plaintext mirror. This crate is a placeholder until its issue lands; it
//! exists so the workspace shape and the no_std build are fixed from the start.
#![no_std]

extern crate alloc;

/// Version of the training algorithm's wire-visible conventions (packing, step order).
pub const ALGORITHM_VERSION: u32 = 0;
