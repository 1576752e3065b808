//! The cloud's commands: `train` and `infer`. The cloud holds the encrypted dataset, the
//! evaluation keys and the parameters only; a secret-key file given anywhere is refused.
//!
//! **Hospital refresh over files.** Each refresh masks the ciphertext
//! (`fhe_core::refresh::mask`, 40 statistical bits), writes `<run>-<n>.req` into the exchange
//! directory (atomically) and waits for the hospital's `<run>-<n>.resp`; the mask is removed
//! locally. After each epoch (with `--patience`) the encrypted validation loss goes the same
//! way and the hospital answers with its early-stopping verdict.
//!
//! **Checkpoints.** After every step (and after each epoch's validation) the run's settings,
//! position and encrypted state are written atomically to the checkpoint file; `--resume`
//! continues from it with nothing lost.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use fhe_core::bootstrap::{BootstrapConfig, Bootstrapper};
use fhe_core::ciphertext::Ciphertext;
use fhe_core::format::WireObject;
use fhe_core::keys::{EvalKeys, galois_element_for_rotation};
use fhe_core::params::Params;
use fhe_core::ring::{Ntt, Poly};
use fhe_core::wire::ObjectKind;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};
use trainer_core::ckks::{Bootstrap, CkksBackend, MaskedRefresh, Refresher, Transport};
use trainer_core::layout::Layout;
use trainer_core::nag::Schedule;
use trainer_core::refresh::AutoRefresh;
use trainer_core::session::{Chunks, Plan};
use trainer_core::train::{State, TrainConfig, Trainer};

use crate::files::{self, DatasetWire, EncModelWire, RequestBody, ResponseBody, ScoresWire};

/// How the cloud gets levels back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
pub enum RefreshMode {
    /// Interactive: masked ciphertexts go to the hospital (`blindtuner refresh --watch`),
    /// which re-encrypts them at the top level without learning the values.
    Hospital,
    /// Non-interactive CKKS bootstrapping on the cloud alone: needs keys made with
    /// `keygen --bootstrap` (a bootstrappable preset such as n16_boot). No refresh exchange;
    /// the hospital is asked only for the per-epoch validation verdict, if `--patience`.
    Bootstrap,
}

impl RefreshMode {
    pub fn name(self) -> &'static str {
        match self {
            Self::Hospital => "hospital",
            Self::Bootstrap => "bootstrap",
        }
    }
}

/// NAG and run hyperparameters (public: the cloud chooses them).
#[derive(Args, Debug, Clone)]
pub struct Hyper {
    /// Learning rate η_0.
    #[arg(long, default_value_t = 1.0)]
    pub lr: f64,
    /// Learning-rate decay: η_t = η_0 / (1 + decay·t).
    #[arg(long, default_value_t = 0.0)]
    pub decay: f64,
    /// Nesterov momentum γ (constant); `--nesterov-sequence` uses the classic sequence.
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f64,
    /// Use the classic Nesterov momentum sequence instead of a constant.
    #[arg(long)]
    pub nesterov_sequence: bool,
    /// Maximum epochs.
    #[arg(long, default_value_t = 2)]
    pub epochs: usize,
    /// Chunks per mini-batch (a chunk holds the layout's rows of samples).
    #[arg(long, default_value_t = 1)]
    pub batch_chunks: usize,
    /// Seed of the per-epoch chunk permutation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Early stopping: epochs without improvement of the encrypted validation loss (decrypted
    /// and decided by the hospital). Without it the run follows its fixed schedule.
    #[arg(long)]
    pub patience: Option<usize>,
    /// Minimum improvement of the validation loss.
    #[arg(long, default_value_t = 1e-4)]
    pub min_delta: f64,
    /// Stop after this many steps in total (for short runs).
    #[arg(long)]
    pub max_steps: Option<u64>,
}

impl Hyper {
    pub fn schedule(&self) -> Schedule {
        Schedule {
            learning_rate: self.lr,
            decay: self.decay,
            momentum: (!self.nesterov_sequence).then_some(self.momentum),
        }
    }
    pub fn plan(&self) -> Plan {
        Plan {
            epochs: self.epochs,
            chunks_per_batch: self.batch_chunks.max(1),
            seed: self.seed,
            patience: self.patience,
            min_delta: self.min_delta,
        }
    }
    fn settings(&self) -> Settings {
        Settings {
            lr: self.lr,
            decay: self.decay,
            momentum: (!self.nesterov_sequence).then_some(self.momentum),
            epochs: self.epochs as u64,
            batch_chunks: self.batch_chunks.max(1) as u64,
            seed: self.seed,
            patience: self.patience.map(|p| p as u64),
            min_delta: self.min_delta,
        }
    }
}

