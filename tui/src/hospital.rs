//! The hospital's commands: `keygen`, `encrypt`, `decrypt`, `evaluate`, `refresh`.
//!
//! The hospital directory (`--hospital DIR`) holds `secret.key` (owner-only), `params.bltn`,
//! `stats.bltn` and, for the cloud, `public.keys` and `eval.keys`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use fhe_core::ciphertext::Ciphertext;
use fhe_core::encoding::Encoder;
use fhe_core::encrypt::{decrypt, encrypt_sk};
use fhe_core::format::WireObject;
use fhe_core::keys::{EvalKeys, PublicKey, SecretKey};
use fhe_core::params::Params;
use fhe_core::refresh::{reencrypt_masked, reencrypt_masked_at};
use fhe_core::wire::ObjectKind;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use trainer_core::data::{Dataset, Standardizer};
use trainer_core::exact::Model;
use trainer_core::layout::Layout;
use trainer_core::session::{self, EarlyStopping, Verdict};
use zeroize::Zeroizing;

use crate::files::{
    self, ChunksWire, DatasetWire, EncModelWire, ModelWire, RequestBody, ResponseBody, StatsWire,
};
use crate::presets;

/// The validation loss goes back to the cloud rounded to `1/LOSS_DECIMALS`.
const LOSS_DECIMALS: f64 = 1000.0;

/// File names inside the hospital directory.
pub const SECRET_KEY: &str = "secret.key";
pub const PARAMS: &str = "params.bltn";
pub const PUBLIC_KEY: &str = "public.keys";
pub const EVAL_KEYS: &str = "eval.keys";
pub const STATS: &str = "stats.bltn";

/// Options of `blindtuner keygen`.
#[derive(Args, Debug)]
pub struct KeygenArgs {
    /// Hospital directory to create the keys in.
    #[arg(long, default_value = "hospital")]
    pub out: PathBuf,
    /// Training parameter preset, all 128-bit secure: n14_train (N = 2^14, 7 levels, 32
    /// samples per ciphertext, eval.keys ≈ 156 MiB at d = 192, c = 8: the default),
    /// n15_train (N = 2^15, 16 levels, 64 samples, fewer refreshes, keys several times
    /// larger), n16_train (N = 2^16, 30 levels: the production point). With --bootstrap the
    /// default is n16_boot.
    #[arg(long)]
    pub preset: Option<String>,
    /// Also generate the bootstrapping keys, so that the cloud can train with
    /// `--refresh bootstrap` on its own, with no refresh exchange with the hospital. Needs a
    /// bootstrappable preset (n16_boot: N = 2^16, sparse secret, 10 levels between
    /// bootstrappings; its keys take several GiB).
    #[arg(long)]
    pub bootstrap: bool,
    /// Use the INSECURE N = 2^11 test preset instead (tests only; never with real data).
    #[arg(long, hide = true)]
    pub insecure_test_preset: bool,
    /// Features file whose dimension and class count the rotation keys are made for.
    #[arg(long, conflicts_with_all = ["dim", "classes"])]
    pub features: Option<PathBuf>,
    /// Feature dimension (instead of --features).
    #[arg(long, requires = "classes")]
    pub dim: Option<usize>,
    /// Class count (instead of --features).
    #[arg(long, requires = "dim")]
    pub classes: Option<usize>,
    /// Overwrite existing key files.
    #[arg(long)]
    pub force: bool,
}

/// Options of `blindtuner encrypt`.
#[derive(Args, Debug)]
pub struct EncryptArgs {
    /// The hospital directory (secret.key, params.bltn).
    #[arg(long, default_value = "hospital")]
    pub hospital: PathBuf,
    /// Features file (from `blindtuner extract`), or a fixture name: blood, organa, mnist.
    #[arg(long)]
    pub features: String,
    /// Split to train on.
    #[arg(long, default_value = "train")]
    pub train_split: String,
    /// Split for the encrypted validation loss (`none` to send none).
    #[arg(long, default_value = "val")]
    pub val_split: String,
    /// Use at most this many training samples (after shuffling).
    #[arg(long)]
    pub max_train: Option<usize>,
    /// Use at most this many validation samples.
    #[arg(long)]
    pub max_val: Option<usize>,
    /// Seed of the hospital's sample shuffle.
    #[arg(long, default_value_t = 1)]
    pub shuffle_seed: u64,
    /// Standardise with the statistics already in the hospital directory (for a set the
    /// cloud scores with a trained model) instead of fitting and saving new ones.
    #[arg(long)]
    pub use_stats: bool,
    /// Keep the split's row order (no shuffle), so decrypted scores line up with its rows.
    #[arg(long)]
    pub no_shuffle: bool,
    /// Output EncryptedDataset (for the cloud).
    #[arg(long, default_value = "dataset.bltn")]
    pub out: PathBuf,
}

