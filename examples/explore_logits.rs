//! Exact NAG softmax regression on the embedded fixtures: per-epoch accuracy and the largest
//! |logit| (the bound the encrypted softmax approximation must cover).
//! `cargo run --release --example explore_logits`

use extractor::fixtures::{Dataset as Fx, load};
use trainer_core::data::{Dataset, Standardizer};
use trainer_core::exact;
use trainer_core::nag::Schedule;

fn split(f: &extractor::features::Features, name: &str) -> Dataset {
    let s = f.splits.iter().find(|s| s.name == name).unwrap();
    let x: Vec<f64> = s.values.to_f32().into_iter().map(f64::from).collect();
    Dataset::new(
        f.dim,
        f.class_names.len(),
        x,
        s.labels.iter().map(|&l| l as usize).collect(),
    )
    .unwrap()
}

fn main() {
    for fx in [Fx::Blood, Fx::OrganA, Fx::Mnist] {
        let f = load(fx).unwrap();
        let (train, test) = (split(&f, "train"), split(&f, "test"));
        for scale in [1.0, 0.5] {
            let st = Standardizer::fit(&train, scale / (f.dim as f64).sqrt());
            let (tr, te) = (st.apply(&train), st.apply(&test));
            for (lr, batch) in [(1.0, 128), (2.0, 256)] {
                // Deterministic shuffles.
                let n = tr.len();
                let epochs: Vec<Vec<Vec<usize>>> = (0..10u64)
                    .map(|e| {
                        let mut idx: Vec<usize> = (0..n).collect();
                        let mut s = 0x9e37_79b9_7f4a_7c15u64 ^ e;
                        for i in (1..n).rev() {
                            s ^= s << 13;
                            s ^= s >> 7;
                            s ^= s << 17;
                            idx.swap(i, (s % (i as u64 + 1)) as usize);
                        }
                        idx.chunks(batch).map(<[usize]>::to_vec).collect()
                    })
                    .collect();
                let sched = Schedule {
                    learning_rate: lr,
                    decay: 0.0,
                    momentum: Some(0.9),
                };
                let models = exact::train(&tr, &epochs, &sched);
                let accs: Vec<String> = models
                    .iter()
                    .map(|m| format!("{:.3}", m.accuracy(&te)))
                    .collect();
                let maxl = models
                    .iter()
                    .map(|m| m.max_abs_logit(&tr).max(m.max_abs_logit(&te)))
                    .fold(0.0, f64::max);
                println!(
                    "{:<8} scale {scale} lr {lr} batch {batch}: test acc/epoch {} | max|z| {maxl:.1}",
                    fx.name(),
                    accs.join(" ")
                );
            }
        }
    }
}
