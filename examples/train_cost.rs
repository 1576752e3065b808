//! Cost report of encrypted training steps (hospital-aided refresh): operation counts,
//! refreshes, the weights' level after the step, wall-clock seconds split by operation kind
//! and the operations per level (`rot_levels`, `mult_levels`, `cmult_levels`: level → count),
//! one JSON object per step.
//!
//! `cargo run --release -p blindtuner --example train_cost -- [preset] [batch] [steps] [mirror]`
//! (defaults: `n16_train 1024 2`; BloodMNIST fixture features, d = 192, c = 8). Memory: the
//! N = 2^16 keys for the trainer's 27 rotations take about 7 GiB. With `mirror` the same steps
//! run on the plaintext mirror at the preset's levels: the operation and refresh counts in a
//! second, without keys. `boot` runs the bootstrapped mode (a bootstrappable preset such as
//! `n16_boot`: about 15 GiB at N = 2^16). `mirror-boot=T` counts the bootstrapped mode's refreshes (top level `T`,
//! the levels bootstrapping leaves minus one; refresh at level 0).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Instant;

#[path = "../tests/common/mod.rs"]
mod common;

use blindtuner::harness::{setup, setup_bootstrap};
use extractor::fixtures::{Dataset as Fx, load};
use fhe_core::params::presets;
use trainer_core::backend::{Backend, Mirror, OpCounts};
use trainer_core::layout::Layout;
use trainer_core::refresh::{AutoRefresh, HOSPITAL_MIN_LEVEL};
use trainer_core::session::{pack_chunks, shuffled};
use trainer_core::timing::{OpLevels, Timed};
use trainer_core::train::{TrainConfig, Trainer};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let preset = args.first().map_or("n16_train", String::as_str);
    let batch: usize = args.get(1).map_or(1024, |s| s.parse().expect("batch size"));
    let steps: usize = args.get(2).map_or(2, |s| s.parse().expect("steps"));
    let params = presets::by_name(preset)
        .unwrap_or_else(|| panic!("unknown preset {preset}"))
        .validate()
        .expect("params");
    let f = load(Fx::Blood).expect("fixture");
    let tr = common::standardized(&f, "train");
    let l = Layout::new(params.max_slots(), tr.features(), tr.classes()).expect("layout");
    let chunks_per_batch = batch.div_ceil(l.rows);
    let mode = args.get(3).map(String::as_str);
    if let Some(m) = mode.filter(|m| m.starts_with("mirror")) {
        // `mirror-boot=T`: the bootstrapped mode's levels (top T, refresh at level 0).
        let (top, min_level) = match m.strip_prefix("mirror-boot=") {
            Some(t) => (t.parse().expect("top level"), 0),
            None => (trainer_core::ckks::working_top(&params), HOSPITAL_MIN_LEVEL),
        };
        // The bootstrapped mode bootstraps at half the slots when the layout folds.
        let period = (min_level == 0 && l.can_fold()).then_some(l.slots / 2);
        let mirror = Mirror::new(l.slots, top).with_refresh_period(period);
        let packed = pack_chunks(&l, &tr, &shuffled(tr.len(), 1));
        let idx: Vec<usize> = (0..chunks_per_batch.min(packed.len())).collect();
        let data_level = if min_level == 0 {
            top
        } else {
            trainer_core::ckks::data_level(&params)
        };
        let chunks = packed.map(|v| mirror.vector_at(v.to_vec(), data_level));
        let mut trainer = Trainer::new(l, config(min_level));
        let mut state = trainer.zero_state(|v| mirror.vector(v));
        let window = window(min_level);
        let mut be = AutoRefresh::new(Timed::new(mirror), min_level).with_window(window);
        for step in 0..steps {
            let c0 = be.counts();
            be.inner.levels = OpLevels::default();
            let r = trainer
                .step(&mut be, &mut state, &chunks.batch(&idx))
                .expect("step");
            let c = be.counts() - c0;
            println!(
                "{{\"preset\":\"{preset}\",\"mirror\":true,\"batch\":{},\"step\":{step},{},\
                 \"weights_level_after\":{},\"look_level_after\":{},\"top_level\":{},{}}}",
                idx.len() * l.rows,
                ops_json(&r.ops, c.refresh),
                state.w.first().map_or(0, |v| v.level),
                state.look.first().map_or(0, |v| v.level),
                be.top_level(),
                levels_json(&be.inner.levels)
            );
        }
        return;
    }
    let t0 = Instant::now();
    let job = |keygen_s| Job {
        preset,
        params: &params,
        l,
        tr: &tr,
        chunks_per_batch,
        steps,
        keygen_s,
    };
    if mode == Some("boot") {
        let (hospital, cloud) = setup_bootstrap(&params, &l, 1).expect("bootstrapping keys");
        eprintln!("bootstrapped mode, working top level {}", cloud.top_level());
        job(t0.elapsed().as_secs_f64()).run(hospital, cloud, 0);
    } else {
        let (hospital, cloud) = setup(&params, &l, 1).expect("keys");
        eprintln!("hospital-aided refresh");
        job(t0.elapsed().as_secs_f64()).run(hospital, cloud, HOSPITAL_MIN_LEVEL);
    }
}