/// Options of `blindtuner decrypt`.
#[derive(Args, Debug)]
pub struct DecryptArgs {
    /// The hospital directory.
    #[arg(long, default_value = "hospital")]
    pub hospital: PathBuf,
    /// EncryptedModel from the cloud.
    #[arg(long, required_unless_present = "scores", conflicts_with = "scores")]
    pub model: Option<PathBuf>,
    /// Output Model file (plaintext weights; stays at the hospital).
    #[arg(long, default_value = "model.bltn")]
    pub out: PathBuf,
    /// EncryptedScores from `infer` instead: print the predicted classes (JSON).
    #[arg(long)]
    pub scores: Option<PathBuf>,
    /// With --scores: the features file (or fixture name) the scored set was encrypted from
    /// (with `encrypt --no-shuffle`), to report the accuracy.
    #[arg(long, requires = "scores")]
    pub features: Option<String>,
    /// With --features: the split that was encrypted.
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Flood the decryption with uniform noise of this many bits per coefficient (IND-CPA-D:
    /// for a model that will leave the hospital). The weights keep about
    /// log2(scale) − bits − log2(N)/2 bits of precision.
    #[arg(long)]
    pub flood_bits: Option<u32>,
    /// With --scores: a decrypted Model file to compare the encrypted predictions with.
    #[arg(long, requires = "scores")]
    pub compare: Option<PathBuf>,
}

/// Options of `blindtuner evaluate`.
#[derive(Args, Debug)]
pub struct EvaluateArgs {
    /// Model file (from `decrypt`).
    #[arg(long)]
    pub model: PathBuf,
    /// Features file, or a fixture name: blood, organa, mnist.
    #[arg(long)]
    pub features: String,
    /// Split to evaluate on.
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Options of `blindtuner refresh`.
#[derive(Args, Debug)]
pub struct RefreshArgs {
    /// The hospital directory.
    #[arg(long, default_value = "hospital")]
    pub hospital: PathBuf,
    /// Exchange directory shared with the cloud: answer every `*.req` with a `*.resp`.
    #[arg(long, required_unless_present = "listen", conflicts_with = "listen")]
    pub watch: Option<PathBuf>,
    /// Or listen on this loopback TCP address (e.g. 127.0.0.1:7700; port 0 picks one and
    /// prints it) for `train --hospital-addr`.
    #[arg(long)]
    pub listen: Option<String>,
    /// Exit after this many seconds without a request (default: run until killed, or until a
    /// file named `stop` appears in the exchange directory).
    #[arg(long)]
    pub idle_exit: Option<f64>,
}

/// Loads the hospital's parameters and secret key.
pub fn load_keys(dir: &Path) -> Result<(Params, SecretKey)> {
    let pp = dir.join(PARAMS);
    let params = files::params_from(&pp, &files::read(&pp)?)?;
    let sp = dir.join(SECRET_KEY);
    let bytes = Zeroizing::new(files::read(&sp)?);
    let sk = SecretKey::from_bytes(&params, &bytes)
        .map_err(|e| anyhow::anyhow!("{}: {e}", sp.display()))?;
    Ok((params, sk))
}

/// Loads a features file, or an embedded fixture by name.
pub fn load_features(spec: &str) -> Result<extractor::features::Features> {
    let path = Path::new(spec);
    if !path.exists()
        && let Some(d) = extractor::fixtures::Dataset::from_name(spec)
    {
        return extractor::fixtures::load(d)
            .map_err(|e| anyhow::anyhow!("embedded fixture {spec}: {e}"));
    }
    extractor::features::Features::load(path).map_err(|e| anyhow::anyhow!("{e}"))
}

/// The split `name` of a features file as a trainer dataset.
pub fn split(f: &extractor::features::Features, name: &str) -> Result<Dataset> {
    let s = f.split(name).with_context(|| {
        format!(
            "no split {name:?} in the features (it has {})",
            f.split_names().join(", ")
        )
    })?;
    let x: Vec<f64> = s.values.to_f32().into_iter().map(f64::from).collect();
    Dataset::new(
        f.dim,
        f.class_names.len(),
        x,
        s.labels.iter().map(|&l| l as usize).collect(),
    )
    .map_err(|e| anyhow::anyhow!("split {name}: {e}"))
}

/// The first `n` rows of `order` as a new dataset (order kept).
pub fn subset(d: &Dataset, order: &[usize]) -> Result<Dataset> {
    let mut x = Vec::with_capacity(order.len() * d.features());
    let mut y = Vec::with_capacity(order.len());
    for &i in order {
        x.extend_from_slice(d.row(i));
        y.push(d.label(i));
    }
    Dataset::new(d.features(), d.classes(), x, y).map_err(|e| anyhow::anyhow!("{e}"))
}

/// The standardiser the hospital fits (scale `1/√d`, docs/TRAINING.md).
pub fn fit_standardizer(train: &Dataset) -> Standardizer {
    Standardizer::fit(train, 1.0 / (train.features() as f64).sqrt())
}

fn os_rng() -> ChaCha20Rng {
    ChaCha20Rng::from_os_rng()
}

/// Keys for `params` and the layout of `dim` features, `classes` classes.
pub fn generate_keys(
    params: &Params,
    dim: usize,
    classes: usize,
    bootstrap: bool,
    rng: &mut ChaCha20Rng,
) -> Result<(SecretKey, PublicKey, EvalKeys, Layout)> {
    let layout = Layout::new(params.max_slots(), dim, classes)
        .map_err(|e| anyhow::anyhow!("layout for {dim} features, {classes} classes: {e}"))?;
    let sk = SecretKey::generate(params, rng)?;
    let pk = PublicKey::generate(&sk, rng)?;
    let keys = if bootstrap {
        crate::cloud::bootstrapper(params, &layout)?.generate_keys(&sk, &layout.all_steps(), rng)?
    } else {
        EvalKeys::generate(&sk, &layout.all_steps(), false, rng)?
    };
    Ok((sk, pk, keys, layout))
}

pub fn keygen(a: &KeygenArgs) -> Result<()> {
    let name = match (a.insecure_test_preset, a.bootstrap, a.preset.as_deref()) {
        (true, false, _) => presets::INSECURE_TEST,
        (true, true, _) => presets::INSECURE_BOOT_TEST,
        (false, _, Some(p)) => p,
        (false, true, None) => presets::BOOTSTRAP,
        (false, false, None) => "n14_train",
    };
    if [presets::INSECURE_TEST, presets::INSECURE_BOOT_TEST].contains(&name)
        && !a.insecure_test_preset
    {
        bail!("{name} is insecure: it is only available through --insecure-test-preset");
    }
    let params = presets::params(name)?;
    let (dim, classes) = match (&a.features, a.dim, a.classes) {
        (Some(f), _, _) => {
            let f = load_features(&f.to_string_lossy())?;
            (f.dim, f.class_names.len())
        }
        (None, Some(d), Some(c)) => (d, c),
        _ => bail!("give --features FILE, or --dim and --classes"),
    };
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let sk_path = a.out.join(SECRET_KEY);
    if sk_path.exists() && !a.force {
        bail!(
            "{} exists; refusing to overwrite a secret key (use --force)",
            sk_path.display()
        );
    }
    let t0 = Instant::now();
    let mut rng = os_rng();
    let (sk, pk, keys, layout) = generate_keys(&params, dim, classes, a.bootstrap, &mut rng)?;
    let sk_bytes = sk.to_bytes(&params)?;
    files::write_atomic(&sk_path, &sk_bytes, true)?;
    files::write_atomic(&a.out.join(PARAMS), &params.to_bytes()?, false)?;
    let pk_bytes = pk.to_bytes(&params)?;
    files::write_atomic(&a.out.join(PUBLIC_KEY), &pk_bytes, false)?;
    let ek_bytes = keys.to_bytes(&params)?;
    files::write_atomic(&a.out.join(EVAL_KEYS), &ek_bytes, false)?;
    println!(
        "keygen: preset {name} ({}), N = 2^{}, {} levels, {} rotation keys for {} features × {} classes ({} samples per ciphertext, {:.1} s)",
        presets::security_name(&params),
        params.log_n(),
        params.max_level(),
        keys.galois.len(),
        dim,
        classes,
        layout.rows,
        t0.elapsed().as_secs_f64()
    );
    println!(
        "  {} (hospital only, mode 0600)\n  {}\n  {} ({})\n  {} ({}) → give eval.keys (and later dataset.bltn) to the cloud",
        sk_path.display(),
        a.out.join(PARAMS).display(),
        a.out.join(PUBLIC_KEY).display(),
        files::human(pk_bytes.len()),
        a.out.join(EVAL_KEYS).display(),
        files::human(ek_bytes.len())
    );
    Ok(())
}

/// Encrypts packed data (samples or labels) with the canonical scale at the data level
/// (`trainer_core::ckks::data_level`): the training step never uses more of it, so the
/// cloud's rotations of it are cheap and the upload small.
pub struct Encryptor<'a> {
    pub params: &'a Params,
    pub sk: &'a SecretKey,
    pub encoder: Encoder,
    pub level: usize,
    pub scale: f64,
}

impl<'a> Encryptor<'a> {
    pub fn new(params: &'a Params, sk: &'a SecretKey) -> Result<Self> {
        // The scale the cloud's backend works with (trainer_core::ckks), at the data level.
        Ok(Self {
            params,
            sk,
            encoder: Encoder::new(params, params.max_slots())?,
            level: trainer_core::ckks::data_level(params),
            scale: trainer_core::ckks::data_scale(params),
        })
    }

