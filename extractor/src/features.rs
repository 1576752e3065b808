//! The `Features` file: DEiT features of one or more dataset splits, with labels and class names.
//!
//! Layout: the 24-byte [`fhe_core::wire`] header (kind [`ObjectKind::Features`], fingerprint 0,
//! payload length) followed by a postcard payload:
//!
//! | field | type | meaning |
//! | --- | --- | --- |
//! | `model` | string | model the features came from, e.g. `deit_tiny_patch16_224` |
//! | `source` | string | input they were extracted from, e.g. `bloodmnist.npz` |
//! | `dim` | u32 | feature dimension (192 for DeiT-tiny) |
//! | `class_names` | [string] | class `k` is `class_names[k]` |
//! | `splits` | [split] | at least one, names unique |
//!
//! and each split is `name` (string), `labels` ([u32], one per row), `indices` ([u64], the row's
//! index in its source split, for provenance), `precision` (u8: 0 = f32, 1 = f16) and `values`
//! (bytes: `rows × dim` little-endian floats, row-major).
//!
//! [`Features::from_bytes`] checks everything a consumer relies on: the header, the kind, that
//! the payload decodes with no bytes left over, `labels.len() == indices.len() == rows`,
//! `values.len() == rows × dim × width`, every label `< class_names.len()`, every value finite.
//! Malformed input is an error, never a panic. This module does not touch ONNX Runtime.

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use fhe_core::wire::{Header, ObjectKind};
use half::f16;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Largest feature dimension a file may declare (a sanity bound for untrusted input).
pub const MAX_DIM: usize = 1 << 16;

/// Features of several splits of one dataset.
#[derive(Clone, Debug, PartialEq)]
pub struct Features {
    /// Name of the model that produced the features (file stem of the ONNX model).
    pub model: String,
    /// Name of the input they were extracted from (file or folder name).
    pub source: String,
    /// Feature dimension: every row has this many values.
    pub dim: usize,
    /// Class names; labels index this list.
    pub class_names: Vec<String>,
    /// The splits, in the order they were extracted (usually train, val, test).
    pub splits: Vec<Split>,
}

/// One split: `rows` feature vectors with their labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Split {
    /// `train`, `val`, `test`, or another name.
    pub name: String,
    /// Class of each row.
    pub labels: Vec<u32>,
    /// Index of each row in its source split (file order), for provenance.
    pub indices: Vec<u64>,
    /// `rows × dim` values, row-major.
    pub values: Values,
}

/// Feature values at the precision they are stored in.
#[derive(Clone, Debug, PartialEq)]
pub enum Values {
    F32(Vec<f32>),
    F16(Vec<f16>),
}

/// Storage precision of feature values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Precision {
    #[default]
    F32,
    F16,
}

impl Precision {
    fn code(self) -> u8 {
        match self {
            Self::F32 => 0,
            Self::F16 => 1,
        }
    }

    /// `"f32"` or `"f16"`.
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
        }
    }
}

impl Values {
    /// Number of stored values.
    pub fn len(&self) -> usize {
        match self {
            Self::F32(v) => v.len(),
            Self::F16(v) => v.len(),
        }
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The precision they are stored at.
    pub fn precision(&self) -> Precision {
        match self {
            Self::F32(_) => Precision::F32,
            Self::F16(_) => Precision::F16,
        }
    }

    /// Value `i` as f32, if in range.
    pub fn get(&self, i: usize) -> Option<f32> {
        match self {
            Self::F32(v) => v.get(i).copied(),
            Self::F16(v) => v.get(i).map(|x| x.to_f32()),
        }
    }

    /// All values as f32 (a copy; exact for f16).
    pub fn to_f32(&self) -> Vec<f32> {
        match self {
            Self::F32(v) => v.clone(),
            Self::F16(v) => v.iter().map(|x| x.to_f32()).collect(),
        }
    }

    /// The same values at another precision (rounding to nearest when narrowing).
    pub fn to_precision(&self, precision: Precision) -> Values {
        match (self, precision) {
            (Self::F16(v), Precision::F32) => Self::F32(v.iter().map(|x| x.to_f32()).collect()),
            (Self::F32(v), Precision::F16) => {
                Self::F16(v.iter().copied().map(f16::from_f32).collect())
            }
            _ => self.clone(),
        }
    }
}

impl Split {
    /// Number of rows (feature vectors).
    pub fn rows(&self) -> usize {
        self.labels.len()
    }

