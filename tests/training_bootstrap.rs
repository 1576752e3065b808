//! Encrypted training with bootstrapping as the refresh (the cloud alone, public keys only),
//! against the plaintext mirror: one Nesterov step on BloodMNIST fixture features at an
//! **insecure** toy bootstrapping chain (`presets::toy_insecure_boot_train`: N = 2^10, 6 levels
//! left after bootstrapping), so the
//! whole path runs in the default test run.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

mod common;

use blindtuner::harness::setup_bootstrap;
use extractor::fixtures::{Dataset as Fx, load};
use fhe_core::bootstrap::{BootstrapConfig, Bootstrapper};
use fhe_core::encoding::{Encoder, Precision};
use fhe_core::encrypt::{decrypt, encrypt_sk};
use fhe_core::keys::SecretKey;
use fhe_core::params::presets;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use trainer_core::backend::{Backend, Mirror, MirrorVector};
use trainer_core::ckks::{Bootstrap, CkksBackend};
use trainer_core::layout::Layout;
use trainer_core::refresh::AutoRefresh;
use trainer_core::session::pack_chunks;
use trainer_core::train::{Batch, TrainConfig, Trainer};

/// Full-slot bootstrapping, the trainer's packs as they are.
#[test]
fn bootstrapped_step_tracks_the_mirror() {
    bootstrapped_step_tracks_the_mirror_at(false, TrainConfig::default(), 1);
}

/// Bootstrapping at half the slots ([`trainer_core::ckks::bootstrap_config`], what the
/// bootstrapped mode uses): the trainer folds its packs, and the mirror checks that every
/// bootstrapped vector repeats with the period.
#[test]
fn sparse_bootstrapped_step_with_folded_packs_tracks_the_mirror() {
    bootstrapped_step_tracks_the_mirror_at(true, TrainConfig::default(), 1);
}

/// What the bootstrapped mode runs (`TrainConfig::bootstrapped()`: the shallow softmax, the
/// compact weights refresh riding along with the probabilities' bootstrapping, folded packs
/// at half the slots), two steps.
#[test]
fn bootstrapped_mode_steps_track_the_mirror() {
    bootstrapped_step_tracks_the_mirror_at(true, TrainConfig::bootstrapped(), 2);
}

