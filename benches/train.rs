//! Criterion benchmarks of encrypted training: `train_step/{mode}/{logN}/{batch}`, one
//! Nesterov step on BloodMNIST fixture features (d = 192, c = 8) with the CKKS backend.
//!
//! - `hospital`: the hospital-aided refresh, answered in process (so the figure is the cloud's
//!   compute plus the hospital's decrypt/re-encrypt, without network).
//! - `bootstrap`: the cloud alone, refreshing by bootstrapping.
//!
//! `cargo bench -p blindtuner --bench train` runs the hospital mode at `n16_train`, batch 1024
//! (the cost point; about 11 GiB) and `n14_train`, batch 256, and the bootstrapped
//! mode on the insecure toy chain. The bootstrapped step at N = 2^16 (`n16_boot`, batch 1024)
//! takes about a minute per iteration and about 17 GiB, so it runs only with
//! `BLINDTUNER_BENCH_BOOT16=1` (one step of it: `cargo run --release -p blindtuner --example
//! train_cost -- n16_boot 1024 1 boot`). `BLINDTUNER_BENCH_QUICK=1` (CI) runs only the
//! insecure toy presets, so neither mode can rot.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, criterion_group, criterion_main};

#[path = "../tests/common/mod.rs"]
mod common;

use blindtuner::harness::{Hospital, setup, setup_bootstrap};
use extractor::fixtures::{Dataset as Fx, load};
use fhe_core::params::presets;
use trainer_core::ckks::{CkksBackend, Refresher};
use trainer_core::data::Dataset;
use trainer_core::layout::Layout;
use trainer_core::refresh::{AutoRefresh, HOSPITAL_MIN_LEVEL, HOSPITAL_WINDOW};
use trainer_core::session::{pack_chunks, shuffled};
use trainer_core::train::{TrainConfig, Trainer};

fn quick() -> bool {
    std::env::var_os("BLINDTUNER_BENCH_QUICK").is_some()
}

fn train_step(c: &mut Criterion) {
    let f = load(Fx::Blood).expect("fixture");
    let tr = common::standardized(&f, "train");
    let points: Vec<(&str, usize)> = if quick() {
        vec![("toy_insecure_train", 8)]
    } else {
        vec![("n14_train", 256), ("n16_train", 1024)]
    };
    let mut boot_points: Vec<(&str, usize)> = vec![("toy_insecure_boot_train", 8)];
    if !quick() && std::env::var_os("BLINDTUNER_BENCH_BOOT16").is_some() {
        boot_points.push(("n16_boot", 1024));
    }
    let mut g = c.benchmark_group("train_step");
    g.sample_size(10);
    for (preset, batch) in boot_points {
        let params = presets::by_name(preset).unwrap().validate().unwrap();
        let l = Layout::new(params.max_slots(), tr.features(), tr.classes()).unwrap();
        let (hospital, cloud) = setup_bootstrap(&params, &l, 1).unwrap();
        let be = AutoRefresh::new(cloud, 0);
        let config = TrainConfig::bootstrapped();
        bench_step(&mut g, "bootstrap", &tr, (l, config), batch, hospital, be);
    }
    for (preset, batch) in points {
        let params = presets::by_name(preset).unwrap().validate().unwrap();
        let l = Layout::new(params.max_slots(), tr.features(), tr.classes()).unwrap();
        let (hospital, cloud) = setup(&params, &l, 1).unwrap();
        let be = AutoRefresh::new(cloud, HOSPITAL_MIN_LEVEL).with_window(Some(HOSPITAL_WINDOW));
        bench_step(
            &mut g,
            "hospital",
            &tr,
            (l, TrainConfig::default()),
            batch,
            hospital,
            be,
        );
    }
    g.finish();
}

/// `train_step/{mode}/{logN}/{batch}`: the hospital encrypts the fixture, then one step on `be`
/// per iteration (the state carries over, as in training).
fn bench_step<R: Refresher>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    mode: &str,
    tr: &Dataset,
    (l, config): (Layout, TrainConfig),
    batch: usize,
    mut hospital: Hospital,
    mut be: AutoRefresh<CkksBackend<R>>,
) {
    let packed = pack_chunks(&l, tr, &shuffled(tr.len(), 1));
    let idx: Vec<usize> = (0..batch.div_ceil(l.rows).min(packed.len())).collect();
    let chunks = packed.map(|v| hospital.encrypt_data(v).unwrap());
    let batch_ct = chunks.batch(&idx);
    let mut trainer = Trainer::new(l, config);
    let mut state = trainer.zero_state(|v| hospital.encrypt(&v).unwrap());
    let log_n = l.slots.trailing_zeros() + 1;
    g.bench_function(BenchmarkId::new(format!("{mode}/{log_n}"), batch), |b| {
        b.iter(|| trainer.step(&mut be, &mut state, &batch_ct).unwrap())
    });
}

criterion_group!(benches, train_step);
criterion_main!(benches);