    /// Row `r` as f32, if in range.
    pub fn row(&self, r: usize, dim: usize) -> Option<Vec<f32>> {
        let start = r.checked_mul(dim)?;
        (start..start.checked_add(dim)?)
            .map(|i| self.values.get(i))
            .collect()
    }

    /// How many rows each class has (length `classes`; labels ≥ `classes` are not counted).
    pub fn class_counts(&self, classes: usize) -> Vec<usize> {
        let mut counts = vec![0; classes];
        for &l in &self.labels {
            if let Some(c) = counts.get_mut(l as usize) {
                *c += 1;
            }
        }
        counts
    }
}

impl Features {
    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.class_names.len()
    }

    /// The split called `name`.
    pub fn split(&self, name: &str) -> Option<&Split> {
        self.splits.iter().find(|s| s.name == name)
    }

    /// Names of the splits, in file order.
    pub fn split_names(&self) -> Vec<&str> {
        self.splits.iter().map(|s| s.name.as_str()).collect()
    }

    /// Checks the invariants that [`Features::from_bytes`] guarantees for loaded files.
    pub fn validate(&self) -> Result<(), FormatError> {
        if self.dim == 0 || self.dim > MAX_DIM {
            return Err(FormatError::BadDim {
                dim: self.dim as u64,
            });
        }
        if self.class_names.is_empty() {
            return Err(FormatError::NoClasses);
        }
        if self.splits.is_empty() {
            return Err(FormatError::NoSplits);
        }
        for (i, s) in self.splits.iter().enumerate() {
            if self.splits.iter().take(i).any(|t| t.name == s.name) {
                return Err(FormatError::DuplicateSplit {
                    split: s.name.clone(),
                });
            }
            let rows = s.labels.len();
            if s.indices.len() != rows {
                return Err(FormatError::LengthMismatch {
                    split: s.name.clone(),
                    what: "indices",
                    expected: rows as u64,
                    found: s.indices.len() as u64,
                });
            }
            let expected = rows.checked_mul(self.dim).ok_or(FormatError::BadDim {
                dim: self.dim as u64,
            })?;
            if s.values.len() != expected {
                return Err(FormatError::LengthMismatch {
                    split: s.name.clone(),
                    what: "feature values",
                    expected: expected as u64,
                    found: s.values.len() as u64,
                });
            }
            if let Some((row, &label)) = s
                .labels
                .iter()
                .enumerate()
                .find(|(_, l)| **l as usize >= self.class_names.len())
            {
                return Err(FormatError::LabelOutOfRange {
                    split: s.name.clone(),
                    row,
                    label,
                    classes: self.class_names.len(),
                });
            }
            let non_finite = match &s.values {
                Values::F32(v) => v.iter().position(|x| !x.is_finite()),
                Values::F16(v) => v.iter().position(|x| !x.is_finite()),
            };
            if let Some(i) = non_finite {
                return Err(FormatError::NonFinite {
                    split: s.name.clone(),
                    row: i / self.dim,
                });
            }
        }
        Ok(())
    }

    /// The file bytes: header then postcard payload.
    pub fn to_bytes(&self) -> Result<Vec<u8>, FormatError> {
        self.validate()?;
        let wire = WireFeatures {
            model: self.model.clone(),
            source: self.source.clone(),
            dim: u32::try_from(self.dim).map_err(|_| FormatError::BadDim {
                dim: self.dim as u64,
            })?,
            class_names: self.class_names.clone(),
            splits: self
                .splits
                .iter()
                .map(|s| WireSplit {
                    name: s.name.clone(),
                    labels: s.labels.clone(),
                    indices: s.indices.clone(),
                    precision: s.values.precision().code(),
                    values: match &s.values {
                        Values::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                        Values::F16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                    },
                })
                .collect(),
        };
        let payload = postcard::to_stdvec(&wire).map_err(FormatError::Payload)?;
        let mut out = Vec::with_capacity(fhe_core::wire::HEADER_LEN + payload.len());
        out.extend_from_slice(&Header::encode(ObjectKind::Features, 0, payload.len()));
        out.extend_from_slice(&payload);
        Ok(out)
    }