/// Options of `blindtuner train`.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// EncryptedDataset from the hospital.
    #[arg(long)]
    pub data: PathBuf,
    /// Evaluation keys from the hospital (relinearisation and rotations).
    #[arg(long)]
    pub keys: PathBuf,
    /// Output EncryptedModel (for the hospital).
    #[arg(long, default_value = "model.enc")]
    pub out: PathBuf,
    /// Checkpoint file, rewritten atomically after every step (default: OUT.ckpt).
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Continue from the checkpoint.
    #[arg(long)]
    pub resume: bool,
    #[command(flatten)]
    pub link: Link,
    #[command(flatten)]
    pub hyper: Hyper,
}

/// How the cloud refreshes and reaches the hospital (`train`, `infer`).
#[derive(Args, Debug)]
pub struct Link {
    /// How to refresh ciphertexts.
    #[arg(long, value_enum, default_value_t = RefreshMode::Hospital)]
    pub refresh: RefreshMode,
    /// Exchange directory shared with the hospital's `blindtuner refresh --watch`.
    #[arg(long, default_value = "exchange")]
    pub exchange: PathBuf,
    /// Or reach the hospital's `blindtuner refresh --listen` over loopback TCP (host:port).
    #[arg(long)]
    pub hospital_addr: Option<String>,
    /// Seconds to wait for one answer of the hospital.
    #[arg(long, default_value_t = 600.0)]
    pub hospital_timeout: f64,
}

impl Link {
    /// The cloud's backend for these options ([`cloud_backend`] over [`file_refresher`]).
    pub fn backend(
        &self,
        params: &Params,
        layout: &Layout,
        keys: &mut Arc<EvalKeys>,
    ) -> Result<AutoRefresh<CkksBackend<CloudRefresher>>> {
        let hospital = file_refresher(
            params,
            &self.exchange,
            self.hospital_addr.as_deref(),
            Duration::from_secs_f64(self.hospital_timeout),
        )?;
        cloud_backend(params, layout, keys, self.refresh, hospital)
    }
}

/// Options of `blindtuner infer`.
#[derive(Args, Debug)]
pub struct InferArgs {
    /// EncryptedDataset to score (its training chunks).
    #[arg(long)]
    pub data: PathBuf,
    /// EncryptedModel.
    #[arg(long)]
    pub model: PathBuf,
    /// Evaluation keys.
    #[arg(long)]
    pub keys: PathBuf,
    /// Output EncryptedScores.
    #[arg(long, default_value = "scores.enc")]
    pub out: PathBuf,
    /// Refreshing (the logits need a few levels) and the way to the hospital.
    #[command(flatten)]
    pub link: Link,
}

/// The run settings a checkpoint was made with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub lr: f64,
    pub decay: f64,
    pub momentum: Option<f64>,
    pub epochs: u64,
    pub batch_chunks: u64,
    pub seed: u64,
    pub patience: Option<u64>,
    pub min_delta: f64,
}

/// `Checkpoint`: where a run is and its encrypted state.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CheckpointWire {
    /// A random id of the run, kept across `--resume` (the hospital's early-stopping record).
    pub run: u64,
    pub settings: Settings,
    /// Length of the dataset file it trains on (a cheap identity check).
    pub dataset_len: u64,
    pub epoch: u64,
    /// Next batch of `epoch`.
    pub batch: u64,
    pub step: u64,
    pub w: Vec<Vec<u8>>,
    pub look: Vec<Vec<u8>>,
    /// The best epoch's weights (early stopping).
    pub best: Option<Vec<Vec<u8>>>,
    pub finished: bool,
}

/// The cloud's end of the file exchange (the [`Transport`] of a [`MaskedRefresh`]).
pub struct FileTransport {
    params: Params,
    dir: PathBuf,
    /// The TCP link instead of the directory, when given.
    tcp: Option<std::net::TcpStream>,
    run: u64,
    next: u64,
    timeout: Duration,
    /// Exchanges answered so far.
    pub exchanges: u64,
    /// Time spent waiting for and exchanging with the hospital.
    pub time: Duration,
    /// The transport error behind the last failure.
    pub last_error: Option<anyhow::Error>,
}

