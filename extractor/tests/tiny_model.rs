//! The whole pipeline on the committed tiny ONNX model (`fixtures/tiny_model/`), whose answer
//! is known in closed form: no dependence on `../shared`. Skips, saying why, only when the ONNX
//! Runtime library is not found.

mod common;

use common::data::{medmnist, write_npz};
use common::{max_abs_diff, runtime, temp_dir, tiny_model};
use extractor::extract::{ExtractOptions, extract};
use extractor::model::Model;
use extractor::npz::read_npz;
use extractor::preprocess::{PIXELS, SIZE, preprocess};
use extractor::{Error, Features, Precision, Selection, Values, folder};

/// The tiny model's features, computed in f64 from its definition (make_tiny_model.py).
fn expected_features(x: &[f32]) -> Vec<f32> {
    let mut flat = [0f64; 6];
    for c in 0..3 {
        for h in 0..SIZE {
            let row = &x[c * SIZE * SIZE + h * SIZE..][..SIZE];
            let mean = row.iter().map(|&v| f64::from(v)).sum::<f64>() / SIZE as f64;
            flat[c * 2] += mean / 224.0;
            flat[c * 2 + 1] += mean * h as f64 / (224.0 * 223.0);
        }
    }
    (0..8)
        .map(|j| {
            (0..6)
                .map(|i| flat[i] * ((((8 * i + j) % 7) as f64) - 3.0) / 4.0)
                .sum::<f64>() as f32
        })
        .collect()
}

fn load_tiny() -> Option<Model> {
    let rt = runtime()?;
    Some(Model::load(&tiny_model("tiny_model.onnx"), rt, 2).unwrap())
}

#[test]
fn known_answer_on_raw_batches() {
    let Some(mut model) = load_tiny() else { return };
    assert_eq!(model.dim(), 8);
    assert_eq!(model.name(), "tiny_model");
    let batch: Vec<f32> = (0..3 * PIXELS)
        .map(|i| ((i * 7919) % 1000) as f32 / 250.0 - 2.0)
        .collect();
    let got = model.run(&batch).unwrap();
    for n in 0..3 {
        let want = expected_features(&batch[n * PIXELS..(n + 1) * PIXELS]);
        let d = max_abs_diff(&got[n * 8..(n + 1) * 8], &want);
        assert!(d < 1e-5, "image {n}: {d}");
    }
    let err = model.run(&batch[..PIXELS - 1]).unwrap_err();
    assert!(matches!(err, Error::Inference { .. }), "{err}");
}

