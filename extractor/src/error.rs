//! The error type of the extractor. Every variant that concerns a file names it; the CLI adds
//! context with `anyhow` on top.

use std::path::{Path, PathBuf};

use crate::features::FormatError;

/// Errors of the extractor. Messages start with the file they concern.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A `Features` file is malformed (bad header, payload, or inconsistent lengths).
    #[error("{}: not a valid Features file: {source}", path.display())]
    Features {
        path: PathBuf,
        #[source]
        source: FormatError,
    },
    /// A `.npz` file could not be read (not a zip, truncated, an array that does not parse).
    #[error("{}: {problem}", path.display())]
    Npz { path: PathBuf, problem: String },
    /// A `.npz` file has neither the MedMNIST nor the Keras MNIST layout.
    #[error(
        "{}: unknown .npz layout: expected MedMNIST keys `{{train,val,test}}_{{images,labels}}` or \
         Keras keys `x_train, y_train, x_test, y_test`; the file has {}",
        path.display(),
        list(found)
    )]
    NpzLayout { path: PathBuf, found: Vec<String> },
    /// An array in a `.npz` file has the wrong type or shape, or a label is out of range.
    #[error("{}: array `{key}`: {problem}", path.display())]
    NpzArray {
        path: PathBuf,
        key: String,
        problem: String,
    },
    /// An image file could not be decoded or has an unusable size.
    #[error("{}: {problem}", path.display())]
    Image { path: PathBuf, problem: String },
    /// A labels CSV is malformed or names a file that does not exist.
    #[error("{}: line {line}: {problem}", path.display())]
    LabelsCsv {
        path: PathBuf,
        line: u64,
        problem: String,
    },
    /// A folder (or a CSV) yielded no images.
    #[error("{}: no images found ({hint})", path.display())]
    NoImages { path: PathBuf, hint: String },
    /// A split was asked for that the input does not have.
    #[error("{}: no split `{split}` (the input has {})", path.display(), list(available))]
    MissingSplit {
        path: PathBuf,
        split: String,
        available: Vec<String>,
    },
    /// No ONNX Runtime library was found in any of the places searched.
    #[error(
        "ONNX Runtime library not found (looked at {}); run scripts/setup-ort.sh, set \
         ORT_DYLIB_PATH, or pass --ort-lib",
        paths(tried)
    )]
    RuntimeNotFound { tried: Vec<PathBuf> },
    /// The ONNX Runtime library exists but could not be loaded (wrong file, wrong version).
    #[error("{}: cannot load the ONNX Runtime library: {reason}", path.display())]
    RuntimeLoad { path: PathBuf, reason: String },
    /// ONNX Runtime is process-global: once one library is loaded another cannot replace it.
    #[error(
        "{}: ONNX Runtime was already loaded from {} in this process; it cannot be switched",
        requested.display(),
        loaded.display()
    )]
    RuntimeMismatch { requested: PathBuf, loaded: PathBuf },
    /// The model file is missing or ONNX Runtime refused it.
    #[error("{}: {problem}", path.display())]
    Model { path: PathBuf, problem: String },
    /// The model does not have the interface of the DEiT export.
    #[error("{}: wrong model interface: {problem}", path.display())]
    ModelInterface { path: PathBuf, problem: String },
    /// ONNX Runtime failed while running the model.
    #[error("{}: inference failed: {reason}", path.display())]
    Inference { path: PathBuf, reason: String },
    /// An option has an unusable value (batch size 0, an unknown split name...).
    #[error("invalid {option}: {problem}")]
    InvalidOption {
        option: &'static str,
        problem: String,
    },
}

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Result with the extractor's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "nothing".to_owned()
    } else {
        items
            .iter()
            .map(|s| format!("`{s}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn paths(items: &[PathBuf]) -> String {
    if items.is_empty() {
        "nowhere".to_owned()
    } else {
        items
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}