/// `"mult":…,"cmult":…,"rot":…,"relin":…,"refresh":…`: the step's operation counts.
fn ops_json(ops: &OpCounts, refresh: u64) -> String {
    format!(
        "\"mult\":{},\"cmult\":{},\"rot\":{},\"relin\":{},\"refresh\":{refresh}",
        ops.mult, ops.cmult, ops.rot, ops.relin
    )
}

/// `"rot_levels":{level:count,…},"mult_levels":{…},"cmult_levels":{…}`: how many operations
/// of the step ran at each level (their cost grows with the level).
fn levels_json(l: &OpLevels) -> String {
    let obj = |m: &std::collections::BTreeMap<usize, u64>| {
        let kv: Vec<String> = m.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        format!("{{{}}}", kv.join(","))
    };
    format!(
        "\"rot_levels\":{},\"mult_levels\":{},\"cmult_levels\":{}",
        obj(&l.rot),
        obj(&l.mult),
        obj(&l.cmult)
    )
}

/// The bootstrapped mode (`min_level` 0) refreshes the weights compactly.
fn config(min_level: usize) -> TrainConfig {
    if min_level == 0 {
        TrainConfig::bootstrapped()
    } else {
        TrainConfig::default()
    }
}

/// What the timed steps run on.
struct Job<'a> {
    preset: &'a str,
    params: &'a fhe_core::params::Params,
    l: Layout,
    tr: &'a trainer_core::data::Dataset,
    chunks_per_batch: usize,
    steps: usize,
    keygen_s: f64,
}

/// The refresh window: `BLINDTUNER_WINDOW=N` (or `none`); by default the hospital mode's
/// `HOSPITAL_WINDOW` and none for bootstrapping (`min_level` 0).
fn window(min_level: usize) -> Option<usize> {
    match std::env::var("BLINDTUNER_WINDOW") {
        Ok(w) => w.parse().ok(),
        Err(_) => (min_level > 0).then_some(trainer_core::refresh::HOSPITAL_WINDOW),
    }
}

impl Job<'_> {
    /// Encrypts the fixture, then times `steps` steps on `cloud` (refreshing at `min_level`).
    fn run<R: trainer_core::ckks::Refresher>(
        &self,
        mut hospital: blindtuner::harness::Hospital,
        cloud: trainer_core::ckks::CkksBackend<R>,
        min_level: usize,
    ) {
        let Job {
            preset,
            params,
            l,
            tr,
            chunks_per_batch,
            steps,
            keygen_s,
        } = *self;
        let packed = pack_chunks(&l, tr, &shuffled(tr.len(), 1));
        let idx: Vec<usize> = (0..chunks_per_batch.min(packed.len())).collect();
        let t1 = Instant::now();
        let chunks = packed.map(|v| hospital.encrypt_data(v).expect("encrypt"));
        let encrypt_s = t1.elapsed().as_secs_f64();
        eprintln!(
            "preset {preset} (N = 2^{}, {} levels, log QP {:.0}), layout {} rows × {} slots/row, \
         batch {} = {} chunks; keys {keygen_s:.1} s, encryption of {} chunks {encrypt_s:.1} s",
            params.log_n(),
            params.max_level(),
            params.log_qp(),
            l.rows,
            l.block,
            idx.len() * l.rows,
            idx.len(),
            packed.len()
        );
        let mut trainer = Trainer::new(l, config(min_level));
        let mut state = trainer.zero_state(|v| hospital.encrypt(&v).expect("encrypt"));
        let window = window(min_level);
        let mut be = AutoRefresh::new(Timed::new(cloud), min_level).with_window(window);
        for step in 0..steps {
            let b = chunks.batch(&idx);
            let (c0, t0) = (be.counts(), be.inner.times);
            be.inner.levels = OpLevels::default();
            let wall = Instant::now();
            let r = trainer.step(&mut be, &mut state, &b).expect("step");
            let secs = wall.elapsed().as_secs_f64();
            let c = be.counts() - c0;
            let t = be.inner.times - t0;
            let level = state.w.iter().map(|w| be.level(w)).min().unwrap_or(0);
            println!(
                "{{\"preset\":\"{preset}\",\"log_n\":{},\"batch\":{},\"step\":{step},\"seconds\":{secs:.3},\
             {},\"weights_level_after\":{level},\"top_level\":{},\
             \"mult_s\":{:.3},\"cmult_s\":{:.3},\"rot_s\":{:.3},\"add_s\":{:.3},\"refresh_s\":{:.3},{}}}",
                params.log_n(),
                idx.len() * l.rows,
                ops_json(&r.ops, c.refresh),
                be.top_level(),
                t.mult.as_secs_f64(),
                t.cmult.as_secs_f64(),
                t.rot.as_secs_f64(),
                t.add.as_secs_f64(),
                t.refresh.as_secs_f64(),
                levels_json(&be.inner.levels)
            );
        }
    }
}
