//! A DEiT-style feature model: input `pixel_values` float32 `[batch, 3, 224, 224]`, output
//! `features` float32 `[batch, dim]` (other outputs, such as `logits`, are not computed). It runs
//! in an ONNX Runtime session, or with feature `tract` optionally in the pure-Rust tract engine.

use std::path::{Path, PathBuf};

use ort::session::{RunOptions, Session, builder::GraphOptimizationLevel};
use ort::value::{TensorElementType, TensorRef, ValueType};

use crate::error::{Error, Result};
use crate::preprocess::{PIXELS, SIZE};
use crate::runtime::Runtime;

/// Name of the model input.
pub const INPUT: &str = "pixel_values";
/// Name of the features output.
pub const OUTPUT: &str = "features";

/// The engine a [`Model`] runs in.
#[derive(Debug)]
enum Backend {
    Ort(Box<Session>),
    #[cfg(feature = "tract")]
    Tract(Box<crate::tract::TractModel>),
}

/// A loaded feature model.
#[derive(Debug)]
pub struct Model {
    backend: Backend,
    path: PathBuf,
    name: String,
    dim: usize,
}

fn describe(outlets: &[ort::value::Outlet]) -> String {
    let items: Vec<String> = outlets
        .iter()
        .map(|o| format!("`{}`: {}", o.name(), o.dtype()))
        .collect();
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

impl Model {
    /// Opens the ONNX model at `path` with `threads` intra-op threads and checks its interface.
    pub fn load(path: &Path, runtime: &Runtime, threads: usize) -> Result<Model> {
        let fail = |problem: String| Error::Model {
            path: path.to_path_buf(),
            problem,
        };
        if !path.is_file() {
            return Err(fail("model file not found".into()));
        }
        let session = Session::builder(runtime.env())
            .and_then(|b| {
                b.with_optimization_level(GraphOptimizationLevel::All)
                    .map_err(Into::into)
            })
            .and_then(|b| b.with_intra_threads(threads.max(1)).map_err(Into::into))
            .and_then(|b| b.with_inter_threads(1).map_err(Into::into))
            .and_then(|mut b| b.commit_from_file(path))
            .map_err(|e| fail(format!("ONNX Runtime cannot load this model: {e}")))?;
        let interface = |problem: String| Error::ModelInterface {
            path: path.to_path_buf(),
            problem,
        };
        let inputs = session.inputs();
        let input_ok = inputs.len() == 1
            && inputs.iter().all(|i| {
                i.name() == INPUT
                    && matches!(i.dtype(), ValueType::Tensor { ty: TensorElementType::Float32, shape, .. }
                        if shape.len() == 4 && shape[1..].iter().zip([3, SIZE as i64, SIZE as i64]).all(|(&d, e)| d == e || d < 0))
            });
        if !input_ok {
            return Err(interface(format!(
                "inputs are {}; expected exactly one, `{INPUT}`: Tensor<f32>(batch, 3, {SIZE}, {SIZE})",
                describe(inputs)
            )));
        }
        let outputs = session.outputs();
        let dim = outputs
            .iter()
            .find(|o| o.name() == OUTPUT)
            .and_then(|o| match o.dtype() {
                ValueType::Tensor {
                    ty: TensorElementType::Float32,
                    shape,
                    ..
                } if shape.len() == 2 && shape[1] > 0 => usize::try_from(shape[1]).ok(),
                _ => None,
            });
        let dim = dim.ok_or_else(|| {
            interface(format!(
                "outputs are {}; expected `{OUTPUT}`: Tensor<f32>(batch, dim) with a fixed dim",
                describe(outputs)
            ))
        })?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(Model {
            backend: Backend::Ort(Box::new(session)),
            path: path.to_path_buf(),
            name,
            dim,
        })
    }

    /// Opens the ONNX model at `path` in the pure-Rust tract engine (no ONNX Runtime library
    /// needed) with `threads` threads, and checks its interface.
    #[cfg(feature = "tract")]
    pub fn load_tract(path: &Path, threads: usize) -> Result<Model> {
        if !path.is_file() {
            return Err(Error::Model {
                path: path.to_path_buf(),
                problem: "model file not found".into(),
            });
        }
        let (tm, dim) = crate::tract::TractModel::load(path, threads).map_err(|e| match e {
            crate::tract::LoadError::Model(problem) => Error::Model {
                path: path.to_path_buf(),
                problem,
            },
            crate::tract::LoadError::Interface(problem) => Error::ModelInterface {
                path: path.to_path_buf(),
                problem,
            },
        })?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(Model {
            backend: Backend::Tract(Box::new(tm)),
            path: path.to_path_buf(),
            name,
            dim,
        })
    }

    /// `"onnxruntime"` or `"tract"`.
    pub fn backend(&self) -> &'static str {
        match self.backend {
            Backend::Ort(_) => "onnxruntime",
            #[cfg(feature = "tract")]
            Backend::Tract(_) => "tract",
        }
    }

    /// Model name (file stem).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The model file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Feature dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Runs a batch of preprocessed images (`batch × 3 × 224 × 224` floats, CHW each) and returns
    /// `batch × dim` features, row-major.
    pub fn run(&mut self, pixels: &[f32]) -> Result<Vec<f32>> {
        let fail = |reason: String| Error::Inference {
            path: self.path.clone(),
            reason,
        };
        if pixels.is_empty() || !pixels.len().is_multiple_of(PIXELS) {
            return Err(fail(format!(
                "{} input floats is not a positive multiple of {PIXELS}",
                pixels.len()
            )));
        }
        let batch = pixels.len() / PIXELS;
        #[allow(
            clippy::infallible_destructuring_match,
            reason = "a second arm exists with feature `tract`"
        )]
        let session = match &mut self.backend {
            Backend::Ort(session) => session,
            #[cfg(feature = "tract")]
            Backend::Tract(tm) => {
                let out = tm.run(pixels).map_err(fail)?;
                if out.len() != batch * self.dim {
                    return Err(fail(format!(
                        "{} features for {batch} images of dim {}",
                        out.len(),
                        self.dim
                    )));
                }
                return Ok(out);
            }
        };
        let input = TensorRef::from_array_view(([batch, 3, SIZE, SIZE], pixels))
            .map_err(|e| fail(e.to_string()))?;
        let options = RunOptions::new()
            .map_err(|e| fail(e.to_string()))?
            .with_outputs(ort::session::OutputSelector::no_default().with(OUTPUT));
        let outputs = session
            .run_with_options(ort::inputs![INPUT => input], &options)
            .map_err(|e| Error::Inference {
                path: self.path.clone(),
                reason: e.to_string(),
            })?;
        let value = outputs.get(OUTPUT).ok_or_else(|| Error::Inference {
            path: self.path.clone(),
            reason: format!("no `{OUTPUT}` output"),
        })?;
        let (shape, data) = value
            .try_extract_tensor::<f32>()
            .map_err(|e| Error::Inference {
                path: self.path.clone(),
                reason: e.to_string(),
            })?;
        let expected = [batch as i64, self.dim as i64];
        if shape[..] != expected || data.len() != batch * self.dim {
            return Err(Error::Inference {
                path: self.path.clone(),
                reason: format!("`{OUTPUT}` has shape {shape}, expected {expected:?}"),
            });
        }
        Ok(data.to_vec())
    }
}
