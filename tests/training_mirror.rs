//! The plaintext mirror against exact f64 softmax regression on the committed DeiT-tiny
//! fixtures (same batches, same schedule): test accuracy within 1 point; and the mirror's
//! operation counts per step equal the predicted formulas; epochs, validation loss and early
//! stopping through `trainer_core::session`.

mod common;

use common::split;
use extractor::fixtures::{Dataset as Fx, load};
use trainer_core::backend::{Backend, Mirror};
use trainer_core::data::{Dataset, Standardizer};
use trainer_core::exact::{self, Model};
use trainer_core::layout::Layout;
use trainer_core::nag::Schedule;
use trainer_core::refresh::AutoRefresh;
use trainer_core::session::{Plan, Verdict, pack_chunks, shuffled};
use trainer_core::softmax::SoftmaxApprox;
use trainer_core::train::{Batch, TrainConfig, Trainer, predicted_step_ops};

const SLOTS: usize = 1 << 15;

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
    /// Per epoch: the mirror's validation Brier score (computed as the encrypted run does) and
    /// the exact Brier score of the mirror's model.
    val: Vec<(f64, f64)>,
    epochs_run: usize,
}

fn run(fx: Fx, plan: Plan) -> Run {
    let f = load(fx).expect("fixture");
    let (train, val, test) = (split(&f, "train"), split(&f, "val"), split(&f, "test"));
    let st = Standardizer::fit(&train, 1.0 / (f.dim as f64).sqrt());
    let (tr, va, te) = (st.apply(&train), st.apply(&val), st.apply(&test));
    let schedule = Schedule {
        learning_rate: 1.0,
        decay: 0.0,
        momentum: Some(0.9),
    };
    let l = Layout::new(SLOTS, tr.features(), tr.classes()).expect("layout");
    // Hospital: shuffle once, pack into chunks ("encrypt" = mirror vectors).
    let packed = pack_chunks(&l, &tr, &shuffled(tr.len(), plan.seed));
    let packed_val = pack_chunks(&l, &va, &(0..va.len()).collect::<Vec<_>>());
    let mirror = Mirror::new(SLOTS, 24);
    let chunks = packed.map(|v| mirror.vector(v.to_vec()));
    let val_chunks = packed_val.map(|v| mirror.vector(v.to_vec()));
    let mut trainer = Trainer::new(
        l,
        TrainConfig {
            schedule,
            ..TrainConfig::default()
        },
    );
    let mut state = trainer.zero_state(|v| mirror.vector(v));
    let mut be = AutoRefresh::new(mirror.clone(), 2);
    let mut stopping = plan.early_stopping();
    let mut best = state.w.clone();
    let mut exact_epochs = Vec::new();
    let mut val_losses = Vec::new();
    let model_of = |w: &[trainer_core::backend::MirrorVector]| {
        let diags: Vec<Vec<f64>> = w.iter().map(|v| v.values.clone()).collect();
        Model {
            classes: tr.classes(),
            features: tr.features(),
            w: l.unpack_w(&diags),
        }
    };
    for epoch in 0..plan.epochs {
        // Cloud: permute the chunks, step through the mini-batches.
        for idx in plan.epoch_batches(chunks.len(), epoch) {
            trainer
                .step(&mut be, &mut state, &chunks.batch(&idx))
                .expect("step");
        }
        exact_epochs.push(plan.sample_batches(&packed, epoch));
        // Cloud: validation loss; hospital: decrypt one number, decide.
        let v = trainer
            .validation_loss(&mut be, &state.w, &val_chunks)
            .expect("validation")
            .expect("validation chunks");
        let loss = v.values[0];
        val_losses.push((loss, model_of(&state.w).brier(&va)));
        match stopping.observe(epoch, loss) {
            Verdict::Improved => best = state.w.clone(),
            Verdict::Worse => {}
            Verdict::Stop => break,
        }
    }
    let exact_model = exact::train(&tr, &exact_epochs, &schedule)
        .into_iter()
        .nth(stopping.best_epoch)
        .expect("model");
    let model = model_of(&best);
    Run {
        exact_acc: exact_model.accuracy(&te),
        mirror_acc: model.accuracy(&te),
        max_logit: exact_model
            .max_abs_logit(&te)
            .max(exact_model.max_abs_logit(&tr)),
        val: val_losses,
        epochs_run: exact_epochs.len(),
    }
}

