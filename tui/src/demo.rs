//! `blindtuner demo`: the whole pipeline in one process on an embedded fixture, with the
//! encrypted run, the plaintext mirror and the exact reference side by side.
//!
//! One process plays both parties here (the hospital's refresh is a function call), so the
//! demo can also decrypt the encrypted weights after every step to draw their curve; the
//! two-party commands (`keygen`, `encrypt`, `train`, `refresh`, `decrypt`, `evaluate`) keep
//! the secret key at the hospital.
//!
//! [`run`] drives the pipeline and reports [`Event`]s through a callback; the headless demo
//! prints them with progress bars, the terminal app receives them over a channel from a worker
//! thread and controls the run through [`Control`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use fhe_core::ciphertext::Ciphertext;
use fhe_core::keys::{EvalKeys, SecretKey};
use fhe_core::params::Params;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use trainer_core::backend::{Backend, Mirror, MirrorVector, OpCounts};
use trainer_core::ckks::{CkksBackend, LocalHospital, MaskedRefresh};
use trainer_core::exact::{self, Model};
use trainer_core::layout::Layout;
use trainer_core::nag::Schedule;
use trainer_core::refresh::AutoRefresh;
use trainer_core::session::{self, Chunks, Plan};
use trainer_core::timing::Timed;
use trainer_core::train::{TrainConfig, Trainer};

use crate::hospital::{self, Encryptor, Metrics};
use crate::presets;

/// Options of `blindtuner demo` (and of the terminal app).
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Embedded dataset: blood (BloodMNIST, 8 classes), organa (OrganAMNIST, 11), mnist (10).
    #[arg(long, default_value = "blood")]
    pub dataset: String,
    /// Training preset (128-bit secure): n14_train (N = 2^14, the default: with the default
    /// steps and batch the demo takes about 3 minutes on 2 cores), n15_train, n16_train.
    #[arg(long, default_value = DEFAULT_PRESET)]
    pub preset: String,
    /// Use the INSECURE N = 2^11 test preset (tests only).
    #[arg(long, hide = true)]
    pub insecure_test_preset: bool,
    /// Encrypted training steps (the default, 32 steps of 64 samples at n14_train, is one
    /// epoch over the 2048 training samples: a few minutes on 2 cores).
    #[arg(long, default_value_t = DEFAULT_STEPS)]
    pub steps: usize,
    /// Chunks per mini-batch (a chunk holds N/2 slots / 256 samples: 32 at n14_train).
    #[arg(long, default_value_t = DEFAULT_BATCH_CHUNKS)]
    pub batch_chunks: usize,
    /// Training samples (default: as many as the steps use in one epoch, at most 2048).
    #[arg(long)]
    pub samples: Option<usize>,
    /// Learning rate.
    #[arg(long, default_value_t = 1.0)]
    pub lr: f64,
    /// Momentum.
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f64,
    /// Progress bars instead of the terminal app.
    #[arg(long)]
    pub headless: bool,
    /// Print one JSON object with the results (implies --headless, no progress bars).
    #[arg(long)]
    pub json: bool,
}

/// The default preset of the demo and the app.
pub const DEFAULT_PRESET: &str = "n14_train";
/// The default number of encrypted steps.
pub const DEFAULT_STEPS: usize = 32;
/// The default mini-batch, in chunks (2 × 32 samples at n14_train: the 32 default steps are
/// one epoch over the fixture's 2048 training samples).
pub const DEFAULT_BATCH_CHUNKS: usize = 2;

impl Default for Args {
    fn default() -> Self {
        Self {
            dataset: "blood".into(),
            preset: DEFAULT_PRESET.into(),
            insecure_test_preset: false,
            steps: DEFAULT_STEPS,
            batch_chunks: DEFAULT_BATCH_CHUNKS,
            samples: None,
            lr: 1.0,
            momentum: 0.9,
            headless: false,
            json: false,
        }
    }
}

impl Args {
    /// The preset's name, honouring `--insecure-test-preset`.
    pub fn preset_name(&self) -> &str {
        if self.insecure_test_preset {
            presets::INSECURE_TEST
        } else {
            &self.preset
        }
    }
}

/// What the data screen shows.
#[derive(Clone, Debug, PartialEq)]
pub struct DataInfo {
    pub dataset: String,
    pub class_names: Vec<String>,
    /// Training samples per class (of the subset used).
    pub histogram: Vec<usize>,
    pub train: usize,
    pub val: usize,
    pub test: usize,
    pub features: usize,
}