/// The cloud's refresher: masks, sends through the exchange directory, unmasks.
pub type FileRefresher = MaskedRefresh<ChaCha20Rng, FileTransport>;

/// A refresher over the exchange directory `dir`, or over TCP to `addr` when given.
pub fn file_refresher(
    params: &Params,
    dir: &Path,
    addr: Option<&str>,
    timeout: Duration,
) -> Result<FileRefresher> {
    let tcp = match addr {
        Some(a) => {
            let s = std::net::TcpStream::connect(a)
                .with_context(|| format!("connecting to the hospital at {a}"))?;
            s.set_read_timeout(Some(timeout))?;
            s.set_nodelay(true)?;
            Some(s)
        }
        None => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            None
        }
    };
    let mut rng = ChaCha20Rng::from_os_rng();
    let transport = FileTransport {
        params: params.clone(),
        dir: dir.to_path_buf(),
        tcp,
        run: rng.next_u64(),
        next: 0,
        timeout,
        exchanges: 0,
        time: Duration::ZERO,
        last_error: None,
    };
    Ok(MaskedRefresh::new(params, rng, transport))
}

impl FileTransport {
    /// Sends one request and waits for its answer.
    pub fn exchange(&mut self, body: &RequestBody) -> Result<ResponseBody> {
        let t0 = Instant::now();
        if let Some(stream) = &mut self.tcp {
            let fp = self.params.fingerprint();
            let label = PathBuf::from(
                stream
                    .peer_addr()
                    .map_or_else(|_| "the hospital".to_string(), |a| format!("tcp {a}")),
            );
            files::write_frame(stream, &files::seal(ObjectKind::RefreshRequest, fp, body)?)
                .with_context(|| format!("sending to {}", label.display()))?;
            let bytes = files::read_frame(stream)
                .with_context(|| format!("waiting for {}", label.display()))?
                .with_context(|| format!("{} closed the connection", label.display()))?;
            let (_, r): (_, ResponseBody) =
                files::open(&label, &bytes, ObjectKind::RefreshResponse, Some(fp))?;
            self.exchanges += 1;
            self.time += t0.elapsed();
            if let ResponseBody::Failed(msg) = &r {
                bail!("the hospital could not answer: {msg}");
            }
            return Ok(r);
        }
        let name = format!("{:016x}-{:08}", self.run, self.next);
        self.next += 1;
        let req = self.dir.join(format!("{name}.req"));
        let resp = self.dir.join(format!("{name}.resp"));
        let fp = self.params.fingerprint();
        files::write_atomic(
            &req,
            &files::seal(ObjectKind::RefreshRequest, fp, body)?,
            false,
        )?;
        let mut sleep = Duration::from_micros(200);
        loop {
            if resp.exists() {
                let bytes = files::read(&resp)?;
                let (_, r): (_, ResponseBody) =
                    files::open(&resp, &bytes, ObjectKind::RefreshResponse, Some(fp))?;
                let _ = std::fs::remove_file(&resp);
                self.exchanges += 1;
                self.time += t0.elapsed();
                if let ResponseBody::Failed(msg) = &r {
                    bail!("the hospital could not answer {}: {msg}", req.display());
                }
                return Ok(r);
            }
            if t0.elapsed() > self.timeout {
                let _ = std::fs::remove_file(&req);
                bail!(
                    "no answer from the hospital in {} after {:.0} s: is `blindtuner refresh --watch {}` running?",
                    self.dir.display(),
                    self.timeout.as_secs_f64(),
                    self.dir.display()
                );
            }
            std::thread::sleep(sleep);
            sleep = (sleep * 2).min(Duration::from_millis(5));
        }
    }

    fn reencrypt_inner(&mut self, masked: &Ciphertext, level: usize) -> Result<Ciphertext> {
        let body = RequestBody::RefreshAt {
            level: u32::try_from(level)?,
            ct: masked.to_bytes(&self.params)?,
        };
        match self.exchange(&body)? {
            ResponseBody::Refreshed(b) => Ciphertext::from_bytes(&self.params, &b)
                .map_err(|e| anyhow::anyhow!("the hospital's refresh answer: {e}")),
            _ => bail!("the hospital answered a refresh with something else"),
        }
    }
}

impl Transport for FileTransport {
    fn reencrypt(
        &mut self,
        masked: &Ciphertext,
        level: usize,
    ) -> Result<Ciphertext, fhe_core::Error> {
        self.reencrypt_inner(masked, level).map_err(|e| {
            self.last_error = Some(e);
            fhe_core::Error::Malformed {
                what: "hospital refresh exchange (see the cause above)",
            }
        })
    }
}

