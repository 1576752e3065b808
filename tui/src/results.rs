//! `blindtuner bench train`: the results runner behind docs/RESULTS.md.
//!
//! It runs the demo's three trainings side by side on the same mini-batches (the encrypted run
//! with the hospital's refresh in process, the plaintext mirror of the same circuit, and exact
//! f64 NAG), on an embedded fixture or on a `.feat` features file, for a number of steps or
//! of epochs with early stopping, and records a per-step history: seconds and operation counts
//! of the encrypted step by kind, and every `--eval-every` steps the test loss and accuracy of
//! the three models (one process holds both parties, so the encrypted weights are decrypted
//! to evaluate them; the two-party commands never do this). `--mirror-only` skips CKKS.
//!
//! **Checkpoints.** With `--checkpoint DIR`, after every step the run's settings, position,
//! encrypted state (the cloud's [`CheckpointWire`]), mirror state and history so far are
//! written atomically to `DIR/run.ckpt`, and the secret key once to `DIR/secret.key` (0600).
//! Rerunning the same command resumes; a checkpoint made with other settings is refused with
//! the settings that differ. The exact run is replayed from the start on resume (it is
//! deterministic and cheap).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use fhe_core::ciphertext::Ciphertext;
use fhe_core::format::WireObject;
use fhe_core::keys::{EvalKeys, SecretKey};
use fhe_core::wire::ObjectKind;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use trainer_core::backend::{Mirror, MirrorVector};
use trainer_core::data::Dataset;
use trainer_core::exact::{self, Model};
use trainer_core::layout::Layout;
use trainer_core::nag::Schedule;
use trainer_core::refresh::AutoRefresh;
use trainer_core::session::{self, EarlyStopping, Plan, Verdict};
use trainer_core::softmax::SoftmaxApprox;
use trainer_core::train::{Batch, State, TrainConfig, Trainer};
use zeroize::Zeroizing;

use crate::cloud::{CheckpointWire, Settings};
use crate::files;
use crate::hospital::{self, Encryptor};
use crate::presets;

/// Options of `blindtuner bench train`.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Embedded dataset: blood, organa, mnist (ignored with --features).
    #[arg(long, default_value = "blood")]
    pub dataset: String,
    /// Train on this `.feat` features file (made by `blindtuner extract`) instead of an
    /// embedded fixture: its train split (all of it by default), val for the per-epoch
    /// validation loss and early stopping, test for the accuracies.
    #[arg(long)]
    pub features: Option<PathBuf>,
    /// Training preset (128-bit secure): n14_train, n15_train, n16_train.
    #[arg(long, default_value = crate::demo::DEFAULT_PRESET)]
    pub preset: String,
    /// Use the INSECURE N = 2^11 test preset (tests only).
    #[arg(long, hide = true)]
    pub insecure_test_preset: bool,
    /// Stop after this many steps in all (default 3 without --epochs, none with it).
    #[arg(long, visible_alias = "max-steps")]
    pub steps: Option<usize>,
    /// Epochs over the training samples (default: as many as --steps needs).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Early stopping: epochs without improvement of the validation loss (of the encrypted
    /// model, or of the mirror with --mirror-only).
    #[arg(long)]
    pub patience: Option<usize>,
    /// Minimum improvement of the validation loss.
    #[arg(long, default_value_t = 1e-4)]
    pub min_delta: f64,
    /// Chunks per mini-batch (a chunk holds N/2 slots / 256 samples: 32 at n14_train).
    #[arg(long, default_value_t = crate::demo::DEFAULT_BATCH_CHUNKS)]
    pub batch_chunks: usize,
    /// Training samples (default: the whole train split with --features or --epochs, else
    /// the samples the steps take).
    #[arg(long)]
    pub samples: Option<usize>,
    /// Learning rate.
    #[arg(long, default_value_t = 1.0)]
    pub lr: f64,
    /// Nesterov momentum (constant).
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f64,
    /// Seed of the per-epoch batch order.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Skip CKKS: run only the plaintext mirror and exact (fast; for full-dataset rows).
    #[arg(long)]
    pub mirror_only: bool,
    /// Test loss and accuracy every K steps (and at each epoch's end and the last step;
    /// default: every step, or about ten times an epoch with --mirror-only).
    #[arg(long)]
    pub eval_every: Option<usize>,
    /// Write the history and summary as JSON to this file (at each epoch's end, after every
    /// step with --checkpoint, and at the end).
    #[arg(long)]
    pub history: Option<PathBuf>,
    /// Checkpoint directory: written after every step; rerunning the same command resumes.
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Threads of the rayon pool fhe-core's limb loops use (default: rayon's).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Print one JSON object (summary and history) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// The run settings a results checkpoint must agree with (besides the cloud's [`Settings`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct RunSettings {
    source: String,
    source_len: u64,
    preset: String,
    mirror_only: bool,
    max_steps: Option<u64>,
    samples: u64,
    eval_every: u64,
}

