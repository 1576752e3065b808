//! `blindtuner selftest`: validates every named parameter preset on this machine and measures
//! what the CKKS foundation guarantees: the security bound, the NTT backend in use, exact RNS
//! rescaling, and slot-encoding precision in bits against f64.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use fhe_core::encoding::{Complex, Encoder, Precision};
use fhe_core::ntt::NttBackend;
use fhe_core::params::{
    Params, SecretDist, Security, max_log_qp_128, max_log_qp_128_sparse, presets,
};
use fhe_core::ring::{Ntt, Poly};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

/// Options of `blindtuner selftest`.
#[derive(clap::Args, Debug, Default)]
pub struct Args {
    /// Only this preset (see the list printed without it).
    #[arg(long)]
    pub preset: Option<String>,
    /// Print one JSON object per preset instead of a table.
    #[arg(long)]
    pub json: bool,
}

struct Row {
    name: &'static str,
    params: Params,
    backend: NttBackend,
    precision: Precision,
    rescale_ok: bool,
    setup_ms: f64,
    encode_ms: f64,
}

pub fn run(args: &Args) -> Result<()> {
    let selected: Vec<_> = presets::all()
        .into_iter()
        .filter(|(name, _)| args.preset.as_deref().is_none_or(|p| p == *name))
        .collect();
    if selected.is_empty() {
        let names: Vec<_> = presets::all().iter().map(|(n, _)| *n).collect();
        bail!(
            "unknown preset {:?}; known presets: {}",
            args.preset.as_deref().unwrap_or(""),
            names.join(", ")
        );
    }
    if !args.json {
        println!("blindtuner selftest: CKKS foundation on every parameter preset");
        println!(
            "{:<24} {:>5} {:>6} {:>8} {:>6} {:>9} {:>8} {:>10} {:>10} {:>8}",
            "preset",
            "log N",
            "levels",
            "log QP",
            "bound",
            "security",
            "NTT",
            "prec mean",
            "prec min",
            "rescale"
        );
    }
    let mut failures = 0;
    for (name, lit) in selected {
        let row = check(name, &lit).with_context(|| format!("preset {name}"))?;
        let floor = row.params.log_scale() - 10.0;
        let ok = row.rescale_ok && row.precision.min_bits >= floor;
        failures += usize::from(!ok);
        print_row(&row, args.json);
    }
    if failures > 0 {
        bail!("{failures} preset(s) failed the self-test");
    }
    if !args.json {
        println!("all presets passed (precision floor: log2(scale) - 10 bits; rescale exact)");
    }
    Ok(())
}

fn check(name: &'static str, lit: &fhe_core::params::ParamsLiteral) -> Result<Row> {
    let t0 = Instant::now();
    let params = lit.validate()?;
    let setup_ms = t0.elapsed().as_secs_f64() * 1e3;
    let ctx = params.ctx();
    let backend = ctx
        .ntt_tables()
        .first()
        .map_or(NttBackend::Own, |t| t.backend());
    let mut rng = ChaCha20Rng::seed_from_u64(0x5e1f);
    let slots = params.max_slots();
    let enc = Encoder::new(&params, slots)?;
    let values: Vec<Complex> = (0..slots)
        .map(|_| {
            let mut u = || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0;
            Complex::new(u(), u())
        })
        .collect();
    let t1 = Instant::now();
    let pt = enc.encode_complex_at(&values, params.scale(), params.max_level())?;
    let encode_ms = t1.elapsed().as_secs_f64() * 1e3;
    let decoded = enc.decode_complex(&pt)?;
    let precision = Precision::of_complex(&values, &decoded);

    // Rescale check: (Δ·m) · q_L rescaled by q_L gives back Δ·m exactly.
    let rescale_ok = if params.max_level() > 0 {
        let top = params.max_level();
        let q_top = params.q().get(top).copied().unwrap_or(1);
        let mut scaled = pt.poly.clone();
        scaled.mul_scalar_assign(ctx, &ctx.scalar_from_i64(q_top as i64, top, false))?;
        let mut scratch = vec![0u64; ctx.rescale_scratch_len()];
        scaled.rescale_assign(ctx, &mut scratch)?;
        let mut want: Poly<Ntt> = pt.poly.clone();
        want.drop_to_level(top - 1)?;
        scaled == want
    } else {
        true
    };
    Ok(Row {
        name,
        params,
        backend,
        precision,
        rescale_ok,
        setup_ms,
        encode_ms,
    })
}

fn print_row(r: &Row, json: bool) {
    let p = &r.params;
    // A sparse secret is held to the sparse-secret bound, not the uniform-ternary one.
    let bound = match p.secret() {
        SecretDist::SparseTernary { hamming_weight } => {
            max_log_qp_128_sparse(p.log_n(), hamming_weight)
        }
        _ => max_log_qp_128(p.log_n()),
    }
    .map_or("-".to_string(), |b| b.to_string());
    let security = match p.security() {
        Security::Classical128 => "128-bit",
        Security::InsecureForTestsOnly => "INSECURE",
    };
    let backend = match r.backend {
        NttBackend::Own => "own",
        NttBackend::TfheNtt => "tfhe-ntt",
    };
    if json {
        println!(
            "{{\"preset\":\"{}\",\"log_n\":{},\"levels\":{},\"log_qp\":{:.1},\"bound\":\"{}\",\"security\":\"{}\",\"ntt\":\"{}\",\"precision_bits_mean\":{:.2},\"precision_bits_min\":{:.2},\"rescale_exact\":{},\"setup_ms\":{:.1},\"encode_ms\":{:.2}}}",
            r.name,
            p.log_n(),
            p.max_level(),
            p.log_qp(),
            bound,
            security,
            backend,
            r.precision.mean_bits,
            r.precision.min_bits,
            r.rescale_ok,
            r.setup_ms,
            r.encode_ms
        );
    } else {
        println!(
            "{:<24} {:>5} {:>6} {:>8.1} {:>6} {:>9} {:>8} {:>10.2} {:>10.2} {:>8}",
            r.name,
            p.log_n(),
            p.max_level(),
            p.log_qp(),
            bound,
            security,
            backend,
            r.precision.mean_bits,
            r.precision.min_bits,
            if r.rescale_ok { "exact" } else { "WRONG" }
        );
    }
}