/// Reads a cloud input, refusing hospital-only kinds.
fn read_cloud_input(path: &Path) -> Result<Vec<u8>> {
    let bytes = files::read(path)?;
    files::refuse_secret(path, &bytes)?;
    Ok(bytes)
}

/// The dataset, its parameters and the evaluation keys.
pub struct CloudInputs {
    pub params: Params,
    pub layout: Layout,
    pub train: Chunks<Ciphertext>,
    pub val: Chunks<Ciphertext>,
    pub keys: Arc<EvalKeys>,
    pub dataset_len: u64,
    pub features: u32,
    pub classes: u32,
}

pub fn load_inputs(data: &Path, keys: &Path) -> Result<CloudInputs> {
    let kb = read_cloud_input(keys)?;
    let db = read_cloud_input(data)?;
    let (_, d): (_, DatasetWire) = files::open(data, &db, ObjectKind::EncryptedDataset, None)?;
    let params = files::params_from(data, &d.params)?;
    let h = files::header(data, &db)?;
    if h.fingerprint != params.fingerprint() {
        bail!(
            "{}: header fingerprint {:016x} is not that of its parameters",
            data.display(),
            h.fingerprint
        );
    }
    let keys_obj = EvalKeys::from_bytes(&params, &kb).map_err(|e| {
        anyhow::anyhow!(
            "{}: not evaluation keys for the dataset's parameters ({e})",
            keys.display()
        )
    })?;
    let layout = Layout::new(params.max_slots(), d.features as usize, d.classes as usize)
        .map_err(|e| anyhow::anyhow!("{}: {e}", data.display()))?;
    let chunks = |c: &files::ChunksWire, what: &str| -> Result<Chunks<Ciphertext>> {
        if c.x.len() != c.rows.len() || c.y.len() != c.rows.len() {
            bail!("{}: {what} chunk counts disagree", data.display());
        }
        if let Some(r) = c.rows.iter().find(|&&r| r as usize > layout.rows || r == 0) {
            bail!(
                "{}: a {what} chunk claims {r} rows (1..={})",
                data.display(),
                layout.rows
            );
        }
        let x = files::cts_from_bytes(data, &params, &format!("{what} data"), &c.x)?;
        let y = files::cts_from_bytes(data, &params, &format!("{what} labels"), &c.y)?;
        check_encrypted_as_uploaded(data, &params, &format!("{what} data"), &x)?;
        check_encrypted_as_uploaded(data, &params, &format!("{what} labels"), &y)?;
        Ok(Chunks {
            x,
            y,
            rows: c.rows.iter().map(|&r| r as usize).collect(),
        })
    };
    let train = chunks(&d.train, "train")?;
    let val = chunks(&d.val, "validation")?;
    if train.is_empty() {
        bail!("{}: no training chunks", data.display());
    }
    Ok(CloudInputs {
        params,
        layout,
        train,
        val,
        keys: Arc::new(keys_obj),
        dataset_len: db.len() as u64,
        features: d.features,
        classes: d.classes,
    })
}

/// Refuses, before any work, data or label ciphertexts that `blindtuner encrypt` would not
/// have made for these parameters: another level, scale, slot count or degree (the format
/// itself refuses scales that are not finite and positive). Training would otherwise fail
/// steps later on a mismatched scale or a missing level, or (for a scale that is only
/// slightly off) train on values scaled wrongly.
fn check_encrypted_as_uploaded(
    data: &Path,
    params: &Params,
    what: &str,
    cts: &[Ciphertext],
) -> Result<()> {
    let level = trainer_core::ckks::data_level(params);
    let scale = trainer_core::ckks::data_scale(params);
    let slots = params.max_slots();
    for (i, c) in cts.iter().enumerate() {
        let problem = if c.degree() != 1 {
            format!("has degree {}, not 1 (a fresh encryption)", c.degree())
        } else if c.level() != level {
            format!("is at level {}, not the data level {level}", c.level())
        } else if (c.scale / scale - 1.0).abs() > fhe_core::eval::SCALE_TOLERANCE {
            format!(
                "has scale 2^{:.3}, not the data scale 2^{:.3}",
                c.scale.log2(),
                scale.log2()
            )
        } else if c.slots != slots {
            format!("has {} slots, not {slots}", c.slots)
        } else {
            continue;
        };
        bail!(
            "{}: {what} #{i} {problem}; encrypt the dataset again with `blindtuner encrypt` \
             and the keys of these parameters",
            data.display()
        );
    }
    Ok(())
}