    /// Parses and validates a Features file held in memory.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, FormatError> {
        let (_, payload) = Header::decode_expect(bytes, ObjectKind::Features, None)
            .map_err(FormatError::Header)?;
        let (wire, rest): (WireFeatures, &[u8]) =
            postcard::take_from_bytes(payload).map_err(FormatError::Payload)?;
        if !rest.is_empty() {
            return Err(FormatError::TrailingBytes { extra: rest.len() });
        }
        let dim = wire.dim as usize;
        if dim == 0 || dim > MAX_DIM {
            return Err(FormatError::BadDim {
                dim: u64::from(wire.dim),
            });
        }
        let mut splits = Vec::with_capacity(wire.splits.len());
        for s in wire.splits {
            let values = match s.precision {
                0 => Values::F32(decode_floats(&s.name, &s.values, 4, |b| {
                    f32::from_le_bytes([b[0], b[1], b[2], b[3]])
                })?),
                1 => Values::F16(decode_floats(&s.name, &s.values, 2, |b| {
                    f16::from_le_bytes([b[0], b[1]])
                })?),
                code => {
                    return Err(FormatError::UnknownPrecision {
                        split: s.name,
                        code,
                    });
                }
            };
            splits.push(Split {
                name: s.name,
                labels: s.labels,
                indices: s.indices,
                values,
            });
        }
        let features = Features {
            model: wire.model,
            source: wire.source,
            dim,
            class_names: wire.class_names,
            splits,
        };
        features.validate()?;
        Ok(features)
    }

    /// Reads and validates the Features file at `path`; errors name the file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::from_bytes(&bytes).map_err(|source| Error::Features {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Writes the file atomically: a temporary file in the same folder, synced, then renamed over
    /// `path`. On any error no file is left at `path` (an old one stays untouched).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let bytes = self.to_bytes().map_err(|source| Error::Features {
            path: path.to_path_buf(),
            source,
        })?;
        write_atomic(path, &bytes)
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path.file_name().ok_or_else(|| Error::Io {
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file path"),
    })?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        // Best effort: the temporary file may not exist if creating it failed.
        let _ = fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

fn decode_floats<T>(
    split: &str,
    bytes: &[u8],
    width: usize,
    f: impl Fn(&[u8]) -> T,
) -> Result<Vec<T>, FormatError> {
    if !bytes.len().is_multiple_of(width) {
        return Err(FormatError::LengthMismatch {
            split: split.to_owned(),
            what: "feature bytes (not a whole number of floats)",
            expected: (bytes.len() / width * width) as u64,
            found: bytes.len() as u64,
        });
    }
    Ok(bytes.chunks_exact(width).map(f).collect())
}

/// The postcard payload as it is on the wire.
#[derive(Serialize, Deserialize)]
struct WireFeatures {
    model: String,
    source: String,
    dim: u32,
    class_names: Vec<String>,
    splits: Vec<WireSplit>,
}

#[derive(Serialize, Deserialize)]
struct WireSplit {
    name: String,
    labels: Vec<u32>,
    indices: Vec<u64>,
    precision: u8,
    values: Vec<u8>,
}

