//! The two matrix products of a training step, ours (the diagonal layout of
//! `trainer_core::layout`, as `trainer_core::train` runs them) against HETAL's DiagABT and
//! DiagATB (`trainer_core::hetal`), on the same backends: operation counts, key switches
//! (relinearisations, rotations, conjugations), levels taken and, with `ckks`, seconds on
//! this machine. One JSON object per product.
//!
//! `cargo run --release -p blindtuner --features parallel --example matmul_cost -- [preset]
//! [a] [b] [c] [ckks]` (defaults: `n16_train 1024 193 8`, the trainer's cost point: batch
//! 1024, DeiT-tiny's 192 features plus the bias, 8 classes). Without `ckks` the products run
//! on the mirrors (a second, no keys). With `ckks` each design gets its own keys (ours: the
//! layout's 27 rotations, about 7 GiB at N = 2^16; HETAL's: 35 rotations and the conjugation,
//! about 9 GiB), one after the other. Inputs are random; data and model start at level
//! [`LEVEL`] (a working level of the trainer, where its products run; the costs of both
//! designs grow with it alike), the class matrix (`P − Y`) three levels lower, as a softmax
//! leaves it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Instant;

#[path = "../tests/common/mod.rs"]
mod common;

use blindtuner::harness::{Hospital, setup_with_keys};
use fhe_core::ciphertext::Ciphertext;
use fhe_core::encoding::Complex;
use fhe_core::params::presets;
use trainer_core::backend::{Backend, ComplexSlots, Mirror, OpCounts, rotate_sum};
use trainer_core::hetal::{AtbVariant, HetalMatmul, Shape};
use trainer_core::layout::Layout;
use trainer_core::train::predicted_matmul_ops;

/// The level data and model start at.
const LEVEL: usize = 10;

/// How far below them the class matrix starts (a softmax's output).
const CLASS_DROP: usize = 3;

fn report(design: &str, product: &str, ops: OpCounts, top: usize, level: usize, secs: Option<f64>) {
    let seconds = secs.map_or("null".to_string(), |s| format!("{s:.3}"));
    println!(
        "{{\"design\":\"{design}\",\"product\":\"{product}\",\"mult\":{},\"cmult\":{},\"rot\":{},\
         \"relin\":{},\"conj\":{},\"key_switches\":{},\"level_out\":{level},\"levels_below_top\":{},\
         \"seconds\":{seconds}}}",
        ops.mult,
        ops.cmult,
        ops.rot,
        ops.relin,
        ops.conj,
        ops.relin + ops.rot + ops.conj,
        top - level,
    );
}

/// Our two products, as `Trainer::step` runs them: per data vector the `c_pad − 1` hoisted
/// in-row rotations, `Σ diag_i ⊙ rot(X, i)`, the block sum and the logit mask; per error
/// vector its replication, then per class `Σ_chunks Ẽ ⊙ rot(X, i)`, the row sum and the
/// gradient mask.
fn ours<B: Backend>(
    be: &mut B,
    l: &Layout,
    xs: &[B::Vector],
    w: &[B::Vector],
    es: &[B::Vector],
    timed: bool,
) {
    let logit_mask = be.plain(l.class_mask(l.rows, 1.0));
    let grad_mask = be.plain(l.diag_mask(1.0));
    let top = xs.iter().map(|x| be.level(x)).min().unwrap();
    let (before, t0) = (be.counts(), Instant::now());
    let mut rxs = Vec::new();
    let mut level = top;
    for x in xs {
        let mut rx = be.rotate_many(x, &l.diag_steps()).unwrap();
        rx.insert(0, x.clone());
        let pairs: Vec<_> = w.iter().zip(&rx).collect();
        let t = be.mul_sum(&pairs).unwrap();
        let t = rotate_sum(be, t, l.block_sum_steps()).unwrap();
        let masked = be.mul_plain(&t, logit_mask).unwrap();
        level = be.level(&masked);
        rxs.push(rx);
    }
    let secs = timed.then(|| t0.elapsed().as_secs_f64());
    let fwd = be.counts() - before;
    assert_eq!(
        OpCounts { add: 0, ..fwd },
        predicted_matmul_ops(l, xs.len() as u64).0
    );
    report("ours", "forward (X·Wᵀ)", fwd, top, level, secs);

    let (before, t0) = (be.counts(), Instant::now());
    let errs: Vec<B::Vector> = es
        .iter()
        .map(|e| rotate_sum(be, e.clone(), l.replicate_steps()).unwrap())
        .collect();
    for i in 0..l.c_pad {
        let pairs: Vec<_> = errs.iter().zip(rxs.iter().map(|rx| &rx[i])).collect();
        let g = be.mul_sum(&pairs).unwrap();
        let g = rotate_sum(be, g, l.row_sum_steps()).unwrap();
        let masked = be.mul_plain(&g, grad_mask).unwrap();
        level = be.level(&masked);
    }
    let secs = timed.then(|| t0.elapsed().as_secs_f64());
    let grad = be.counts() - before;
    assert_eq!(
        OpCounts { add: 0, ..grad },
        predicted_matmul_ops(l, xs.len() as u64).1
    );
    report("ours", "gradient (Xᵀ(P−Y))", grad, top, level, secs);
}

