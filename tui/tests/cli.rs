//! The two-party command line across separate processes and directories, on the INSECURE
//! N = 2^11 test preset (`--insecure-test-preset`) so that every test takes seconds.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_blindtuner");

fn run(args: &[&str], cwd: &Path) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("run blindtuner")
}

fn ok(args: &[&str], cwd: &Path) -> String {
    let out = run(args, cwd);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "blindtuner {args:?} failed:\n{text}");
    text
}

fn fails(args: &[&str], cwd: &Path) -> String {
    let out = run(args, cwd);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "blindtuner {args:?} should fail");
    assert!(!err.contains("panicked"), "a panic, not an error: {err}");
    err
}

/// The hospital's refresh answerer, killed on drop.
struct Watcher(Child);

impl Watcher {
    fn start(hospital: &Path, exchange: &Path) -> Self {
        let child = Command::new(BIN)
            .args(["refresh", "--hospital"])
            .arg(hospital)
            .arg("--watch")
            .arg(exchange)
            .env("RUST_BACKTRACE", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start refresh --watch");
        Self(child)
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Three directories: the hospital, the cloud, and the exchange they share.
struct Parties {
    _tmp: tempfile::TempDir,
    hospital: PathBuf,
    cloud: PathBuf,
    exchange: PathBuf,
}

/// keygen + encrypt at the hospital; the public files copied to the cloud.
fn setup(max_train: &str) -> Parties {
    setup_with(max_train, &[])
}

/// `setup` with extra `keygen` arguments.
fn setup_with(max_train: &str, keygen: &[&str]) -> Parties {
    let tmp = tempfile::tempdir().unwrap();
    let (hospital, cloud, exchange) = (
        tmp.path().join("hospital"),
        tmp.path().join("cloud"),
        tmp.path().join("exchange"),
    );
    for d in [&hospital, &cloud, &exchange] {
        fs::create_dir_all(d).unwrap();
    }
    let mut args = vec![
        "keygen",
        "--out",
        ".",
        "--insecure-test-preset",
        "--features",
        "blood",
    ];
    args.extend_from_slice(keygen);
    ok(&args, &hospital);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(hospital.join("secret.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "secret.key is owner-only");
    }
    ok(
        &[
            "encrypt",
            "--hospital",
            ".",
            "--features",
            "blood",
            "--max-train",
            max_train,
            "--max-val",
            "8",
            "--out",
            "dataset.bltn",
        ],
        &hospital,
    );
    fs::copy(hospital.join("dataset.bltn"), cloud.join("dataset.bltn")).unwrap();
    fs::copy(hospital.join("eval.keys"), cloud.join("eval.keys")).unwrap();
    Parties {
        _tmp: tmp,
        hospital,
        cloud,
        exchange,
    }
}

fn train_args<'a>(ex: &'a str, out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "train",
        "--data",
        "dataset.bltn",
        "--keys",
        "eval.keys",
        "--out",
        out,
        "--exchange",
        ex,
        "--hospital-timeout",
        "60",
    ];
    v.extend_from_slice(extra);
    v
}

/// Decrypts `enc` (a cloud file) at the hospital and returns the Model file's weights via
/// `evaluate --json`'s accuracy and the raw file bytes.
fn decrypt(p: &Parties, enc: &Path, name: &str) -> PathBuf {
    let local = p.hospital.join(format!("{name}.enc"));
    fs::copy(enc, &local).unwrap();
    let out = p.hospital.join(format!("{name}.bltn"));
    ok(
        &[
            "decrypt",
            "--hospital",
            ".",
            "--model",
            local.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        &p.hospital,
    );
    out
}

/// The weights of a Model file (postcard after the 24-byte header: features, classes, then the
/// f64 vector), read through the documented layout.
fn weights(model: &Path) -> Vec<f64> {
    #[derive(serde::Deserialize)]
    struct Head {
        _features: u32,
        _classes: u32,
        w: Vec<f64>,
    }
    let bytes = fs::read(model).unwrap();
    assert_eq!(&bytes[..4], b"BLTN");
    let (h, _): (Head, _) = postcard::take_from_bytes(&bytes[24..]).unwrap();
    h.w
}

fn kind_of(path: &Path) -> Option<u16> {
    let b = fs::read(path).ok()?;
    (b.len() >= 8 && &b[..4] == b"BLTN").then(|| u16::from_le_bytes([b[6], b[7]]))
}

#[test]
fn round_trip_keygen_encrypt_train_decrypt_evaluate_across_processes() {
    let p = setup("16");
    let ex = p.exchange.to_str().unwrap().to_string();
    let watcher = Watcher::start(&p.hospital, &p.exchange);
    let log = ok(
        &train_args(&ex, "model.enc", &["--epochs", "2", "--patience", "1"]),
        &p.cloud,
    );
    assert!(
        log.contains("hospital's verdict"),
        "validation verdicts: {log}"
    );
    // 16 samples in chunks of 4 rows: 4 steps per epoch, 2 epochs.
    assert!(log.contains("step    8"), "{log}");
    assert!(!log.contains("step    9"), "{log}");

    // The cloud directory never holds a hospital-only file.
    for e in fs::read_dir(&p.cloud).unwrap() {
        let path = e.unwrap().path();
        let k = kind_of(&path);
        assert!(
            k != Some(2) && k != Some(13),
            "{} is hospital-only (kind {k:?})",
            path.display()
        );
        assert_ne!(path.file_name().unwrap(), "secret.key");
    }
    // The cloud refuses a secret key wherever it takes a file.
    let err = fails(
        &[
            "train",
            "--data",
            "dataset.bltn",
            "--keys",
            p.hospital.join("secret.key").to_str().unwrap(),
            "--exchange",
            &ex,
        ],
        &p.cloud,
    );
    assert!(err.contains("secret.key is a SecretKey file"), "{err}");
    let err = fails(
        &[
            "train",
            "--data",
            p.hospital.join("secret.key").to_str().unwrap(),
            "--keys",
            "eval.keys",
            "--exchange",
            &ex,
        ],
        &p.cloud,
    );
    assert!(err.contains("belongs to the hospital"), "{err}");

    let model = decrypt(&p, &p.cloud.join("model.enc"), "model");
    let out = ok(
        &[
            "evaluate",
            "--model",
            model.to_str().unwrap(),
            "--features",
            "blood",
            "--split",
            "test",
            "--json",
        ],
        &p.hospital,
    );
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["samples"], 1024);
    let acc = v["accuracy"].as_f64().unwrap();
    // 8 classes: one class alone is at most 19.5 % of the test split; 8 steps on 16 samples
    // learn more than that.
    eprintln!("test accuracy after the round trip: {acc}");
    assert!(acc > 0.2 && acc <= 1.0, "accuracy {acc}");
    let confusion = v["confusion"].as_array().unwrap();
    assert_eq!(confusion.len(), 8);
    let total: u64 = confusion
        .iter()
        .flat_map(|r| r.as_array().unwrap())
        .map(|c| c.as_u64().unwrap())
        .sum();
    assert_eq!(total, 1024);
    assert!(weights(&model).iter().any(|w| w.abs() > 1e-3));

    // Encrypted inference: the hospital encrypts 8 test rows in order with its training
    // statistics, the cloud scores them, the hospital decrypts the scores.
    let stats_before = fs::read(p.hospital.join("stats.bltn")).unwrap();
    ok(
        &[
            "encrypt",
            "--hospital",
            ".",
            "--features",
            "blood",
            "--train-split",
            "test",
            "--val-split",
            "none",
            "--max-train",
            "8",
            "--use-stats",
            "--no-shuffle",
            "--out",
            "test.bltn",
        ],
        &p.hospital,
    );
    assert_eq!(
        fs::read(p.hospital.join("stats.bltn")).unwrap(),
        stats_before,
        "--use-stats keeps the training statistics"
    );
    fs::copy(p.hospital.join("test.bltn"), p.cloud.join("test.bltn")).unwrap();
    ok(
        &[
            "infer",
            "--data",
            "test.bltn",
            "--model",
            "model.enc",
            "--keys",
            "eval.keys",
            "--out",
            "scores.enc",
            "--exchange",
            &ex,
        ],
        &p.cloud,
    );
    drop(watcher);
    fs::copy(p.cloud.join("scores.enc"), p.hospital.join("scores.enc")).unwrap();
    let out = ok(
        &[
            "decrypt",
            "--hospital",
            ".",
            "--scores",
            "scores.enc",
            "--features",
            "blood",
            "--split",
            "test",
            "--compare",
            model.to_str().unwrap(),
        ],
        &p.hospital,
    );
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["samples"], 8);
    let agree = v["agreement_with_model"].as_f64().unwrap();
    assert!(
        agree >= 0.875,
        "encrypted vs decrypted-model predictions: {v}"
    );
}

#[test]
fn kill_9_during_train_then_resume_gives_the_same_model() {
    let p = setup("16");
    let ex = p.exchange.to_str().unwrap().to_string();
    let _watcher = Watcher::start(&p.hospital, &p.exchange);
    // Reference: uninterrupted.
    ok(&train_args(&ex, "a.enc", &["--epochs", "1"]), &p.cloud);

    // Interrupted: kill -9 once the first checkpoint is there.
    let mut child = Command::new(BIN)
        .args(train_args(&ex, "b.enc", &["--epochs", "1"]))
        .current_dir(&p.cloud)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ckpt = p.cloud.join("b.ckpt");
    let t0 = Instant::now();
    while !ckpt.exists() {
        assert!(t0.elapsed() < Duration::from_secs(60), "no checkpoint");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(!p.cloud.join("b.enc").exists(), "killed before the end");
    let info = ok(&["inspect", "b.ckpt"], &p.cloud);
    assert!(info.contains("finished             false"), "{info}");
    // No half-written file: every file left is whole (inspect parses it) or a dot-temp.
    let log = ok(
        &train_args(&ex, "b.enc", &["--epochs", "1", "--resume"]),
        &p.cloud,
    );
    assert!(log.contains("resuming from"), "{log}");
    // Other hyperparameters than the checkpoint's are refused.
    let err = fails(
        &train_args(&ex, "b.enc", &["--epochs", "1", "--lr", "0.5", "--resume"]),
        &p.cloud,
    );
    assert!(err.contains("other settings"), "{err}");

    let a = weights(&decrypt(&p, &p.cloud.join("a.enc"), "a"));
    let b = weights(&decrypt(&p, &p.cloud.join("b.enc"), "b"));
    assert_eq!(a.len(), b.len());
    let scale = a.iter().fold(0.0f64, |m, w| m.max(w.abs()));
    let diff = a
        .iter()
        .zip(&b)
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
    assert!(scale > 1e-3, "trained weights");
    // Same steps on the same batches; only the CKKS noise of the refreshes differs.
    assert!(diff < 1e-6 * scale.max(1.0), "max |a − b| = {diff}");
}

#[test]
fn bad_input_is_a_clear_error_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let junk = tmp.path().join("junk.bltn");
    fs::write(&junk, b"not a blindtuner file at all").unwrap();
    let err = fails(&["inspect", junk.to_str().unwrap()], tmp.path());
    assert!(err.contains("junk.bltn"), "{err}");
    let err = fails(
        &[
            "train",
            "--data",
            junk.to_str().unwrap(),
            "--keys",
            junk.to_str().unwrap(),
        ],
        tmp.path(),
    );
    assert!(err.contains("junk.bltn"), "{err}");
    // A truncated dataset.
    let p = setup("8");
    let bytes = fs::read(p.cloud.join("dataset.bltn")).unwrap();
    fs::write(p.cloud.join("cut.bltn"), &bytes[..bytes.len() / 2]).unwrap();
    let err = fails(
        &["train", "--data", "cut.bltn", "--keys", "eval.keys"],
        &p.cloud,
    );
    assert!(err.contains("cut.bltn"), "{err}");
    // Bootstrapping needs keys made for it, and says how to get them, before anything runs.
    let err = fails(
        &[
            "train",
            "--data",
            "dataset.bltn",
            "--keys",
            "eval.keys",
            "--refresh",
            "bootstrap",
        ],
        &p.cloud,
    );
    assert!(err.contains("keygen --bootstrap"), "{err}");
    // The insecure preset is only reachable through its explicit flag.
    let err = fails(
        &[
            "keygen",
            "--out",
            "k",
            "--preset",
            "toy_insecure_train",
            "--dim",
            "4",
            "--classes",
            "2",
        ],
        tmp.path(),
    );
    assert!(err.contains("insecure"), "{err}");
}

#[test]
fn demo_json_reports_the_three_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let out = ok(
        &["demo", "--insecure-test-preset", "--steps", "3", "--json"],
        tmp.path(),
    );
    let line = out.lines().find(|l| l.starts_with('{')).expect("json line");
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["dataset"], "blood");
    assert_eq!(v["steps"], 3);
    assert_eq!(v["refresh_mode"], "hospital");
    assert_eq!(v["preset"], "toy_insecure_train");
    let (e, m, x) = (
        v["encrypted_acc"].as_f64().unwrap(),
        v["mirror_acc"].as_f64().unwrap(),
        v["exact_acc"].as_f64().unwrap(),
    );
    assert!((e - m).abs() <= 0.005, "encrypted {e} vs mirror {m}");
    assert!((m - x).abs() <= 0.01, "mirror {m} vs exact {x}");
    assert!(v["seconds_per_step"].as_f64().unwrap() > 0.0);
}