/// `DIR/run.ckpt`: the cloud's checkpoint record first (so `blindtuner inspect` reads it),
/// then what only this runner has.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct RunCheckpoint {
    cloud: CheckpointWire,
    run: RunSettings,
    mirror_w: Vec<(Vec<f64>, u64)>,
    mirror_look: Vec<(Vec<f64>, u64)>,
    best: Option<f64>,
    best_epoch: u64,
    bad_epochs: u64,
    stopped_early: bool,
    train_seconds: f64,
    wall_seconds: f64,
    /// JSON arrays of the step and epoch records so far.
    steps: String,
    epochs: String,
}

const CHECKPOINT: &str = "run.ckpt";
const SECRET_KEY: &str = "secret.key";

/// The training data: standardised splits and where they came from.
struct Data {
    name: String,
    source: String,
    source_len: u64,
    train: Dataset,
    val: Dataset,
    test: Dataset,
}

fn load_data(a: &Args, per_step: usize, max_steps: Option<usize>) -> Result<Data> {
    let (name, source, source_len, f) = match &a.features {
        Some(p) => {
            let meta = std::fs::metadata(p).with_context(|| {
                format!(
                    "{}: no such features file (make it with `blindtuner extract ... --out {}`)",
                    p.display(),
                    p.display()
                )
            })?;
            let f = extractor::features::Features::load(p).map_err(|e| {
                anyhow::anyhow!("{}: not a usable features file ({e})", p.display())
            })?;
            let name = p
                .file_stem()
                .map_or_else(|| "features".into(), |s| s.to_string_lossy().to_string());
            (name, p.display().to_string(), meta.len(), f)
        }
        None => {
            let ds = extractor::fixtures::Dataset::from_name(&a.dataset).with_context(|| {
                format!("unknown dataset {:?} (blood, organa, mnist)", a.dataset)
            })?;
            let f = extractor::fixtures::load(ds)
                .map_err(|e| anyhow::anyhow!("embedded fixture {}: {e}", a.dataset))?;
            (a.dataset.clone(), format!("fixture:{}", a.dataset), 0, f)
        }
    };
    let named = |split: &str| {
        hospital::split(&f, split).with_context(|| format!("{source}: split {split}"))
    };
    let train_all = named("train")?;
    let whole = a.features.is_some() || a.epochs.is_some();
    let n = match (a.samples, max_steps) {
        (Some(s), _) => s,
        (None, Some(m)) if !whole => per_step.saturating_mul(m),
        _ => train_all.len(),
    }
    .clamp(1, train_all.len());
    let order = session::shuffled(train_all.len(), 1);
    let train_raw = hospital::subset(&train_all, order.get(..n).unwrap_or_default())?;
    let stdz = hospital::fit_standardizer(&train_raw);
    let val = match f.split("val") {
        Some(_) => stdz.apply(&named("val")?),
        None => hospital::subset(&stdz.apply(&train_raw), &[])?,
    };
    let test = stdz.apply(&named("test")?);
    Ok(Data {
        name,
        source,
        source_len,
        train: stdz.apply(&train_raw),
        val,
        test,
    })
}

/// The chunks `idx` of `packed`, encrypted, as one batch.
fn encrypt_batch(
    enc: Option<&Encryptor<'_>>,
    packed: &session::PackedChunks,
    idx: &[usize],
    rng: &mut ChaCha20Rng,
) -> Result<Batch<Ciphertext>> {
    let enc = enc.context("no secret key for the encrypted run")?;
    let mut b = Batch {
        x: Vec::with_capacity(idx.len()),
        y: Vec::with_capacity(idx.len()),
        rows: Vec::with_capacity(idx.len()),
    };
    for &i in idx {
        let (Some(x), Some(y), Some(&r)) = (packed.x.get(i), packed.y.get(i), packed.rows.get(i))
        else {
            bail!("chunk {i} out of range");
        };
        b.x.push(enc.encrypt(x, rng)?);
        b.y.push(enc.encrypt(y, rng)?);
        b.rows.push(r);
    }
    Ok(b)
}

