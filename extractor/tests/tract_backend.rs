//! The pure-Rust tract backend (feature `tract`) gives the same features as ONNX Runtime: the
//! tiny model's closed-form answer and the DeiT reference. Needs no ONNX Runtime library.
#![cfg(feature = "tract")]

mod common;

use common::{asset, max_abs_diff, tiny_model};
use extractor::Error;
use extractor::model::Model;
use extractor::npz::read_f32_array;
use extractor::preprocess::PIXELS;

#[test]
fn tiny_model_and_interface_errors() {
    let mut m = Model::load_tract(&tiny_model("tiny_model.onnx"), 2).unwrap();
    assert_eq!((m.dim(), m.backend()), (8, "tract"));
    // Constant input c in every channel: all row means are c, so pooled = (c, c/2) per channel.
    let x = vec![1.0f32; 2 * PIXELS];
    let f = m.run(&x).unwrap();
    let flat = [1.0, 0.5, 1.0, 0.5, 1.0, 0.5];
    let want: Vec<f32> = (0..8)
        .map(|j| {
            (0..6)
                .map(|i| flat[i] * ((((8 * i + j) % 7) as f64) - 3.0) / 4.0)
                .sum::<f64>() as f32
        })
        .collect();
    assert!(
        max_abs_diff(&f[..8], &want) < 1e-5 && max_abs_diff(&f[8..], &want) < 1e-5,
        "{f:?}"
    );
    let err = Model::load_tract(&tiny_model("tiny_wrong_input.onnx"), 1).unwrap_err();
    assert!(
        matches!(err, Error::ModelInterface { .. }) && err.to_string().contains("`input`"),
        "{err}"
    );
    let err = Model::load_tract(&tiny_model("make_tiny_model.py"), 1).unwrap_err();
    assert!(matches!(err, Error::Model { .. }), "{err}");
    assert!(Model::load_tract(&tiny_model("absent.onnx"), 1).is_err());
}

#[test]
fn deit_reference_with_tract() {
    let (Some(model), Some(reference)) = (
        asset("deit_tiny_patch16_224.onnx"),
        asset("deit_tiny_reference.npz"),
    ) else {
        return;
    };
    let mut m = Model::load_tract(&model, 2).unwrap();
    let (_, pixels) = read_f32_array(&reference, "pixel_values").unwrap();
    let (_, expected) = read_f32_array(&reference, "features").unwrap();
    let got = m.run(&pixels).unwrap();
    let d = max_abs_diff(&got, &expected);
    eprintln!("tract vs reference features: max |diff| = {d:e}");
    assert!(d < 1e-4, "{d}");
}