/// What the keys screen shows.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyInfo {
    pub preset: String,
    pub log_n: u32,
    pub levels: usize,
    pub log_qp: f64,
    pub security: String,
    pub rotation_keys: usize,
    pub eval_key_bytes: usize,
    pub ciphertext_bytes: usize,
    pub rows_per_chunk: usize,
    pub chunks: usize,
    pub keygen_s: f64,
    pub encrypt_s: f64,
}

/// Seconds of one step by kind of operation (products with plaintexts and constants count
/// as `mult`; `other` is additions and the rest).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TimeSplit {
    pub mult: f64,
    pub rot: f64,
    pub refresh: f64,
    pub other: f64,
}

impl TimeSplit {
    pub fn total(&self) -> f64 {
        self.mult + self.rot + self.refresh + self.other
    }
}

/// One training step of all three runs.
#[derive(Clone, Debug, PartialEq)]
pub struct StepInfo {
    pub step: usize,
    pub total: usize,
    pub epoch: usize,
    /// Validation cross-entropy of the encrypted (decrypted for display), mirror and exact
    /// weights.
    pub loss: [f64; 3],
    /// Validation accuracy of the same.
    pub acc: [f64; 3],
    pub ops: OpCounts,
    pub time: TimeSplit,
    /// Seconds of the encrypted step.
    pub seconds: f64,
    /// Largest |encrypted − mirror| weight.
    pub max_diff: f64,
}

/// The final results.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub dataset: String,
    pub preset: String,
    pub steps: usize,
    pub seconds_per_step: f64,
    pub refresh_mode: String,
    /// Test metrics of encrypted (decrypted), mirror and exact.
    pub test: [Metrics; 3],
    pub class_names: Vec<String>,
    pub stopped_early: bool,
}

impl Summary {
    pub fn json(&self) -> String {
        serde_json::json!({
            "dataset": self.dataset,
            "exact_acc": self.test[2].accuracy,
            "mirror_acc": self.test[1].accuracy,
            "encrypted_acc": self.test[0].accuracy,
            "steps": self.steps,
            "seconds_per_step": self.seconds_per_step,
            "refresh_mode": self.refresh_mode,
            "preset": self.preset,
        })
        .to_string()
    }
}

/// Progress of the pipeline.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    Phase(&'static str),
    Data(DataInfo),
    Keys(KeyInfo),
    Step(Box<StepInfo>),
    Log(String),
    Done(Box<Summary>),
    Failed(String),
}

/// Pause / stop requests from the UI.
#[derive(Clone, Debug, Default)]
pub struct Control(Arc<AtomicU8>);