    pub fn encrypt(&self, v: &[f64], rng: &mut ChaCha20Rng) -> Result<Ciphertext> {
        let pt = self.encoder.encode_at(v, self.scale, self.level)?;
        Ok(encrypt_sk(self.params, self.sk, &pt, rng)?)
    }

    pub fn decrypt(&self, ct: &Ciphertext) -> Result<Vec<f64>> {
        Ok(self.encoder.decode(&decrypt(self.params, self.sk, ct)?)?)
    }

    /// Decrypts with flooding noise uniform in `±2^bits` on every coefficient
    /// (`fhe_core::encrypt::decrypt_flooded`), for values that leave the hospital.
    pub fn decrypt_flooded(
        &self,
        ct: &Ciphertext,
        bits: u32,
        rng: &mut ChaCha20Rng,
    ) -> Result<Vec<f64>> {
        let pt = fhe_core::encrypt::decrypt_flooded(self.params, self.sk, ct, bits, rng)?;
        Ok(self.encoder.decode(&pt)?)
    }
}

/// Packs and encrypts `data` (already standardised) in the given order.
pub fn encrypt_chunks(
    enc: &Encryptor<'_>,
    layout: &Layout,
    data: &Dataset,
    order: &[usize],
    rng: &mut ChaCha20Rng,
) -> Result<ChunksWire> {
    let packed = session::pack_chunks(layout, data, order);
    let mut out = ChunksWire::default();
    for ((x, y), &r) in packed.x.iter().zip(&packed.y).zip(&packed.rows) {
        out.x.push(enc.encrypt(x, rng)?.to_bytes(enc.params)?);
        out.y.push(enc.encrypt(y, rng)?.to_bytes(enc.params)?);
        out.rows.push(u32::try_from(r)?);
    }
    Ok(out)
}

pub fn encrypt(a: &EncryptArgs) -> Result<()> {
    let t0 = Instant::now();
    let (params, sk) = load_keys(&a.hospital)?;
    let f = load_features(&a.features)?;
    let train_all = split(&f, &a.train_split)?;
    let order = if a.no_shuffle {
        (0..train_all.len()).collect()
    } else {
        session::shuffled(train_all.len(), a.shuffle_seed)
    };
    let take = a.max_train.unwrap_or(order.len()).min(order.len());
    let train = subset(&train_all, order.get(..take).unwrap_or_default())?;
    let stdz = if a.use_stats {
        let sp = a.hospital.join(STATS);
        let (_, st): (_, StatsWire) = files::open(
            &sp,
            &files::read(&sp)?,
            ObjectKind::Stats,
            Some(params.fingerprint()),
        )?;
        if st.mean.len() != train.features() {
            bail!(
                "{}: statistics of {} features, the data has {}",
                sp.display(),
                st.mean.len(),
                train.features()
            );
        }
        Standardizer {
            mean: st.mean,
            std: st.std,
            scale: st.scale,
        }
    } else {
        fit_standardizer(&train)
    };
    let train = stdz.apply(&train);
    let val = if a.val_split == "none" {
        None
    } else {
        let v = split(&f, &a.val_split)?;
        let o = session::shuffled(v.len(), a.shuffle_seed ^ 0x0076_616c);
        let n = a.max_val.unwrap_or(o.len()).min(o.len());
        Some(stdz.apply(&subset(&v, o.get(..n).unwrap_or_default())?))
    };
    let layout = Layout::new(params.max_slots(), train.features(), train.classes())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let enc = Encryptor::new(&params, &sk)?;
    let mut rng = os_rng();
    let identity = |n: usize| (0..n).collect::<Vec<_>>();
    let train_ct = encrypt_chunks(&enc, &layout, &train, &identity(train.len()), &mut rng)?;
    let val_ct = match &val {
        Some(v) => encrypt_chunks(&enc, &layout, v, &identity(v.len()), &mut rng)?,
        None => ChunksWire::default(),
    };
    let wire = DatasetWire {
        params: params.to_bytes()?,
        features: u32::try_from(train.features())?,
        classes: u32::try_from(train.classes())?,
        train: train_ct,
        val: val_ct,
    };
    let bytes = files::seal(ObjectKind::EncryptedDataset, params.fingerprint(), &wire)?;
    files::write_atomic(&a.out, &bytes, false)?;
    let stats = StatsWire {
        source: a.features.clone(),
        class_names: f.class_names.clone(),
        mean: stdz.mean.clone(),
        std: stdz.std.clone(),
        scale: stdz.scale,
        train_samples: train.len() as u64,
        val_samples: val.as_ref().map_or(0, |v| v.len() as u64),
    };
    let stats_path = a.hospital.join(STATS);
    if !a.use_stats {
        files::write_atomic(
            &stats_path,
            &files::seal(ObjectKind::Stats, params.fingerprint(), &stats)?,
            true,
        )?;
    }
    println!(
        "encrypt: {} train + {} validation samples of {} ({} features, {} classes) in {} + {} chunks of {} rows → {} ({}, {:.1} s); statistics kept in {}",
        train.len(),
        stats.val_samples,
        a.features,
        train.features(),
        train.classes(),
        wire.train.rows.len(),
        wire.val.rows.len(),
        layout.rows,
        a.out.display(),
        files::human(bytes.len()),
        t0.elapsed().as_secs_f64(),
        stats_path.display()
    );
    Ok(())
}

/// Decrypts the weight diagonals into a model.
pub fn decrypt_model(enc: &Encryptor<'_>, layout: &Layout, w: &[Ciphertext]) -> Result<Vec<f64>> {
    let diags = w
        .iter()
        .map(|c| enc.decrypt(c))
        .collect::<Result<Vec<_>>>()?;
    Ok(layout.unpack_w(&diags))
}

pub fn decrypt_cmd(a: &DecryptArgs) -> Result<()> {
    let (params, sk) = load_keys(&a.hospital)?;
    if let Some(scores) = &a.scores {
        return decrypt_scores(a, scores, &params, &sk);
    }
    let Some(model_path) = &a.model else {
        bail!("give --model FILE or --scores FILE");
    };
    let bytes = files::read(model_path)?;
    let (_, m): (_, EncModelWire) = files::open(
        model_path,
        &bytes,
        ObjectKind::EncryptedModel,
        Some(params.fingerprint()),
    )?;
    let sp = a.hospital.join(STATS);
    let (_, stats): (_, StatsWire) = files::open(
        &sp,
        &files::read(&sp)?,
        ObjectKind::Stats,
        Some(params.fingerprint()),
    )?;
    let layout = Layout::new(params.max_slots(), m.features as usize, m.classes as usize)
        .map_err(|e| anyhow::anyhow!("{}: {e}", model_path.display()))?;
    if m.w.len() != layout.c_pad {
        bail!(
            "{}: {} weight ciphertexts, the layout needs {}",
            model_path.display(),
            m.w.len(),
            layout.c_pad
        );
    }
    let w = files::cts_from_bytes(model_path, &params, "weight", &m.w)?;
    let enc = Encryptor::new(&params, &sk)?;
    let weights = match a.flood_bits {
        None => decrypt_model(&enc, &layout, &w)?,
        Some(bits) => {
            let mut rng = os_rng();
            let diags = w
                .iter()
                .map(|c| enc.decrypt_flooded(c, bits, &mut rng))
                .collect::<Result<Vec<_>>>()?;
            layout.unpack_w(&diags)
        }
    };
    let model = ModelWire {
        features: m.features,
        classes: m.classes,
        w: weights,
        stats,
        steps: m.steps,
    };
    files::write_atomic(&a.out, &files::seal(ObjectKind::Model, 0, &model)?, true)?;
    println!(
        "decrypt: {} ({} steps, {} epochs) → {}",
        model_path.display(),
        m.steps,
        m.epochs,
        a.out.display()
    );
    Ok(())
}

/// Predicted classes of decrypted EncryptedScores, with the accuracy against the labels of
/// the features the set was encrypted from, and the agreement with a decrypted model.
fn decrypt_scores(a: &DecryptArgs, path: &Path, params: &Params, sk: &SecretKey) -> Result<()> {
    let bytes = files::read(path)?;
    let (_, s): (_, files::ScoresWire) = files::open(
        path,
        &bytes,
        ObjectKind::EncryptedScores,
        Some(params.fingerprint()),
    )?;
    let cts = files::cts_from_bytes(path, params, "scores", &s.scores)?;
    let enc = Encryptor::new(params, sk)?;
    let (block, c) = (s.block as usize, s.classes as usize);
    let mut predicted = Vec::new();
    for (ct, &rows) in cts.iter().zip(&s.rows) {
        let v = enc.decrypt(ct)?;
        for r in 0..rows as usize {
            let z = v.get(r * block..r * block + c).unwrap_or_default();
            predicted.push(trainer_core::exact::argmax(z));
        }
    }
    let mut report = serde_json::json!({ "samples": predicted.len(), "predicted": predicted });
    if let Some(spec) = &a.features {
        let f = load_features(spec)?;
        let data = split(&f, &a.split)?;
        let correct = predicted
            .iter()
            .enumerate()
            .filter(|&(i, &p)| data.label(i) == p)
            .count();
        report["accuracy"] = serde_json::json!(correct as f64 / predicted.len().max(1) as f64);
        if let Some(mp) = &a.compare {
            let (_, m): (_, ModelWire) =
                files::open(mp, &files::read(mp)?, ObjectKind::Model, None)?;
            let stdz = Standardizer {
                mean: m.stats.mean.clone(),
                std: m.stats.std.clone(),
                scale: m.stats.scale,
            };
            let data = stdz.apply(&data);
            let model = Model {
                classes: m.classes as usize,
                features: m.features as usize,
                w: m.w,
            };
            let agree = predicted
                .iter()
                .enumerate()
                .filter(|&(i, &p)| model.predict(data.row(i)) == p)
                .count();
            report["agreement_with_model"] =
                serde_json::json!(agree as f64 / predicted.len().max(1) as f64);
        }
    }
    println!("{report}");
    Ok(())
}

/// Accuracy, per-class accuracy, confusion matrix and loss of a model.
#[derive(Clone, Debug, PartialEq)]
pub struct Metrics {
    pub accuracy: f64,
    pub loss: f64,
    pub per_class: Vec<f64>,
    /// `confusion[true][predicted]`.
    pub confusion: Vec<Vec<u64>>,
    pub samples: usize,
}

/// Metrics of `model` on a standardised dataset.
pub fn metrics(model: &Model, data: &Dataset) -> Metrics {
    let c = model.classes;
    let mut confusion = vec![vec![0u64; c]; c];
    for i in 0..data.len() {
        let p = model.predict(data.row(i));
        if let Some(cell) = confusion.get_mut(data.label(i)).and_then(|r| r.get_mut(p)) {
            *cell += 1;
        }
    }
    let per_class = confusion
        .iter()
        .enumerate()
        .map(|(k, row)| {
            let n: u64 = row.iter().sum();
            if n == 0 {
                0.0
            } else {
                row.get(k).copied().unwrap_or(0) as f64 / n as f64
            }
        })
        .collect();
    Metrics {
        accuracy: model.accuracy(data),
        loss: model.loss(data),
        per_class,
        confusion,
        samples: data.len(),
    }
}

pub fn evaluate(a: &EvaluateArgs) -> Result<()> {
    let bytes = files::read(&a.model)?;
    let (_, m): (_, ModelWire) = files::open(&a.model, &bytes, ObjectKind::Model, None)?;
    let f = load_features(&a.features)?;
    if f.dim != m.features as usize || f.class_names.len() != m.classes as usize {
        bail!(
            "{}: the model has {} features × {} classes, the features {} × {}",
            a.model.display(),
            m.features,
            m.classes,
            f.dim,
            f.class_names.len()
        );
    }
    let stdz = Standardizer {
        mean: m.stats.mean.clone(),
        std: m.stats.std.clone(),
        scale: m.stats.scale,
    };
    let data = stdz.apply(&split(&f, &a.split)?);
    let model = Model {
        classes: m.classes as usize,
        features: m.features as usize,
        w: m.w.clone(),
    };
    let r = metrics(&model, &data);
    if a.json {
        let v = serde_json::json!({
            "split": a.split, "samples": r.samples, "accuracy": r.accuracy, "loss": r.loss,
            "per_class": r.per_class, "confusion": r.confusion, "classes": m.stats.class_names,
        });
        println!("{v}");
        return Ok(());
    }
    println!(
        "evaluate: {} on split {:?} of {} ({} samples)",
        a.model.display(),
        a.split,
        a.features,
        r.samples
    );
    println!(
        "accuracy {:.2} %   cross-entropy {:.4}",
        r.accuracy * 100.0,
        r.loss
    );
    println!("{:<24} {:>9}", "class", "accuracy");
    for (k, acc) in r.per_class.iter().enumerate() {
        let name = m.stats.class_names.get(k).map_or("?", String::as_str);
        println!("{:<24} {:>8.1}%", truncate(name, 24), acc * 100.0);
    }
    println!("confusion matrix (rows: true class, columns: predicted)");
    for row in &r.confusion {
        let cells: Vec<String> = row.iter().map(|v| format!("{v:>5}")).collect();
        println!("{}", cells.join(""));
    }
    Ok(())
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// The hospital's side of the exchange: answers every request in `dir` once.
pub struct Answerer {
    pub params: Params,
    pub sk: SecretKey,
    pub rng: ChaCha20Rng,
    /// Early stopping per training run (the run id survives `--resume`), with the verdicts
    /// already given by epoch (a resumed cloud may ask again).
    pub runs: BTreeMap<u64, RunVerdicts>,
    pub answered: u64,
}

/// The hospital's early-stopping record of one training run.
#[derive(Clone, Debug)]
pub struct RunVerdicts {
    pub stopping: EarlyStopping,
    pub verdicts: BTreeMap<u64, (f64, u8)>,
}

impl Answerer {
    pub fn new(params: Params, sk: SecretKey) -> Self {
        Self {
            params,
            sk,
            rng: os_rng(),
            runs: BTreeMap::new(),
            answered: 0,
        }
    }

    /// The answer to one request.
    pub fn answer(&mut self, req: RequestBody) -> Result<ResponseBody> {
        Ok(match req {
            RequestBody::Refresh(b) => {
                let ct = Ciphertext::from_bytes(&self.params, &b)?;
                let fresh = reencrypt_masked(&self.params, &self.sk, &ct, &mut self.rng)?;
                ResponseBody::Refreshed(fresh.to_bytes(&self.params)?)
            }
            RequestBody::RefreshAt { level, ct } => {
                let ct = Ciphertext::from_bytes(&self.params, &ct)?;
                let top = self.params.max_level();
                let level = usize::try_from(level).unwrap_or(usize::MAX);
                if level < ct.level() || level > top {
                    bail!(
                        "a refresh request asks for level {level}: it must lie between the \
                         ciphertext's level {} and the top level {top}",
                        ct.level()
                    );
                }
                let fresh = reencrypt_masked_at(&self.params, &self.sk, &ct, level, &mut self.rng)?;
                ResponseBody::Refreshed(fresh.to_bytes(&self.params)?)
            }
            RequestBody::ValidationLoss {
                run,
                epoch,
                patience,
                min_delta,
                ct,
            } => {
                let rec = self.runs.entry(run).or_insert_with(|| RunVerdicts {
                    stopping: EarlyStopping::new(patience.map(|p| p as usize), min_delta),
                    verdicts: BTreeMap::new(),
                });
                if let Some(&(loss, verdict)) = rec.verdicts.get(&epoch) {
                    return Ok(ResponseBody::Verdict {
                        epoch,
                        loss,
                        verdict,
                    });
                }
                let ct = Ciphertext::from_bytes(&self.params, &ct)?;
                let enc = Encryptor::new(&self.params, &self.sk)?;
                let raw = enc.decrypt(&ct)?.first().copied().unwrap_or(f64::NAN);
                // The Brier score lies in [0, 2]; anything else is a broken or malicious
                // request, and its decryption must not go back to the cloud.
                if !(-0.01..=2.01).contains(&raw) {
                    bail!(
                        "the validation loss of epoch {epoch} decrypts to {raw:e}, outside the \
                         Brier score's range [0, 2]: refusing to answer"
                    );
                }
                // Only the loss rounded to 3 decimals leaves the hospital (and decides the
                // verdict): rounding removes the CKKS noise that IND-CPA-D key-recovery attacks
                // read from decryptions.
                let loss = (raw * LOSS_DECIMALS).round() / LOSS_DECIMALS;
                let verdict = match rec.stopping.observe(epoch as usize, loss) {
                    Verdict::Improved => 0,
                    Verdict::Worse => 1,
                    Verdict::Stop => 2,
                };
                rec.verdicts.insert(epoch, (loss, verdict));
                ResponseBody::Verdict {
                    epoch,
                    loss,
                    verdict,
                }
            }
        })
    }

    /// The `RefreshResponse` file answering the `RefreshRequest` file `bytes` (named `label`
    /// in errors); a request it cannot answer gets a `Failed` answer.
    pub fn answer_file(&mut self, label: &Path, bytes: &[u8]) -> Result<Vec<u8>> {
        let body = match files::open::<RequestBody>(
            label,
            bytes,
            ObjectKind::RefreshRequest,
            Some(self.params.fingerprint()),
        ) {
            Ok((_, req)) => self
                .answer(req)
                .unwrap_or_else(|e| ResponseBody::Failed(format!("{e:#}"))),
            Err(e) => ResponseBody::Failed(format!("{e:#}")),
        };
        if let ResponseBody::Verdict {
            epoch,
            loss,
            verdict,
        } = &body
        {
            eprintln!(
                "refresh: epoch {epoch}: validation loss {loss:.5} → {}",
                ["improved", "worse", "stop"]
                    .get(*verdict as usize)
                    .unwrap_or(&"?")
            );
        }
        files::seal(
            ObjectKind::RefreshResponse,
            self.params.fingerprint(),
            &body,
        )
    }

    /// Answers the requests of one TCP connection until it closes.
    pub fn serve(&mut self, stream: &mut std::net::TcpStream) -> Result<()> {
        let label = PathBuf::from(
            stream
                .peer_addr()
                .map_or_else(|_| "tcp peer".to_string(), |a| format!("tcp {a}")),
        );
        while let Some(bytes) = files::read_frame(stream)? {
            let out = self.answer_file(&label, &bytes)?;
            files::write_frame(stream, &out)?;
            self.answered += 1;
        }
        Ok(())
    }

    /// Answers the pending requests in `dir`; returns how many.
    pub fn poll(&mut self, dir: &Path) -> Result<usize> {
        let mut reqs: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().is_some_and(|x| x == "req")
                    && !p
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect();
        reqs.sort();
        let mut n = 0;
        for p in reqs {
            let Ok(bytes) = std::fs::read(&p) else {
                continue;
            };
            let out = self.answer_file(&p, &bytes)?;
            let resp = p.with_extension("resp");
            files::write_atomic(&resp, &out, false)?;
            let _ = std::fs::remove_file(&p);
            n += 1;
            self.answered += 1;
        }
        Ok(n)
    }
}

pub fn refresh(a: &RefreshArgs) -> Result<()> {
    let (params, sk) = load_keys(&a.hospital)?;
    let mut ans = Answerer::new(params, sk);
    if let Some(addr) = &a.listen {
        let listener =
            std::net::TcpListener::bind(addr).with_context(|| format!("listening on {addr}"))?;
        let local = listener.local_addr()?;
        if !local.ip().is_loopback() {
            eprintln!(
                "refresh: warning: {local} is not a loopback address; the link is not encrypted \
                 (masked values only, but use a tunnel between machines)"
            );
        }
        eprintln!("refresh: listening on {local}");
        for stream in listener.incoming() {
            match stream {
                Ok(mut s) => {
                    if let Err(e) = ans.serve(&mut s) {
                        eprintln!("refresh: connection ended: {e:#}");
                    }
                }
                Err(e) => eprintln!("refresh: accept failed: {e}"),
            }
        }
        return Ok(());
    }
    let Some(watch) = &a.watch else {
        bail!("give --watch DIR or --listen ADDR");
    };
    std::fs::create_dir_all(watch).with_context(|| format!("creating {}", watch.display()))?;
    eprintln!(
        "refresh: answering masked refresh requests in {} (Ctrl-C to stop)",
        watch.display()
    );
    let mut last = Instant::now();
    loop {
        if ans.poll(watch)? > 0 {
            last = Instant::now();
        } else {
            std::thread::sleep(Duration::from_millis(3));
        }
        if watch.join("stop").exists() {
            break;
        }
        if let Some(s) = a.idle_exit
            && last.elapsed().as_secs_f64() > s
        {
            break;
        }
    }
    eprintln!("refresh: answered {} requests", ans.answered);
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;

    fn loss_request(ans: &Answerer, run: u64, epoch: u64, loss: f64) -> RequestBody {
        let enc = Encryptor::new(&ans.params, &ans.sk).unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(epoch);
        let v = vec![loss; ans.params.max_slots()];
        RequestBody::ValidationLoss {
            run,
            epoch,
            patience: Some(2),
            min_delta: 1e-4,
            ct: enc
                .encrypt(&v, &mut rng)
                .unwrap()
                .to_bytes(&ans.params)
                .unwrap(),
        }
    }

    fn verdict(r: ResponseBody) -> (f64, u8) {
        match r {
            ResponseBody::Verdict { loss, verdict, .. } => (loss, verdict),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn flooded_decryption_moves_values_a_little_and_no_more() {
        let params = presets::params(presets::INSECURE_TEST).unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let sk = SecretKey::generate(&params, &mut rng).unwrap();
        let enc = Encryptor::new(&params, &sk).unwrap();
        let v: Vec<f64> = (0..params.max_slots())
            .map(|i| (i % 7) as f64 * 0.1)
            .collect();
        let ct = enc.encrypt(&v, &mut rng).unwrap();
        let plain = enc.decrypt(&ct).unwrap();
        let flooded = enc.decrypt_flooded(&ct, 20, &mut rng).unwrap();
        let diff = plain
            .iter()
            .zip(&flooded)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        // 2^20 of noise at scale ≈ 2^42 with N = 2^11: about 2^-16 per slot.
        assert!(diff > 1e-9, "the flooding changed nothing");
        assert!(diff < 1e-3, "flooding lost too much: {diff}");
    }

    #[test]
    fn the_hospital_decides_early_stopping_from_the_decrypted_loss_per_run() {
        let params = presets::params(presets::INSECURE_TEST).unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let sk = SecretKey::generate(&params, &mut rng).unwrap();
        let mut ans = Answerer::new(params, sk);
        // Run 1: better, worse, worse → stop (patience 2).
        let mut got = Vec::new();
        for (e, l) in [0.5, 0.6, 0.7].into_iter().enumerate() {
            let req = loss_request(&ans, 1, e as u64, l);
            got.push(verdict(ans.answer(req).unwrap()));
        }
        assert!((got[0].0 - 0.5).abs() < 1e-6, "decrypted loss {got:?}");
        assert_eq!(got.iter().map(|g| g.1).collect::<Vec<_>>(), [0, 1, 2]);
        // A resumed cloud asking about epoch 1 again gets the same verdict, not a new count.
        let again = loss_request(&ans, 1, 1, 0.1);
        assert_eq!(verdict(ans.answer(again).unwrap()), got[1]);
        // Another run starts its own record.
        let other = loss_request(&ans, 2, 0, 0.9);
        assert_eq!(verdict(ans.answer(other).unwrap()).1, 0);
        // A refresh request with a broken ciphertext is an error, not a panic.
        assert!(ans.answer(RequestBody::Refresh(vec![1, 2, 3])).is_err());
    }

    #[test]
    fn data_is_encrypted_at_the_data_level_with_its_canonical_scale() {
        let params = presets::params(presets::INSECURE_TEST).unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let sk = SecretKey::generate(&params, &mut rng).unwrap();
        let enc = Encryptor::new(&params, &sk).unwrap();
        let top = trainer_core::ckks::working_top(&params);
        let level = trainer_core::ckks::data_level(&params);
        assert_eq!(level, top.min(trainer_core::refresh::HOSPITAL_DATA_LEVEL));
        assert!(level < top, "the test preset has levels above the data's");
        let v: Vec<f64> = (0..params.max_slots()).map(|i| (i % 3) as f64).collect();
        let ct = enc.encrypt(&v, &mut rng).unwrap();
        assert_eq!(ct.level(), level);
        let scales = trainer_core::ckks::working_scales(&params, top);
        assert_eq!(Some(&ct.scale), scales.get(level));
        // A smaller upload than the same values encrypted at the top level.
        let scale_top = scales.get(top).copied().unwrap();
        let pt = enc.encoder.encode_at(&v, scale_top, top).unwrap();
        let at_top = encrypt_sk(&params, &sk, &pt, &mut rng).unwrap();
        let (low, high) = (
            ct.to_bytes(&params).unwrap().len(),
            at_top.to_bytes(&params).unwrap().len(),
        );
        assert!(
            low * (top + 1) <= high * (level + 2),
            "{low} vs {high} bytes"
        );
    }

    #[test]
    fn refreshes_are_answered_at_the_level_asked_for_and_no_other() {
        let params = presets::params(presets::INSECURE_TEST).unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(6);
        let sk = SecretKey::generate(&params, &mut rng).unwrap();
        let enc = Encryptor::new(&params, &sk).unwrap();
        let v: Vec<f64> = (0..params.max_slots())
            .map(|i| (i % 5) as f64 * 0.25 - 0.5)
            .collect();
        let mut ct = enc.encrypt(&v, &mut rng).unwrap();
        ct.drop_to_level(2).unwrap();
        let (masked, m) = fhe_core::refresh::mask(&params, &ct, 52, 40, &mut rng).unwrap();
        let bytes = masked.to_bytes(&params).unwrap();
        let mut ans = Answerer::new(
            params.clone(),
            SecretKey::from_coeffs(&params, sk.coeffs()).unwrap(),
        );
        let top = params.max_level();
        let req = |level: usize| RequestBody::RefreshAt {
            level: level as u32,
            ct: bytes.clone(),
        };
        let ResponseBody::Refreshed(b) = ans.answer(req(top - 1)).unwrap() else {
            panic!("not a refresh answer");
        };
        let fresh = Ciphertext::from_bytes(&params, &b).unwrap();
        assert_eq!(fresh.level(), top - 1);
        let back = fhe_core::refresh::unmask(&params, fresh, &m).unwrap();
        let got = enc.decrypt(&back).unwrap();
        let err = v
            .iter()
            .zip(&got)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(err < 1e-6, "refreshed values off by {err}");
        // Below the ciphertext's level or above the top: refused, naming the bounds.
        for bad in [1, top + 1] {
            let e = ans.answer(req(bad)).unwrap_err();
            assert!(format!("{e:#}").contains("must lie between"), "{e:#}");
        }
    }

    #[test]
    fn only_a_rounded_in_range_loss_goes_back_to_the_cloud() {
        let params = presets::params(presets::INSECURE_TEST).unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let sk = SecretKey::generate(&params, &mut rng).unwrap();
        let mut ans = Answerer::new(params, sk);
        // The CKKS noise below 1e-3 never reaches the cloud.
        let (loss, _) = verdict(ans.answer(loss_request(&ans, 7, 0, 0.123_456_7)).unwrap());
        assert_eq!(loss, 0.123, "rounded to 3 decimals");
        // A "loss" no Brier score can have (a cloud probing decryptions) gets no answer.
        for bad in [5.0, -1.0, 1e6] {
            let err = ans.answer(loss_request(&ans, 8, 0, bad)).unwrap_err();
            assert!(format!("{err:#}").contains("outside"), "{err:#}");
        }
    }
}