/// A trivial encryption of zero at the fresh level (the initial weights: zero is public).
pub fn zero_ct(params: &Params) -> Result<Ciphertext> {
    let level = trainer_core::ckks::working_top(params);
    let scale = trainer_core::ckks::working_scales(params, level)
        .get(level)
        .copied()
        .unwrap_or(params.scale());
    let z = || Poly::<Ntt>::zero(params.ctx(), level, false);
    Ok(Ciphertext::from_parts(
        vec![z(), z()],
        scale,
        params.max_slots(),
    )?)
}

/// The rotation steps of `boot` whose keys `keys` lacks.
fn missing_rotations(params: &Params, keys: &EvalKeys, boot: &Bootstrapper) -> Vec<i64> {
    boot.rotations()
        .into_iter()
        .filter(|&s| {
            !keys
                .galois
                .contains_key(&galois_element_for_rotation(params, s))
        })
        .collect()
}

/// The bootstrapper of a trainer with `layout` on `params`
/// ([`trainer_core::ckks::bootstrap_config`]: `N/4` slots, the trainer folding its packs, when
/// the layout allows; the default level budget and EvalMod).
pub fn bootstrapper(params: &Params, layout: &Layout) -> Result<Bootstrapper> {
    Bootstrapper::new(params, trainer_core::ckks::bootstrap_config(params, layout)).map_err(|e| {
        anyhow::anyhow!(
            "these parameters cannot bootstrap ({e}); make the keys with `keygen --bootstrap`"
        )
    })
}

/// The cloud's refresher: the hospital exchange (always there, for the validation verdicts),
/// and, in bootstrap mode, the bootstrapper that does every refresh.
pub struct CloudRefresher {
    pub hospital: FileRefresher,
    pub boot: Option<Bootstrap>,
}

impl Refresher for CloudRefresher {
    fn period(&self) -> Option<usize> {
        self.boot.as_ref().and_then(Refresher::period)
    }
    fn refresh(&mut self, ct: &Ciphertext, level: usize) -> Result<Ciphertext, fhe_core::Error> {
        match &mut self.boot {
            Some(b) => b.refresh(ct, level),
            None => self.hospital.refresh(ct, level),
        }
    }
    fn refresh_pair(
        &mut self,
        a: &Ciphertext,
        b: &Ciphertext,
        level: usize,
    ) -> Result<(Ciphertext, Ciphertext), fhe_core::Error> {
        match &mut self.boot {
            Some(boot) => boot.refresh_pair(a, b, level),
            None => Ok((
                self.hospital.refresh(a, level)?,
                self.hospital.refresh(b, level)?,
            )),
        }
    }
}

/// The cloud's backend for `mode`: with the hospital refresh, every operand at level 2 goes to
/// the hospital; with bootstrapping, the backend works below the bootstrapping levels and
/// bootstraps operands at level 0, and the keys (when `keys` is their only holder) are cut
/// to the levels they are used at (`trainer_core::ckks::bootstrap_key_levels`: at `n16_boot`
/// several GB less).
pub fn cloud_backend(
    params: &Params,
    layout: &Layout,
    keys: &mut Arc<EvalKeys>,
    mode: RefreshMode,
    hospital: FileRefresher,
) -> Result<AutoRefresh<CkksBackend<CloudRefresher>>> {
    match mode {
        RefreshMode::Hospital => {
            let r = CloudRefresher {
                hospital,
                boot: None,
            };
            Ok(AutoRefresh::new(
                CkksBackend::new(params, keys.clone(), r)?,
                trainer_core::refresh::HOSPITAL_MIN_LEVEL,
            )
            .with_window(Some(trainer_core::refresh::HOSPITAL_WINDOW)))
        }
        RefreshMode::Bootstrap => {
            let mut boot = bootstrapper(params, layout)?;
            let mut missing = missing_rotations(params, keys, &boot);
            if !missing.is_empty() && boot.config().slots < params.max_slots() {
                // Keys made for full-slot bootstrapping (`keygen --bootstrap` before the
                // trainer folded its packs): bootstrap at full slots, unfolded, slower.
                let full =
                    Bootstrapper::new(params, BootstrapConfig::new(params, params.max_slots()))?;
                if missing_rotations(params, keys, &full).is_empty() {
                    eprintln!(
                        "the evaluation keys are for full-slot bootstrapping: each bootstrapping \
                         runs two EvalMods instead of one (keys from today's `blindtuner keygen \
                         --bootstrap` make it about a third faster)"
                    );
                    boot = full;
                    missing.clear();
                }
            }
            if !missing.is_empty() {
                bail!(
                    "the evaluation keys lack {} bootstrapping rotation keys (e.g. step {}): \
                     make them with `blindtuner keygen --bootstrap`",
                    missing.len(),
                    missing.first().copied().unwrap_or(0)
                );
            }
            let after = boot.levels_after();
            if after < 2 {
                bail!("bootstrapping leaves {after} levels: too few to train");
            }
            if let Some(k) = Arc::get_mut(keys) {
                let levels =
                    trainer_core::ckks::bootstrap_key_levels(params, layout, &boot, after - 1);
                k.truncate(params, &levels)?;
            }
            let r = CloudRefresher {
                hospital,
                boot: Some(Bootstrap::new(params, boot, keys.clone())),
            };
            let ckks = CkksBackend::new(params, keys.clone(), r)?.with_top_level(after - 1)?;
            Ok(AutoRefresh::new(ckks, 0))
        }
    }
}

