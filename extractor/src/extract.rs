//! The extraction loop: choose rows, preprocess a batch on all cores, run the model, repeat;
//! with a progress bar (rate and ETA) per split.

use std::path::PathBuf;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::features::{Features, Precision, Split, Values};
use crate::model::Model;
use crate::preprocess::{PIXELS, preprocess_into};
use crate::source::{Images, Selection, Source};

/// How to run an extraction.
#[derive(Clone, Debug)]
pub struct ExtractOptions {
    /// Images per model call.
    pub batch: usize,
    /// Threads for preprocessing (ONNX Runtime's own thread count is set when the model is
    /// loaded).
    pub threads: usize,
    /// Precision the features are stored at.
    pub precision: Precision,
    /// Draw a progress bar on stderr (only shown on a terminal).
    pub progress: bool,
}

impl Default for ExtractOptions {
    fn default() -> Self {
        Self {
            batch: 32,
            threads: default_threads(),
            precision: Precision::F32,
            progress: false,
        }
    }
}

/// All available cores.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// What happened in one split.
#[derive(Clone, Debug, PartialEq)]
pub struct SplitReport {
    pub name: String,
    /// Rows extracted.
    pub rows: usize,
    /// Rows of each class.
    pub class_counts: Vec<usize>,
    /// Wall-clock seconds (preprocessing and inference).
    pub seconds: f64,
}

impl SplitReport {
    /// Images per second.
    pub fn rate(&self) -> f64 {
        if self.seconds > 0.0 {
            self.rows as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// Extracts features of the splits in `plan` (split name and the rows to take) from `source`.
pub fn extract(
    model: &mut Model,
    source: &Source,
    plan: &[(String, Selection)],
    options: &ExtractOptions,
) -> Result<(Features, Vec<SplitReport>)> {
    if options.batch == 0 {
        return Err(Error::InvalidOption {
            option: "batch size",
            problem: "must be at least 1".into(),
        });
    }
    if plan.is_empty() {
        return Err(Error::InvalidOption {
            option: "splits",
            problem: "no split to extract".into(),
        });
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(options.threads.max(1))
        .build()
        .map_err(|e| Error::InvalidOption {
            option: "threads",
            problem: e.to_string(),
        })?;
    let dim = model.dim();
    let mut splits = Vec::with_capacity(plan.len());
    let mut reports = Vec::with_capacity(plan.len());
    let mut pixels: Vec<f32> = Vec::new();
    for (name, selection) in plan {
        let split = source.split(name)?;
        let indices = selection.apply(&split.labels);
        let started = Instant::now();
        let bar = progress_bar(options.progress, name, indices.len());
        let mut values = Vec::with_capacity(indices.len() * dim);
        for chunk in indices.chunks(options.batch) {
            pixels.resize(chunk.len() * PIXELS, 0.0);
            pool.install(|| {
                pixels
                    .par_chunks_mut(PIXELS)
                    .zip(chunk.par_iter())
                    .try_for_each(|(out, &i)| {
                        let img = split.images.get(i, &source.path)?;
                        preprocess_into(img.view(), out).map_err(|e| {
                            let (path, at) = match &split.images {
                                Images::Files(f) => (
                                    f.get(i).cloned().unwrap_or_else(|| source.path.clone()),
                                    String::new(),
                                ),
                                Images::Array { .. } => {
                                    (source.path.clone(), format!("split `{name}` image {i}: "))
                                }
                            };
                            Error::Image {
                                path,
                                problem: format!("{at}{e}"),
                            }
                        })
                    })
            })?;
            values.extend(model.run(&pixels)?);
            bar.inc(chunk.len() as u64);
        }
        bar.finish_and_clear();
        let labels: Vec<u32> = indices.iter().map(|&i| split.labels[i]).collect();
        let values = Values::F32(values).to_precision(options.precision);
        let out = Split {
            name: name.clone(),
            indices: indices.iter().map(|&i| i as u64).collect(),
            labels,
            values,
        };
        reports.push(SplitReport {
            name: name.clone(),
            rows: out.rows(),
            class_counts: out.class_counts(source.class_names.len()),
            seconds: started.elapsed().as_secs_f64(),
        });
        splits.push(out);
    }
    let source_name = source
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| PathBuf::from(&source.name).display().to_string());
    let features = Features {
        model: model.name().to_owned(),
        source: source_name,
        dim,
        class_names: source.class_names.clone(),
        splits,
    };
    Ok((features, reports))
}

fn progress_bar(show: bool, name: &str, len: usize) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len as u64).with_prefix(name.to_owned());
    let style = ProgressStyle::with_template(
        "{prefix:>6} [{bar:32}] {pos}/{len} images  {per_sec}  elapsed {elapsed}  ETA {eta}",
    );
    if let Ok(style) = style {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}
