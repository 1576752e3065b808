//! `blindtuner bench ckks`: CKKS micro-benchmarks with the same parameters, operations and
//! timing rules as `../shared/bench/openfhe_micro.py`, so `../shared/bench/compare.py` can put
//! the two side by side.
//!
//! Parameters are built the way OpenFHE builds them for a (logN, depth, scale, first modulus,
//! dnum) point: `q_0` of `first` bits, `depth` primes of `scale` bits, `dnum` digits of
//! `⌈(depth+1)/dnum⌉` limbs, P = the smallest number of 60-bit primes whose bits cover the
//! largest digit, uniform ternary secret, 128-bit HE-standard check.
//!
//! Timing (as the script's `timeit`): one untimed warm-up call, then at least `reps` timed calls
//! (key generation: `max(5, reps/2)`), more while the total is under 0.5 s (at most 200); the
//! median in milliseconds. Each timed call produces a fresh result object, as OpenFHE's calls
//! do (its construction and destruction are inside the timed region); the evaluator's scratch
//! buffers are created once and reused, which is how the library is meant to be used.

use std::hint::black_box;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use fhe_core::bootstrap::{BootstrapConfig, Bootstrapper};
use fhe_core::ciphertext::Ciphertext;
use fhe_core::encoding::{Encoder, Precision};
use fhe_core::encrypt::{decrypt, encrypt_pk};
use fhe_core::eval::Evaluator;
use fhe_core::format::WireObject;
use fhe_core::keys::galois_element_for_rotation;
use fhe_core::keys::{EvalKeys, GaloisKey, PublicKey, RelinKey, SecretKey};
use fhe_core::params::{Moduli, ParamsLiteral, SecretDist, Security, presets};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

/// Options of `blindtuner bench`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub what: What,
}

/// What to benchmark.
#[derive(clap::Subcommand, Debug)]
pub enum What {
    /// CKKS micro-benchmarks (the keys of `openfhe_micro.py`).
    Ckks(CkksArgs),
    /// Encrypted training (hospital refresh in process), plaintext mirror and exact side by
    /// side on a fixture or a features file: per step the operation counts, the seconds by
    /// operation kind and the test accuracies; epochs, early stopping, checkpoints, a JSON
    /// history for `blindtuner report` (docs/RESULTS.md).
    Train(crate::results::Args),
    /// Bootstrapping (the keys of `openfhe_boot.py`): `n16_boot` at logN 16,
    /// `toy_insecure_boot` at logN 10.
    Bootstrap(BootArgs),
}