/// Why bytes are not a valid Features file.
#[derive(Debug)]
#[non_exhaustive]
pub enum FormatError {
    /// The `BLTN` header is missing, truncated, of another kind or version, or the payload
    /// length disagrees with it.
    Header(fhe_core::Error),
    /// The payload does not decode.
    Payload(postcard::Error),
    /// Bytes after the payload's end.
    TrailingBytes { extra: usize },
    /// Dimension zero or above [`MAX_DIM`].
    BadDim { dim: u64 },
    /// No class names.
    NoClasses,
    /// No splits.
    NoSplits,
    /// Two splits with the same name.
    DuplicateSplit { split: String },
    /// A precision code other than 0 (f32) and 1 (f16).
    UnknownPrecision { split: String, code: u8 },
    /// A length that must equal another does not.
    LengthMismatch {
        split: String,
        what: &'static str,
        expected: u64,
        found: u64,
    },
    /// A label is not below the number of classes.
    LabelOutOfRange {
        split: String,
        row: usize,
        label: u32,
        classes: usize,
    },
    /// A feature value is NaN or infinite.
    NonFinite { split: String, row: usize },
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Header(e) => write!(f, "header: {e}"),
            Self::Payload(e) => write!(f, "payload does not decode: {e}"),
            Self::TrailingBytes { extra } => {
                write!(f, "{extra} bytes after the end of the payload")
            }
            Self::BadDim { dim } => write!(f, "feature dimension {dim} is outside 1..={MAX_DIM}"),
            Self::NoClasses => write!(f, "no class names"),
            Self::NoSplits => write!(f, "no splits"),
            Self::DuplicateSplit { split } => write!(f, "split `{split}` appears twice"),
            Self::UnknownPrecision { split, code } => {
                write!(
                    f,
                    "split `{split}`: unknown precision code {code} (0 = f32, 1 = f16)"
                )
            }
            Self::LengthMismatch {
                split,
                what,
                expected,
                found,
            } => {
                write!(f, "split `{split}`: {found} {what}, expected {expected}")
            }
            Self::LabelOutOfRange {
                split,
                row,
                label,
                classes,
            } => {
                write!(
                    f,
                    "split `{split}` row {row}: label {label} is not below the {classes} classes"
                )
            }
            Self::NonFinite { split, row } => {
                write!(f, "split `{split}` row {row}: NaN or infinite feature")
            }
        }
    }
}

