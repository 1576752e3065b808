//! DeiT-tiny against `deit_tiny_reference.npz` (PyTorch/onnxruntime features of two MedMNIST
//! images preprocessed with Pillow) and the `sin` fixture of `shared/assets/README.md`.
//! Skips, saying why, when the shared assets or the ONNX Runtime library are absent.

mod common;

use common::{asset, cosine, max_abs_diff, runtime};
use extractor::model::Model;
use extractor::npz::{read_f32_array, read_npz_splits};
use extractor::preprocess::{PIXELS, preprocess};

const MODEL: &str = "deit_tiny_patch16_224.onnx";
const REFERENCE: &str = "deit_tiny_reference.npz";

fn deit() -> Option<Model> {
    let path = asset(MODEL)?;
    let rt = runtime()?;
    Some(Model::load(&path, rt, 2).expect("DeiT loads"))
}

#[test]
fn reference_pixel_values_give_reference_features() {
    let (Some(reference), Some(mut model)) = (asset(REFERENCE), deit()) else {
        return;
    };
    assert_eq!(model.dim(), 192);
    let (shape, pixels) = read_f32_array(&reference, "pixel_values").unwrap();
    assert_eq!(shape, [2, 3, 224, 224]);
    let (fshape, expected) = read_f32_array(&reference, "features").unwrap();
    assert_eq!(fshape, [2, 192]);
    // As one batch of two, and one at a time.
    let both = model.run(&pixels).unwrap();
    assert!(
        max_abs_diff(&both, &expected) < 1e-4,
        "batch: {}",
        max_abs_diff(&both, &expected)
    );
    for i in 0..2 {
        let one = model.run(&pixels[i * PIXELS..(i + 1) * PIXELS]).unwrap();
        let want = &expected[i * 192..(i + 1) * 192];
        assert!(
            max_abs_diff(&one, want) < 1e-4,
            "image {i}: {}",
            max_abs_diff(&one, want)
        );
    }
}

/// Our preprocessing of BloodMNIST and OrganAMNIST `test_images[0]` against the reference's
/// Pillow preprocessing (`pixel_values`), and the resulting features against its `features`.
#[test]
fn own_preprocessing_matches_pillow_and_reference_features() {
    let Some(reference) = asset(REFERENCE) else {
        return;
    };
    let (_, ref_pixels) = read_f32_array(&reference, "pixel_values").unwrap();
    let (_, ref_features) = read_f32_array(&reference, "features").unwrap();
    let mut model = deit();
    for (row, file) in [(0, "bloodmnist.npz"), (1, "organamnist.npz")] {
        let Some(path) = asset(file) else { continue };
        let source = read_npz_splits(&path, Some(&["test".to_owned()])).unwrap();
        let split = source.split("test").unwrap();
        let img = split.images.get(0, &path).unwrap();
        let ours = preprocess(img.view()).unwrap();
        let theirs = &ref_pixels[row * PIXELS..(row + 1) * PIXELS];
        let diff = max_abs_diff(&ours, theirs);
        eprintln!("{file}: max |ours - Pillow| over pixel values = {diff:e}");
        assert!(
            diff < 1e-5,
            "{file}: preprocessing differs from Pillow by {diff}"
        );
        if let Some(model) = model.as_mut() {
            let f = model.run(&ours).unwrap();
            let c = cosine(&f, &ref_features[row * 192..(row + 1) * 192]);
            eprintln!("{file}: cosine to the reference features = {c:.7}");
            assert!(c >= 0.999, "{file}: cosine {c}");
        }
    }
}

#[test]
fn sin_input_fixture() {
    let Some(mut model) = deit() else { return };
    let x: Vec<f32> = (0..PIXELS)
        .map(|i| ((i % 9973) as f32 * 0.001).sin())
        .collect();
    let f = model.run(&x).unwrap();
    let expected = [1.29619, 0.22447, -0.48904, 0.94079, -0.23585];
    for (i, (got, want)) in f.iter().zip(expected).enumerate() {
        assert!((got - want).abs() < 2e-4, "feature {i}: {got} vs {want}");
    }
}