#[test]
fn bench_train_reports_ops_and_seconds_per_step_and_bootstrap_is_announced() {
    let tmp = tempfile::tempdir().unwrap();
    let out = ok(
        &[
            "bench",
            "train",
            "--insecure-test-preset",
            "--steps",
            "2",
            "--batch-chunks",
            "1",
            "--json",
        ],
        tmp.path(),
    );
    let v: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(v["bench"], "train");
    assert_eq!(v["batch_samples"], 4, "one chunk of 4 rows at N = 2^11");
    let steps = v["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2);
    for s in steps {
        // Same layout, same chunk count: the same products every step.
        assert_eq!(s["mult"], steps[0]["mult"]);
        assert!(s["mult"].as_u64().unwrap() > 0 && s["refresh"].as_u64().unwrap() > 0);
        let parts: f64 = [
            "seconds_mult",
            "seconds_rot",
            "seconds_refresh",
            "seconds_other",
        ]
        .iter()
        .map(|k| s[*k].as_f64().unwrap())
        .sum();
        let total = s["seconds"].as_f64().unwrap();
        assert!((parts - total).abs() <= 0.05 * total + 1e-3, "{s}");
    }
    let err = fails(&["bench", "bootstrap", "--logn", "12"], tmp.path());
    assert!(err.contains("--logn 16 and 10"), "{err}");
}

#[test]
fn train_reaches_the_hospital_over_loopback_tcp() {
    use std::io::BufRead;
    let p = setup("8");
    let mut child = Command::new(BIN)
        .args(["refresh", "--hospital"])
        .arg(&p.hospital)
        .args(["--listen", "127.0.0.1:0"])
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let _watcher = Watcher(child);
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("refresh: listening on ")
        .unwrap_or_else(|| panic!("{line}"))
        .to_string();
    let unused = p.cloud.join("no-exchange");
    let log = ok(
        &train_args(
            unused.to_str().unwrap(),
            "tcp.enc",
            &["--epochs", "1", "--patience", "1", "--hospital-addr", &addr],
        ),
        &p.cloud,
    );
    assert!(log.contains("step    2"), "{log}");
    assert!(log.contains("hospital's verdict"), "{log}");
    assert!(
        !unused.exists(),
        "no exchange directory with --hospital-addr"
    );
    let w = weights(&decrypt(&p, &p.cloud.join("tcp.enc"), "tcp"));
    assert!(w.iter().any(|x| x.abs() > 1e-3));
}

#[test]
fn the_cloud_trains_alone_with_bootstrapping_and_matches_the_hospital_refresh() {
    // Keys with the bootstrapping rotations (INSECURE toy bootstrapping chain, N = 2^10).
    let p = setup_with("4", &["--bootstrap"]);
    let ex = p.exchange.to_str().unwrap().to_string();
    let one_step = ["--epochs", "1", "--max-steps", "1", "--seed", "3"];
    // Reference: the same step with the hospital-aided refresh.
    let watcher = Watcher::start(&p.hospital, &p.exchange);
    ok(&train_args(&ex, "hospital.enc", &one_step), &p.cloud);
    drop(watcher);
    for e in fs::read_dir(&p.exchange).unwrap() {
        fs::remove_file(e.unwrap().path()).unwrap();
    }
    // The cloud alone: no hospital process runs, and no request reaches the exchange.
    let mut args = train_args(&ex, "boot.enc", &one_step);
    args.extend_from_slice(&["--refresh", "bootstrap"]);
    let log = ok(&args, &p.cloud);
    assert!(log.contains("refresh bootstrap"), "{log}");
    assert_eq!(
        fs::read_dir(&p.exchange).unwrap().count(),
        0,
        "bootstrapping sent nothing to the hospital"
    );
    let wh = weights(&decrypt(&p, &p.cloud.join("hospital.enc"), "hospital"));
    let wb = weights(&decrypt(&p, &p.cloud.join("boot.enc"), "boot"));
    assert_eq!(wh.len(), wb.len());
    let scale = wh.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    assert!(scale > 1e-3, "the step moved the weights");
    let diff = wh
        .iter()
        .zip(&wb)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f64, f64::max);
    assert!(
        diff <= 2f64.powi(-12) * scale.max(1.0),
        "bootstrapped vs hospital-refreshed weights: {diff:e} (scale {scale})"
    );
}

