//! Criterion benchmarks of the fhe-core foundation, named `op/logN/...` (STYLE.md 16).
//!
//! `cargo bench --bench fhe_core` runs everything; CI runs `cargo bench --bench fhe_core --
//! --quick`. Groups: `ntt/{logN}/{bits}` (default backend), `ntt_own/{logN}/{bits}` (the own
//! backend), `rescale/{logN}/{level}`, `basis_ext/{logN}/{level}`, `encode/{logN}`.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use fhe_core::encoding::{Complex, Encoder};
use fhe_core::math::{Modulus, generate_primes_vt};
use fhe_core::ntt::NttTable;
use fhe_core::params::{Params, presets};
use fhe_core::ring::{Ntt, Poly};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

fn ntt(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    for (group, own) in [("ntt", false), ("ntt_own", true)] {
        let mut g = c.benchmark_group(group);
        for log_n in [13u32, 14, 15, 16] {
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
    [presets::n13(), presets::n16_openfhe()]
        .into_iter()
        .map(|l| l.validate().unwrap())
        .collect()
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

criterion_group!(benches, ntt, rescale_and_basis_ext, encode);
criterion_main!(benches);
