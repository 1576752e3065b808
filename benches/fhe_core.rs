//! Criterion benchmarks of the fhe-core foundation, named `op/logN/...` (STYLE.md 16).
//!
//! `cargo bench --bench fhe_core` runs everything; CI runs `cargo bench --bench fhe_core --
//! --quick`. Groups: `ntt/{logN}/{bits}` (default backend), `ntt_own/{logN}/{bits}` (the own
//! backend), `rescale/{logN}/{level}`, `basis_ext/{logN}/{level}`, `encode/{logN}`, and at the
//! top level of the OpenFHE comparison points (`presets::n14`, `presets::n16_openfhe`):
//! `mul_relin/{logN}` (tensor product + relinearisation), `rotate/{logN}` (rotation by one slot),
//! `keyswitch/{logN}/{dnum}` (decompose + inner product + ModDown of one polynomial),
//! `bootstrap/{logN}` (full-slot bootstrapping at `toy_insecure_boot`, and `n16_boot` outside
//! quick mode).

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use std::sync::Arc;

use fhe_core::bootstrap::{BootstrapConfig, Bootstrapper};
use fhe_core::encoding::{Complex, Encoder};
use fhe_core::encrypt::encrypt_pk;
use fhe_core::eval::Evaluator;
use fhe_core::keys::{EvalKeys, PublicKey, RelinKey, SecretKey};
use fhe_core::keyswitch::{KsScratch, key_switch};
use fhe_core::math::{Modulus, generate_primes_vt};
use fhe_core::ntt::NttTable;
use fhe_core::params::{Params, presets};
use fhe_core::ring::{Ntt, Poly};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

/// `BLINDTUNER_BENCH_QUICK=1` (CI): every group, but only the small ring dimensions, so that
/// no N = 2^16 keys are generated.
fn quick() -> bool {
    std::env::var_os("BLINDTUNER_BENCH_QUICK").is_some()
}

fn ntt(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    for (group, own) in [("ntt", false), ("ntt_own", true)] {
        let mut g = c.benchmark_group(group);
        let sizes: &[u32] = if quick() {
            &[13, 14]
        } else {
            &[13, 14, 15, 16]
        };
        for &log_n in sizes {
            for bits in [50u32, 60] {
                let q = generate_primes_vt(bits, 1, 2 << log_n, &[]).unwrap()[0];
                let m = Modulus::new(q).unwrap();
                let t = if own {
                    NttTable::new_own(m, log_n)
                } else {
                    NttTable::new(m, log_n)
                }
                .unwrap();
                let mut a: Vec<u64> = (0..1usize << log_n).map(|_| rng.next_u64() % q).collect();
                g.bench_function(BenchmarkId::new(format!("fwd/{log_n}"), bits), |b| {
                    b.iter(|| t.forward(black_box(&mut a)).unwrap())
                });
                g.bench_function(BenchmarkId::new(format!("inv/{log_n}"), bits), |b| {
                    b.iter(|| t.inverse(black_box(&mut a)).unwrap())
                });
            }
        }
        g.finish();
    }
}

fn ring_params() -> Vec<Params> {
    let lits = if quick() {
        vec![presets::n13()]
    } else {
        vec![presets::n13(), presets::n16_openfhe()]
    };
    lits.into_iter().map(|l| l.validate().unwrap()).collect()
}

fn rescale_and_basis_ext(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let mut g = c.benchmark_group("rescale");
    for params in ring_params() {
        let ctx = params.ctx();
        let level = params.max_level();
        let a = Poly::<Ntt>::uniform(ctx, level, false, &mut rng);
        let mut out = a.clone();
        let mut scratch = vec![0u64; ctx.rescale_scratch_len()];
        g.bench_function(BenchmarkId::new(params.log_n().to_string(), level), |b| {
            b.iter(|| {
                out.clone_from(&a);
                out.rescale_assign(ctx, &mut scratch).unwrap();
            })
        });
    }
    g.finish();
    let mut g = c.benchmark_group("basis_ext");
    for params in ring_params() {
        let ctx = params.ctx();
        let level = params.max_level();
        let a = Poly::<Ntt>::uniform(ctx, level, false, &mut rng).into_coeff(ctx);
        let mut out = a.clone();
        let mut scratch = vec![0u64; ctx.extend_scratch_len()];
        g.bench_function(BenchmarkId::new(params.log_n().to_string(), level), |b| {
            b.iter(|| {
                out.clone_from(&a);
                out.extend_to_p_assign(ctx, &mut scratch).unwrap();
            })
        });
    }
    g.finish();
}