/// `bench train` arguments of the results runner at the INSECURE test preset, on 16 samples of
/// the blood fixture (4 chunks of 4 rows, one chunk per step).
fn results_args<'a>(steps: &'a str, dir: &'a str, history: &'a str) -> Vec<&'a str> {
    vec![
        "bench",
        "train",
        "--insecure-test-preset",
        "--samples",
        "16",
        "--batch-chunks",
        "1",
        "--steps",
        steps,
        "--checkpoint",
        dir,
        "--history",
        history,
        "--json",
    ]
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn bench_train_history_checkpoints_and_resumes_with_the_same_history() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    // Reference: two steps, uninterrupted.
    let out = ok(&results_args("2", "ck-a", "a.json"), t);
    let printed: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    let a = read_json(&t.join("a.json"));
    assert_eq!(printed["steps"], a["steps"], "--json prints the history");
    for k in [
        "exact_acc",
        "mirror_acc",
        "encrypted_acc",
        "seconds_per_step",
        "total_seconds",
        "train_seconds",
    ] {
        assert!(a[k].as_f64().is_some(), "{k} in {a}");
    }
    // The three runs agree: the mirror is the encrypted circuit in f64, exact the reference.
    let acc = |k: &str| a[k].as_f64().unwrap();
    assert!((acc("mirror_acc") - acc("exact_acc")).abs() < 0.05, "{a}");
    assert!(
        (acc("encrypted_acc") - acc("mirror_acc")).abs() < 0.02,
        "{a}"
    );
    assert_eq!(a["mode"], "encrypted");
    assert_eq!(a["preset"], "toy_insecure_train");
    assert_eq!(a["refresh_mode"], "hospital");
    assert_eq!(a["batch_samples"], 4);
    assert_eq!(a["train_samples"], 16);
    assert_eq!(a["steps_run"], 2);
    assert!(a["machine"]["cores"].as_u64().unwrap() >= 1);
    assert!(a["machine"]["cpu"].is_string() && a["threads"].as_u64().unwrap() >= 1);
    let steps = a["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2);
    for (i, s) in steps.iter().enumerate() {
        assert_eq!(s["step"], i + 1);
        assert!(s["mult"].as_u64().unwrap() > 0 && s["refresh"].as_u64().unwrap() > 0);
        for k in [
            "seconds_mult",
            "seconds_rot",
            "seconds_refresh",
            "seconds_other",
        ] {
            assert!(s[k].as_f64().unwrap() >= 0.0, "{k} in {s}");
        }
        for who in ["encrypted", "mirror", "exact"] {
            let acc = s[format!("test_acc_{who}")].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&acc), "{s}");
            assert!(s[format!("test_loss_{who}")].as_f64().unwrap() > 0.0, "{s}");
        }
    }
    // The first epoch (4 steps) is not over after 2 steps: no epoch record yet.
    assert_eq!(a["epochs"].as_array().unwrap().len(), 0);

    // Interrupted: six steps, SIGKILL once the first checkpoint is there, then the same
    // command again.
    let mut child = Command::new(BIN)
        .args(results_args("6", "ck-b", "b.json"))
        .current_dir(t)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ckpt = t.join("ck-b").join("run.ckpt");
    let t0 = Instant::now();
    while !ckpt.exists() {
        assert!(t0.elapsed() < Duration::from_secs(120), "no checkpoint");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // The history so far is there for `report` while a checkpointed run goes on.
    if t.join("b.json").exists() {
        assert_eq!(read_json(&t.join("b.json"))["finished"], false);
    }
    let info = ok(&["inspect", "ck-b/run.ckpt"], t);
    assert!(info.contains("Checkpoint"), "{info}");
    ok(&results_args("6", "ck-b", "b.json"), t);
    let b = read_json(&t.join("b.json"));
    let resumed = b["resumed_from_step"].as_u64().unwrap();
    // Killed after the first checkpoint, long before the sixth step: a real resume.
    assert!((1..6).contains(&resumed), "{resumed}");
    let bs = b["steps"].as_array().unwrap();
    assert_eq!(bs.len(), 6);
    assert_eq!(
        b["epochs"].as_array().unwrap().len(),
        1,
        "one whole epoch of 4 steps"
    );
    assert!(
        b["epochs"][0]["val_loss_encrypted"].as_f64().is_some(),
        "{b}"
    );
    // Same batches as the reference: exact and mirror agree exactly, encrypted to the noise.
    for (x, y) in steps.iter().zip(bs) {
        assert_eq!(x["step"], y["step"]);
        assert_eq!(x["mult"], y["mult"]);
        for k in ["test_loss_exact", "test_acc_exact", "test_loss_mirror"] {
            assert_eq!(x[k], y[k], "{k}");
        }
        let (e, f) = (
            x["test_loss_encrypted"].as_f64().unwrap(),
            y["test_loss_encrypted"].as_f64().unwrap(),
        );
        assert!((e - f).abs() < 1e-3, "{e} vs {f}");
    }
    // A finished run: the same command again changes nothing, not even the commit the
    // history names (the build that took the steps, not the one that re-read them).
    let mut named = read_json(&t.join("b.json"));
    named["git_commit"] = serde_json::json!("0123456789ab");
    fs::write(t.join("b.json"), named.to_string()).unwrap();
    ok(&results_args("6", "ck-b", "b.json"), t);
    let again = read_json(&t.join("b.json"));
    assert_eq!(again["steps"], b["steps"]);
    assert_eq!(again["git_commit"], "0123456789ab");
    assert_eq!(again["total_seconds"], named["total_seconds"]);
    // Other settings than the checkpoint's are refused, naming the difference.
    let mut other = results_args("6", "ck-b", "b.json");
    other.extend(["--lr", "0.5"]);
    let err = fails(&other, t);
    assert!(
        err.contains("other settings") && err.contains("lr"),
        "{err}"
    );
    // Nothing half-written is left: only the checkpoint and the key.
    let mut left: Vec<String> = fs::read_dir(t.join("ck-b"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| !n.ends_with(".tmp"))
        .collect();
    left.sort();
    assert_eq!(left, ["run.ckpt", "secret.key"]);

    // The figures and the table from the two histories.
    let out = ok(
        &[
            "report",
            "a.json",
            "b.json",
            "--out-dir",
            "img",
            "--markdown",
            "t.md",
        ],
        t,
    );
    assert!(out.contains("a-curves.png"), "{out}");
    for (name, w, h) in [
        ("a-curves.png", 1400, 560),
        ("a-ops.png", 1000, 520),
        ("b-curves.png", 1400, 560),
        ("b-ops.png", 1000, 520),
    ] {
        let bytes = fs::read(t.join("img").join(name)).unwrap();
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{name}");
        let img = image::load_from_memory(&bytes).unwrap();
        assert_eq!((img.width(), img.height()), (w, h), "{name}");
        // Something was drawn: not one flat colour.
        let rgb = img.to_rgb8();
        let first = *rgb.get_pixel(0, 0);
        assert!(rgb.pixels().any(|p| *p != first), "{name} is blank");
    }
    let md = fs::read_to_string(t.join("t.md")).unwrap();
    assert_eq!(
        md.matches("| blood | encrypted | toy_insecure_train |")
            .count(),
        2,
        "{md}"
    );
    assert!(md.contains("![a curves](img/a-curves.png)"), "{md}");
    let err = fails(&["report", "t.md"], t);
    assert!(err.contains("t.md"), "{err}");
}

#[test]
fn bench_train_mirror_only_and_bad_features_files() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let out = ok(
        &[
            "bench",
            "train",
            "--insecure-test-preset",
            "--mirror-only",
            "--samples",
            "64",
            "--epochs",
            "3",
            "--patience",
            "1",
            "--min-delta",
            "10",
            "--history",
            "m.json",
        ],
        t,
    );
    assert!(
        out.contains("mirror-only") && out.contains("no CKKS"),
        "{out}"
    );
    let m = read_json(&t.join("m.json"));
    assert_eq!(m["mode"], "mirror-only");
    assert_eq!(m["refresh_mode"], "none");
    assert!(m["encrypted_acc"].is_null());
    let (exact, mirror) = (
        m["exact_acc"].as_f64().unwrap(),
        m["mirror_acc"].as_f64().unwrap(),
    );
    assert!(exact > 0.3 && (exact - mirror).abs() < 0.05, "{m}");
    // An improvement of 10 in the loss never comes: stopped after the first bad epoch.
    assert_eq!(m["stopped_early"], true, "{m}");
    assert_eq!(m["epochs"].as_array().unwrap().len(), 2);
    let steps = m["steps"].as_array().unwrap();
    assert_eq!(
        steps.len(),
        16,
        "two epochs of 8 steps (64 samples, 2 chunks a step)"
    );
    assert!(steps.iter().all(|s| s.get("seconds_mult").is_none()));
    assert!(steps.last().unwrap()["test_acc_mirror"].as_f64().is_some());
    ok(&["report", "m.json", "--out-dir", "img"], t);
    assert!(t.join("img/m-curves.png").exists() && !t.join("img/m-ops.png").exists());

    let err = fails(
        &[
            "bench",
            "train",
            "--features",
            "missing.feat",
            "--mirror-only",
        ],
        t,
    );
    assert!(
        err.contains("missing.feat") && err.contains("no such features file"),
        "{err}"
    );
    fs::write(t.join("junk.feat"), b"not features").unwrap();
    let err = fails(
        &["bench", "train", "--features", "junk.feat", "--mirror-only"],
        t,
    );
    assert!(err.contains("junk.feat"), "{err}");
}

