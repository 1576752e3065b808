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

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use fhe_core::ciphertext::Ciphertext;
use fhe_core::format::WireObject;
use fhe_core::keys::{EvalKeys, SecretKey};
use fhe_core::params::Params;
use fhe_core::wire::ObjectKind;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use trainer_core::backend::{Mirror, MirrorVector, OpCounts};
use trainer_core::data::Dataset;
use trainer_core::exact::{self, Model};
use trainer_core::layout::Layout;
use trainer_core::nag::Schedule;
use trainer_core::refresh::AutoRefresh;
use trainer_core::session::{self, Chunks, EarlyStopping, Plan, Verdict};
use trainer_core::train::{Batch, State, StepReport, TrainConfig, Trainer};
use zeroize::Zeroizing;

use crate::cloud::{CheckpointWire, Settings};
use crate::demo::LocalBackend;
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

/// The `git_commit` a history file written before names, if it can be read.
fn prior_commit(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    v.get("git_commit")?.as_str().map(str::to_string)
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

/// `blindtuner bench train` itself: sets the run up, makes its keys, resumes or starts it,
/// trains and reports.
fn train(a: &Args) -> Result<()> {
    let t_start = Instant::now();
    let setup = Setup::new(a)?;
    let resumed = setup.open_resumed()?;

    // Keys and the encrypted dataset (not with --mirror-only).
    let mut rng = ChaCha20Rng::from_os_rng();
    let t_keys = Instant::now();
    let sk = if a.mirror_only {
        None
    } else {
        Some(secret_key(
            &setup.params,
            resumed.is_some(),
            setup.key_path.as_deref(),
            &mut rng,
        )?)
    };
    let enc = sk
        .as_ref()
        .map(|sk| Encryptor::new(&setup.params, sk))
        .transpose()?;
    let enc_run = match &sk {
        Some(sk) => {
            let keys = EvalKeys::generate(sk, &setup.layout.all_steps(), false, &mut rng)?;
            Some(crate::demo::local_backend(&setup.params, sk, keys)?)
        }
        None => None,
    };
    let setup_s = t_keys.elapsed().as_secs_f64();

    let mut run = Run::start(&setup, enc.as_ref(), enc_run, resumed, rng, t_start)?;
    run.banner();
    run.train()?;
    run.finish(setup_s)
}

/// What a run fixes before it starts: the options, parameters, data and their packing, the
/// plan, the settings a checkpoint must agree with, and where checkpoints go.
struct Setup<'a> {
    a: &'a Args,
    preset: String,
    params: Params,
    max_steps: Option<usize>,
    chunks_per_batch: usize,
    data: Data,
    layout: Layout,
    packed: session::PackedChunks,
    plan: Plan,
    per_epoch: usize,
    eval_every: usize,
    schedule: Schedule,
    settings: Settings,
    run_settings: RunSettings,
    fp: u64,
    ckpt_path: Option<PathBuf>,
    key_path: Option<PathBuf>,
}

impl<'a> Setup<'a> {
    /// Checks the options, loads and packs the data, and derives the plan and the settings.
    fn new(a: &'a Args) -> Result<Self> {
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
            Layout::new(params.max_slots(), features, classes).map_err(|e| {
                anyhow::anyhow!("layout for {features} features, {classes} classes: {e}")
            })
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
        let train = &data.train;
        let layout = probe(train.features(), train.classes())?;
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
        let schedule = Schedule {
            learning_rate: a.lr,
            decay: 0.0,
            momentum: Some(a.momentum),
        };
        Ok(Self {
            a,
            preset,
            fp: params.fingerprint(),
            params,
            max_steps,
            chunks_per_batch,
            data,
            layout,
            packed,
            plan,
            per_epoch,
            eval_every,
            schedule,
            settings,
            run_settings,
            ckpt_path: a.checkpoint.as_ref().map(|d| d.join(CHECKPOINT)),
            key_path: a.checkpoint.as_ref().map(|d| d.join(SECRET_KEY)),
        })
    }