fn encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode");
    for params in ring_params() {
        let enc = Encoder::new(&params, params.max_slots()).unwrap();
        let values: Vec<Complex> = (0..params.max_slots())
            .map(|i| Complex::new((i as f64).sin(), 0.0))
            .collect();
        let mut out = Poly::zero(params.ctx(), params.max_level(), false);
        let mut scratch = vec![Complex::ZERO; enc.scratch_len()];
        g.bench_function(BenchmarkId::from_parameter(params.log_n()), |b| {
            b.iter(|| {
                enc.encode_complex_into(
                    &values,
                    params.scale(),
                    params.max_level(),
                    &mut out,
                    &mut scratch,
                )
                .unwrap()
            })
        });
    }
    g.finish();
}

/// The OpenFHE comparison points at logN 14 and 16 (top level, dnum 3).
fn scheme_params() -> Vec<Params> {
    let lits = if quick() {
        vec![presets::n14()]
    } else {
        vec![presets::n14(), presets::n16_openfhe()]
    };
    lits.into_iter().map(|l| l.validate().unwrap()).collect()
}

fn mul_relin_and_rotate(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let mut gm = c.benchmark_group("mul_relin");
    gm.sample_size(10);
    let mut setups = Vec::new();
    for params in scheme_params() {
        let sk = SecretKey::generate(&params, &mut rng).unwrap();
        let pk = PublicKey::generate(&sk, &mut rng).unwrap();
        let keys = EvalKeys::generate(&sk, &[1], false, &mut rng).unwrap();
        let eval = Evaluator::with_keys(&params, Arc::new(keys));
        let enc = Encoder::new(&params, params.max_slots()).unwrap();
        let v: Vec<f64> = (0..params.max_slots()).map(|i| (i as f64).cos()).collect();
        let ct = encrypt_pk(&params, &pk, &enc.encode(&v).unwrap(), &mut rng).unwrap();
        let mut scratch = eval.scratch();
        let mut out = ct.clone();
        gm.bench_function(BenchmarkId::from_parameter(params.log_n()), |b| {
            b.iter(|| {
                eval.mul_relin_into(&ct, &ct, &mut out, &mut scratch)
                    .unwrap()
            })
        });
        setups.push((params, eval, ct));
    }
    gm.finish();
    let mut gr = c.benchmark_group("rotate");
    gr.sample_size(10);
    for (params, eval, ct) in &setups {
        let mut scratch = eval.scratch();
        let mut out = ct.clone();
        gr.bench_function(BenchmarkId::from_parameter(params.log_n()), |b| {
            b.iter(|| eval.rotate_into(ct, 1, &mut out, &mut scratch).unwrap())
        });
    }
    gr.finish();
}

fn keyswitch(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let mut g = c.benchmark_group("keyswitch");
    g.sample_size(10);
    for params in scheme_params() {
        let sk = SecretKey::generate(&params, &mut rng).unwrap();
        let key = RelinKey::generate(&sk, &mut rng).unwrap();
        let ctx = params.ctx();
        let a = Poly::<Ntt>::uniform(ctx, params.max_level(), false, &mut rng);
        let mut scratch = KsScratch::new(&params);
        g.bench_function(
            BenchmarkId::new(params.log_n().to_string(), params.dnum()),
            |b| b.iter(|| key_switch(&params, &a, &key.0, &mut scratch).unwrap()),
        );
    }
    g.finish();
}

/// `bootstrap/{logN}`: full-slot bootstrapping of a level-0 ciphertext (budget 3, 3) at
/// `toy_insecure_boot` (logN 10) and, outside quick mode, `n16_boot` (logN 16; minutes of key
/// generation and several GiB of keys).
fn bootstrap(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let mut g = c.benchmark_group("bootstrap");
    g.sample_size(10);
    let mut lits = vec![presets::toy_insecure_boot()];
    if !quick() {
        lits.push(presets::n16_boot());
    }
    for lit in lits {
        let params = lit.validate().unwrap();
        let slots = params.max_slots();
        let sk = SecretKey::generate(&params, &mut rng).unwrap();
        let boot = Bootstrapper::new(&params, BootstrapConfig::new(&params, slots)).unwrap();
        let keys = boot.generate_keys(&sk, &[], &mut rng).unwrap();
        let eval = Evaluator::with_keys(&params, Arc::new(keys));
        let enc = Encoder::new(&params, slots).unwrap();
        let v: Vec<f64> = (0..slots).map(|i| (i as f64).cos()).collect();
        let pt = enc.encode_at(&v, params.scale(), 0).unwrap();
        let ct = fhe_core::encrypt::encrypt_sk(&params, &sk, &pt, &mut rng).unwrap();
        let mut scratch = eval.scratch();
        g.bench_function(BenchmarkId::from_parameter(params.log_n()), |b| {
            b.iter(|| boot.bootstrap(&eval, black_box(&ct), &mut scratch).unwrap())
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    ntt,
    rescale_and_basis_ext,
    encode,
    mul_relin_and_rotate,
    keyswitch,
    bootstrap
);
criterion_main!(benches);
