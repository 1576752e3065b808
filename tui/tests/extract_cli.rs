//! `blindtuner extract` end to end on the committed tiny model: success, and bad inputs that
//! must fail with a message naming the file and leave no output file behind.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn tiny(name: &str) -> PathBuf {
    repo().join("fixtures/tiny_model").join(name)
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("blindtuner-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A folder of six PNGs in two classes.
fn image_folder(dir: &Path) -> PathBuf {
    let root = dir.join("images");
    for (class, n) in [("benign", 4u32), ("malignant", 2)] {
        std::fs::create_dir_all(root.join(class)).unwrap();
        for i in 0..n {
            image::RgbImage::from_fn(20 + i, 30, |x, y| {
                image::Rgb([(x * 7) as u8, (y * 3) as u8, (i * 50) as u8])
            })
            .save(root.join(class).join(format!("{i}.png")))
            .unwrap();
        }
    }
    root
}

fn blindtuner(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_blindtuner"));
    c.arg("extract")
        .args(args)
        .current_dir(repo())
        .env_remove("ORT_DYLIB_PATH");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn have_runtime() -> bool {
    match extractor::runtime::locate(None) {
        Ok(_) => true,
        Err(e) => {
            eprintln!("skipping: ONNX Runtime library not found ({e})");
            false
        }
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn extracts_an_image_folder_with_the_tiny_model() {
    if !have_runtime() {
        return;
    }
    let dir = temp_dir("ok");
    let images = image_folder(&dir);
    let out = dir.join("out.feat");
    let model = tiny("tiny_model.onnx");
    let o = blindtuner(
        &[
            "--model",
            s(&model),
            "--images",
            s(&images),
            "--f16",
            "--batch",
            "4",
            "--threads",
            "2",
            "--out",
            s(&out),
        ],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("wrote"), "{}", stderr(&o));
    let f = extractor::Features::load(&out).unwrap();
    assert_eq!(
        (f.dim, f.class_names.clone(), f.model.as_str()),
        (8, vec!["benign".into(), "malignant".into()], "tiny_model")
    );
    assert_eq!(f.split("train").unwrap().labels, [0, 0, 0, 0, 1, 1]);
    assert_eq!(
        f.split("train").unwrap().values.precision(),
        extractor::Precision::F16
    );

    // Per-class limit, quiet.
    let o = blindtuner(
        &[
            "--model",
            s(&model),
            "--images",
            s(&images),
            "--per-class-limit",
            "1",
            "-q",
            "--out",
            s(&out),
        ],
        &[],
    );
    assert!(o.status.success() && o.stderr.is_empty(), "{}", stderr(&o));
    assert_eq!(
        extractor::Features::load(&out)
            .unwrap()
            .split("train")
            .unwrap()
            .labels,
        [0, 1]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_inputs_fail_naming_the_file_and_write_nothing() {
    let dir = temp_dir("bad");
    let images = image_folder(&dir);
    let out = dir.join("never.feat");
    let model = tiny("tiny_model.onnx");
    let garbage = dir.join("garbage.npz");
    std::fs::write(&garbage, b"PK\x03\x04 truncated").unwrap();
    let missing_model = dir.join("missing.onnx");
    let wrong_model = tiny("tiny_wrong_input.onnx");
    let missing_lib = dir.join("nolib/libonnxruntime.so");
    let not_a_lib = tiny("make_tiny_model.py");
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let no_dir_out = dir.join("no/such/dir/x.feat");

    // (arguments, environment, texts the error must contain)
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, Vec<String>);
    let mut cases: Vec<Case> = vec![
        (
            vec!["--npz", s(&garbage)],
            vec![],
            vec![s(&garbage).into(), "not a readable .npz".into()],
        ),
        (
            vec!["--images", s(&empty)],
            vec![],
            vec!["empty".into(), "no images found".into()],
        ),
        (
            vec!["--images", s(&images), "--splits", "test"],
            vec![],
            vec!["no split `test`".into()],
        ),
        (
            vec!["--images", s(&images), "--batch", "0"],
            vec![],
            vec!["--batch".into()],
        ),
        (
            vec!["--images", s(&images), "--limit", "x"],
            vec![],
            vec!["--limit".into()],
        ),
        (
            vec!["--images", s(&images), "--ort-lib", s(&missing_lib)],
            vec![],
            vec![s(&missing_lib).into(), "not found".into()],
        ),
        (
            vec!["--images", s(&images)],
            vec![("ORT_DYLIB_PATH", s(&missing_lib))],
            vec![s(&missing_lib).into(), "ORT_DYLIB_PATH".into()],
        ),
        (
            vec!["--images", s(&images), "--ort-lib", s(&not_a_lib)],
            vec![],
            vec![
                s(&not_a_lib).into(),
                "cannot load the ONNX Runtime library".into(),
            ],
        ),
    ];
    if have_runtime() {
        cases.push((
            vec!["--images", s(&images), "--model", s(&missing_model)],
            vec![],
            vec![s(&missing_model).into(), "model file not found".into()],
        ));
        cases.push((
            vec!["--images", s(&images), "--model", s(&wrong_model)],
            vec![],
            vec![
                s(&wrong_model).into(),
                "wrong model interface".into(),
                "pixel_values".into(),
            ],
        ));
    }
    for (args, env, expected) in cases {
        let mut all = vec!["--out", s(&out)];
        if !args.contains(&"--model") {
            all.extend(["--model", s(&model)]);
        }
        all.extend(args.iter().copied());
        let o = blindtuner(&all, &env);
        let err = stderr(&o);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        for e in &expected {
            assert!(
                err.contains(e.as_str()),
                "{args:?}: expected `{e}` in:\n{err}"
            );
        }
        assert!(!out.exists(), "{args:?} left an output file");
    }
    let o = blindtuner(&["--images", s(&images), "--out", s(&no_dir_out)], &[]);
    assert!(
        !o.status.success() && stderr(&o).contains("does not exist"),
        "{}",
        stderr(&o)
    );
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    assert!(
        leftovers
            .iter()
            .all(|n| !n.to_string_lossy().ends_with(".tmp")),
        "{leftovers:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `--backend tract` works with no ONNX Runtime anywhere (a feature-`tract` build), or says how
/// to get it (a default build).
#[test]
fn tract_backend_or_a_clear_refusal() {
    let dir = temp_dir("tract");
    let images = image_folder(&dir);
    let out = dir.join("tract.feat");
    let model = tiny("tiny_model.onnx");
    let missing_lib = dir.join("nolib/libonnxruntime.so");
    let o = blindtuner(
        &[
            "--backend",
            "tract",
            "--model",
            s(&model),
            "--images",
            s(&images),
            "--out",
            s(&out),
        ],
        // A broken ORT_DYLIB_PATH proves ONNX Runtime is not touched.
        &[("ORT_DYLIB_PATH", s(&missing_lib))],
    );
    if cfg!(feature = "tract") {
        assert!(o.status.success(), "{}", stderr(&o));
        let f = extractor::Features::load(&out).unwrap();
        assert_eq!((f.dim, f.split("train").unwrap().rows()), (8, 6));
    } else {
        assert!(
            !o.status.success() && stderr(&o).contains("--features tract"),
            "{}",
            stderr(&o)
        );
        assert!(!out.exists());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn help_explains_every_option() {
    let o = blindtuner(&["--help"], &[]);
    let text = String::from_utf8_lossy(&o.stdout);
    for opt in [
        "--model",
        "--npz",
        "--images",
        "--labels-csv",
        "--splits",
        "--limit",
        "--stratified",
        "--per-class-limit",
        "--f16",
        "--batch",
        "--threads",
        "--ort-lib",
        "--out",
    ] {
        assert!(text.contains(opt), "{opt} missing from --help");
    }
}
