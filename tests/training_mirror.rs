//! The plaintext mirror against exact f64 softmax regression on the committed DeiT-tiny
//! fixtures (same batches, same schedule): test accuracy within 1 point; and the mirror's
//! operation counts per step equal the predicted formulas.

mod common;

use common::split;
use extractor::fixtures::{Dataset as Fx, load};
use trainer_core::backend::{Backend, Mirror};
use trainer_core::data::{Dataset, Standardizer};
use trainer_core::exact::{self, Model};
use trainer_core::layout::Layout;
use trainer_core::nag::Schedule;
use trainer_core::refresh::AutoRefresh;
use trainer_core::softmax::SoftmaxApprox;
use trainer_core::train::{Batch, TrainConfig, Trainer, predicted_step_ops};

const SLOTS: usize = 1 << 15;

/// Deterministic shuffled mini-batches per epoch.
fn epochs(n: usize, batch: usize, count: u64) -> Vec<Vec<Vec<usize>>> {
    (0..count)
        .map(|e| {
            let mut idx: Vec<usize> = (0..n).collect();
            let mut s = 0x9e37_79b9_7f4a_7c15u64 ^ (e + 1);
            for i in (1..n).rev() {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                idx.swap(i, (s % (i as u64 + 1)) as usize);
            }
            idx.chunks(batch).map(<[usize]>::to_vec).collect()
        })
        .collect()
}

fn pack_batch(
    l: &Layout,
    m: &Mirror,
    data: &Dataset,
    idx: &[usize],
) -> Batch<trainer_core::backend::MirrorVector> {
    let mut b = Batch {
        x: vec![],
        y: vec![],
        rows: vec![],
    };
    for chunk in idx.chunks(l.rows) {
        b.x.push(m.vector(l.pack_x(chunk.iter().map(|&i| data.row(i)))));
        b.y.push(m.vector(l.pack_y(chunk.iter().map(|&i| data.label(i)))));
        b.rows.push(chunk.len());
    }
    b
}

struct Run {
    exact_acc: f64,
    mirror_acc: f64,
    max_logit: f64,
}

fn run(fx: Fx, n_epochs: u64) -> Run {
    let f = load(fx).expect("fixture");
    let (train, test) = (split(&f, "train"), split(&f, "test"));
    let st = Standardizer::fit(&train, 1.0 / (f.dim as f64).sqrt());
    let (tr, te) = (st.apply(&train), st.apply(&test));
    let batch = 256;
    let schedule = Schedule {
        learning_rate: 1.0,
        decay: 0.0,
        momentum: Some(0.9),
    };
    let plan = epochs(tr.len(), batch, n_epochs);
    let exact_model = exact::train(&tr, &plan, &schedule).pop().expect("model");

    let l = Layout::new(SLOTS, tr.features(), tr.classes()).expect("layout");
    let mirror = Mirror::new(SLOTS, 24);
    let mut trainer = Trainer::new(
        l,
        TrainConfig {
            schedule,
            softmax: SoftmaxApprox::default(),
        },
    );
    let mut state = trainer.zero_state(|v| mirror.vector(v));
    let mut be = AutoRefresh::new(mirror.clone(), 2);
    for batches in &plan {
        for idx in batches {
            let b = pack_batch(&l, &mirror, &tr, idx);
            trainer.step(&mut be, &mut state, &b).expect("step");
        }
    }
    let diags: Vec<Vec<f64>> = state.w.iter().map(|v| v.values.clone()).collect();
    let model = Model {
        classes: tr.classes(),
        features: tr.features(),
        w: l.unpack_w(&diags),
    };
    Run {
        exact_acc: exact_model.accuracy(&te),
        mirror_acc: model.accuracy(&te),
        max_logit: exact_model
            .max_abs_logit(&te)
            .max(exact_model.max_abs_logit(&tr)),
    }
}

#[test]
fn mirror_tracks_exact_within_one_point_on_every_fixture() {
    for fx in [Fx::Blood, Fx::OrganA, Fx::Mnist] {
        let r = run(fx, 6);
        eprintln!(
            "{:<7} exact {:.4} mirror {:.4} (max |logit| {:.1})",
            fx.name(),
            r.exact_acc,
            r.mirror_acc,
            r.max_logit
        );
        assert!(
            r.exact_acc > 0.6,
            "{}: exact training did not learn ({})",
            fx.name(),
            r.exact_acc
        );
        assert!(
            (r.exact_acc - r.mirror_acc).abs() <= 0.01,
            "{}: mirror {:.4} vs exact {:.4}",
            fx.name(),
            r.mirror_acc,
            r.exact_acc
        );
    }
}

#[test]
fn step_op_counts_match_the_formulas() {
    let f = load(Fx::OrganA).expect("fixture");
    let tr = split(&f, "train");
    let l = Layout::new(SLOTS, tr.features(), tr.classes()).expect("layout");
    let approx = SoftmaxApprox::default();
    let mirror = Mirror::new(SLOTS, 200); // deep enough that no refresh happens
    let mut trainer = Trainer::new(
        l,
        TrainConfig {
            schedule: Schedule::default(),
            softmax: approx.clone(),
        },
    );
    let mut state = trainer.zero_state(|v| mirror.vector(v));
    let mut be = mirror.clone();
    for samples in [128usize, 256, 1024] {
        let idx: Vec<usize> = (0..samples).collect();
        let b = pack_batch(&l, &mirror, &tr, &idx);
        let report = trainer.step(&mut be, &mut state, &b).expect("step");
        let want = predicted_step_ops(&l, b.x.len() as u64, &approx);
        assert_eq!(report.ops.mult, want.mult, "mult, {samples} samples");
        assert_eq!(report.ops.cmult, want.cmult, "cmult, {samples} samples");
        assert_eq!(report.ops.rot, want.rot, "rot, {samples} samples");
        assert_eq!(report.ops.relin, want.relin, "relin, {samples} samples");
        assert_eq!(report.ops.refresh, 0);
    }
    assert!(be.counts().mult > 0);
}

#[test]
fn mirror_weights_equal_exact_nag_weights_step_by_step() {
    // The same 128 samples for three steps: the mirror's decoded weights follow exact NAG to
    // 1e-6 (the softmax approximation error), so the packing and step order are right.
    let f = load(Fx::Blood).expect("fixture");
    let tr = {
        let t = split(&f, "train");
        Standardizer::fit(&t, 1.0 / (f.dim as f64).sqrt()).apply(&t)
    };
    let l = Layout::new(SLOTS, tr.features(), tr.classes()).expect("layout");
    let schedule = Schedule {
        learning_rate: 1.0,
        decay: 0.0,
        momentum: Some(0.9),
    };
    let idx: Vec<usize> = (0..128).collect();
    let m = Mirror::new(SLOTS, 1000);
    let mut trainer = Trainer::new(
        l,
        TrainConfig {
            schedule,
            softmax: SoftmaxApprox::default(),
        },
    );
    let mut state = trainer.zero_state(|v| m.vector(v));
    let mut be = m.clone();
    let b = pack_batch(&l, &m, &tr, &idx);
    for steps in 1..=3usize {
        trainer.step(&mut be, &mut state, &b).expect("step");
        let want = exact::train(&tr, &[vec![idx.clone(); steps]], &schedule)
            .pop()
            .expect("model");
        let diags: Vec<Vec<f64>> = state.w.iter().map(|v| v.values.clone()).collect();
        let got = l.unpack_w(&diags);
        let err = got
            .iter()
            .zip(&want.w)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(err < 1e-6, "step {steps}: max weight difference {err:e}");
    }
}