    /// Creates the checkpoint directory, and opens the checkpoint there if there is one.
    fn open_resumed(&self) -> Result<Option<RunCheckpoint>> {
        if let Some(dir) = &self.a.checkpoint {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        match &self.ckpt_path {
            Some(p) if p.exists() => Ok(Some(open_checkpoint(
                p,
                self.fp,
                &self.settings,
                &self.run_settings,
            )?)),
            _ => Ok(None),
        }
    }

    /// The checkpoint record of a run at its start: encrypted weights `zeros` (none with
    /// --mirror-only) and mirror state `s0`.
    fn fresh_checkpoint(
        &self,
        run: u64,
        zeros: &[Vec<u8>],
        s0: &State<MirrorVector>,
    ) -> RunCheckpoint {
        RunCheckpoint {
            cloud: CheckpointWire {
                run,
                settings: self.settings.clone(),
                dataset_len: self.data.source_len,
                epoch: 0,
                batch: 0,
                step: 0,
                w: zeros.to_vec(),
                look: zeros.to_vec(),
                best: None,
                finished: false,
            },
            run: self.run_settings.clone(),
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

    /// The exact run, replayed to `epoch` and `batch` (it is deterministic).
    fn replay_exact(&self, epoch: usize, batch: usize) -> exact::Nag {
        let train = &self.data.train;
        let mut ex = exact::Nag::new(train.classes(), train.features());
        for e in 0..=epoch {
            let sb = self.plan.sample_batches(&self.packed, e);
            let upto = if e == epoch { batch } else { sb.len() };
            for b in sb.iter().take(upto) {
                ex.step(train, b, &self.schedule);
            }
        }
        ex
    }

    /// Prints `s` unless the output is JSON.
    fn say(&self, s: &str) {
        if !self.a.json {
            println!("{s}");
        }
    }

    /// Training samples per step.
    fn samples_per_step(&self) -> usize {
        self.layout.rows * self.chunks_per_batch
    }

    /// Writes `ck` to the checkpoint file, if checkpointing.
    fn save(&self, ck: &RunCheckpoint) -> Result<()> {
        match &self.ckpt_path {
            Some(p) => {
                files::write_atomic(p, &files::seal(ObjectKind::Checkpoint, self.fp, ck)?, false)
            }
            None => Ok(()),
        }
    }

    /// Writes the history `v` to the --history file, if any.
    fn write_history(&self, v: &Value) -> Result<()> {
        match &self.a.history {
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
    }
}

/// (Accuracy, loss) of the three models: encrypted (none with --mirror-only), mirror, exact.
type Metrics = [Option<(f64, f64)>; 3];

/// Seconds, operation counts and (encrypted run only) the seconds by kind of one step.
type StepCost = (f64, OpCounts, Option<[f64; 4]>);

/// A run under way: the three trainings' states, the checkpoint record and the history.
struct Run<'s, 'e> {
    s: &'s Setup<'s>,
    enc: Option<&'e Encryptor<'e>>,
    enc_run: Option<LocalBackend>,
    rng: ChaCha20Rng,
    t_enc: Trainer,
    t_mir: Trainer,
    chunks_mir: Chunks<MirrorVector>,
    be_mir: AutoRefresh<Mirror>,
    s_enc: State<Ciphertext>,
    s_mir: State<MirrorVector>,
    ex: exact::Nag,
    stopper: EarlyStopping,
    ck: RunCheckpoint,
    steps: Vec<Value>,
    epochs: Vec<Value>,
    label: PathBuf,
    finished_before: bool,
    resumed_from: u64,
    /// The commit the history file names from before this invocation (resumed runs).
    prior_commit: Option<String>,
    wall_before: f64,
    t_start: Instant,
}

impl<'s, 'e> Run<'s, 'e> {
    /// The run resumed from `resumed`, or started afresh.
    fn start(
        s: &'s Setup<'s>,
        enc: Option<&'e Encryptor<'e>>,
        enc_run: Option<LocalBackend>,
        resumed: Option<RunCheckpoint>,
        mut rng: ChaCha20Rng,
        t_start: Instant,
    ) -> Result<Self> {
        let (params, layout) = (&s.params, s.layout);
        let finished_before = resumed.as_ref().is_some_and(|r| r.cloud.finished);
        let config = TrainConfig {
            schedule: s.schedule,
            ..TrainConfig::default()
        };
        let t_enc = Trainer::new(layout, config.clone());
        let t_mir = Trainer::new(layout, config);
        let mirror = Mirror::new(params.max_slots(), trainer_core::ckks::working_top(params));
        let data_level = trainer_core::ckks::data_level(params);
        let chunks_mir = s.packed.map(|v| mirror.vector_at(v.to_vec(), data_level));
        let be_mir = AutoRefresh::new(mirror.clone(), trainer_core::refresh::HOSPITAL_MIN_LEVEL)
            .with_window(Some(trainer_core::refresh::HOSPITAL_WINDOW));
        let zero = crate::cloud::zero_ct(params)?;
        let ck = match resumed {
            Some(ck) => ck,
            None => {
                let s0 = t_mir.zero_state(|v| mirror.vector(v));
                let run = rng.next_u64();
                let zeros: Vec<Vec<u8>> = if s.a.mirror_only {
                    Vec::new()
                } else {
                    (0..layout.c_pad)
                        .map(|_| Ok(zero.to_bytes(params)?))
                        .collect::<Result<_>>()?
                };
                s.fresh_checkpoint(run, &zeros, &s0)
            }
        };
        let steps = serde_json::from_str(&ck.steps).context("the checkpoint's step history")?;
        let epochs = serde_json::from_str(&ck.epochs).context("the checkpoint's epoch history")?;
        let label = s
            .ckpt_path
            .clone()
            .unwrap_or_else(|| PathBuf::from("checkpoint"));
        let mut s_enc = State {
            w: files::cts_from_bytes(&label, params, "weight", &ck.cloud.w)?,
            look: files::cts_from_bytes(&label, params, "look-ahead", &ck.cloud.look)?,
            step: ck.cloud.step as usize,
        };
        if s_enc.w.is_empty() && !s.a.mirror_only {
            s_enc = t_enc.zero_state(|_| zero.clone());
        }
        let s_mir = State {
            w: mirror_from(&ck.mirror_w),
            look: mirror_from(&ck.mirror_look),
            step: ck.cloud.step as usize,
        };
        let stopper = EarlyStopping {
            best: ck.best,
            best_epoch: ck.best_epoch as usize,
            bad_epochs: ck.bad_epochs as usize,
            ..s.plan.early_stopping()
        };
        let ex = s.replay_exact(ck.cloud.epoch as usize, ck.cloud.batch as usize);
        Ok(Self {
            s,
            enc,
            enc_run,
            rng,
            t_enc,
            t_mir,
            chunks_mir,
            be_mir,
            s_enc,
            s_mir,
            ex,
            stopper,
            steps,
            epochs,
            label,
            finished_before,
            resumed_from: ck.cloud.step,
            prior_commit: if ck.cloud.step > 0 {
                s.a.history.as_deref().and_then(prior_commit)
            } else {
                None
            },
            wall_before: ck.wall_seconds,
            ck,
            t_start,
        })
    }

    /// Prints what is run (and from where it resumes) and the step table's header.
    fn banner(&self) {
        let (s, a, data) = (self.s, self.s.a, &self.s.data);
        let (train, val, test) = (&data.train, &data.val, &data.test);
        if a.patience.is_some() && val.is_empty() {
            s.say(&format!(
                "bench train: {} has no val split: no validation loss, no early stopping",
                data.source
            ));
        }
        if self.resumed_from > 0 || self.finished_before {
            s.say(&format!(
                "bench train: resuming from {} at step {} (epoch {}, batch {})",
                self.label.display(),
                self.resumed_from,
                self.ck.cloud.epoch,
                self.ck.cloud.batch
            ));
        }
        s.say(&format!(
            "bench train: {} ({} train / {} val / {} test samples, {} features, {} classes) on {}, {}, {} samples per step, {} steps per epoch{}",
            data.name,
            train.len(),
            val.len(),
            test.len(),
            train.features(),
            train.classes(),
            s.preset,
            mode(a),
            s.samples_per_step(),
            s.per_epoch,
            if a.mirror_only {
                ", plaintext mirror and exact only (no CKKS)"
            } else {
                ", hospital refresh in process"
            }
        ));
        s.say(&format!(
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
    }

    /// Trains epoch by epoch until the epochs, --steps or early stopping end the run.
    fn train(&mut self) -> Result<()> {
        let (s, max_steps) = (self.s, self.s.max_steps);
        'epochs: while !self.ck.cloud.finished && (self.ck.cloud.epoch as usize) < s.plan.epochs {
            let epoch = self.ck.cloud.epoch as usize;
            let batches = s.plan.epoch_batches(s.packed.len(), epoch);
            let sample_batches = s.plan.sample_batches(&s.packed, epoch);
            while (self.ck.cloud.batch as usize) < batches.len() {
                if max_steps.is_some_and(|m| self.ck.cloud.step as usize >= m) {
                    break 'epochs;
                }
                let b = self.ck.cloud.batch as usize;
                let idx = batches.get(b).cloned().unwrap_or_default();
                let cost = self.step(&idx)?;
                if let Some(sb) = sample_batches.get(b) {
                    self.ex.step(&s.data.train, sb, &s.schedule);
                }
                self.ck.cloud.step += 1;
                self.ck.cloud.batch += 1;
                self.ck.train_seconds += cost.0;
                let step = self.ck.cloud.step as usize;
                let last = self.ck.cloud.batch as usize == batches.len()
                    || max_steps.is_some_and(|m| step >= m);
                self.record_step(epoch, cost, last)?;
                if s.ckpt_path.is_some() {
                    self.checkpoint()?;
                }
            }
            self.end_epoch(epoch)?;
        }
        Ok(())
    }

    /// One step of the encrypted run (on the batch's chunks, encrypted now) and of the
    /// mirror on chunks `idx`, or of the mirror alone with --mirror-only.
    fn step(&mut self, idx: &[usize]) -> Result<StepCost> {
        match &mut self.enc_run {
            Some(be) => {
                // The batch's chunks, encrypted now (fresh encryptions of the same packed
                // samples; encrypting the whole split up front would need gigabytes).
                let batch = encrypt_batch(self.enc, &self.s.packed, idx, &mut self.rng)?;
                let before = be.inner.times;
                let ts = Instant::now();
                let r = self.t_enc.step(be, &mut self.s_enc, &batch).map_err(|e| {
                    anyhow::anyhow!("encrypted step {}: {e}", self.ck.cloud.step + 1)
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
                self.mirror_step(idx)?;
                Ok((secs, r.ops, Some(split)))
            }
            None => {
                let ts = Instant::now();
                let r = self.mirror_step(idx)?;
                Ok((ts.elapsed().as_secs_f64(), r.ops, None))
            }
        }
    }

    /// One step of the mirror on chunks `idx`.
    fn mirror_step(&mut self, idx: &[usize]) -> Result<StepReport> {
        self.t_mir
            .step(
                &mut self.be_mir,
                &mut self.s_mir,
                &self.chunks_mir.batch(idx),
            )
            .map_err(|e| anyhow::anyhow!("mirror step {}: {e}", self.ck.cloud.step + 1))
    }

    /// Records the step just taken: its history row and table line, with the test metrics
    /// every --eval-every steps and at the `last` step of an epoch or of the run.
    fn record_step(&mut self, epoch: usize, cost: StepCost, last: bool) -> Result<()> {
        let (secs, ops, split) = cost;
        let step = self.ck.cloud.step as usize;
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
        if step.is_multiple_of(self.s.eval_every) || last {
            let m = self.evaluate(&self.s.data.test)?;
            accs = m.map(|p| p.map(|p| p.0));
            put_metrics(&mut row, "test", &m);
        }
        let fmt_acc = |x: Option<f64>| x.map_or_else(|| "-".into(), |v| format!("{v:.3}"));
        let t = |i: usize| {
            split
                .and_then(|sp| sp.get(i).copied())
                .map_or_else(|| "-".into(), |v| format!("{v:.2}"))
        };
        self.s.say(&format!(
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
        self.steps.push(row);
        Ok(())
    }

    /// Writes the checkpoint after a step, and the history so far (checkpointed runs are
    /// the long ones; `report` draws their history while they run).
    fn checkpoint(&mut self) -> Result<()> {
        let params = &self.s.params;
        if self.enc_run.is_some() {
            self.ck.cloud.w = files::cts_to_bytes(params, &self.s_enc.w)?;
            self.ck.cloud.look = files::cts_to_bytes(params, &self.s_enc.look)?;
        }
        self.ck.mirror_w = mirror_wire(&self.s_mir.w);
        self.ck.mirror_look = mirror_wire(&self.s_mir.look);
        self.ck.steps = serde_json::to_string(&self.steps).context("the step history")?;
        self.ck.wall_seconds = self.wall();
        self.s.save(&self.ck)?;
        self.s.write_history(&self.history(None))
    }

    /// The end of an epoch: its test and validation metrics, early stopping on the primary
    /// run's validation loss, the checkpoint and the history.
    fn end_epoch(&mut self, epoch: usize) -> Result<()> {
        let (s, val) = (self.s, &self.s.data.val);
        let mut record = json!({ "epoch": epoch, "steps": self.ck.cloud.step });
        put_metrics(&mut record, "test", &self.evaluate(&s.data.test)?);
        if !val.is_empty() {
            let m = self.evaluate(val)?;
            put_metrics(&mut record, "val", &m);
            let primary = m.first().copied().flatten().or(m.get(1).copied().flatten());
            if let (Some(_), Some((_, loss))) = (s.plan.patience, primary) {
                let v = self.stopper.observe(epoch, loss);
                if let Some(obj) = record.as_object_mut() {
                    obj.insert("verdict".into(), json!(format!("{v:?}").to_lowercase()));
                }
                s.say(&format!("epoch {epoch}: validation loss {loss:.5}: {v:?}"));
                if v == Verdict::Stop {
                    self.ck.cloud.finished = true;
                    self.ck.stopped_early = true;
                }
            }
        }
        self.epochs.push(record);
        self.ck.best = self.stopper.best;
        self.ck.best_epoch = self.stopper.best_epoch as u64;
        self.ck.bad_epochs = self.stopper.bad_epochs as u64;
        self.ck.cloud.epoch += 1;
        self.ck.cloud.batch = 0;
        self.ck.epochs = serde_json::to_string(&self.epochs).context("the epoch history")?;
        self.ck.steps = serde_json::to_string(&self.steps).context("the step history")?;
        self.ck.wall_seconds = self.wall();
        s.save(&self.ck)?;
        s.write_history(&self.history(None))
    }

    /// Ends the run: the last checkpoint, the final metrics, the history, and the JSON
    /// object or the summary line (`setup_s`: seconds the keys took).
    fn finish(mut self, setup_s: f64) -> Result<()> {
        let (s, a, data) = (self.s, self.s.a, &self.s.data);
        self.ck.cloud.finished = true;
        self.ck.steps = serde_json::to_string(&self.steps).context("the step history")?;
        self.ck.epochs = serde_json::to_string(&self.epochs).context("the epoch history")?;
        self.ck.wall_seconds = self.wall();
        s.save(&self.ck)?;
        let (finals, weights) = self.final_metrics()?;
        let mut v = self.history(Some(finals));
        if let Some(obj) = v.as_object_mut() {
            obj.insert("weights".into(), json!(weights));
        }
        s.write_history(&v)?;
        if a.json {
            println!("{v}");
            return Ok(());
        }
        let ck = &self.ck;
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
            data.test.len(),
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

    /// The final test metrics and which weights they are of: with early stopping the run
    /// keeps the best epoch's weights (as `train` does), and the figures are that epoch's
    /// test metrics, recorded at its end; else the final weights', evaluated now.
    fn final_metrics(&self) -> Result<(Metrics, &'static str)> {
        let ck = &self.ck;
        let best_record = match (self.s.plan.patience, ck.best) {
            (Some(_), Some(_)) => self
                .epochs
                .iter()
                .find(|e| e["epoch"].as_u64() == Some(ck.best_epoch)),
            _ => None,
        };
        Ok(match best_record {
            Some(e) => (
                ["encrypted", "mirror", "exact"].map(|who| {
                    Some((
                        e[format!("test_acc_{who}")].as_f64()?,
                        e[format!("test_loss_{who}")].as_f64()?,
                    ))
                }),
                "best epoch",
            ),
            None => (self.evaluate(&self.s.data.test)?, "final"),
        })
    }

    /// Test metrics (accuracy, loss) of the three models on `data`, encrypted first (none
    /// for it with --mirror-only).
    fn evaluate(&self, data: &Dataset) -> Result<Metrics> {
        let m_enc = match self.enc {
            Some(e) if !self.s_enc.w.is_empty() => Some(crate::demo::encrypted_model(
                e,
                &self.s.layout,
                &self.s_enc.w,
            )?),
            _ => None,
        };
        let m_mir = crate::demo::mirror_model(&self.s.layout, &self.s_mir.w);
        let pair = |m: &Model| (m.accuracy(data), m.loss(data));
        Ok([
            m_enc.as_ref().map(pair),
            Some(pair(&m_mir)),
            Some(pair(&self.ex.w)),
        ])
    }

    /// Seconds since the run first started, across resumes.
    fn wall(&self) -> f64 {
        // Re-reading a finished run adds nothing to the time it took.
        if self.finished_before {
            return self.wall_before;
        }
        self.wall_before + self.t_start.elapsed().as_secs_f64()
    }

    /// The commit(s) whose builds took the run's steps: the current one when this invocation
    /// stepped (after the earlier one, if a resumed run changed build), the history file's
    /// when it only re-read a finished run.
    fn commit(&self) -> Option<String> {
        let now = git_commit();
        if self.ck.cloud.step > self.resumed_from {
            match (&self.prior_commit, now) {
                (Some(p), Some(n)) if *p != n => Some(format!("{p} then {n}")),
                (_, n) => n,
            }
        } else {
            self.prior_commit.clone().or(now)
        }
    }

    /// The history and summary as JSON, with the final metrics `finals` once known.
    fn history(&self, finals: Option<Metrics>) -> Value {
        let (s, a, data, ck) = (self.s, self.s.a, &self.s.data, &self.ck);
        let n = ck.cloud.step;
        let f = |i: usize, k: usize| {
            finals
                .and_then(|m| m.get(i).copied().flatten())
                .map_or(Value::Null, |p| round(if k == 0 { p.0 } else { p.1 }))
        };
        json!({
            "bench": "train",
            "mode": mode(a),
            "dataset": data.name,
            "source": data.source,
            "preset": s.preset,
            "log_n": s.params.log_n(),
            "refresh_mode": if a.mirror_only { "none" } else { "hospital" },
            "batch_samples": s.samples_per_step(),
            "train_samples": data.train.len(),
            "val_samples": data.val.len(),
            "test_samples": data.test.len(),
            "features": data.train.features(),
            "classes": data.train.classes(),
            "lr": a.lr,
            "momentum": a.momentum,
            "seed": a.seed,
            "patience": a.patience,
            "max_epochs": a.epochs,
            "max_steps": s.max_steps,
            "eval_every": s.eval_every,
            "steps_per_epoch": s.per_epoch,
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
            "total_seconds": ck.wall_seconds,
            "resumed_from_step": self.resumed_from,
            "threads": rayon::current_num_threads(),
            "machine": machine(),
            "git_commit": self.commit(),
            "steps": self.steps,
            "epochs": self.epochs,
        })
    }
}

/// The run's mode: `encrypted`, or `mirror-only`.
fn mode(a: &Args) -> &'static str {
    if a.mirror_only {
        "mirror-only"
    } else {
        "encrypted"
    }
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