/// The checkpoint at `path`, refused when it was made with other settings (named).
fn open_checkpoint(
    path: &std::path::Path,
    fp: u64,
    settings: &Settings,
    run: &RunSettings,
) -> Result<RunCheckpoint> {
    let bytes = files::read(path)?;
    let (_, ck): (_, RunCheckpoint) = files::open(path, &bytes, ObjectKind::Checkpoint, Some(fp))?;
    let old = json!({ "cloud": ck.cloud.settings, "run": ck.run });
    let new = json!({ "cloud": settings, "run": run });
    let diff: Vec<String> = ["cloud", "run"]
        .iter()
        .flat_map(|k| mismatches(&old[*k], &new[*k]))
        .collect();
    if !diff.is_empty() {
        bail!(
            "{} was made with other settings ({}); rerun with the same options or use another --checkpoint",
            path.display(),
            diff.join("; ")
        );
    }
    Ok(ck)
}

/// The run's secret key: the checkpoint's when resuming, else a new one (written 0600 to
/// `key_path` when checkpointing).
fn secret_key(
    params: &fhe_core::params::Params,
    resuming: bool,
    key_path: Option<&std::path::Path>,
    rng: &mut ChaCha20Rng,
) -> Result<SecretKey> {
    if let (true, Some(kp)) = (resuming, key_path) {
        let bytes = Zeroizing::new(files::read(kp)?);
        return SecretKey::from_bytes(params, &bytes)
            .map_err(|e| anyhow::anyhow!("{}: {e}", kp.display()));
    }
    let sk = SecretKey::generate(params, rng)?;
    if let Some(kp) = key_path {
        let bytes = Zeroizing::new(sk.to_bytes(params)?);
        files::write_atomic(kp, &bytes, true)?;
    }
    Ok(sk)
}

/// Adds `{prefix}_acc_{run}` and `{prefix}_loss_{run}` of the three runs (encrypted, mirror,
/// exact) that have metrics to the JSON object `row`.
fn put_metrics(row: &mut Value, prefix: &str, m: &[Option<(f64, f64)>; 3]) {
    if let Some(obj) = row.as_object_mut() {
        for (who, pair) in ["encrypted", "mirror", "exact"].iter().zip(m) {
            if let Some((acc, loss)) = pair {
                obj.insert(format!("{prefix}_acc_{who}"), round(*acc));
                obj.insert(format!("{prefix}_loss_{who}"), round(*loss));
            }
        }
    }
}

/// The machine the run is on: cores and CPU model.
fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    json!({ "cores": cores, "cpu": cpu })
}

/// The git commit of the working directory, if it is a git checkout.
fn git_commit() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Settings that differ, named: `lr: checkpoint 1 vs now 0.5`.
fn mismatches(old: &Value, new: &Value) -> Vec<String> {
    let (Some(o), Some(n)) = (old.as_object(), new.as_object()) else {
        return vec!["settings".into()];
    };
    n.iter()
        .filter(|(k, v)| o.get(*k) != Some(*v))
        .map(|(k, v)| {
            format!(
                "{k}: checkpoint {} vs now {v}",
                o.get(k).map_or_else(|| "none".into(), Value::to_string)
            )
        })
        .collect()
}

fn mirror_wire(v: &[MirrorVector]) -> Vec<(Vec<f64>, u64)> {
    v.iter()
        .map(|m| (m.values.clone(), m.level as u64))
        .collect()
}

fn mirror_from(v: &[(Vec<f64>, u64)]) -> Vec<MirrorVector> {
    v.iter()
        .map(|(values, level)| MirrorVector {
            values: values.clone(),
            level: *level as usize,
        })
        .collect()
}

/// Seconds, or milliseconds below a tenth of a second.
fn duration(s: f64) -> String {
    if s < 0.1 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{s:.2} s")
    }
}

fn round(x: f64) -> Value {
    if x.is_finite() {
        json!((x * 1e6).round() / 1e6)
    } else {
        Value::Null
    }
}

/// `blindtuner bench train`.
pub fn run(a: &Args) -> Result<()> {
    match a.threads {
        Some(t) => crate::bench::with_threads(t, || train(a)),
        None => train(a),
    }
}