#[test]
fn results_script_quick_mode_writes_the_page_from_the_runs() {
    let have = |tool: &str| {
        Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !have("bash") || !have("python3") {
        eprintln!("skipped: scripts/results.sh needs bash and python3");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/results.sh");
    let out = Command::new("bash")
        .arg(&script)
        .args(["--quick", "--datasets", "blood"])
        .env("BLINDTUNER", BIN)
        .env("RESULTS_RUNS", t.join("runs"))
        .env("RESULTS_DOC", t.join("doc/RESULTS.md"))
        .env("RESULTS_IMG", t.join("doc/img"))
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{log}");
    let page = fs::read_to_string(t.join("doc/RESULTS.md")).unwrap();
    assert!(!page.contains("@@"), "template markers left:\n{page}");
    assert!(
        page.contains("| blood | mirror-only | toy_insecure_train |"),
        "{page}"
    );
    assert!(
        page.contains("| blood | encrypted | toy_insecure_train |"),
        "{page}"
    );
    assert!(
        page.contains("HETAL") && page.contains("MedBlindTuner"),
        "{page}"
    );
    for name in [
        "blood-full-mirror-curves.png",
        "blood-encrypted-curves.png",
        "blood-encrypted-ops.png",
    ] {
        assert!(page.contains(&format!("(img/{name})")), "{name} not linked");
        let bytes = fs::read(t.join("doc/img").join(name)).unwrap();
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{name}");
    }
    let h = read_json(&t.join("runs/blood-encrypted.json"));
    assert_eq!(h["steps_run"], 3);
    assert!(t.join("runs/blood-encrypted.ckpt/run.ckpt").exists());
}
