//! The `_into` / `_assign` forms of the hot ring operations allocate nothing once their outputs
//! and scratch exist (DESIGN.md §3): checked with a counting global allocator.

// Test code: panicking on a broken invariant is the point.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use fhe_core::encoding::{Complex, Encoder};
use fhe_core::params::presets;
use fhe_core::ring::{Coeff, Ntt, Poly};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

struct Counting;

thread_local! {
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_in(f: impl FnOnce()) -> usize {
    let before = ALLOCS.with(Cell::get);
    f();
    ALLOCS.with(Cell::get) - before
}

#[test]
fn hot_ring_operations_do_not_allocate() {
    let params = presets::toy_insecure_n10().validate().unwrap();
    let ctx = params.ctx();
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let top = ctx.max_level();
    let a = Poly::<Ntt>::uniform(ctx, top, false, &mut rng);
    let b = Poly::<Ntt>::uniform(ctx, top, false, &mut rng);
    let ext = Poly::<Ntt>::uniform(ctx, top, true, &mut rng);
    let perm = ctx.galois_permutation(5);
    let mut out = Poly::<Ntt>::zero(ctx, top, true);
    let mut coeff = Poly::<Coeff>::zero(ctx, top, true);
    let mut scratch = vec![0u64; ctx.mod_down_scratch_len().max(ctx.extend_scratch_len())];
    let mut limb = a.limb(0).unwrap().to_vec();
    let ntt0 = &ctx.ntt_tables()[0];
    let enc = Encoder::new(&params, params.max_slots()).unwrap();
    let values = vec![Complex::new(0.5, -0.25); params.max_slots()];
    let mut cscratch = vec![Complex::ZERO; enc.scratch_len()];

    let mut out2 = out.clone();
    let mut scratch2 = scratch.clone();
    check("ntt forward+inverse", || {
        ntt0.forward(&mut limb).unwrap();
        ntt0.inverse(&mut limb).unwrap();
    });
    check("automorphism_into", || {
        a.automorphism_into(&perm, &mut out).unwrap()
    });
    check("add_into + mul_add_assign", || {
        a.add_into(ctx, &b, &mut out).unwrap();
        out.mul_add_assign(ctx, &a, &b).unwrap();
    });
    check("to_coeff_into + to_ntt_into", || {
        ext.to_coeff_into(ctx, &mut coeff);
        coeff.to_ntt_into(ctx, &mut out);
    });
    check("mul_into + rescale_assign", || {
        a.mul_into(ctx, &b, &mut out2).unwrap();
        out2.rescale_assign(ctx, &mut scratch2).unwrap();
    });
    check("mod_down_assign", || {
        out.clone_from(&ext);
        out.mod_down_assign(ctx, &mut scratch).unwrap();
    });
    check("encode_complex_into", || {
        enc.encode_complex_into(&values, params.scale(), top, &mut out, &mut cscratch)
            .unwrap();
    });
}

/// Runs `f` once to warm up (outputs reach their capacity), then asserts a second run
/// allocates nothing.
fn check(name: &str, mut f: impl FnMut()) {
    f();
    let n = allocations_in(&mut f);
    assert_eq!(n, 0, "{name} allocated {n} times");
}

#[test]
fn the_counter_counts() {
    // Guard against a counter that never fires (the test above would then pass vacuously).
    let n = allocations_in(|| {
        let v = vec![1u8; 100];
        std::hint::black_box(v);
    });
    assert_eq!(n, 1);
}
