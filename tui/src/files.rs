//! The files the two parties exchange, on top of fhe-core's `BLTN` header (`fhe_core::wire`).
//!
//! fhe-core writes the scheme objects (`Params`, `SecretKey`, `PublicKey`, `EvalKeys`,
//! `Ciphertext`); this module adds the containers of a training run, each a postcard payload
//! behind the same 24-byte header, with the parameter fingerprint in it:
//!
//! | kind | file | party | holds |
//! | --- | --- | --- | --- |
//! | `EncryptedDataset` | `dataset.bltn` | hospital → cloud | the `Params` file, dimensions, encrypted train and validation chunks |
//! | `EncryptedModel` | `model.enc` | cloud → hospital | the `Params` file, dimensions, steps, the encrypted weight diagonals |
//! | `Model` | `model.bltn` | hospital | decrypted weights with the standardisation to apply |
//! | `Stats` | `stats.bltn` | hospital | the standardisation statistics and class names |
//! | `Checkpoint` | `train.ckpt` | cloud | the run's settings, position and encrypted state |
//! | `RefreshRequest` / `RefreshResponse` | `exchange/*.req`, `*.resp` | both | masked refreshes, the validation loss and the hospital's verdict |
//! | `EncryptedScores` | `scores.enc` | cloud → hospital | encrypted class scores of an inference run |
//!
//! Every write is atomic (a temporary file in the same folder, synced, then renamed), so a
//! killed process leaves either the old file or the new one, never half of one. Every read
//! checks the header (magic, version, kind, fingerprint, length) and names the file in errors.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use fhe_core::ciphertext::Ciphertext;
use fhe_core::format::WireObject;
use fhe_core::params::Params;
use fhe_core::wire::{HEADER_LEN, Header, ObjectKind};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// Writes `bytes` to `path` atomically. `private`: the file is created owner-only (0600)
/// before any byte is written (for the secret key).
pub fn write_atomic(path: &Path, bytes: &[u8], private: bool) -> Result<()> {
    let name = path
        .file_name()
        .with_context(|| format!("{}: not a file path", path.display()))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| -> std::io::Result<()> {
        // A stale temporary of a killed process may exist: never reuse its permissions.
        let _ = fs::remove_file(&tmp);
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        if private {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        #[cfg(not(unix))]
        let _ = private;
        let mut f = opts.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        anyhow::Error::new(e).context(format!("writing {}", path.display()))
    })
}

/// Reads a whole file, naming it in the error.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// The header of a file's bytes, with the file named in the error.
pub fn header(path: &Path, bytes: &[u8]) -> Result<Header> {
    Header::decode(bytes)
        .map(|(h, _)| h)
        .map_err(|e| anyhow::anyhow!("{}: not a blindtuner file ({e})", path.display()))
}

/// Refuses a hospital-only file where a cloud-side command reads its inputs.
pub fn refuse_secret(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Ok((h, _)) = Header::decode(bytes)
        && matches!(h.kind, ObjectKind::SecretKey | ObjectKind::Stats)
    {
        bail!(
            "{} is a {} file: it belongs to the hospital and never goes to the cloud; \
             give the cloud only public files (eval.keys, dataset.bltn)",
            path.display(),
            h.kind.name()
        );
    }
    Ok(())
}