/// Options of `blindtuner bench bootstrap`.
#[derive(clap::Args, Debug)]
pub struct BootArgs {
    /// log2 of the ring dimension: 16 (`n16_boot`, 128-bit) or 10 (`toy_insecure_boot`).
    #[arg(long, default_value_t = 16)]
    pub logn: u32,
    /// Slot count (a power of two, at most N/2; default N/2).
    #[arg(long)]
    pub slots: Option<usize>,
    /// Threads: the size of rayon's global pool, which fhe-core's limb loops use.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Timed bootstrapping runs (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// Level budget of CoeffToSlot and SlotToCoeff (`cts,stc`).
    #[arg(long, default_value = "3,3")]
    pub budget: String,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Options of `blindtuner bench ckks`.
#[derive(clap::Args, Debug)]
pub struct CkksArgs {
    /// log2 of the ring dimension.
    #[arg(long, default_value_t = 16)]
    pub logn: u32,
    /// Multiplicative depth: the number of `scale-bits` primes after q_0.
    #[arg(long, default_value_t = 24)]
    pub depth: usize,
    /// Bits of the scale and of each rescaling prime.
    #[arg(long, default_value_t = 50)]
    pub scale_bits: u32,
    /// Bits of q_0.
    #[arg(long, default_value_t = 60)]
    pub first_mod_bits: u32,
    /// Number of key-switching digits.
    #[arg(long, default_value_t = 3)]
    pub dnum: usize,
    /// Threads: the size of rayon's global pool, which fhe-core's limb loops use.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Minimum number of timed repetitions per operation.
    #[arg(long, default_value_t = 9)]
    pub reps: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Measure the process CPU time instead of the wall clock (for comparing builds of
    /// blindtuner on a loaded machine with one thread; not comparable with OpenFHE's
    /// wall-clock figures).
    #[arg(long)]
    pub cpu_time: bool,
    /// Time only these operations (comma-separated keys, `_ms` optional; for profiling);
    /// the others report 0.
    #[arg(long)]
    pub only: Option<String>,
}

/// Bits of each special prime, as OpenFHE's auxiliary moduli.
const P_BITS: u32 = 60;
/// Keep timing fast operations for at least this long (seconds), as the script does.
const MIN_TOTAL_S: f64 = 0.5;
/// At most this many timed calls per operation.
const MAX_RUNS: usize = 200;

pub fn run(args: &Args) -> Result<()> {
    match &args.what {
        What::Ckks(a) => with_threads(a.threads, || ckks(a)),
        What::Train(a) => crate::results::run(a),
        What::Bootstrap(a) => with_threads(a.threads, || bootstrap(a)),
    }
}

/// Runs `f` in a rayon pool of `threads` threads (fhe-core's limb loops use it).
pub(crate) fn with_threads(threads: usize, f: impl FnOnce() -> Result<()> + Send) -> Result<()> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build()
        .context("building the thread pool")?
        .install(f)
}

/// The bootstrapping preset for `--logn`.
fn boot_literal(logn: u32) -> Result<(&'static str, ParamsLiteral)> {
    match logn {
        16 => Ok(("n16_boot", presets::n16_boot())),
        10 => Ok(("toy_insecure_boot", presets::toy_insecure_boot())),
        _ => bail!("bench bootstrap has presets for --logn 16 and 10 only, not {logn}"),
    }
}

fn bootstrap(a: &BootArgs) -> Result<()> {
    let (name, lit) = boot_literal(a.logn)?;
    let params = lit.validate().context("bootstrapping preset")?;
    let slots = a.slots.unwrap_or(params.max_slots());
    let mut cfg = BootstrapConfig::new(&params, slots);
    let budget: Vec<usize> = a
        .budget
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .context("--budget must be two integers, e.g. 3,3")?;
    let [cts, stc] = budget[..] else {
        bail!("--budget must be two integers, e.g. 3,3");
    };
    (cfg.cts_levels, cfg.stc_levels) = (cts, stc);
    let mut rng = ChaCha20Rng::seed_from_u64(0x0062_6f6f_7473);
    let sk = SecretKey::generate(&params, &mut rng)?;
    let t0 = Instant::now();
    let boot = Bootstrapper::new(&params, cfg).context("bootstrapping setup")?;
    let setup_ms = t0.elapsed().as_secs_f64() * 1e3;
    let t0 = Instant::now();
    let keys = boot.generate_keys(&sk, &[], &mut rng)?;
    let keygen_ms = t0.elapsed().as_secs_f64() * 1e3;
    let keys_bytes = if a.logn <= 12 {
        keys.to_bytes(&params)?.len()
    } else {
        fhe_core::wire::HEADER_LEN + keys.payload_size_hint(&params)
    };
    let rotation_keys = keys.galois.len();
    let eval = Evaluator::with_keys(&params, std::sync::Arc::new(keys));
    let mut scratch = eval.scratch();
    let enc = Encoder::new(&params, slots)?;
    let x = uniform(&mut rng, slots);
    let ct = encrypt_pk(
        &params,
        &PublicKey::generate(&sk, &mut rng)?,
        &enc.encode_at(&x, params.scale(), 0)?,
        &mut rng,
    )?;
    let mut ts = Vec::new();
    let mut last = None;
    for _ in 0..a.reps.max(1) {
        let t0 = Instant::now();
        let out = boot.bootstrap(&eval, &ct, &mut scratch)?;
        ts.push(t0.elapsed().as_secs_f64() * 1e3);
        last = Some(black_box(out));
    }
    ts.sort_by(f64::total_cmp);
    let boot_ms = ts.get(ts.len() / 2).copied().unwrap_or(0.0);
    let out = last.context("no bootstrapping run")?;
    let got = enc.decode(&decrypt(&params, &sk, &out)?)?;
    let prec = Precision::of_real(&x, &got);
    let levels_after = out.level();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    let c = boot.config();
    if a.json {
        println!(
            "{{\"library\":\"blindtuner\",\"preset\":\"{name}\",\"logN\":{},\"slots\":{slots},\"threads\":{},\"level_budget\":[{},{}],\"K\":{},\"double_angle\":{},\"degree\":{},\"boot_ms\":{boot_ms:.1},\"boot_ms_runs\":[{}],\"precision_bits_mean\":{:.3},\"precision_bits_min\":{:.3},\"levels_after\":{levels_after},\"scale_after_bits\":{:.3},\"keys_bytes\":{keys_bytes},\"rotation_keys\":{rotation_keys},\"setup_ms\":{setup_ms:.1},\"keygen_ms\":{keygen_ms:.1},\"loadavg_end\":[{}]}}",
            a.logn,
            a.threads,
            c.cts_levels,
            c.stc_levels,
            c.k,
            c.double_angle(),
            c.degree,
            ts.iter()
                .map(|t| format!("{t:.1}"))
                .collect::<Vec<_>>()
                .join(","),
            prec.mean_bits,
            prec.min_bits,
            out.scale.log2(),
            load.iter()
                .map(|l| format!("\"{l}\""))
                .collect::<Vec<_>>()
                .join(",")
        );
    } else {
        println!(
            "blindtuner bench bootstrap: {name} (logN {}), {slots} slots, {} thread(s), budget ({}, {}), K {}, {} double angles, degree {}",
            a.logn,
            a.threads,
            c.cts_levels,
            c.stc_levels,
            c.k,
            c.double_angle(),
            c.degree
        );
        println!(
            "{:<22} {boot_ms:>12.1} ms (median of {})",
            "boot_ms",
            ts.len()
        );
        println!(
            "{:<22} {:>12.2} bits",
            "precision_bits_mean", prec.mean_bits
        );
        println!("{:<22} {:>12.2} bits", "precision_bits_min", prec.min_bits);
        println!(
            "{:<22} {levels_after:>12} (scale 2^{:.2})",
            "levels_after",
            out.scale.log2()
        );
        println!(
            "{:<22} {keys_bytes:>12} bytes ({rotation_keys} Galois keys + relin)",
            "keys_bytes"
        );
        println!("{:<22} {setup_ms:>12.1} ms", "setup_ms");
        println!("{:<22} {keygen_ms:>12.1} ms", "keygen_ms");
        println!("load average {}", load.join(" "));
    }
    Ok(())
}

/// The OpenFHE-style parameter literal for this point.
pub fn openfhe_literal(a: &CkksArgs) -> Result<ParamsLiteral> {
    if a.dnum == 0 {
        bail!("--dnum must be at least 1");
    }
    let q_bits: Vec<u32> = std::iter::once(a.first_mod_bits)
        .chain(std::iter::repeat_n(a.scale_bits, a.depth))
        .collect();
    let alpha = q_bits.len().div_ceil(a.dnum);
    let digit_bits = q_bits
        .chunks(alpha)
        .map(|c| c.iter().sum::<u32>())
        .max()
        .unwrap_or(0);
    let p_count = digit_bits.div_ceil(P_BITS) as usize;
    Ok(ParamsLiteral {
        log_n: a.logn,
        q: Moduli::Bits(q_bits),
        p: Moduli::Bits(vec![P_BITS; p_count]),
        log_scale: f64::from(a.scale_bits),
        dnum: a.dnum,
        secret: SecretDist::Ternary,
        security: Security::Classical128,
    })
}

/// Median and minimum (ms) of timed calls of `f` (the first error is returned).
fn time_ms<T, E>(
    reps: usize,
    cpu_time: bool,
    mut f: impl FnMut() -> Result<T, E>,
) -> Result<(f64, f64)>
where
    anyhow::Error: From<E>,
{
    let base = Instant::now();
    let now = || {
        if cpu_time {
            process_cpu_s()
        } else {
            base.elapsed().as_secs_f64()
        }
    };
    drop(black_box(f()?));
    let mut ts = Vec::new();
    let start = Instant::now();
    while ts.len() < reps || (start.elapsed().as_secs_f64() < MIN_TOTAL_S && ts.len() < MAX_RUNS) {
        let t0 = now();
        let out = f()?;
        drop(black_box(out));
        ts.push((now() - t0) * 1e3);
    }
    ts.sort_by(f64::total_cmp);
    let mid = ts.len() / 2;
    let median = match (ts.get(mid.wrapping_sub(1)), ts.get(mid)) {
        (Some(a), Some(b)) if ts.len() % 2 == 0 => (a + b) / 2.0,
        (_, Some(b)) => *b,
        _ => 0.0,
    };
    Ok((median, ts.first().copied().unwrap_or(0.0)))
}

/// CPU time of the whole process, in seconds.
fn process_cpu_s() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant libc knows.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &raw mut ts) };
    if rc != 0 {
        return 0.0;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

fn uniform(rng: &mut ChaCha20Rng, n: usize) -> Vec<f64> {
    (0..n)
        .map(|_| (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0)
        .collect()
}

/// The measured medians, in order, honouring `--only`.
struct Timings<'a> {
    only: Option<&'a str>,
    cpu_time: bool,
    /// `(key, median, minimum)`.
    ms: Vec<(&'static str, f64, f64)>,
}

impl Timings<'_> {
    fn time<T, E>(
        &mut self,
        key: &'static str,
        reps: usize,
        f: impl FnMut() -> Result<T, E>,
    ) -> Result<()>
    where
        anyhow::Error: From<E>,
    {
        let selected = self.only.is_none_or(|only| {
            only.split(',')
                .any(|o| key == o || key.strip_suffix("_ms") == Some(o))
        });
        let (median, min) = if selected {
            time_ms(reps, self.cpu_time, f)?
        } else {
            (0.0, 0.0)
        };
        self.ms.push((key, median, min));
        Ok(())
    }
}

fn ckks(a: &CkksArgs) -> Result<()> {
    let params = openfhe_literal(a)?
        .validate()
        .context("parameters for this point")?;
    let reps = a.reps.max(1);
    let key_reps = (reps / 2).max(5);
    let slots = params.max_slots();
    // Fixed seeds: the run is reproducible (benchmark keys, not keys to keep).
    let mut rng = ChaCha20Rng::seed_from_u64(0x0062_656e_6368);
    let mut t = Timings {
        only: a.only.as_deref(),
        cpu_time: a.cpu_time,
        ms: Vec::new(),
    };

    let sk = SecretKey::generate(&params, &mut rng)?;
    let pk = PublicKey::generate(&sk, &mut rng)?;
    t.time("keygen_relin_ms", key_reps, || {
        RelinKey::generate(&sk, &mut rng)
    })?;
    let rot1 = galois_element_for_rotation(&params, 1);
    t.time("keygen_rot1_ms", key_reps, || {
        GaloisKey::generate(&sk, rot1, &mut rng)
    })?;
    let keys = EvalKeys::generate(&sk, &[1], false, &mut rng)?;
    let eval = Evaluator::with_keys(&params, std::sync::Arc::new(keys));
    let mut scratch = eval.scratch();

    let enc = Encoder::new(&params, slots)?;
    let x = uniform(&mut rng, slots);
    let y = uniform(&mut rng, slots);
    t.time("encode_ms", reps, || enc.encode(&x))?;
    let ptx = enc.encode(&x)?;
    let pty = enc.encode(&y)?;
    t.time("encrypt_pk_ms", reps, || {
        encrypt_pk(&params, &pk, &ptx, &mut rng)
    })?;
    let cx = encrypt_pk(&params, &pk, &ptx, &mut rng)?;
    let cy = encrypt_pk(&params, &pk, &pty, &mut rng)?;
    t.time("decrypt_decode_ms", reps, || -> Result<Vec<f64>> {
        Ok(enc.decode(&decrypt(&params, &sk, &cx)?)?)
    })?;
    t.time("add_ms", reps, || eval.add_new(&cx, &cy))?;
    t.time("mult_plain_ms", reps, || eval.mul_plain_new(&cx, &pty))?;
    let mut c3 = cx.clone();
    eval.mul_into(&cx, &cy, &mut c3)?;
    t.time("relin_ms", reps, || eval.relinearize_new(&c3, &mut scratch))?;
    let c2 = eval.relinearize_new(&c3, &mut scratch)?;
    t.time("rescale_ms", reps, || eval.rescale_new(&c2, &mut scratch))?;
    let mrr = |scratch: &mut fhe_core::eval::EvalScratch| -> Result<Ciphertext> {
        let mut c = eval.mul_relin_new(&cx, &cy, scratch)?;
        eval.rescale_assign(&mut c, scratch)?;
        Ok(c)
    };
    t.time("mult_relin_rescale_ms", reps, || mrr(&mut scratch))?;
    t.time("rotate1_ms", reps, || eval.rotate_new(&cx, 1, &mut scratch))?;
    let ms = t.ms;

    // Correctness spot check, as the script's: max error of x·y after mult + relin + rescale.
    let prod = enc.decode(&decrypt(&params, &sk, &mrr(&mut scratch)?)?)?;
    let err = prod
        .iter()
        .zip(x.iter().zip(&y))
        .map(|(g, (u, v))| (g - u * v).abs())
        .fold(0.0f64, f64::max);
    let precision_bits_mult = -err.log2();
    let rot = enc.decode(&decrypt(
        &params,
        &sk,
        &eval.rotate_new(&cx, 1, &mut scratch)?,
    )?)?;
    let err_rot = rot
        .iter()
        .enumerate()
        .map(|(i, g)| (g - x[(i + 1) % slots]).abs())
        .fold(0.0f64, f64::max);
    // The serialized size of a fresh public-key encryption at the top level (wire header,
    // metadata, bit-packed residues).
    let ct_bytes = cx.to_bytes(&params)?.len();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();

    if a.json {
        let mut s = String::from("{\"library\":\"blindtuner\"");
        s += &format!(
            ",\"logN\":{},\"threads\":{},\"scale_bits\":{},\"first_mod_bits\":{},\"depth\":{},\"dnum\":{},\"limbs_Q\":{},\"limbs_P\":{},\"slots\":{}",
            a.logn,
            a.threads,
            a.scale_bits,
            a.first_mod_bits,
            a.depth,
            a.dnum,
            params.q().len(),
            params.p().len(),
            slots
        );
        for (k, v, _) in &ms {
            s += &format!(",\"{k}\":{v:.4}");
        }
        let mins: Vec<String> = ms
            .iter()
            .map(|(k, _, m)| format!("\"{k}\":{m:.4}"))
            .collect();
        s += &format!(",\"min_ms\":{{{}}}", mins.join(","));
        s += &format!(
            ",\"precision_bits_mult\":{precision_bits_mult:.4},\"check_max_err_mult\":{err:e},\"check_max_err_rot\":{err_rot:e},\"ct_bytes_serialized_top\":{ct_bytes},\"loadavg_end\":[{}]}}",
            load.iter()
                .map(|l| format!("\"{l}\""))
                .collect::<Vec<_>>()
                .join(",")
        );
        println!("{s}");
    } else {
        println!(
            "blindtuner bench ckks: logN {} depth {} scale 2^{} q0 {} bits dnum {} ({} Q + {} P limbs), {} thread(s)",
            a.logn,
            a.depth,
            a.scale_bits,
            a.first_mod_bits,
            a.dnum,
            params.q().len(),
            params.p().len(),
            a.threads
        );
        println!("{:<24} {:>12} {:>12}", "median of runs", "median", "min");
        for (k, v, m) in &ms {
            println!("{k:<24} {v:>9.3} ms {m:>9.3} ms");
        }
        println!(
            "{:<24} {precision_bits_mult:>12.2} bits",
            "precision_bits_mult"
        );
        println!("{:<24} {err_rot:>12.2e}", "check_max_err_rot");
        println!(
            "{:<24} {ct_bytes:>12} bytes (serialized)",
            "ct_bytes_serialized_top"
        );
        println!("load average {}", load.join(" "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fhe_core::params::presets;

    fn point(logn: u32, scale_bits: u32, first_mod_bits: u32, depth: usize) -> CkksArgs {
        CkksArgs {
            logn,
            depth,
            scale_bits,
            first_mod_bits,
            dnum: 3,
            threads: 1,
            reps: 1,
            json: false,
            cpu_time: false,
            only: None,
        }
    }

    /// `bench bootstrap` runs end to end at the toy preset and reports sane figures.
    #[test]
    fn bootstrap_bench_runs_at_the_toy_preset() {
        let a = BootArgs {
            logn: 10,
            slots: Some(64),
            threads: 1,
            reps: 1,
            budget: "2,2".into(),
            json: true,
        };
        bootstrap(&a).unwrap();
        assert!(boot_literal(12).is_err());
        let bad = BootArgs {
            budget: "3".into(),
            ..a
        };
        assert!(bootstrap(&bad).is_err());
    }

    /// The OpenFHE points of `compare.py` give exactly the named presets.
    #[test]
    fn openfhe_points_are_the_presets() {
        for (a, preset) in [
            (point(16, 50, 60, 24), presets::n16_openfhe()),
            (point(15, 50, 60, 11), presets::n15()),
            (point(14, 50, 60, 5), presets::n14()),
            (point(13, 40, 50, 2), presets::n13()),
        ] {
            let lit = openfhe_literal(&a).unwrap();
            assert_eq!(lit, preset, "logN {}", a.logn);
            assert!(lit.validate().is_ok());
        }
    }
}