impl Control {
    const RUN: u8 = 0;
    const PAUSE: u8 = 1;
    const STOP: u8 = 2;
    pub fn pause(&self, on: bool) {
        let _ = self.0.compare_exchange(
            if on { Self::RUN } else { Self::PAUSE },
            if on { Self::PAUSE } else { Self::RUN },
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
    }
    pub fn stop(&self) {
        self.0.store(Self::STOP, Ordering::SeqCst);
    }
    pub fn stopped(&self) -> bool {
        self.0.load(Ordering::SeqCst) == Self::STOP
    }
    pub fn paused(&self) -> bool {
        self.0.load(Ordering::SeqCst) == Self::PAUSE
    }
}

fn ok_or<T, E: std::fmt::Display>(r: Result<T, E>, what: &str) -> Result<T> {
    r.map_err(|e| anyhow::anyhow!("{what}: {e}"))
}

/// What the data screen shows before a run: the whole training split of a fixture.
pub fn preview(dataset: &str) -> Result<DataInfo> {
    let ds = extractor::fixtures::Dataset::from_name(dataset)
        .with_context(|| format!("unknown dataset {dataset:?} (blood, organa, mnist)"))?;
    let f = ok_or(extractor::fixtures::load(ds), "fixture")?;
    let count = |name: &str| f.split(name).map_or(0, |s| s.rows());
    let histogram = f
        .split("train")
        .map(|s| s.class_counts(f.class_names.len()))
        .unwrap_or_default();
    Ok(DataInfo {
        dataset: dataset.to_string(),
        class_names: f.class_names.clone(),
        histogram,
        train: count("train"),
        val: count("val"),
        test: count("test"),
        features: f.dim,
    })
}

/// The encrypted backend of a one-process run: CKKS with the hospital's refresh in process
/// (its own copy of the key; the cloud side masks every refresh), timed by operation kind,
/// refreshing operands at level 2 into the hospital's window (as `train` does).
pub type LocalBackend =
    AutoRefresh<Timed<CkksBackend<MaskedRefresh<ChaCha20Rng, LocalHospital<ChaCha20Rng>>>>>;

/// [`LocalBackend`] for `sk` and its evaluation keys.
pub fn local_backend(params: &Params, sk: &SecretKey, keys: EvalKeys) -> Result<LocalBackend> {
    let hospital = MaskedRefresh::new(
        params,
        ChaCha20Rng::from_os_rng(),
        LocalHospital::new(
            params,
            SecretKey::from_coeffs(params, sk.coeffs())?,
            ChaCha20Rng::from_os_rng(),
        ),
    );
    Ok(AutoRefresh::new(
        Timed::new(CkksBackend::new(params, Arc::new(keys), hospital)?),
        trainer_core::refresh::HOSPITAL_MIN_LEVEL,
    )
    .with_window(Some(trainer_core::refresh::HOSPITAL_WINDOW)))
}

/// The hospital's view of the encrypted weights (decrypted) as a model (`layout.d` counts the
/// bias entry).
pub fn encrypted_model(enc: &Encryptor<'_>, layout: &Layout, w: &[Ciphertext]) -> Result<Model> {
    Ok(Model {
        classes: layout.c,
        features: layout.d.saturating_sub(1),
        w: hospital::decrypt_model(enc, layout, w)?,
    })
}

/// The mirror's weights as a model.
pub fn mirror_model(layout: &Layout, w: &[MirrorVector]) -> Model {
    let diags: Vec<Vec<f64>> = w.iter().map(|v| v.values.clone()).collect();
    Model {
        classes: layout.c,
        features: layout.d.saturating_sub(1),
        w: layout.unpack_w(&diags),
    }
}

/// Runs the pipeline, reporting through `emit`; honours `control` between steps.
pub fn run(args: &Args, control: &Control, emit: &mut dyn FnMut(Event)) -> Result<Summary> {
    let ds = extractor::fixtures::Dataset::from_name(&args.dataset)
        .with_context(|| format!("unknown dataset {:?} (blood, organa, mnist)", args.dataset))?;
    let preset = args.preset_name().to_string();
    let params = presets::params(&preset)?;
    if args.steps == 0 {
        bail!("--steps must be at least 1");
    }
    emit(Event::Phase("data"));
    let f = ok_or(extractor::fixtures::load(ds), "fixture")?;
    let train_all = hospital::split(&f, "train")?;
    let layout = ok_or(
        Layout::new(
            params.max_slots(),
            train_all.features(),
            train_all.classes(),
        ),
        "layout",
    )?;
    let per_step = layout.rows * args.batch_chunks.max(1);
    let n_train = args
        .samples
        .unwrap_or(per_step * args.steps)
        .clamp(1, train_all.len());
    let order = session::shuffled(train_all.len(), 1);
    let train_raw = hospital::subset(&train_all, order.get(..n_train).unwrap_or_default())?;
    let stdz = hospital::fit_standardizer(&train_raw);
    let train = stdz.apply(&train_raw);
    let val = stdz.apply(&hospital::split(&f, "val")?);
    let test = stdz.apply(&hospital::split(&f, "test")?);
    let mut histogram = vec![0usize; train.classes()];
    for &l in train.labels() {
        if let Some(h) = histogram.get_mut(l) {
            *h += 1;
        }
    }
    emit(Event::Data(DataInfo {
        dataset: args.dataset.clone(),
        class_names: f.class_names.clone(),
        histogram,
        train: train.len(),
        val: val.len(),
        test: test.len(),
        features: f.dim,
    }));

    emit(Event::Phase("keygen"));
    let t0 = Instant::now();
    let mut rng = ChaCha20Rng::from_os_rng();
    let (sk, _pk, keys, _) =
        hospital::generate_keys(&params, train.features(), train.classes(), false, &mut rng)?;
    let keygen_s = t0.elapsed().as_secs_f64();
    let eval_key_bytes = {
        use fhe_core::format::WireObject;
        keys.to_bytes(&params).map(|b| b.len()).unwrap_or(0)
    };
    let rotation_keys = keys.galois.len();

    emit(Event::Phase("encrypt"));
    let t1 = Instant::now();
    let packed = session::pack_chunks(&layout, &train, &(0..train.len()).collect::<Vec<_>>());
    let enc = Encryptor::new(&params, &sk)?;
    let mut chunks_ct = Chunks {
        x: Vec::with_capacity(packed.len()),
        y: Vec::with_capacity(packed.len()),
        rows: packed.rows.clone(),
    };
    for (x, y) in packed.x.iter().zip(&packed.y) {
        chunks_ct.x.push(enc.encrypt(x, &mut rng)?);
        chunks_ct.y.push(enc.encrypt(y, &mut rng)?);
    }
    let encrypt_s = t1.elapsed().as_secs_f64();
    let ciphertext_bytes = {
        use fhe_core::format::WireObject;
        chunks_ct
            .x
            .first()
            .and_then(|c| c.to_bytes(&params).ok())
            .map_or(0, |b| b.len())
    };
    emit(Event::Keys(KeyInfo {
        preset: preset.clone(),
        log_n: params.log_n(),
        levels: params.max_level(),
        log_qp: params.log_qp(),
        security: presets::security_name(&params).to_string(),
        rotation_keys,
        eval_key_bytes,
        ciphertext_bytes,
        rows_per_chunk: layout.rows,
        chunks: packed.len(),
        keygen_s,
        encrypt_s,
    }));

    let mut be_enc = local_backend(&params, &sk, keys)?;
    let mirror = Mirror::new(params.max_slots(), be_enc.top_level());
    let data_level = trainer_core::ckks::data_level(&params);
    let chunks_mir = packed.map(|v| mirror.vector_at(v.to_vec(), data_level));
    let schedule = Schedule {
        learning_rate: args.lr,
        decay: 0.0,
        momentum: Some(args.momentum),
    };
    let config = TrainConfig {
        schedule,
        ..TrainConfig::default()
    };
    let mut t_enc = Trainer::new(layout, config.clone());
    let mut t_mir = Trainer::new(layout, config);
    let zero = crate::cloud::zero_ct(&params)?;
    let mut s_enc = t_enc.zero_state(|_| zero.clone());
    let mut s_mir = t_mir.zero_state(|v| mirror.vector(v));
    let mut be_mir = AutoRefresh::new(mirror.clone(), trainer_core::refresh::HOSPITAL_MIN_LEVEL)
        .with_window(Some(trainer_core::refresh::HOSPITAL_WINDOW));
    let (c, d) = (train.classes(), train.features());
    let mut ex = exact::Nag::new(c, d);
    let enc_model = |w: &[Ciphertext]| encrypted_model(&enc, &layout, w);
    let mir_model = |w: &[MirrorVector]| mirror_model(&layout, w);

    let plan = Plan {
        epochs: usize::MAX,
        chunks_per_batch: args.batch_chunks.max(1),
        seed: 0,
        patience: None,
        min_delta: 0.0,
    };
    emit(Event::Phase("training"));
    let mut seconds = 0.0;
    let mut step = 0usize;
    let mut epoch = 0usize;
    let mut stopped = false;
    'outer: while step < args.steps {
        let batches = plan.epoch_batches(packed.len(), epoch);
        let sample_batches = plan.sample_batches(&packed, epoch);
        for (idx, samples) in batches.iter().zip(&sample_batches) {
            if step >= args.steps {
                break 'outer;
            }
            while control.paused() {
                std::thread::sleep(Duration::from_millis(50));
            }
            if control.stopped() {
                stopped = true;
                break 'outer;
            }
            let before = be_enc.inner.times;
            let ts = Instant::now();
            let r = ok_or(
                t_enc.step(&mut be_enc, &mut s_enc, &chunks_ct.batch(idx)),
                "encrypted step",
            )?;
            let secs = ts.elapsed().as_secs_f64();
            seconds += secs;
            ok_or(
                t_mir.step(&mut be_mir, &mut s_mir, &chunks_mir.batch(idx)),
                "mirror step",
            )?;
            // Exact NAG on the same samples.
            ex.step(&train, samples, &schedule);
            step += 1;
            let (m_enc, m_mir) = (enc_model(&s_enc.w)?, mir_model(&s_mir.w));
            let max_diff = m_enc
                .w
                .iter()
                .zip(&m_mir.w)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            let d_t = be_enc.inner.times - before;
            let time = TimeSplit {
                mult: (d_t.mult + d_t.cmult).as_secs_f64(),
                rot: d_t.rot.as_secs_f64(),
                refresh: d_t.refresh.as_secs_f64(),
                other: (secs - (d_t.mult + d_t.cmult + d_t.rot + d_t.refresh).as_secs_f64())
                    .max(0.0),
            };
            let models = [&m_enc, &m_mir, &ex.w];
            emit(Event::Step(Box::new(StepInfo {
                step,
                total: args.steps,
                epoch,
                loss: models.map(|m| m.loss(&val)),
                acc: models.map(|m| m.accuracy(&val)),
                ops: r.ops,
                time,
                seconds: secs,
                max_diff,
            })));
        }
        epoch += 1;
    }
    emit(Event::Phase("evaluate"));
    let (m_enc, m_mir) = (enc_model(&s_enc.w)?, mir_model(&s_mir.w));
    let summary = Summary {
        dataset: args.dataset.clone(),
        preset,
        steps: step,
        seconds_per_step: seconds / step.max(1) as f64,
        refresh_mode: "hospital".into(),
        test: [
            hospital::metrics(&m_enc, &test),
            hospital::metrics(&m_mir, &test),
            hospital::metrics(&ex.w, &test),
        ],
        class_names: f.class_names.clone(),
        stopped_early: stopped,
    };
    emit(Event::Done(Box::new(summary.clone())));
    Ok(summary)
}

