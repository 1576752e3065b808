//! The pure-Rust backend (feature `tract`): the model runs in `tract-onnx`, so extraction needs
//! no ONNX Runtime library at all. It computes the same features (the DeiT reference tests pass
//! with it) but about half as fast as ONNX Runtime on 2 cores, so ONNX Runtime stays the
//! default; see docs/EXTRACTOR.md.
//!
//! tract optimises a model for fixed input shapes, so one plan is kept per batch size seen
//! (usually two per split: the batch size and the last, shorter batch).

use std::path::Path;
use std::sync::Arc;

use tract_linalg::multithread::{Executor, multithread_tract_scope};
use tract_onnx::prelude::*;

use crate::model::{INPUT, OUTPUT};
use crate::preprocess::{PIXELS, SIZE};

type Plan = Arc<TypedRunnableModel>;

/// A model loaded into tract, with its optimised plans.
pub(crate) struct TractModel {
    model: InferenceModel,
    plans: Vec<(usize, Plan)>,
    executor: Executor,
}

impl std::fmt::Debug for TractModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TractModel")
            .field("plans", &self.plans.len())
            .finish_non_exhaustive()
    }
}

/// Why a model cannot be used: not loadable, or the wrong interface.
pub(crate) enum LoadError {
    Model(String),
    Interface(String),
}

impl TractModel {
    /// Loads `path`, checks its interface and returns it with its feature dimension.
    pub(crate) fn load(path: &Path, threads: usize) -> Result<(TractModel, usize), LoadError> {
        let model_err =
            |e: TractError| LoadError::Model(format!("tract cannot load this model: {e:#}"));
        let mut model = tract_onnx::onnx().model_for_path(path).map_err(model_err)?;
        let inputs: Vec<String> = model
            .input_outlets()
            .map_err(model_err)?
            .iter()
            .map(|o| model.node(o.node).name.clone())
            .collect();
        if inputs != [INPUT] {
            return Err(LoadError::Interface(format!(
                "inputs are {}; expected exactly one, `{INPUT}`: f32 (batch, 3, {SIZE}, {SIZE})",
                inputs
                    .iter()
                    .map(|i| format!("`{i}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let outputs = model.output_outlets().map_err(model_err)?.to_vec();
        let label = |o: &OutletId| {
            model
                .outlet_label(*o)
                .map(str::to_owned)
                .unwrap_or_else(|| model.node(o.node).name.clone())
        };
        let names: Vec<String> = outputs.iter().map(label).collect();
        let Some(features) = outputs
            .iter()
            .zip(&names)
            .find(|(_, n)| *n == OUTPUT)
            .map(|(o, _)| *o)
        else {
            return Err(LoadError::Interface(format!(
                "outputs are {}; expected `{OUTPUT}`: f32 (batch, dim)",
                names
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        model
            .select_output_outlets(&[features])
            .map_err(model_err)?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .build()
            .map_err(|e| LoadError::Model(format!("cannot start {threads} threads: {e}")))?;
        let mut tm = TractModel {
            model,
            plans: Vec::new(),
            executor: Executor::MultiThread(Arc::new(pool)),
        };
        let plan = tm.plan(1).map_err(|e| {
            LoadError::Interface(format!("cannot be run on (1, 3, {SIZE}, {SIZE}): {e:#}"))
        })?;
        let fact = plan.model().output_fact(0).map_err(model_err)?;
        let dims: Option<Vec<usize>> = fact.shape.as_concrete().map(|d| d.to_vec());
        match (fact.datum_type, dims.as_deref()) {
            (DatumType::F32, Some([1, dim])) if *dim > 0 => {
                let dim = *dim;
                Ok((tm, dim))
            }
            (dt, _) => Err(LoadError::Interface(format!(
                "`{OUTPUT}` is {dt:?} {:?}; expected f32 (batch, dim)",
                fact.shape
            ))),
        }
    }

    fn plan(&mut self, batch: usize) -> TractResult<Plan> {
        if let Some((_, p)) = self.plans.iter().find(|(b, _)| *b == batch) {
            return Ok(p.clone());
        }
        let plan = self
            .model
            .clone()
            .with_input_fact(0, f32::fact([batch, 3, SIZE, SIZE]).into())?
            .into_optimized()?
            .into_runnable()?;
        if self.plans.len() >= 4 {
            self.plans.remove(0);
        }
        self.plans.push((batch, plan.clone()));
        Ok(plan)
    }

    /// Runs a batch (`batch × PIXELS` floats) and returns `batch × dim` features.
    pub(crate) fn run(&mut self, pixels: &[f32]) -> Result<Vec<f32>, String> {
        let batch = pixels.len() / PIXELS;
        let plan = self.plan(batch).map_err(|e| format!("{e:#}"))?;
        let input =
            Tensor::from_shape(&[batch, 3, SIZE, SIZE], pixels).map_err(|e| format!("{e:#}"))?;
        let outputs =
            multithread_tract_scope(self.executor.clone(), || plan.run(tvec!(input.into())))
                .map_err(|e| format!("{e:#}"))?;
        let out = outputs.first().ok_or("no output")?;
        let view = out
            .to_plain_array_view::<f32>()
            .map_err(|e| format!("{e:#}"))?;
        Ok(view.iter().copied().collect())
    }
}