/// A container file: header of `kind` with `fingerprint`, postcard payload.
pub fn seal<T: Serialize>(kind: ObjectKind, fingerprint: u64, value: &T) -> Result<Vec<u8>> {
    let payload = postcard::to_stdvec(value).context("encoding the payload")?;
    let mut out = Header::encode(kind, fingerprint, payload.len()).to_vec();
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Opens a container file of `kind` (and, if given, `fingerprint`).
pub fn open<T: DeserializeOwned>(
    path: &Path,
    bytes: &[u8],
    kind: ObjectKind,
    fingerprint: Option<u64>,
) -> Result<(Header, T)> {
    let (h, payload) = Header::decode_expect(bytes, kind, fingerprint).map_err(|e| {
        let found = Header::decode(bytes).map_or("unreadable", |(h, _)| h.kind.name());
        anyhow::anyhow!(
            "{}: expected a {} file, found {found} ({e})",
            path.display(),
            kind.name()
        )
    })?;
    let value = postcard::from_bytes(payload).map_err(|e| {
        anyhow::anyhow!(
            "{}: malformed {} payload ({e})",
            path.display(),
            kind.name()
        )
    })?;
    Ok((h, value))
}

/// Loads a `Params` file embedded in (or standing as) `bytes`.
pub fn params_from(path: &Path, bytes: &[u8]) -> Result<Params> {
    Params::from_bytes(bytes)
        .map_err(|e| anyhow::anyhow!("{}: bad parameters ({e})", path.display()))
}

/// Serialises ciphertexts as individual `Ciphertext` files.
pub fn cts_to_bytes(params: &Params, cts: &[Ciphertext]) -> Result<Vec<Vec<u8>>> {
    cts.iter()
        .map(|c| c.to_bytes(params).context("serialising a ciphertext"))
        .collect()
}

/// Parses ciphertexts; errors name the file and the item.
pub fn cts_from_bytes(
    path: &Path,
    params: &Params,
    what: &str,
    items: &[Vec<u8>],
) -> Result<Vec<Ciphertext>> {
    items
        .iter()
        .enumerate()
        .map(|(i, b)| {
            Ciphertext::from_bytes(params, b)
                .map_err(|e| anyhow::anyhow!("{}: {what} #{i}: {e}", path.display()))
        })
        .collect()
}

/// Encrypted chunks as stored.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ChunksWire {
    pub x: Vec<Vec<u8>>,
    pub y: Vec<Vec<u8>>,
    pub rows: Vec<u32>,
}

/// `EncryptedDataset`: what the hospital uploads.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DatasetWire {
    /// The `Params` file.
    pub params: Vec<u8>,
    pub features: u32,
    pub classes: u32,
    pub train: ChunksWire,
    pub val: ChunksWire,
}

/// `EncryptedModel`: what the cloud returns.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EncModelWire {
    pub params: Vec<u8>,
    pub features: u32,
    pub classes: u32,
    pub steps: u64,
    pub epochs: u64,
    /// The weight diagonals (`c_pad` Ciphertext files).
    pub w: Vec<Vec<u8>>,
}

/// `Model`: decrypted weights, hospital side.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ModelWire {
    pub features: u32,
    pub classes: u32,
    /// `classes × (features + 1)`, row-major, the bias last.
    pub w: Vec<f64>,
    pub stats: StatsWire,
    pub steps: u64,
}

/// `Stats`: the hospital's standardisation and class names.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StatsWire {
    pub source: String,
    pub class_names: Vec<String>,
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
    pub scale: f64,
    pub train_samples: u64,
    pub val_samples: u64,
}

/// `RefreshRequest`: written by the cloud into the exchange directory.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum RequestBody {
    /// A masked ciphertext to decrypt and re-encrypt at the top level.
    Refresh(Vec<u8>),
    /// The encrypted validation loss of an epoch (slot 0), with the run's early-stopping
    /// settings; the hospital decrypts it and answers with its verdict.
    ValidationLoss {
        /// The training run (kept across `--resume`).
        run: u64,
        epoch: u64,
        patience: Option<u64>,
        min_delta: f64,
        ct: Vec<u8>,
    },
    /// A masked ciphertext to decrypt and re-encrypt at `level` (at or above its own, at most
    /// the top): the cloud asks for the primes it will keep, so the answer is smaller.
    RefreshAt { level: u32, ct: Vec<u8> },
}

/// `RefreshResponse`: written by the hospital.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ResponseBody {
    Refreshed(Vec<u8>),
    /// 0 = improved, 1 = worse, 2 = stop.
    Verdict {
        epoch: u64,
        loss: f64,
        verdict: u8,
    },
    /// The hospital could not answer (the message says why).
    Failed(String),
}

/// `EncryptedScores`: class scores of encrypted inference, one ciphertext per chunk.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScoresWire {
    pub classes: u32,
    pub block: u32,
    pub rows: Vec<u32>,
    pub scores: Vec<Vec<u8>>,
}