/// `blindtuner demo`.
pub fn run_cli(args: &Args) -> Result<()> {
    if !args.headless && !args.json && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        return crate::app::run(args);
    }
    let control = Control::default();
    let quiet = args.json;
    let bar = indicatif::ProgressBar::new(args.steps as u64);
    if quiet {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    } else {
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} steps  ETA {eta}  {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
    }
    let say = |line: String| {
        if bar.is_hidden() {
            eprintln!("{line}");
        } else {
            bar.println(line);
        }
    };
    let mut emit = |e: Event| {
        if quiet {
            return;
        }
        match e {
            Event::Phase(p) => say(format!("== {p}")),
            Event::Data(d) => say(format!(
                "data: {} — {} train / {} val / {} test samples, {} features, {} classes",
                d.dataset,
                d.train,
                d.val,
                d.test,
                d.features,
                d.class_names.len()
            )),
            Event::Keys(k) => say(format!(
                "keys: preset {} ({}), N = 2^{}, {} levels, {} rotation keys ({}), keygen {:.1} s, {} chunks of {} rows encrypted in {:.1} s",
                k.preset,
                k.security,
                k.log_n,
                k.levels,
                k.rotation_keys,
                crate::files::human(k.eval_key_bytes),
                k.keygen_s,
                k.chunks,
                k.rows_per_chunk,
                k.encrypt_s
            )),
            Event::Step(s) => {
                bar.set_position(s.step as u64);
                bar.set_message(format!(
                    "val acc enc {:.3} mirror {:.3} exact {:.3}  {:.1} s/step",
                    s.acc[0], s.acc[1], s.acc[2], s.seconds
                ));
                say(format!(
                    "step {:>3}  val loss enc {:.4} mirror {:.4} exact {:.4}  acc {:.3} {:.3} {:.3}  |Δw| {:.1e}  {} mult {} rot {} refresh  {:.2} s (mult {:.2}, rot {:.2}, refresh {:.2})",
                    s.step,
                    s.loss[0],
                    s.loss[1],
                    s.loss[2],
                    s.acc[0],
                    s.acc[1],
                    s.acc[2],
                    s.max_diff,
                    s.ops.mult,
                    s.ops.rot,
                    s.ops.refresh,
                    s.seconds,
                    s.time.mult,
                    s.time.rot,
                    s.time.refresh
                ));
            }
            Event::Log(l) => say(l),
            Event::Done(_) => bar.finish_and_clear(),
            Event::Failed(m) => say(format!("failed: {m}")),
        }
    };
    let s = run(args, &control, &mut emit)?;
    if args.json {
        println!("{}", s.json());
    } else {
        println!(
            "test accuracy on {} ({} samples): encrypted {:.2} %, mirror {:.2} %, exact {:.2} % after {} steps ({:.2} s per encrypted step, preset {}, hospital refresh)",
            s.dataset,
            s.test[0].samples,
            s.test[0].accuracy * 100.0,
            s.test[1].accuracy * 100.0,
            s.test[2].accuracy * 100.0,
            s.steps,
            s.seconds_per_step,
            s.preset
        );
    }
    Ok(())
}