impl std::error::Error for FormatError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Header(e) => Some(e),
            Self::Payload(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(precision: Precision) -> Features {
        let dim = 3;
        let values =
            Values::F32((0..12).map(|i| i as f32 * 0.25 - 1.0).collect()).to_precision(precision);
        Features {
            model: "tiny".into(),
            source: "unit.npz".into(),
            dim,
            class_names: vec!["a".into(), "b".into()],
            splits: vec![
                Split {
                    name: "train".into(),
                    labels: vec![0, 1, 1],
                    indices: vec![0, 4, 7],
                    values: values.clone(),
                }
                .truncate(dim, 3),
                Split {
                    name: "test".into(),
                    labels: vec![1, 0, 0, 1],
                    indices: vec![0, 1, 2, 3],
                    values,
                },
            ],
        }
    }

    impl Split {
        fn truncate(mut self, dim: usize, rows: usize) -> Self {
            self.values = match self.values {
                Values::F32(v) => Values::F32(v[..rows * dim].to_vec()),
                Values::F16(v) => Values::F16(v[..rows * dim].to_vec()),
            };
            self
        }
    }

    #[test]
    fn round_trip_both_precisions() {
        for p in [Precision::F32, Precision::F16] {
            let f = sample(p);
            let bytes = f.to_bytes().unwrap();
            assert_eq!(&bytes[..4], b"BLTN");
            let back = Features::from_bytes(&bytes).unwrap();
            assert_eq!(back, f);
            assert_eq!(
                back.split("train").unwrap().row(1, 3).unwrap(),
                vec![-0.25, 0.0, 0.25]
            );
            assert_eq!(back.split("test").unwrap().class_counts(2), vec![2, 2]);
        }
    }

    #[test]
    fn f16_file_is_about_half_the_size() {
        let a = sample(Precision::F32).to_bytes().unwrap().len();
        let b = sample(Precision::F16).to_bytes().unwrap().len();
        assert_eq!(a - b, 2 * (9 + 12));
    }

    #[test]
    fn every_prefix_and_every_byte_flip_is_an_error_or_valid_never_a_panic() {
        let bytes = sample(Precision::F16).to_bytes().unwrap();
        for cut in 0..bytes.len() {
            assert!(
                Features::from_bytes(&bytes[..cut]).is_err(),
                "prefix {cut} accepted"
            );
        }
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut b = bytes.clone();
                b[i] ^= 1 << bit;
                if let Ok(f) = Features::from_bytes(&b) {
                    f.validate().unwrap();
                }
            }
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Features::from_bytes(&longer).is_err());
    }

    #[test]
    fn random_bytes_are_rejected_without_panic() {
        // xorshift: deterministic pseudo-random input, some with a valid header in front.
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        for round in 0..2000 {
            let len = (next() % 512) as usize;
            let mut payload: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if round % 2 == 0 {
                let mut b = Header::encode(ObjectKind::Features, 0, payload.len()).to_vec();
                b.append(&mut payload);
                payload = b;
            }
            if let Ok(f) = Features::from_bytes(&payload) {
                f.validate().unwrap();
            }
        }
    }

    #[test]
    fn inconsistent_objects_are_rejected() {
        let mut f = sample(Precision::F32);
        f.splits[0].labels[1] = 2;
        assert!(matches!(
            f.to_bytes(),
            Err(FormatError::LabelOutOfRange {
                label: 2,
                classes: 2,
                ..
            })
        ));

        let mut f = sample(Precision::F32);
        f.splits[1].labels.pop();
        assert!(matches!(
            f.validate(),
            Err(FormatError::LengthMismatch {
                what: "indices",
                ..
            })
        ));

        let mut f = sample(Precision::F32);
        f.splits[1].labels.pop();
        f.splits[1].indices.pop();
        assert!(matches!(
            f.validate(),
            Err(FormatError::LengthMismatch {
                what: "feature values",
                ..
            })
        ));

        let mut f = sample(Precision::F32);
        f.splits[1].name = "train".into();
        assert!(matches!(
            f.validate(),
            Err(FormatError::DuplicateSplit { .. })
        ));

        let mut f = sample(Precision::F32);
        f.dim = 0;
        assert!(matches!(f.validate(), Err(FormatError::BadDim { dim: 0 })));

        let mut f = sample(Precision::F32);
        if let Values::F32(v) = &mut f.splits[0].values {
            v[4] = f32::NAN;
        }
        assert!(matches!(
            f.validate(),
            Err(FormatError::NonFinite { row: 1, .. })
        ));

        let mut f = sample(Precision::F32);
        f.splits.clear();
        assert!(matches!(f.validate(), Err(FormatError::NoSplits)));
    }

    #[test]
    fn wrong_kind_is_rejected() {
        let bytes = sample(Precision::F32).to_bytes().unwrap();
        let mut other = Header::encode(ObjectKind::Model, 0, bytes.len() - 24).to_vec();
        other.extend_from_slice(&bytes[24..]);
        let err = Features::from_bytes(&other).unwrap_err();
        assert!(
            matches!(err, FormatError::Header(fhe_core::Error::WrongKind { .. })),
            "{err}"
        );
    }

    #[test]
    fn save_is_atomic_and_load_names_the_file() {
        let dir = std::env::temp_dir().join(format!("extractor-features-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x.feat");
        let f = sample(Precision::F16);
        f.save(&path).unwrap();
        assert_eq!(Features::load(&path).unwrap(), f);
        let leftovers: Vec<_> = fs::read_dir(&dir).unwrap().filter_map(|e| e.ok()).collect();
        assert_eq!(leftovers.len(), 1, "temporary file left behind");

        // An invalid object is refused before anything is written.
        let mut bad = f.clone();
        bad.dim = 4;
        let err = bad.save(dir.join("bad.feat")).unwrap_err();
        assert!(err.to_string().contains("bad.feat"), "{err}");
        assert!(!dir.join("bad.feat").exists());

        fs::write(dir.join("trunc.feat"), &f.to_bytes().unwrap()[..40]).unwrap();
        let err = Features::load(dir.join("trunc.feat"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("trunc.feat") && err.contains("not a valid Features file"),
            "{err}"
        );
        let err = Features::load(dir.join("missing.feat"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing.feat"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