fn train(a: &Args) -> Result<()> {
    let t_start = Instant::now();
    let preset = if a.insecure_test_preset {
        presets::INSECURE_TEST.to_string()
    } else {
        a.preset.clone()
    };
    let params = presets::params(&preset)?;
    let max_steps = a.steps.or(if a.epochs.is_none() { Some(3) } else { None });
    if max_steps == Some(0) {
        bail!("--steps must be at least 1");
    }
    if a.epochs == Some(0) {
        bail!("--epochs must be at least 1");
    }
    if a.eval_every == Some(0) {
        bail!("--eval-every must be at least 1");
    }
    let chunks_per_batch = a.batch_chunks.max(1);
    // The layout's rows per chunk depend only on the slots, features and classes.
    let probe = |features: usize, classes: usize| {
        Layout::new(params.max_slots(), features, classes)
            .map_err(|e| anyhow::anyhow!("layout for {features} features, {classes} classes: {e}"))
    };
    let dims = match &a.features {
        Some(_) => None,
        None => crate::demo::preview(&a.dataset)
            .ok()
            .map(|d| (d.features, d.class_names.len())),
    };
    let per_step_hint = match dims {
        Some((f, c)) => probe(f, c)?.rows * chunks_per_batch,
        None => 0,
    };
    let data = load_data(a, per_step_hint, max_steps)?;
    let (train, val, test) = (&data.train, &data.val, &data.test);
    let layout = probe(train.features(), train.classes())?;
    let (c, d) = (train.classes(), train.features());
    let packed = session::pack_chunks(&layout, train, &(0..train.len()).collect::<Vec<_>>());
    let plan = Plan {
        epochs: a.epochs.unwrap_or(usize::MAX),
        chunks_per_batch,
        seed: a.seed,
        patience: a.patience,
        min_delta: a.min_delta,
    };
    let per_epoch = plan.steps_per_epoch(packed.len());
    let eval_every = a.eval_every.unwrap_or(if a.mirror_only {
        (per_epoch / 10).max(1)
    } else {
        1
    });
    let settings = Settings {
        lr: a.lr,
        decay: 0.0,
        momentum: Some(a.momentum),
        epochs: a.epochs.map_or(u64::MAX, |e| e as u64),
        batch_chunks: chunks_per_batch as u64,
        seed: a.seed,
        patience: a.patience.map(|p| p as u64),
        min_delta: a.min_delta,
    };
    let run_settings = RunSettings {
        source: data.source.clone(),
        source_len: data.source_len,
        preset: preset.clone(),
        mirror_only: a.mirror_only,
        max_steps: max_steps.map(|m| m as u64),
        samples: train.len() as u64,
        eval_every: eval_every as u64,
    };
    let fp = params.fingerprint();
    let quiet = a.json;
    let say = |s: String| {
        if !quiet {
            println!("{s}");
        }
    };

    // Resume, or start.
    let ckpt_path = a.checkpoint.as_ref().map(|d| d.join(CHECKPOINT));
    let key_path = a.checkpoint.as_ref().map(|d| d.join(SECRET_KEY));
    if let Some(dir) = &a.checkpoint {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let resumed = match &ckpt_path {
        Some(p) if p.exists() => Some(open_checkpoint(p, fp, &settings, &run_settings)?),
        _ => None,
    };

    // Keys and the encrypted dataset (not with --mirror-only).
    let mut rng = ChaCha20Rng::from_os_rng();
    let t_keys = Instant::now();
    let sk = if a.mirror_only {
        None
    } else {
        Some(secret_key(
            &params,
            resumed.is_some(),
            key_path.as_deref(),
            &mut rng,
        )?)
    };
    let enc = sk
        .as_ref()
        .map(|sk| Encryptor::new(&params, sk))
        .transpose()?;
    let finished_before = resumed.as_ref().is_some_and(|r| r.cloud.finished);
    let mut enc_run = match &sk {
        Some(sk) => {
            let keys = EvalKeys::generate(sk, &layout.all_steps(), false, &mut rng)?;
            Some(crate::demo::local_backend(&params, sk, keys)?)
        }
        None => None,
    };
    let setup_s = t_keys.elapsed().as_secs_f64();

    let schedule = Schedule {
        learning_rate: a.lr,
        decay: 0.0,
        momentum: Some(a.momentum),
    };
    let config = TrainConfig {
        schedule,
        softmax: SoftmaxApprox::default(),
    };
    let mut t_enc = Trainer::new(layout, config.clone());
    let mut t_mir = Trainer::new(layout, config);
    let mirror = Mirror::new(params.max_slots(), trainer_core::ckks::working_top(&params));
    let chunks_mir = packed.map(|v| mirror.vector(v.to_vec()));
    let mut be_mir = AutoRefresh::new(mirror.clone(), 2)
        .with_window(Some(trainer_core::refresh::HOSPITAL_WINDOW));
    let zero = crate::cloud::zero_ct(&params)?;
    let zeros_wire = || -> Result<Vec<Vec<u8>>> {
        if a.mirror_only {
            return Ok(Vec::new());
        }
        (0..layout.c_pad)
            .map(|_| Ok(zero.to_bytes(&params)?))
            .collect()
    };
    let mut ck = match resumed {
        Some(ck) => ck,
        None => {
            let s0 = t_mir.zero_state(|v| mirror.vector(v));
            RunCheckpoint {
                cloud: CheckpointWire {
                    run: rng.next_u64(),
                    settings: settings.clone(),
                    dataset_len: data.source_len,
                    epoch: 0,
                    batch: 0,
                    step: 0,
                    w: zeros_wire()?,
                    look: zeros_wire()?,
                    best: None,
                    finished: false,
                },
                run: run_settings.clone(),
                mirror_w: mirror_wire(&s0.w),
                mirror_look: mirror_wire(&s0.look),
                best: None,
                best_epoch: 0,
                bad_epochs: 0,
                stopped_early: false,
                train_seconds: 0.0,
                wall_seconds: 0.0,
                steps: "[]".into(),
                epochs: "[]".into(),
            }
        }
    };
    let resumed_from = ck.cloud.step;
    let wall_before = ck.wall_seconds;
    let mut steps: Vec<Value> =
        serde_json::from_str(&ck.steps).context("the checkpoint's step history")?;
    let mut epochs: Vec<Value> =
        serde_json::from_str(&ck.epochs).context("the checkpoint's epoch history")?;
    let label = ckpt_path
        .clone()
        .unwrap_or_else(|| PathBuf::from("checkpoint"));
    let mut s_enc = State {
        w: files::cts_from_bytes(&label, &params, "weight", &ck.cloud.w)?,
        look: files::cts_from_bytes(&label, &params, "look-ahead", &ck.cloud.look)?,
        step: ck.cloud.step as usize,
    };
    if s_enc.w.is_empty() && !a.mirror_only {
        s_enc = t_enc.zero_state(|_| zero.clone());
    }
    let mut s_mir = State {
        w: mirror_from(&ck.mirror_w),
        look: mirror_from(&ck.mirror_look),
        step: ck.cloud.step as usize,
    };
    let mut stopper = EarlyStopping {
        best: ck.best,
        best_epoch: ck.best_epoch as usize,
        bad_epochs: ck.bad_epochs as usize,
        ..plan.early_stopping()
    };
    // The exact run, replayed to the checkpoint's position (deterministic).
    let mut ex = exact::Nag::new(c, d);
    for e in 0..=ck.cloud.epoch as usize {
        let sb = plan.sample_batches(&packed, e);
        let upto = if e == ck.cloud.epoch as usize {
            ck.cloud.batch as usize
        } else {
            sb.len()
        };
        for b in sb.iter().take(upto) {
            ex.step(train, b, &schedule);
        }
    }
    let enc_model = |w: &[Ciphertext]| -> Result<Option<Model>> {
        match &enc {
            Some(e) if !w.is_empty() => Ok(Some(crate::demo::encrypted_model(e, &layout, w)?)),
            _ => Ok(None),
        }
    };
    let mir_model = |w: &[MirrorVector]| crate::demo::mirror_model(&layout, w);
    let save = |ck: &RunCheckpoint| -> Result<()> {
        match &ckpt_path {
            Some(p) => files::write_atomic(p, &files::seal(ObjectKind::Checkpoint, fp, ck)?, false),
            None => Ok(()),
        }
    };
    let samples_per_step = layout.rows * chunks_per_batch;
    let mode = if a.mirror_only {
        "mirror-only"
    } else {
        "encrypted"
    };
    let refresh_mode = if a.mirror_only { "none" } else { "hospital" };
    if a.patience.is_some() && val.is_empty() {
        say(format!(
            "bench train: {} has no val split: no validation loss, no early stopping",
            data.source
        ));
    }
    if resumed_from > 0 || finished_before {
        say(format!(
            "bench train: resuming from {} at step {resumed_from} (epoch {}, batch {})",
            label.display(),
            ck.cloud.epoch,
            ck.cloud.batch
        ));
    }
    say(format!(
        "bench train: {} ({} train / {} val / {} test samples, {d} features, {c} classes) on {preset}, {mode}, {samples_per_step} samples per step, {per_epoch} steps per epoch{}",
        data.name,
        train.len(),
        val.len(),
        test.len(),
        if a.mirror_only {
            ", plaintext mirror and exact only (no CKKS)"
        } else {
            ", hospital refresh in process"
        }
    ));
    say(format!(
        "{:>5} {:>5} {:>8} {:>6} {:>6} {:>6} {:>8} {:>8} {:>8} {:>8} {:>21}",
        "step",
        "epoch",
        "seconds",
        "mult",
        "rot",
        "refr",
        "t_mult",
        "t_rot",
        "t_refr",
        "t_other",
        "test acc enc/mir/ex"
    ));
    let history_json = |ck: &RunCheckpoint,
                        steps: &[Value],
                        epochs: &[Value],
                        finals: Option<[Option<(f64, f64)>; 3]>,
                        wall: f64|
     -> Value {
        let n = ck.cloud.step;
        let f = |i: usize, k: usize| {
            finals
                .and_then(|m| m.get(i).copied().flatten())
                .map_or(Value::Null, |p| round(if k == 0 { p.0 } else { p.1 }))
        };
        json!({
            "bench": "train",
            "mode": mode,
            "dataset": data.name,
            "source": data.source,
            "preset": preset,
            "log_n": params.log_n(),
            "refresh_mode": refresh_mode,
            "batch_samples": samples_per_step,
            "train_samples": train.len(),
            "val_samples": val.len(),
            "test_samples": test.len(),
            "features": d,
            "classes": c,
            "lr": a.lr,
            "momentum": a.momentum,
            "seed": a.seed,
            "patience": a.patience,
            "max_epochs": a.epochs,
            "max_steps": max_steps,
            "eval_every": eval_every,
            "steps_per_epoch": per_epoch,
            "epochs_run": ck.cloud.epoch + u64::from(ck.cloud.batch > 0),
            "steps_run": n,
            "finished": ck.cloud.finished,
            "stopped_early": ck.stopped_early,
            "best_epoch": ck.best.map(|_| ck.best_epoch),
            "encrypted_acc": f(0, 0),
            "mirror_acc": f(1, 0),
            "exact_acc": f(2, 0),
            "encrypted_loss": f(0, 1),
            "mirror_loss": f(1, 1),
            "exact_loss": f(2, 1),
            "seconds_per_step": ck.train_seconds / n.max(1) as f64,
            "train_seconds": ck.train_seconds,
            "total_seconds": wall,
            "resumed_from_step": resumed_from,
            "threads": rayon::current_num_threads(),
            "machine": machine(),
            "git_commit": git_commit(),
            "steps": steps,
            "epochs": epochs,
        })
    };
    let write_history = |v: &Value| -> Result<()> {
        match &a.history {
            Some(p) => {
                if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("creating {}", dir.display()))?;
                }
                let text = serde_json::to_string_pretty(v).context("the history")?;
                files::write_atomic(p, text.as_bytes(), false)
            }
            None => Ok(()),
        }
    };
    let wall = |t: &Instant| wall_before + t.elapsed().as_secs_f64();
    // Test metrics (loss, accuracy) of the three models, encrypted first.
    let evaluate = |w_enc: &[Ciphertext],
                    w_mir: &[MirrorVector],
                    ex: &exact::Nag,
                    data: &Dataset|
     -> Result<[Option<(f64, f64)>; 3]> {
        let m_enc = enc_model(w_enc)?;
        let m_mir = mir_model(w_mir);
        let pair = |m: &Model| (m.accuracy(data), m.loss(data));
        Ok([
            m_enc.as_ref().map(pair),
            Some(pair(&m_mir)),
            Some(pair(&ex.w)),
        ])
    };

    'epochs: while !ck.cloud.finished && (ck.cloud.epoch as usize) < plan.epochs {
        let epoch = ck.cloud.epoch as usize;
        let batches = plan.epoch_batches(packed.len(), epoch);
        let sample_batches = plan.sample_batches(&packed, epoch);
        while (ck.cloud.batch as usize) < batches.len() {
            if max_steps.is_some_and(|m| ck.cloud.step as usize >= m) {
                break 'epochs;
            }
            let b = ck.cloud.batch as usize;
            let idx = batches.get(b).cloned().unwrap_or_default();
            let (secs, ops, split) = match &mut enc_run {
                Some(be) => {
                    // The batch's chunks, encrypted now (fresh encryptions of the same packed
                    // samples; encrypting the whole split up front would need gigabytes).
                    let batch = encrypt_batch(enc.as_ref(), &packed, &idx, &mut rng)?;
                    let before = be.inner.times;
                    let ts = Instant::now();
                    let r = t_enc.step(be, &mut s_enc, &batch).map_err(|e| {
                        anyhow::anyhow!("encrypted step {}: {e}", ck.cloud.step + 1)
                    })?;
                    let secs = ts.elapsed().as_secs_f64();
                    let dt = be.inner.times - before;
                    let timed = (dt.mult + dt.cmult + dt.rot + dt.refresh).as_secs_f64();
                    let split = [
                        (dt.mult + dt.cmult).as_secs_f64(),
                        dt.rot.as_secs_f64(),
                        dt.refresh.as_secs_f64(),
                        (secs - timed).max(0.0),
                    ];
                    t_mir
                        .step(&mut be_mir, &mut s_mir, &chunks_mir.batch(&idx))
                        .map_err(|e| anyhow::anyhow!("mirror step {}: {e}", ck.cloud.step + 1))?;
                    (secs, r.ops, Some(split))
                }
                None => {
                    let ts = Instant::now();
                    let r = t_mir
                        .step(&mut be_mir, &mut s_mir, &chunks_mir.batch(&idx))
                        .map_err(|e| anyhow::anyhow!("mirror step {}: {e}", ck.cloud.step + 1))?;
                    (ts.elapsed().as_secs_f64(), r.ops, None)
                }
            };
            if let Some(sb) = sample_batches.get(b) {
                ex.step(train, sb, &schedule);
            }
            ck.cloud.step += 1;
            ck.cloud.batch += 1;
            ck.train_seconds += secs;
            let step = ck.cloud.step as usize;
            let last =
                ck.cloud.batch as usize == batches.len() || max_steps.is_some_and(|m| step >= m);
            let mut row = json!({
                "step": step, "epoch": epoch, "seconds": secs,
                "mult": ops.mult, "cmult": ops.cmult, "rot": ops.rot,
                "relin": ops.relin, "refresh": ops.refresh,
            });
            if let (Some([m, r, f, o]), Some(obj)) = (split, row.as_object_mut()) {
                for (k, v) in [
                    ("seconds_mult", m),
                    ("seconds_rot", r),
                    ("seconds_refresh", f),
                    ("seconds_other", o),
                ] {
                    obj.insert(k.into(), json!(v));
                }
            }
            let mut accs = [None, None, None];
            if step.is_multiple_of(eval_every) || last {
                let m = evaluate(&s_enc.w, &s_mir.w, &ex, test)?;
                accs = m.map(|p| p.map(|p| p.0));
                put_metrics(&mut row, "test", &m);
            }
            let fmt_acc = |x: Option<f64>| x.map_or_else(|| "-".into(), |v| format!("{v:.3}"));
            let t = |i: usize| {
                split
                    .and_then(|sp| sp.get(i).copied())
                    .map_or_else(|| "-".into(), |v| format!("{v:.2}"))
            };
            say(format!(
                "{step:>5} {epoch:>5} {:>8} {:>6} {:>6} {:>6} {:>8} {:>8} {:>8} {:>8} {:>6}/{:>6}/{:>6}",
                duration(secs),
                ops.mult,
                ops.rot,
                ops.refresh,
                t(0),
                t(1),
                t(2),
                t(3),
                fmt_acc(accs[0]),
                fmt_acc(accs[1]),
                fmt_acc(accs[2]),
            ));
            steps.push(row);
            if ckpt_path.is_some() {
                if enc_run.is_some() {
                    ck.cloud.w = files::cts_to_bytes(&params, &s_enc.w)?;
                    ck.cloud.look = files::cts_to_bytes(&params, &s_enc.look)?;
                }
                ck.mirror_w = mirror_wire(&s_mir.w);
                ck.mirror_look = mirror_wire(&s_mir.look);
                ck.steps = serde_json::to_string(&steps).context("the step history")?;
                ck.wall_seconds = wall(&t_start);
                save(&ck)?;
                // Checkpointed runs are the long ones: their history so far after every step
                // (`report` draws it while they run).
                write_history(&history_json(&ck, &steps, &epochs, None, ck.wall_seconds))?;
            }
        }
        // End of the epoch: validation losses; early stopping on the primary run's.
        let mut record = json!({ "epoch": epoch, "steps": ck.cloud.step });
        put_metrics(
            &mut record,
            "test",
            &evaluate(&s_enc.w, &s_mir.w, &ex, test)?,
        );
        if !val.is_empty() {
            let m = evaluate(&s_enc.w, &s_mir.w, &ex, val)?;
            put_metrics(&mut record, "val", &m);
            let primary = m.first().copied().flatten().or(m.get(1).copied().flatten());
            if let (Some(_), Some((_, loss))) = (plan.patience, primary) {
                let v = stopper.observe(epoch, loss);
                if let Some(obj) = record.as_object_mut() {
                    obj.insert("verdict".into(), json!(format!("{v:?}").to_lowercase()));
                }
                say(format!("epoch {epoch}: validation loss {loss:.5}: {v:?}"));
                if v == Verdict::Stop {
                    ck.cloud.finished = true;
                    ck.stopped_early = true;
                }
            }
        }
        epochs.push(record);
        ck.best = stopper.best;
        ck.best_epoch = stopper.best_epoch as u64;
        ck.bad_epochs = stopper.bad_epochs as u64;
        ck.cloud.epoch += 1;
        ck.cloud.batch = 0;
        ck.epochs = serde_json::to_string(&epochs).context("the epoch history")?;
        ck.steps = serde_json::to_string(&steps).context("the step history")?;
        ck.wall_seconds = wall(&t_start);
        save(&ck)?;
        write_history(&history_json(&ck, &steps, &epochs, None, ck.wall_seconds))?;
    }
    ck.cloud.finished = true;
    ck.steps = serde_json::to_string(&steps).context("the step history")?;
    ck.epochs = serde_json::to_string(&epochs).context("the epoch history")?;
    ck.wall_seconds = wall(&t_start);
    save(&ck)?;
    // With early stopping the run keeps the best epoch's weights (as `train` does): the
    // figures are that epoch's test metrics, recorded at its end.
    let best_record = match (plan.patience, ck.best) {
        (Some(_), Some(_)) => epochs
            .iter()
            .find(|e| e["epoch"].as_u64() == Some(ck.best_epoch)),
        _ => None,
    };
    let finals = match best_record {
        Some(e) => ["encrypted", "mirror", "exact"].map(|who| {
            Some((
                e[format!("test_acc_{who}")].as_f64()?,
                e[format!("test_loss_{who}")].as_f64()?,
            ))
        }),
        None => evaluate(&s_enc.w, &s_mir.w, &ex, test)?,
    };
    let weights = if best_record.is_some() {
        "best epoch"
    } else {
        "final"
    };
    let mut v = history_json(&ck, &steps, &epochs, Some(finals), ck.wall_seconds);
    if let Some(obj) = v.as_object_mut() {
        obj.insert("weights".into(), json!(weights));
    }
    write_history(&v)?;
    if a.json {
        println!("{v}");
        return Ok(());
    }
    let pct = |i: usize| {
        finals
            .get(i)
            .copied()
            .flatten()
            .map_or_else(|| "—".into(), |(acc, _)| format!("{:.2} %", acc * 100.0))
    };
    println!(
        "test accuracy on {} ({} samples, {weights} weights): encrypted {}, mirror {}, exact {} after {} steps / {} epochs; {} per {} step, {:.1} s of training, {:.1} s in all (setup {setup_s:.1} s){}",
        data.name,
        test.len(),
        pct(0),
        pct(1),
        pct(2),
        ck.cloud.step,
        v["epochs_run"],
        duration(ck.train_seconds / ck.cloud.step.max(1) as f64),
        if a.mirror_only { "mirror" } else { "encrypted" },
        ck.train_seconds,
        ck.wall_seconds,
        if ck.stopped_early {
            ", stopped early"
        } else {
            ""
        }
    );
    if let Some(p) = &a.history {
        println!("history: {}", p.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn mismatches_name_the_settings_that_differ() {
        let old = json!({ "lr": 1.0, "seed": 0, "preset": "n14_train" });
        let new = json!({ "lr": 0.5, "seed": 0, "preset": "n14_train" });
        assert_eq!(
            mismatches(&old, &new),
            vec!["lr: checkpoint 1.0 vs now 0.5"]
        );
        assert!(mismatches(&old, &old).is_empty());
    }
}