#[test]
fn mirror_tracks_exact_within_one_point_on_every_fixture() {
    for fx in [Fx::Blood, Fx::OrganA, Fx::Mnist] {
        let plan = Plan {
            epochs: 6,
            chunks_per_batch: 2,
            seed: 11,
            patience: None,
            min_delta: 0.0,
        };
        let r = run(fx, plan);
        eprintln!(
            "{:<7} exact {:.4} mirror {:.4} (max |logit| {:.1}); validation Brier per epoch {:?}",
            fx.name(),
            r.exact_acc,
            r.mirror_acc,
            r.max_logit,
            r.val
        );
        assert_eq!(r.epochs_run, 6, "no patience: every epoch runs");
        for (e, (approx, exact)) in r.val.iter().enumerate() {
            assert!(
                (approx - exact).abs() < 2e-3,
                "{} epoch {e}: validation Brier {approx} (approximate softmax) vs {exact}",
                fx.name()
            );
        }
        let (first, last) = (r.val[0].1, r.val[5].1);
        assert!(
            last < first,
            "{}: validation loss fell ({first} → {last})",
            fx.name()
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
    // Unfolded packs, and folded ones (a backend that refreshes at half the slots).
    for period in [None, Some(SLOTS / 2)] {
        let mirror = Mirror::new(SLOTS, 200).with_refresh_period(period); // no refresh happens
        let mut trainer = Trainer::new(
            l,
            TrainConfig {
                softmax: approx.clone(),
                ..TrainConfig::default()
            },
        );
        let mut state = trainer.zero_state(|v| mirror.vector(v));
        let mut be = mirror.clone();
        for samples in [128usize, 256, 1024] {
            let idx: Vec<usize> = (0..samples).collect();
            let b = pack_batch(&l, &mirror, &tr, &idx);
            let report = trainer.step(&mut be, &mut state, &b).expect("step");
            let want = predicted_step_ops(&l, b.x.len() as u64, trainer.config(), period.is_some());
            let case = format!("{samples} samples, period {period:?}");
            assert_eq!(report.ops.mult, want.mult, "mult, {case}");
            assert_eq!(report.ops.cmult, want.cmult, "cmult, {case}");
            assert_eq!(report.ops.rot, want.rot, "rot, {case}");
            assert_eq!(report.ops.relin, want.relin, "relin, {case}");
            assert_eq!(report.ops.refresh, 0);
        }
        assert!(be.counts().mult > 0);
    }
}

/// Folded packs (for a refresh at half the slots) compute the same step as plain packs: the
/// same weights after three steps, and every vector refreshed on the way repeats with the
/// period (the mirror checks each one), on a chain short enough to refresh often.
#[test]
fn folded_packs_train_like_plain_packs_and_refresh_only_periodic_vectors() {
    let f = load(Fx::Blood).expect("fixture");
    let tr = common::standardized(&f, "train");
    let l = Layout::new(SLOTS, tr.features(), tr.classes()).expect("layout");
    assert!(l.can_fold());
    let mut runs = Vec::new();
    for period in [None, Some(SLOTS / 2)] {
        let mirror = Mirror::new(SLOTS, 9).with_refresh_period(period);
        let mut trainer = Trainer::new(l, TrainConfig::bootstrapped());
        let mut state = trainer.zero_state(|v| mirror.vector(v));
        let mut be = AutoRefresh::new(mirror.clone(), 0);
        for step in 0..3 {
            let idx: Vec<usize> = (step * 300..step * 300 + 300).collect();
            let b = pack_batch(&l, &mirror, &tr, &idx);
            trainer.step(&mut be, &mut state, &b).expect("step");
        }
        assert!(be.counts().refresh > 0, "the short chain refreshed");
        runs.push((state, be.counts()));
    }
    let [(plain, plain_ops), (folded, folded_ops)] = &runs[..] else {
        panic!("two runs");
    };
    for (a, b) in plain.w.iter().zip(&folded.w) {
        let d = common::max_abs_diff(&a.values, &b.values);
        assert!(d < 1e-12, "weights differ by {d}");
        assert_eq!(a.level, b.level);
    }
    assert_eq!(plain_ops.refresh, folded_ops.refresh, "same refresh points");
    assert!(folded_ops.rot > plain_ops.rot && folded_ops.cmult > plain_ops.cmult);
    eprintln!("plain {plain_ops:?}\nfolded {folded_ops:?}");
}

/// The bootstrapped mode at `n16_boot`'s levels (9 working levels, a refresh at level 0 at
/// half the slots, batch 1024): after the first step every step makes the same five
/// refreshes of the softmax and its probabilities, the weights riding along with the last
/// one (two vectors in one bootstrapping), and leaves the weights and the look-ahead at
/// level 6, which lets the next step's exponential run before its first refresh. Counted
/// on the mirror, which decides exactly as the encrypted backend does.
#[test]
fn bootstrapped_mode_settles_at_five_bootstrappings_per_step() {
    let f = load(Fx::Blood).expect("fixture");
    let tr = common::standardized(&f, "train");
    let l = Layout::new(SLOTS, tr.features(), tr.classes()).expect("layout");
    let mirror = Mirror::new(SLOTS, 9).with_refresh_period(Some(SLOTS / 2));
    let mut trainer = Trainer::new(l, TrainConfig::bootstrapped());
    let mut state = trainer.zero_state(|v| mirror.vector(v));
    let mut be = AutoRefresh::new(mirror.clone(), 0);
    for step in 0..5 {
        let idx: Vec<usize> = (0..1024).map(|i| (i + step * 300) % tr.len()).collect();
        let b = pack_batch(&l, &mirror, &tr, &idx);
        let r = trainer.step(&mut be, &mut state, &b).expect("step");
        let levels: Vec<usize> = state.look.iter().chain(&state.w).map(|v| v.level).collect();
        eprintln!("step {step}: {:?}, levels {levels:?}", r.ops);
        assert!(
            levels.iter().all(|&v| v == 6),
            "step {step}: levels {levels:?}"
        );
        if step == 0 {
            // Fresh weights: the exponential needs no refresh, nor do the weights.
            assert_eq!(r.ops.refresh, 5);
        } else {
            // Four refreshes in the softmax, then the probabilities and the weights' packed
            // vector together (six vectors, five bootstrappings), with the compact
            // refresh's 2·2·c_pad masks.
            assert_eq!(r.ops.refresh, 6, "step {step}");
            let plain = predicted_step_ops(&l, b.x.len() as u64, trainer.config(), true);
            assert_eq!(r.ops.cmult, plain.cmult + 4 * l.c_pad as u64, "step {step}");
        }
    }
}

#[test]
fn mirror_weights_equal_exact_nag_weights_step_by_step() {
    // The same 128 samples for three steps: the mirror's decoded weights follow exact NAG to
    // 1e-6 (the softmax approximation error), so the packing and step order are right.
    let f = load(Fx::Blood).expect("fixture");
    let tr = common::standardized(&f, "train");
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
            ..TrainConfig::default()
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
        let err = common::max_abs_diff(&got, &want.w);
        assert!(err < 1e-6, "step {steps}: max weight difference {err:e}");
    }
}

#[test]
fn early_stopping_ends_the_run_and_keeps_the_best_epoch() {
    // The validation loss flattens after a few epochs; with patience 1, the first epoch that
    // improves it by less than min_delta ends the run before its 12 epochs, and the kept model
    // is the best epoch's (the exact reference is taken at that same epoch).
    let plan = Plan {
        epochs: 12,
        chunks_per_batch: 1,
        seed: 3,
        patience: Some(1),
        min_delta: 0.01,
    };
    let r = run(Fx::Blood, plan);
    eprintln!("stopped after {} epochs: {:?}", r.epochs_run, r.val);
    assert!(r.epochs_run < 12, "patience 1 stopped the run early");
    let best = r.val.iter().map(|v| v.0).fold(f64::INFINITY, f64::min);
    let last = r.val.last().expect("epochs").0;
    assert!(
        last > best - 0.01,
        "the last epoch did not improve by min_delta"
    );
    assert!((r.exact_acc - r.mirror_acc).abs() <= 0.01);
}

/// A packed softmax over many chunks gives each chunk what a softmax of its own gives, with
/// one evaluation per `pack_width` chunks.
#[test]
fn packed_predictions_equal_per_chunk_predictions() {
    let f = load(Fx::OrganA).expect("fixture");
    let tr = split(&f, "train");
    let st = Standardizer::fit(&tr, 1.0 / (f.dim as f64).sqrt());
    let tr = st.apply(&tr);
    let l = Layout::new(SLOTS, tr.features(), tr.classes()).expect("layout");
    let mirror = Mirror::new(SLOTS, 1000); // deep enough that no refresh happens
    let mut trainer = Trainer::new(l, TrainConfig::default());
    let mut state = trainer.zero_state(|v| mirror.vector(v));
    let mut be = mirror.clone();
    // A few steps so the weights are not zero; the last chunk is partly used.
    let idx: Vec<usize> = (0..l.rows * 9 + 17).collect();
    let b = pack_batch(&l, &mirror, &tr, &idx);
    for _ in 0..3 {
        trainer.step(&mut be, &mut state, &b).expect("step");
    }
    let c0 = be.counts();
    let many = trainer
        .predict_many(&mut be, &state.w, &b.x, &b.rows)
        .expect("packed");
    let packed_mults = (be.counts() - c0).relin;
    let c1 = be.counts();
    for ((x, &rows), p) in b.x.iter().zip(&b.rows).zip(&many) {
        let one = trainer
            .predict(&mut be, &state.w, x, rows)
            .expect("one chunk");
        let err = common::max_abs_diff(&one.values, &p.values);
        assert!(err < 1e-12, "packed vs per chunk: {err}");
        assert!(p.values.iter().any(|&v| v > 0.0));
    }
    let single_mults = (be.counts() - c1).relin;
    // 10 chunks in packs of 8 (OrganA: c_pad 16, block 256): 2 softmaxes instead of 10.
    assert_eq!(l.pack_width(), 8);
    let (chunks, sm) = (b.x.len() as u64, single_mults / b.x.len() as u64 - 1);
    assert_eq!(packed_mults, chunks + 2 * sm, "relinearisations");
}