/// HETAL's DiagABT, then DiagATB in both variants.
fn hetal<B: ComplexSlots>(
    be: &mut B,
    sh: Shape,
    xs: &[B::Vector],
    w: &[B::Vector],
    es: &[B::Vector],
    timed: bool,
) {
    let mut hm = HetalMatmul::new(sh);
    let top = be.level(&xs[0]);
    let (before, t0) = (be.counts(), Instant::now());
    let out = hm.abt(be, xs, w).unwrap();
    let secs = timed.then(|| t0.elapsed().as_secs_f64());
    let level = be.level(&out[0]);
    report("hetal", "DiagABT", be.counts() - before, top, level, secs);
    for variant in [AtbVariant::FewestOps, AtbVariant::SaveLevel] {
        let (before, t0) = (be.counts(), Instant::now());
        let out = hm.atb(be, xs, es, variant).unwrap();
        let secs = timed.then(|| t0.elapsed().as_secs_f64());
        let level = be.level(&out[0]);
        report(
            "hetal",
            &format!("DiagATB {variant:?}"),
            be.counts() - before,
            top,
            level,
            secs,
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let ckks = args.iter().any(|a| a == "ckks");
    let args: Vec<&String> = args.iter().filter(|a| *a != "ckks").collect();
    let preset = args.first().map_or("n16_train", |s| s.as_str());
    let num = |i: usize, default: usize| {
        args.get(i)
            .map_or(default, |s| s.parse().expect("a number"))
    };
    let (a, b, c) = (num(1, 1024), num(2, 193), num(3, 8));
    let params = presets::by_name(preset)
        .unwrap_or_else(|| panic!("unknown preset {preset}"))
        .validate()
        .expect("params");
    let slots = params.max_slots();
    // `b` counts the bias column; the layout adds its own.
    let l = Layout::new(slots, b - 1, c).expect("layout");
    let sh = Shape::new(a, b, c, slots).expect("shape");
    let chunks = a.div_ceil(l.rows);
    eprintln!(
        "(a, b, c) = ({a}, {b}, {c}), {slots} slots: ours {chunks} data vectors of {} rows × {} slots; \
         HETAL blocks of {} × {} ({} × {} of them)",
        l.rows,
        l.block,
        sh.s0,
        sh.s1,
        sh.row_blocks(),
        sh.col_blocks()
    );
    let vecs = |n: usize, seed: u64| -> Vec<Vec<f64>> {
        (0..n)
            .map(|k| common::uniform(slots, seed + k as u64))
            .collect()
    };
    let x = common::uniform(a * b, 1);
    let hx = sh.encode_data(&x).unwrap();
    let hw = sh.encode_model(&common::uniform(c * b, 2)).unwrap();
    let he = sh.encode_classes(&common::uniform(a * c, 3)).unwrap();
    if !ckks {
        let top = LEVEL;
        let mut m = Mirror::new(slots, top);
        let xs: Vec<_> = vecs(chunks, 10).into_iter().map(|v| m.vector(v)).collect();
        let w: Vec<_> = vecs(l.c_pad, 20).into_iter().map(|v| m.vector(v)).collect();
        let es: Vec<_> = vecs(chunks, 30)
            .into_iter()
            .map(|v| m.vector_at(v, top - CLASS_DROP))
            .collect();
        ours(&mut m, &l, &xs, &w, &es, false);
        let mut m = Mirror::complex(slots, top);
        let cx = |v: &Vec<f64>| v.iter().map(|&r| Complex::new(r, 0.0)).collect::<Vec<_>>();
        let xs: Vec<_> = hx.iter().map(|v| m.vector(cx(v))).collect();
        let w: Vec<_> = hw.iter().map(|v| m.vector(cx(v))).collect();
        let es: Vec<_> = he
            .iter()
            .map(|v| m.vector_at(cx(v), top - CLASS_DROP))
            .collect();
        hetal(&mut m, sh, &xs, &w, &es, false);
        return;
    }
    {
        let t0 = Instant::now();
        let (mut hospital, mut be) =
            setup_with_keys(&params, &l.all_steps(), false, 1).expect("keys");
        eprintln!("ours: keys in {:.1} s", t0.elapsed().as_secs_f64());
        let top = LEVEL.min(be.top_level());
        let xs = upload(&mut hospital, &mut be, &vecs(chunks, 10), top);
        let w = upload(&mut hospital, &mut be, &vecs(l.c_pad, 20), top);
        let es = upload(&mut hospital, &mut be, &vecs(chunks, 30), top - CLASS_DROP);
        ours(&mut be, &l, &xs, &w, &es, true);
    }
    let t0 = Instant::now();
    let (mut hospital, mut be) =
        setup_with_keys(&params, &sh.rotation_steps(), true, 2).expect("keys");
    eprintln!("hetal: keys in {:.1} s", t0.elapsed().as_secs_f64());
    let top = LEVEL.min(be.top_level());
    let xs = upload(&mut hospital, &mut be, &hx, top);
    let w = upload(&mut hospital, &mut be, &hw, top);
    let es = upload(&mut hospital, &mut be, &he, top - CLASS_DROP);
    hetal(&mut be, sh, &xs, &w, &es, true);
}

/// Encrypted by the hospital and brought down to `level`.
fn upload<B: Backend<Vector = Ciphertext>>(
    hospital: &mut Hospital,
    be: &mut B,
    vs: &[Vec<f64>],
    level: usize,
) -> Vec<Ciphertext> {
    vs.iter()
        .map(|v| be.lower(&hospital.encrypt(v).unwrap(), level).unwrap())
        .collect()
}