/// `v` on the backend's working level (bootstrap mode works below the level data is
/// encrypted at); vectors already at or below it are left as they are.
fn onto_top(
    be: &mut AutoRefresh<CkksBackend<CloudRefresher>>,
    v: Vec<Ciphertext>,
) -> Result<Vec<Ciphertext>> {
    let top = be.inner.fresh_level();
    v.into_iter()
        .map(|c| {
            if c.level() > top {
                Ok(be.inner.to_top(&c)?)
            } else {
                Ok(c)
            }
        })
        .collect()
}

/// The error of a failed backend call, with the transport's cause when there is one.
fn backend_error(e: fhe_core::Error, r: &mut CloudRefresher) -> anyhow::Error {
    match r.hospital.transport.last_error.take() {
        Some(cause) => cause.context(format!("{e}")),
        None => anyhow::anyhow!("{e}"),
    }
}

pub fn train(a: &TrainArgs) -> Result<()> {
    let t0 = Instant::now();
    let mut inp = load_inputs(&a.data, &a.keys)?;
    let params = inp.params.clone();
    let layout = inp.layout;
    let ckpt_path = a
        .checkpoint
        .clone()
        .unwrap_or_else(|| a.out.with_extension("ckpt"));
    let settings = a.hyper.settings();
    let plan = a.hyper.plan();
    // With bootstrapping: one bootstrapping for all the weights, not one per pair of
    // diagonals, and the shallower softmax (one bootstrapping fewer per step).
    let base = match a.link.refresh {
        RefreshMode::Bootstrap => TrainConfig::bootstrapped(),
        RefreshMode::Hospital => TrainConfig::default(),
    };
    let config = TrainConfig {
        schedule: a.hyper.schedule(),
        ..base
    };
    let mut trainer = Trainer::new(layout, config);
    let mut be = a.link.backend(&params, &inp.layout, &mut inp.keys)?;
    for c in [&mut inp.train, &mut inp.val] {
        c.x = onto_top(&mut be, std::mem::take(&mut c.x))?;
        c.y = onto_top(&mut be, std::mem::take(&mut c.y))?;
    }

    let fp = params.fingerprint();
    let mut ck = if a.resume && ckpt_path.exists() {
        let bytes = files::read(&ckpt_path)?;
        let (_, c): (_, CheckpointWire) =
            files::open(&ckpt_path, &bytes, ObjectKind::Checkpoint, Some(fp))?;
        if c.settings != settings {
            bail!(
                "{} was made with other settings ({:?}); resume with the same hyperparameters",
                ckpt_path.display(),
                c.settings
            );
        }
        if c.dataset_len != inp.dataset_len {
            bail!(
                "{} belongs to another dataset file than {}",
                ckpt_path.display(),
                a.data.display()
            );
        }
        eprintln!(
            "train: resuming from {} at step {} (epoch {}, batch {})",
            ckpt_path.display(),
            c.step,
            c.epoch,
            c.batch
        );
        c
    } else {
        if a.resume {
            eprintln!(
                "train: no checkpoint at {}; starting from the beginning",
                ckpt_path.display()
            );
        }
        let zeros: Vec<Vec<u8>> = (0..layout.c_pad)
            .map(|_| Ok(zero_ct(&params)?.to_bytes(&params)?))
            .collect::<Result<_>>()?;
        CheckpointWire {
            run: ChaCha20Rng::from_os_rng().next_u64(),
            settings: settings.clone(),
            dataset_len: inp.dataset_len,
            epoch: 0,
            batch: 0,
            step: 0,
            w: zeros.clone(),
            look: zeros,
            best: None,
            finished: false,
        }
    };
    let w = files::cts_from_bytes(&ckpt_path, &params, "weight", &ck.w)?;
    let look = files::cts_from_bytes(&ckpt_path, &params, "look-ahead", &ck.look)?;
    let mut state = State {
        w: onto_top(&mut be, w)?,
        look: onto_top(&mut be, look)?,
        step: ck.step as usize,
    };
    let save = |ck: &CheckpointWire| -> Result<()> {
        files::write_atomic(
            &ckpt_path,
            &files::seal(ObjectKind::Checkpoint, fp, ck)?,
            false,
        )
    };
    eprintln!(
        "train: {} train / {} validation samples in {} / {} chunks, N = 2^{}, refresh {}, {} steps per epoch",
        inp.train.samples(),
        inp.val.samples(),
        inp.train.len(),
        inp.val.len(),
        params.log_n(),
        a.link.refresh.name(),
        plan.steps_per_epoch(inp.train.len())
    );
    'epochs: while !ck.finished && (ck.epoch as usize) < plan.epochs {
        let epoch = ck.epoch as usize;
        let batches = plan.epoch_batches(inp.train.len(), epoch);
        while (ck.batch as usize) < batches.len() {
            if a.hyper.max_steps.is_some_and(|m| ck.step >= m) {
                ck.finished = true;
                break 'epochs;
            }
            let idx = batches.get(ck.batch as usize).cloned().unwrap_or_default();
            let batch = inp.train.batch(&idx);
            let ts = Instant::now();
            let before = be.inner.refresher_mut().hospital.transport.exchanges;
            let r = trainer
                .step(&mut be, &mut state, &batch)
                .map_err(|e| backend_error(e, be.inner.refresher_mut()))
                .with_context(|| format!("step {}", ck.step))?;
            ck.step = state.step as u64;
            ck.batch += 1;
            ck.w = files::cts_to_bytes(&params, &state.w)?;
            ck.look = files::cts_to_bytes(&params, &state.look)?;
            save(&ck)?;
            eprintln!(
                "step {:>4}  epoch {epoch}  batch {:>3}/{}  {} samples  mult {} rot {} refresh {} ({} exchanges)  {:.2} s",
                ck.step,
                ck.batch,
                batches.len(),
                batch.samples(),
                r.ops.mult,
                r.ops.rot,
                r.ops.refresh,
                be.inner.refresher_mut().hospital.transport.exchanges - before,
                ts.elapsed().as_secs_f64()
            );
        }
        // End of the epoch: the hospital decides from the encrypted validation loss.
        if let Some(p) = plan.patience
            && !inp.val.is_empty()
        {
            let loss = trainer
                .validation_loss(&mut be, &state.w, &inp.val)
                .map_err(|e| backend_error(e, be.inner.refresher_mut()))
                .context("validation loss")?;
            if let Some(loss) = loss {
                let body = RequestBody::ValidationLoss {
                    run: ck.run,
                    epoch: epoch as u64,
                    patience: Some(p as u64),
                    min_delta: plan.min_delta,
                    ct: loss.to_bytes(&params)?,
                };
                match be
                    .inner
                    .refresher_mut()
                    .hospital
                    .transport
                    .exchange(&body)?
                {
                    ResponseBody::Verdict { loss, verdict, .. } => {
                        eprintln!(
                            "epoch {epoch}: hospital's verdict on the validation loss ({loss:.5}): {}",
                            ["improved", "worse", "stop"]
                                .get(verdict as usize)
                                .unwrap_or(&"?")
                        );
                        match verdict {
                            0 => ck.best = Some(ck.w.clone()),
                            2 => ck.finished = true,
                            _ => {}
                        }
                    }
                    _ => bail!("the hospital answered a validation loss with something else"),
                }
            }
        }
        ck.epoch += 1;
        ck.batch = 0;
        save(&ck)?;
    }
    ck.finished = true;
    save(&ck)?;
    // Early stopping keeps the best epoch's weights.
    let w = match (&ck.best, plan.patience) {
        (Some(b), Some(_)) => b.clone(),
        _ => ck.w.clone(),
    };
    let model = EncModelWire {
        params: params.to_bytes()?,
        features: inp.features,
        classes: inp.classes,
        steps: ck.step,
        epochs: ck.epoch,
        w,
    };
    files::write_atomic(
        &a.out,
        &files::seal(ObjectKind::EncryptedModel, fp, &model)?,
        false,
    )?;
    let r = &be.inner.refresher_mut().hospital.transport;
    eprintln!(
        "train: {} steps, {} hospital exchanges ({:.1} s), {:.1} s in all → {}",
        ck.step,
        r.exchanges,
        r.time.as_secs_f64(),
        t0.elapsed().as_secs_f64(),
        a.out.display()
    );
    Ok(())
}