/// Largest frame accepted on the loopback TCP link (a ciphertext at N = 2^16 is ~20 MiB).
pub const MAX_FRAME: u64 = 1 << 30;

/// Writes one frame: the 8-byte little-endian length, then the file bytes.
pub fn write_frame(w: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
    w.write_all(&(bytes.len() as u64).to_le_bytes())?;
    w.write_all(bytes)?;
    w.flush()
}

/// Reads one frame; `Ok(None)` at a clean end of the stream.
pub fn read_frame(r: &mut impl std::io::Read) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 8];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let n = u64::from_le_bytes(len);
    if n > MAX_FRAME {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("frame of {n} bytes (at most {MAX_FRAME})"),
        ));
    }
    let mut buf = vec![0u8; usize::try_from(n).unwrap_or(0)];
    r.read_exact(&mut buf)?;
    Ok(Some(buf))
}

/// A short human description of a file, for `inspect`.
pub fn describe(path: &Path, bytes: &[u8]) -> Result<Vec<(String, String)>> {
    let h = header(path, bytes)?;
    let mut out = vec![
        ("kind".to_string(), h.kind.name().to_string()),
        ("format version".to_string(), h.version.to_string()),
        ("fingerprint".to_string(), format!("{:016x}", h.fingerprint)),
        ("size".to_string(), human(bytes.len())),
        (
            "payload".to_string(),
            human(bytes.len().saturating_sub(HEADER_LEN)),
        ),
    ];
    let mut add = |k: &str, v: String| out.push((k.to_string(), v));
    let params_line = |p: &Params| {
        format!(
            "N = 2^{}, {} levels, scale 2^{}, log QP {:.0}, {}",
            p.log_n(),
            p.max_level(),
            p.log_scale(),
            p.log_qp(),
            match p.security() {
                fhe_core::params::Security::Classical128 => "128-bit secure",
                fhe_core::params::Security::InsecureForTestsOnly => "INSECURE (tests only)",
            }
        )
    };
    match h.kind {
        ObjectKind::Params => {
            let p = params_from(path, bytes)?;
            add("params", params_line(&p));
        }
        ObjectKind::SecretKey => add("party", "hospital only: never leaves it".into()),
        ObjectKind::EncryptedDataset => {
            let (_, d): (_, DatasetWire) = open(path, bytes, h.kind, None)?;
            let p = params_from(path, &d.params)?;
            add("params", params_line(&p));
            add("features", d.features.to_string());
            add("classes", d.classes.to_string());
            let n = |c: &ChunksWire| c.rows.iter().map(|&r| u64::from(r)).sum::<u64>();
            add(
                "train",
                format!("{} samples in {} chunks", n(&d.train), d.train.rows.len()),
            );
            add(
                "validation",
                format!("{} samples in {} chunks", n(&d.val), d.val.rows.len()),
            );
        }
        ObjectKind::EncryptedModel => {
            let (_, m): (_, EncModelWire) = open(path, bytes, h.kind, None)?;
            let p = params_from(path, &m.params)?;
            add("params", params_line(&p));
            add("features", m.features.to_string());
            add("classes", m.classes.to_string());
            add("steps", m.steps.to_string());
            add("epochs", m.epochs.to_string());
            add("weight ciphertexts", m.w.len().to_string());
        }
        ObjectKind::Model => {
            let (_, m): (_, ModelWire) = open(path, bytes, h.kind, None)?;
            add("features", m.features.to_string());
            add("classes", m.classes.to_string());
            add("steps", m.steps.to_string());
            add("classes named", m.stats.class_names.join(", "));
        }
        ObjectKind::Stats => {
            let (_, s): (_, StatsWire) = open(path, bytes, h.kind, None)?;
            add("party", "hospital only".into());
            add("source", s.source.clone());
            add("features", s.mean.len().to_string());
            add("classes", s.class_names.join(", "));
            add(
                "train / val samples",
                format!("{} / {}", s.train_samples, s.val_samples),
            );
        }
        ObjectKind::Checkpoint => {
            let (_, c): (_, crate::cloud::CheckpointWire) = open(path, bytes, h.kind, None)?;
            add("steps", c.step.to_string());
            add("epoch", format!("{} (batch {})", c.epoch, c.batch));
            add("finished", c.finished.to_string());
        }
        ObjectKind::EncryptedScores => {
            let (_, s): (_, ScoresWire) = open(path, bytes, h.kind, None)?;
            add("classes", s.classes.to_string());
            add(
                "samples",
                s.rows
                    .iter()
                    .map(|&r| u64::from(r))
                    .sum::<u64>()
                    .to_string(),
            );
        }
        ObjectKind::Features => {
            let f = extractor::features::Features::from_bytes(bytes)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            add("features", f.dim.to_string());
            add("classes", f.class_names.join(", "));
            for s in &f.splits {
                add(&format!("split {}", s.name), format!("{} rows", s.rows()));
            }
        }
        _ => {}
    }
    Ok(out)
}

