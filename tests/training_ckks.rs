//! Encrypted training (CKKS backend, hospital-aided refresh) against the plaintext mirror,
//! then the encrypted validation loss and encrypted inference (probabilities, scores, argmax),
//! step by step, on BloodMNIST DeiT-tiny features from the fixtures. Toy (insecure) parameters
//! keep it fast; the N = 2^16 run is a benchmark.

mod common;

use blindtuner::harness::setup;
use extractor::fixtures::{Dataset as Fx, load};
use fhe_core::ciphertext::Ciphertext;
use fhe_core::encoding::Precision;
use fhe_core::params::presets;
use trainer_core::backend::{Backend, Mirror};
use trainer_core::layout::Layout;
use trainer_core::nag::Schedule;
use trainer_core::refresh::{AutoRefresh, HOSPITAL_MIN_LEVEL};
use trainer_core::session::pack_chunks;
use trainer_core::train::{Batch, TrainConfig, Trainer};

#[test]
fn encrypted_steps_track_the_mirror_to_12_bits() {
    let params = presets::toy_insecure_train().validate().expect("params");
    let f = load(Fx::Blood).expect("fixture");
    let tr = common::standardized(&f, "train");
    let slots = params.max_slots();
    let l = Layout::new(slots, tr.features(), tr.classes()).expect("layout");
    let (mut hospital, ckks) = setup(&params, &l, 7).expect("keys");
    let top = ckks.top_level();
    let mirror = Mirror::new(slots, top);
    let schedule = Schedule {
        learning_rate: 1.0,
        decay: 0.0,
        momentum: Some(0.9),
    };
    let config = TrainConfig {
        schedule,
        ..TrainConfig::default()
    };
    let mut t_enc = Trainer::new(l, config.clone());
    let mut t_mir = Trainer::new(l, config);
    let mut s_enc = t_enc.zero_state(|v| hospital.encrypt(&v).expect("encrypt"));
    let mut s_mir = t_mir.zero_state(|v| mirror.vector(v));
    let mut be_enc = AutoRefresh::new(ckks, HOSPITAL_MIN_LEVEL);
    let mut be_mir = AutoRefresh::new(mirror.clone(), HOSPITAL_MIN_LEVEL);
    // The data at the data level, as the hospital uploads it.
    let dl = hospital.data_level;
    for step in 0..2usize {
        let idx: Vec<usize> = (step * 2 * l.rows..(step + 1) * 2 * l.rows).collect();
        let chunks: Vec<&[usize]> = idx.chunks(l.rows).collect();
        let b_enc = Batch {
            x: chunks
                .iter()
                .map(|c| {
                    hospital
                        .encrypt_data(&l.pack_x(c.iter().map(|&i| tr.row(i))))
                        .expect("encrypt")
                })
                .collect(),
            y: chunks
                .iter()
                .map(|c| {
                    hospital
                        .encrypt_data(&l.pack_y(c.iter().map(|&i| tr.label(i))))
                        .expect("encrypt")
                })
                .collect(),
            rows: chunks.iter().map(|c| c.len()).collect(),
        };
        let b_mir = Batch {
            x: chunks
                .iter()
                .map(|c| mirror.vector_at(l.pack_x(c.iter().map(|&i| tr.row(i))), dl))
                .collect(),
            y: chunks
                .iter()
                .map(|c| mirror.vector_at(l.pack_y(c.iter().map(|&i| tr.label(i))), dl))
                .collect(),
            rows: chunks.iter().map(|c| c.len()).collect(),
        };
        let r_enc = t_enc
            .step(&mut be_enc, &mut s_enc, &b_enc)
            .expect("encrypted step");
        let r_mir = t_mir
            .step(&mut be_mir, &mut s_mir, &b_mir)
            .expect("mirror step");
        // Same algorithm, same decisions: identical operation and refresh counts.
        assert_eq!(r_enc.ops.mult, r_mir.ops.mult);
        assert_eq!(r_enc.ops.rot, r_mir.ops.rot);
        assert_eq!(r_enc.ops.refresh, r_mir.ops.refresh);
        for (ce, cm) in s_enc.w.iter().zip(&s_mir.w) {
            assert_eq!(ce.level(), cm.level, "levels follow the mirror");
            let got = hospital.decrypt(ce).expect("decrypt");
            let p = Precision::of_real(&cm.values, &got);
            assert!(p.min_bits >= 12.0, "step {step}: weights {p:?}");
        }
        eprintln!("step {step}: {:?}", r_enc.ops);
    }
    assert!(
        be_enc.inner.refresher_mut().transport.answered > 0,
        "the run exercised the refresh protocol"
    );

    // Encrypted validation loss (one number the hospital decrypts) and encrypted inference,
    // with the encrypted weights, against the mirror.
    let val = common::standardized(&f, "val");
    let packed = pack_chunks(&l, &val, &(0..2 * l.rows).collect::<Vec<_>>());
    let v_enc = packed.map(|v| hospital.encrypt_data(v).expect("encrypt"));
    let v_mir = packed.map(|v| mirror.vector_at(v.to_vec(), dl));
    let loss_enc = t_enc
        .validation_loss(&mut be_enc, &s_enc.w, &v_enc)
        .expect("encrypted validation")
        .expect("chunks");
    let loss_mir = t_mir
        .validation_loss(&mut be_mir, &s_mir.w, &v_mir)
        .expect("mirror validation")
        .expect("chunks");
    let dec = |ct: &Ciphertext| hospital.decrypt(ct).expect("decrypt");
    let got = dec(&loss_enc);
    let err = (got[0] - loss_mir.values[0]).abs();
    eprintln!(
        "validation Brier: encrypted {} mirror {}",
        got[0], loss_mir.values[0]
    );
    assert!(
        err < 2f64.powi(-12),
        "validation loss: encrypted {} vs mirror {}",
        got[0],
        loss_mir.values[0]
    );
    let (x_enc, x_mir) = (&v_enc.x[0], &v_mir.x[0]);
    let rows = packed.rows[0];
    let p_enc = t_enc
        .predict(&mut be_enc, &s_enc.w, x_enc, rows)
        .expect("encrypted inference");
    let p_mir = t_mir
        .predict(&mut be_mir, &s_mir.w, x_mir, rows)
        .expect("mirror inference");
    let p = Precision::of_real(&p_mir.values, &dec(&p_enc));
    assert!(p.min_bits >= 12.0, "encrypted probabilities {p:?}");
    let z_enc = t_enc
        .scores(&mut be_enc, &s_enc.w, x_enc, rows)
        .expect("encrypted scores");
    let z_mir = t_mir
        .scores(&mut be_mir, &s_mir.w, x_mir, rows)
        .expect("mirror scores");
    let z = dec(&z_enc);
    let p = Precision::of_real(&z_mir.values, &z);
    assert!(p.min_bits >= 12.0, "encrypted scores {p:?}");
    // The hospital's argmax over the decrypted scores is the mirror's.
    let argmax =
        |v: &[f64], r: usize| trainer_core::exact::argmax(&v[r * l.block..r * l.block + l.c]);
    for r in 0..rows {
        assert_eq!(argmax(&z, r), argmax(&z_mir.values, r), "row {r}");
    }
}
