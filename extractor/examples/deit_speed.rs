//! Inference speed of an ONNX feature model through `ort`, comparable with the Python
//! onnxruntime figure in `shared/assets/README.md`:
//!
//! ```sh
//! cargo run --release -p extractor --example deit_speed -- [MODEL] [THREADS]
//! ```
//!
//! Times `Model::run` (inference only, input already preprocessed) for batch 1 (128 calls) and
//! batch 64 (4 calls) after one warm-up call each, and prints ms per image and images/s.

use std::path::PathBuf;
use std::time::Instant;

use extractor::model::Model;
use extractor::preprocess::PIXELS;
use extractor::runtime;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let model = PathBuf::from(
        args.next()
            .unwrap_or_else(|| "../shared/assets/deit_tiny_patch16_224.onnx".into()),
    );
    let threads: usize = args.next().map_or(Ok(2), |t| t.parse())?;
    let rt = runtime::load(None)?;
    let mut model = Model::load(&model, rt, threads)?;
    for (batch, calls) in [(1usize, 128usize), (64, 4)] {
        let x: Vec<f32> = (0..batch * PIXELS)
            .map(|i| ((i % 9973) as f32 * 0.001).sin())
            .collect();
        model.run(&x)?;
        let t = Instant::now();
        for _ in 0..calls {
            model.run(&x)?;
        }
        let per_image = t.elapsed().as_secs_f64() / (batch * calls) as f64;
        println!(
            "rust ort batch {batch}: {:.1} ms/image, {:.1} images/s ({threads} threads)",
            per_image * 1e3,
            1.0 / per_image
        );
    }
    Ok(())
}