#[test]
fn npz_to_features_end_to_end() {
    let Some(mut model) = load_tiny() else { return };
    let dir = temp_dir("tiny-e2e");
    for (side, channels) in [(28, 3), (28, 0), (64, 1), (5, 3)] {
        let path = dir.join(format!("set{side}_{channels}.npz"));
        medmnist(&path, side, channels);
        let source = read_npz(&path).unwrap();
        assert_eq!(
            source
                .splits
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>(),
            ["train", "val", "test"]
        );
        assert_eq!(source.class_names, ["0", "1", "2"]);
        let plan: Vec<_> = ["train", "test"]
            .iter()
            .map(|s| {
                (
                    s.to_string(),
                    Selection {
                        limit: Some(5),
                        ..Selection::default()
                    },
                )
            })
            .collect();
        let opts = ExtractOptions {
            batch: 2,
            threads: 2,
            precision: Precision::F32,
            progress: false,
        };
        let (f, reports) = extract(&mut model, &source, &plan, &opts).unwrap();
        assert_eq!(f.dim, 8);
        assert_eq!(f.model, "tiny_model");
        assert_eq!(f.source, path.file_name().unwrap().to_string_lossy());
        assert_eq!(reports.iter().map(|r| r.rows).collect::<Vec<_>>(), [5, 5]);
        let train = f.split("train").unwrap();
        assert_eq!(train.labels, [0, 1, 2, 0, 1]);
        assert_eq!(train.indices, [0, 1, 2, 3, 4]);
        // Each row is the model applied to our preprocessing of that image.
        let split = source.split("train").unwrap();
        for r in 0..5 {
            let x = preprocess(split.images.get(r, &path).unwrap().view()).unwrap();
            let want = expected_features(&x);
            let d = max_abs_diff(&train.row(r, 8).unwrap(), &want);
            assert!(d < 1e-5, "{side}/{channels} row {r}: {d}");
        }
        // Batch size does not change the answer.
        let one = ExtractOptions {
            batch: 1,
            ..opts.clone()
        };
        let (g, _) = extract(&mut model, &source, &plan, &one).unwrap();
        let d = max_abs_diff(
            &g.split("test").unwrap().values.to_f32(),
            &f.split("test").unwrap().values.to_f32(),
        );
        assert!(d < 1e-6, "batch 1 vs 2: {d}");
        // f16 output is the f32 output rounded.
        let half = ExtractOptions {
            precision: Precision::F16,
            ..opts.clone()
        };
        let (h, _) = extract(&mut model, &source, &plan, &half).unwrap();
        assert!(matches!(h.splits[0].values, Values::F16(_)));
        assert_eq!(
            h.splits[0].values.to_f32(),
            f.splits[0].values.to_precision(Precision::F16).to_f32()
        );
        let out = dir.join("out.feat");
        h.save(&out).unwrap();
        assert_eq!(Features::load(&out).unwrap(), h);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn keras_layout_gets_a_val_split_from_the_end_of_train() {
    let Some(mut model) = load_tiny() else { return };
    let dir = temp_dir("tiny-keras");
    let path = dir.join("mnist.npz");
    write_npz(&path, |b| {
        let (shape, data) = common::data::images(20, 28, 0);
        b.add("x_train", &shape, data);
        b.add(
            "y_train",
            &[20],
            (0..20).map(|i| (i % 10) as u8).collect::<Vec<u8>>(),
        );
        let (shape, data) = common::data::images(3, 28, 0);
        b.add("x_test", &shape, data);
        b.add("y_test", &[3], vec![7i64, 2, 1]);
    });
    let source = read_npz(&path).unwrap();
    assert_eq!(source.class_names.len(), 10);
    let plan: Vec<_> = ["train", "val", "test"]
        .iter()
        .map(|s| (s.to_string(), Selection::default()))
        .collect();
    let (f, _) = extract(
        &mut model,
        &source,
        &plan,
        &ExtractOptions {
            threads: 2,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(f.split("train").unwrap().rows(), 18);
    let val = f.split("val").unwrap();
    assert_eq!(
        (val.labels.as_slice(), val.indices.as_slice()),
        ([8, 9].as_slice(), [0, 1].as_slice())
    );
    assert_eq!(f.split("test").unwrap().labels, [7, 2, 1]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn image_folder_with_odd_sizes_and_modes() {
    let Some(mut model) = load_tiny() else { return };
    let dir = temp_dir("tiny-folder");
    let cat = dir.join("cat");
    let dog = dir.join("dog");
    std::fs::create_dir_all(&cat).unwrap();
    std::fs::create_dir_all(&dog).unwrap();
    image::GrayImage::from_fn(28, 28, |x, y| image::Luma([(x * 9 + y) as u8]))
        .save(cat.join("a.png"))
        .unwrap();
    image::RgbImage::from_fn(300, 17, |x, y| image::Rgb([x as u8, y as u8, 7]))
        .save(cat.join("b.png"))
        .unwrap();
    image::RgbaImage::from_fn(1, 1, |_, _| image::Rgba([10, 20, 30, 0]))
        .save(dog.join("c.png"))
        .unwrap();
    image::ImageBuffer::<image::Luma<u16>, Vec<u16>>::from_fn(5, 400, |x, y| {
        image::Luma([(x * 1000 + y) as u16])
    })
    .save(dog.join("d.png"))
    .unwrap();
    image::RgbImage::from_fn(64, 48, |x, y| {
        image::Rgb([(x * 3) as u8, (y * 5) as u8, 200])
    })
    .save(dog.join("e.JPG"))
    .unwrap();
    std::fs::write(dog.join("notes.txt"), "ignored").unwrap();
    let source = folder::read_folder(&dir, None, None).unwrap();
    assert_eq!(source.class_names, ["cat", "dog"]);
    assert_eq!(source.split("train").unwrap().labels, [0, 0, 1, 1, 1]);
    let plan = vec![("train".to_string(), Selection::default())];
    let (f, _) = extract(
        &mut model,
        &source,
        &plan,
        &ExtractOptions {
            batch: 3,
            threads: 2,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(f.split("train").unwrap().rows(), 5);
    // The 1×1 RGBA pixel becomes a constant RGB image (alpha dropped).
    let c = f.split("train").unwrap().row(2, 8).unwrap();
    let constant: Vec<f32> = (0..3)
        .flat_map(|ch| {
            let v = (f32::from([10u8, 20, 30][ch]) / 255.0 - extractor::preprocess::MEAN[ch])
                / extractor::preprocess::STD[ch];
            std::iter::repeat_n(v, SIZE * SIZE)
        })
        .collect();
    assert!(max_abs_diff(&c, &expected_features(&constant)) < 1e-5);

    // The same with a CSV, splits from a column.
    let csv = dir.join("labels.csv");
    std::fs::write(
        &csv,
        "file,label,split\ncat/a.png,tabby,train\ndog/c.png,terrier,test\ncat/b.png,tabby,test\n",
    )
    .unwrap();
    let source = folder::read_folder(&dir, Some(&csv), None).unwrap();
    assert_eq!(source.class_names, ["tabby", "terrier"]);
    assert_eq!(source.split("test").unwrap().labels, [1, 0]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn missing_and_wrong_models_are_errors_naming_the_file() {
    let Some(rt) = runtime() else { return };
    let missing = tiny_model("no_such_model.onnx");
    let err = Model::load(&missing, rt, 1).unwrap_err().to_string();
    assert!(
        err.contains("no_such_model.onnx") && err.contains("not found"),
        "{err}"
    );

    let wrong = tiny_model("tiny_wrong_input.onnx");
    let err = Model::load(&wrong, rt, 1).unwrap_err();
    assert!(matches!(err, Error::ModelInterface { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("tiny_wrong_input.onnx")
            && msg.contains("`input`")
            && msg.contains("pixel_values"),
        "{msg}"
    );

    let not_onnx = tiny_model("make_tiny_model.py");
    let err = Model::load(&not_onnx, rt, 1).unwrap_err();
    assert!(
        matches!(err, Error::Model { .. }) && err.to_string().contains("make_tiny_model.py"),
        "{err}"
    );
}