fn bootstrapped_step_tracks_the_mirror_at(sparse: bool, config: TrainConfig, steps: usize) {
    let params = presets::toy_insecure_boot_train()
        .validate()
        .expect("params");
    let slots = params.max_slots();
    let f = load(Fx::Blood).expect("fixture");
    let tr = common::standardized(&f, "train");
    let l = Layout::new(slots, tr.features(), tr.classes()).expect("layout");
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let sk = SecretKey::generate(&params, &mut rng).expect("sk");
    let boot_config = if sparse {
        trainer_core::ckks::bootstrap_config(&params, &l)
    } else {
        BootstrapConfig::new(&params, slots)
    };
    assert_eq!(boot_config.slots, if sparse { slots / 2 } else { slots });
    let boot = Bootstrapper::new(&params, boot_config).expect("boot");
    let keys = Arc::new(
        boot.generate_keys(&sk, &l.all_steps(), &mut rng)
            .expect("keys"),
    );
    let after = boot.levels_after();
    assert!(after >= 4, "levels left after bootstrapping: {after}");
    let refresher = Bootstrap::new(&params, boot, keys.clone());
    let ckks = CkksBackend::new(&params, keys, refresher)
        .expect("backend")
        .with_top_level(after - 1)
        .expect("top level");
    let top = ckks.top_level();
    let scale = ckks.scale_at(top);
    let enc = Encoder::new(&params, slots).expect("encoder");
    let mut encrypt = |v: &[f64]| {
        let pt = enc.encode_at(v, scale, top).expect("encode");
        encrypt_sk(&params, &sk, &pt, &mut rng).expect("encrypt")
    };
    let period = ckks.refresh_period();
    assert_eq!(period, sparse.then_some(slots / 2));
    let mirror = Mirror::new(slots, top).with_refresh_period(period);
    let packed = pack_chunks(&l, &tr, &(0..l.rows).collect::<Vec<_>>());
    let c_enc = packed.map(&mut encrypt);
    let c_mir = packed.map(|v| mirror.vector(v.to_vec()));
    let mut t_enc = Trainer::new(l, config.clone());
    let mut t_mir = Trainer::new(l, config);
    let mut s_enc = t_enc.zero_state(|v| encrypt(&v));
    let mut s_mir = t_mir.zero_state(|v| mirror.vector(v));
    let mut be_enc = AutoRefresh::new(ckks, 0);
    let mut be_mir = AutoRefresh::new(mirror.clone(), 0);
    let mut refreshes = 0;
    for step in 0..steps {
        let chunk = step % c_enc.len();
        let r_enc = t_enc
            .step(&mut be_enc, &mut s_enc, &c_enc.batch(&[chunk]))
            .expect("bootstrapped step");
        let r_mir = t_mir
            .step(&mut be_mir, &mut s_mir, &c_mir.batch(&[chunk]))
            .expect("mirror step");
        eprintln!("bootstrapped step {step}: {:?}", r_enc.ops);
        assert_eq!(
            r_enc.ops, r_mir.ops,
            "same operations and refresh decisions"
        );
        assert!(r_enc.ops.refresh > 0, "the step bootstrapped");
        refreshes += r_enc.ops.refresh;
    }
    // Every refresh was a bootstrapping, some of them two at once (`a + i·b`).
    let (count, paired) = {
        let r = be_enc.inner.refresher_mut();
        (r.count, r.paired)
    };
    eprintln!("bootstrappings: {count}, of them paired: {paired}");
    assert_eq!(count + paired, refreshes, "refreshes vs bootstrappings");
    assert!(paired > 0, "no bootstrapping was paired");
    for (ce, cm) in s_enc.w.iter().zip(&s_mir.w) {
        assert_eq!(ce.level(), cm.level);
        let got = enc
            .decode(&decrypt(&params, &sk, ce).expect("decrypt"))
            .expect("decode");
        let p = Precision::of_real(&cm.values, &got);
        eprintln!("weights after a bootstrapped step: {p:?}");
        assert!(p.min_bits >= 12.0, "weights {p:?}");
    }
}

/// The compact refresh of the weights (`TrainConfig::compact_refresh`) on real bootstrapping:
/// all `2·c_pad` replicated diagonals through **one** bootstrapping, values kept to the
/// bootstrapping's precision, levels as on the mirror. A layout small enough that the toy
/// chain's 512 slots hold one row block per vector.
#[test]
fn compact_refresh_bootstraps_all_the_weights_at_once() {
    let params = presets::toy_insecure_boot_train()
        .validate()
        .expect("params");
    let slots = params.max_slots();
    let l = Layout::new(slots, 12, 3).expect("layout");
    let k = 2 * l.c_pad;
    assert!(k.next_power_of_two() <= l.rows, "{} rows", l.rows);
    let (mut hospital, ckks) = setup_bootstrap(&params, &l, 6).expect("keys");
    let top = ckks.top_level();
    assert_eq!(
        ckks.refresh_period(),
        Some(slots / 2),
        "bootstraps at half the slots"
    );
    let mirror = Mirror::new(slots, top).with_refresh_period(ckks.refresh_period());
    let values: Vec<Vec<f64>> = (0..k)
        .map(|j| {
            let block: Vec<f64> = (0..l.block)
                .map(|i| ((i * 5 + j * 7) % 13) as f64 * 0.05 - 0.3)
                .collect();
            block.repeat(l.rows)
        })
        .collect();
    let mut be_enc = AutoRefresh::new(ckks, 0);
    let mut be_mir = AutoRefresh::new(mirror.clone(), 0);
    // Weights as a step leaves them: one level left.
    let cts: Vec<_> = values
        .iter()
        .map(|v| {
            let ct = hospital.encrypt(v).expect("encrypt");
            be_enc.lower(&ct, 1).expect("lower")
        })
        .collect();
    let mir: Vec<MirrorVector> = values
        .iter()
        .map(|v| mirror.vector_at(v.clone(), 1))
        .collect();
    let mut t_enc = Trainer::new(l, TrainConfig::bootstrapped());
    let mut t_mir = Trainer::new(l, TrainConfig::bootstrapped());
    let out_enc = t_enc
        .compact_refresh(&mut be_enc, &cts.iter().collect::<Vec<_>>())
        .expect("compact refresh")
        .expect("fits");
    let out_mir = t_mir
        .compact_refresh(&mut be_mir, &mir.iter().collect::<Vec<_>>())
        .expect("mirror")
        .expect("fits");
    assert_eq!(be_enc.inner.refresher_mut().count, 1, "one bootstrapping");
    assert_eq!(be_enc.counts(), be_mir.counts(), "same operations");
    for ((ce, cm), want) in out_enc.iter().zip(&out_mir).zip(&values) {
        assert_eq!(ce.level(), cm.level);
        assert_eq!(ce.level(), top - 1);
        let got = hospital.decrypt(ce).expect("decrypt");
        let p = Precision::of_real(want, &got);
        assert!(p.min_bits >= 15.0, "compactly refreshed weights {p:?}");
    }
}