pub fn infer(a: &InferArgs) -> Result<()> {
    let mut inp = load_inputs(&a.data, &a.keys)?;
    let params = inp.params.clone();
    let mb = read_cloud_input(&a.model)?;
    let (_, m): (_, EncModelWire) = files::open(
        &a.model,
        &mb,
        ObjectKind::EncryptedModel,
        Some(params.fingerprint()),
    )?;
    if (m.features, m.classes) != (inp.features, inp.classes) {
        bail!(
            "{}: the model is {} × {}, the data {} × {}",
            a.model.display(),
            m.features,
            m.classes,
            inp.features,
            inp.classes
        );
    }
    let w = files::cts_from_bytes(&a.model, &params, "weight", &m.w)?;
    let mut trainer = Trainer::new(
        inp.layout,
        TrainConfig {
            schedule: Schedule::default(),
            ..TrainConfig::default()
        },
    );
    let mut be = a.link.backend(&params, &inp.layout, &mut inp.keys)?;
    let w = onto_top(&mut be, w)?;
    inp.train.x = onto_top(&mut be, std::mem::take(&mut inp.train.x))?;
    let mut scores = Vec::new();
    for (x, &rows) in inp.train.x.iter().zip(&inp.train.rows) {
        let s = trainer
            .scores(&mut be, &w, x, rows)
            .map_err(|e| backend_error(e, be.inner.refresher_mut()))?;
        scores.push(s.to_bytes(&params)?);
    }
    let wire = ScoresWire {
        classes: inp.classes,
        block: u32::try_from(inp.layout.block)?,
        rows: inp.train.rows.iter().map(|&r| r as u32).collect(),
        scores,
    };
    files::write_atomic(
        &a.out,
        &files::seal(ObjectKind::EncryptedScores, params.fingerprint(), &wire)?,
        false,
    )?;
    eprintln!(
        "infer: scored {} samples in {} chunks → {}",
        inp.train.samples(),
        inp.train.len(),
        a.out.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fhe_core::keys::SecretKey;
    use fhe_core::params::presets;
    use trainer_core::backend::Backend;

    /// Bootstrap mode takes the keys `keygen --bootstrap` makes (half the slots, the trainer
    /// folding), falls back to full slots for keys made for those, and names the missing
    /// keys and the command otherwise.
    #[test]
    fn bootstrap_mode_uses_the_keys_it_is_given() {
        let params = presets::toy_insecure_boot_train().validate().unwrap();
        let layout = Layout::new(params.max_slots(), 12, 3).unwrap();
        let dir =
            std::env::temp_dir().join(format!("blindtuner-cloud-keys-{}", std::process::id()));
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let sk = SecretKey::generate(&params, &mut rng).unwrap();
        let full = BootstrapConfig::new(&params, params.max_slots());
        let backend = |keys: &mut Arc<EvalKeys>| {
            let hospital = file_refresher(&params, &dir, None, Duration::from_secs(1)).unwrap();
            cloud_backend(&params, &layout, keys, RefreshMode::Bootstrap, hospital)
        };
        for (config, period) in [
            (
                trainer_core::ckks::bootstrap_config(&params, &layout),
                Some(params.max_slots() / 2),
            ),
            (full, None),
        ] {
            let boot = Bootstrapper::new(&params, config).unwrap();
            let mut keys = Arc::new(
                boot.generate_keys(&sk, &layout.all_steps(), &mut rng)
                    .unwrap(),
            );
            assert_eq!(backend(&mut keys).unwrap().refresh_period(), period);
        }
        let mut plain =
            Arc::new(EvalKeys::generate(&sk, &layout.all_steps(), false, &mut rng).unwrap());
        let err = backend(&mut plain).err().unwrap().to_string();
        assert!(err.contains("keygen --bootstrap"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