/// Bytes in B / KiB / MiB.
pub fn human(n: usize) -> String {
    let f = n as f64;
    if f >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", f / 1024.0 / 1024.0)
    } else if f >= 1024.0 {
        format!("{:.1} KiB", f / 1024.0)
    } else {
        format!("{n} B")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;
    use fhe_core::keys::{EvalKeys, SecretKey};
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    /// A small EncryptedDataset file and matching evaluation keys (no rotation keys).
    fn dataset() -> (Params, Vec<u8>, Vec<u8>) {
        let params = crate::presets::params(crate::presets::INSECURE_TEST).unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        let sk = SecretKey::generate(&params, &mut rng).unwrap();
        let enc = crate::hospital::Encryptor::new(&params, &sk).unwrap();
        let ct = enc
            .encrypt(&[0.5; 8], &mut rng)
            .unwrap()
            .to_bytes(&params)
            .unwrap();
        let wire = DatasetWire {
            params: params.to_bytes().unwrap(),
            features: 4,
            classes: 2,
            train: ChunksWire {
                x: vec![ct.clone()],
                y: vec![ct.clone()],
                rows: vec![2],
            },
            val: ChunksWire::default(),
        };
        let file = seal(ObjectKind::EncryptedDataset, params.fingerprint(), &wire).unwrap();
        let keys = EvalKeys::generate(&sk, &[], false, &mut rng).unwrap();
        let keys = keys.to_bytes(&params).unwrap();
        (params, file, keys)
    }

    #[test]
    fn atomic_writes_leave_the_file_whole_and_private_files_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.bltn");
        write_atomic(&p, b"one", false).unwrap();
        write_atomic(&p, b"two", true).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Only the file itself is left: no temporary.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        // A stale, world-readable temporary of a killed process does not lend its mode.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let key = dir.path().join("secret.key");
            let stale = dir
                .path()
                .join(format!(".secret.key.{}.tmp", std::process::id()));
            fs::write(&stale, b"stale").unwrap();
            fs::set_permissions(&stale, fs::Permissions::from_mode(0o644)).unwrap();
            write_atomic(&key, b"secret", true).unwrap();
            let mode = fs::metadata(&key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            assert!(!stale.exists());
        }
        // A path in a missing folder fails, naming the file, and leaves nothing.
        let bad = dir.path().join("missing").join("x.bltn");
        let e = write_atomic(&bad, b"x", false).unwrap_err();
        assert!(format!("{e:#}").contains("x.bltn"), "{e:#}");
    }

    #[test]
    fn every_prefix_and_corruption_of_a_dataset_is_an_error_not_a_panic() {
        let (_, file, keys) = dataset();
        let dir = tempfile::tempdir().unwrap();
        let (dp, kp) = (dir.path().join("d.bltn"), dir.path().join("k.bltn"));
        fs::write(&kp, &keys).unwrap();
        fs::write(&dp, &file).unwrap();
        let ok = crate::cloud::load_inputs(&dp, &kp).unwrap();
        assert_eq!(ok.train.samples(), 2);
        assert!(describe(&dp, &file).is_ok());
        let step = (file.len() / 100).max(1);
        for cut in (0..file.len()).step_by(step) {
            let b = &file[..cut];
            assert!(describe(&dp, b).is_err(), "prefix {cut}");
            fs::write(&dp, b).unwrap();
            let e = crate::cloud::load_inputs(&dp, &kp).err().unwrap();
            assert!(format!("{e:#}").contains("d.bltn"), "{e:#}");
        }
        // Flipped bytes: errors or (for bits inside a residue that stays reduced) a dataset,
        // never a panic.
        for i in (24..file.len()).step_by(step) {
            let mut b = file.clone();
            b[i] ^= 0x5a;
            let _ = describe(&dp, &b);
            fs::write(&dp, &b).unwrap();
            let _ = crate::cloud::load_inputs(&dp, &kp);
        }
        // The wrong kind is named.
        let e = open::<DatasetWire>(&dp, &keys, ObjectKind::EncryptedDataset, None).unwrap_err();
        assert!(format!("{e}").contains("found EvalKeys"), "{e}");
    }

    /// Ciphertexts that `encrypt` would not have made (another level, scale or slot count)
    /// are refused when the dataset is loaded, naming the file, the item and the problem.
    #[test]
    fn datasets_encrypted_otherwise_are_refused_before_training() {
        let (params, file, keys) = dataset();
        let dir = tempfile::tempdir().unwrap();
        let (dp, kp) = (dir.path().join("d.bltn"), dir.path().join("k.bltn"));
        fs::write(&kp, &keys).unwrap();
        let (_, wire): (_, DatasetWire) =
            open(&dp, &file, ObjectKind::EncryptedDataset, None).unwrap();
        let good = Ciphertext::from_bytes(&params, &wire.train.x[0]).unwrap();
        let level = trainer_core::ckks::data_level(&params);
        assert!(level > 0);
        let mut low = good.clone();
        low.drop_to_level(level - 1).unwrap();
        let mut scaled = good.clone();
        scaled.scale *= 2.0;
        let mut sparse = good.clone();
        sparse.slots /= 2;
        for (ct, labels, want) in [
            (low, false, "train data #0 is at level"),
            (scaled, true, "train labels #0 has scale"),
            (sparse, true, "train labels #0 has"),
        ] {
            let mut w = wire.clone();
            let slot = if labels {
                &mut w.train.y
            } else {
                &mut w.train.x
            };
            slot[0] = ct.to_bytes(&params).unwrap();
            let bytes = seal(ObjectKind::EncryptedDataset, params.fingerprint(), &w).unwrap();
            fs::write(&dp, &bytes).unwrap();
            let e = format!("{:#}", crate::cloud::load_inputs(&dp, &kp).err().unwrap());
            assert!(e.contains("d.bltn") && e.contains(want), "{want}: {e}");
            assert!(e.contains("blindtuner encrypt"), "{e}");
        }
        // The dataset as encrypted loads.
        fs::write(&dp, &file).unwrap();
        assert!(crate::cloud::load_inputs(&dp, &kp).is_ok());
    }

    #[test]
    fn cloud_inputs_refuse_hospital_only_kinds() {
        let params = crate::presets::params(crate::presets::INSECURE_TEST).unwrap();
        let sk = SecretKey::generate(&params, &mut ChaCha20Rng::seed_from_u64(1)).unwrap();
        let sk_file = sk.to_bytes(&params).unwrap();
        let e = refuse_secret(Path::new("s.key"), &sk_file).unwrap_err();
        assert!(format!("{e}").contains("belongs to the hospital"));
        let stats = seal(
            ObjectKind::Stats,
            params.fingerprint(),
            &StatsWire {
                source: "x".into(),
                class_names: vec![],
                mean: vec![],
                std: vec![],
                scale: 1.0,
                train_samples: 0,
                val_samples: 0,
            },
        )
        .unwrap();
        assert!(refuse_secret(Path::new("stats.bltn"), &stats).is_err());
        assert!(refuse_secret(Path::new("p"), &params.to_bytes().unwrap()).is_ok());
    }
}