/// The weights riding along with the probabilities' bootstrapping, on real bootstrapping at
/// half the slots with keys cut to their levels (`harness::setup_bootstrap`): three steps of
/// `TrainConfig::bootstrapped()` on a layout small enough for the compact refresh (16 rows of
/// 32 slots, 3 classes), the same operations and refresh decisions as the mirror, weights to
/// ≥ 12 bits.
#[test]
fn weights_ride_along_with_the_probabilities_bootstrapping() {
    let params = presets::toy_insecure_boot_train()
        .validate()
        .expect("params");
    let slots = params.max_slots();
    let l = Layout::new(slots, 12, 3).expect("layout");
    assert!(2 * l.c_pad <= l.rows && l.can_fold(), "{l:?}");
    let (mut hospital, ckks) = setup_bootstrap(&params, &l, 9).expect("keys");
    let top = ckks.top_level();
    let mirror = Mirror::new(slots, top).with_refresh_period(ckks.refresh_period());
    let samples: Vec<Vec<f64>> = (0..2 * l.rows)
        .map(|r| {
            (0..12)
                .map(|j| (((r * 7 + j * 3) % 11) as f64 - 5.0) * 0.06)
                .collect()
        })
        .collect();
    let labels: Vec<usize> = (0..2 * l.rows).map(|r| (r * 5) % 3).collect();
    let mut be_enc = AutoRefresh::new(ckks, 0);
    let mut be_mir = AutoRefresh::new(mirror.clone(), 0);
    let mut t_enc = Trainer::new(l, TrainConfig::bootstrapped());
    let mut t_mir = Trainer::new(l, TrainConfig::bootstrapped());
    let mut s_enc = t_enc.zero_state(|v| hospital.encrypt(&v).expect("encrypt"));
    let mut s_mir = t_mir.zero_state(|v| mirror.vector(v));
    for step in 0..3 {
        let rows = step % 2 * l.rows..(step % 2 + 1) * l.rows;
        let x = l.pack_x(samples[rows.clone()].iter().map(Vec::as_slice));
        let y = l.pack_y(labels[rows].iter().copied());
        let b_enc = Batch {
            x: vec![hospital.encrypt(&x).expect("x")],
            y: vec![hospital.encrypt(&y).expect("y")],
            rows: vec![l.rows],
        };
        let b_mir = Batch {
            x: vec![mirror.vector(x)],
            y: vec![mirror.vector(y)],
            rows: vec![l.rows],
        };
        let r_enc = t_enc.step(&mut be_enc, &mut s_enc, &b_enc).expect("step");
        let r_mir = t_mir.step(&mut be_mir, &mut s_mir, &b_mir).expect("mirror");
        eprintln!("step {step}: {:?}", r_enc.ops);
        assert_eq!(r_enc.ops, r_mir.ops, "step {step}");
    }
    let paired = be_enc.inner.refresher_mut().paired;
    assert!(paired > 0, "no two vectors shared a bootstrapping");
    for (ce, cm) in s_enc
        .w
        .iter()
        .chain(&s_enc.look)
        .zip(s_mir.w.iter().chain(&s_mir.look))
    {
        assert_eq!(ce.level(), cm.level);
        let got = hospital.decrypt(ce).expect("decrypt");
        let p = Precision::of_real(&cm.values, &got);
        assert!(p.min_bits >= 12.0, "weights {p:?}");
    }
}
