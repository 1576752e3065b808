//! Reading labelled image sets from `.npz` files (NumPy zip archives).
//!
//! Two layouts are recognised:
//! - **MedMNIST** (v2 and MedMNIST+, any 2D set and size): `{train,val,test}_images` uint8
//!   `(N, H, W)` (grey) or `(N, H, W, 3)` (RGB), `{train,val,test}_labels` `(N, 1)` or `(N,)`.
//!   Splits whose two arrays are both present are read. Multi-label sets (ChestMNIST) are refused.
//! - **Keras** (`mnist.npz`, `cifar10`-style): `x_train, y_train, x_test, y_test`. There is no
//!   validation split in this layout, so one is made deterministically: the **last 10 %** of the
//!   training rows (rounded down) become `val`, the rest `train`, order kept. For MNIST's 60000
//!   training images that is rows 0..54000 → train, 54000..60000 → val.
//!
//! The archive is read with the `zip` crate and each array with `ndarray-npy`. Before an array is
//! read its npy header is checked against the zip directory (dtype, shape, and that the declared
//! size fits the entry), so a corrupt or hostile file gives an error naming the file and array,
//! never a panic or an absurd allocation.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use ndarray::ArrayD;
use ndarray_npy::{ReadNpyExt, ReadableElement};
use zip::ZipArchive;

use crate::error::{Error, Result};
use crate::source::{Images, Source, SourceSplit, known_class_names, numbered_class_names};

/// Fraction of the Keras training rows moved to `val` (the last ones).
pub const KERAS_VAL_FRACTION: (usize, usize) = (1, 10);

/// Deflate cannot expand data more than about 1032 : 1; a zip entry that claims more is corrupt.
const MAX_DEFLATE_RATIO: u64 = 1100;

type Archive = ZipArchive<BufReader<File>>;

/// Element type and shape from an npy header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NpyHeader {
    /// NumPy type string, e.g. `|u1`, `<i8`.
    pub descr: String,
    pub fortran_order: bool,
    pub shape: Vec<u64>,
}

impl NpyHeader {
    /// Bytes per element, from the descriptor (`<i8` → 8).
    pub fn item_size(&self) -> Option<u64> {
        self.descr.get(2..)?.parse().ok()
    }

    /// Kind letter: `u` unsigned, `i` signed, `f` float, `b` bool...
    pub fn kind(&self) -> Option<char> {
        self.descr.chars().nth(1)
    }

    fn shape_str(&self) -> String {
        let dims: Vec<String> = self.shape.iter().map(|d| d.to_string()).collect();
        format!("({})", dims.join(", "))
    }
}

/// Parses the header at the start of an `.npy` stream (format versions 1, 2 and 3).
pub fn parse_npy_header(mut r: impl Read) -> Result<NpyHeader, String> {
    let mut start = [0u8; 8];
    r.read_exact(&mut start)
        .map_err(|e| format!("cannot read the npy header: {e}"))?;
    if &start[..6] != b"\x93NUMPY" {
        return Err("not an npy array (bad magic)".into());
    }
    let len = match start[6] {
        1 => {
            let mut l = [0u8; 2];
            r.read_exact(&mut l)
                .map_err(|e| format!("truncated npy header: {e}"))?;
            u32::from(u16::from_le_bytes(l))
        }
        2 | 3 => {
            let mut l = [0u8; 4];
            r.read_exact(&mut l)
                .map_err(|e| format!("truncated npy header: {e}"))?;
            u32::from_le_bytes(l)
        }
        v => return Err(format!("unsupported npy format version {v}")),
    };
    if len > 1 << 20 {
        return Err(format!("npy header of {len} bytes is implausibly long"));
    }
    let mut text = vec![0u8; len as usize];
    r.read_exact(&mut text)
        .map_err(|e| format!("truncated npy header: {e}"))?;
    let text = String::from_utf8(text).map_err(|_| "npy header is not text".to_owned())?;
    let value = |key: &str| -> Result<&str, String> {
        let at = text
            .find(&format!("'{key}'"))
            .ok_or_else(|| format!("npy header has no '{key}'"))?;
        let rest = &text[at + key.len() + 2..];
        let colon = rest
            .find(':')
            .ok_or_else(|| format!("npy header: no value for '{key}'"))?;
        Ok(rest[colon + 1..].trim_start())
    };
    let descr = value("descr")?;
    let descr = descr
        .strip_prefix('\'')
        .and_then(|d| d.split('\'').next())
        .ok_or_else(|| "npy header: structured dtypes are not supported".to_owned())?
        .to_owned();
    let fortran_order = value("fortran_order")?.starts_with("True");
    let shape = value("shape")?;
    let shape = shape
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| "npy header: malformed shape".to_owned())?;
    let shape = shape
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.trim_end_matches('L')
                .parse::<u64>()
                .map_err(|_| format!("npy header: bad dimension `{s}`"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(NpyHeader {
        descr,
        fortran_order,
        shape,
    })
}

/// An open `.npz` file.
struct Npz<'p> {
    path: &'p Path,
    zip: Archive,
    names: Vec<String>,
}

impl<'p> Npz<'p> {
    fn open(path: &'p Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let zip = ZipArchive::new(BufReader::new(file)).map_err(|e| Error::Npz {
            path: path.to_path_buf(),
            problem: format!("not a readable .npz (zip) file: {e}"),
        })?;
        let names = zip
            .file_names()
            .map(|n| n.strip_suffix(".npy").unwrap_or(n).to_owned())
            .collect();
        Ok(Npz { path, zip, names })
    }

    fn has(&self, key: &str) -> bool {
        self.names.iter().any(|n| n == key)
    }

    fn err(&self, key: &str, problem: impl Into<String>) -> Error {
        array_err(self.path, key, problem)
    }

    fn entry_name(&self, key: &str) -> String {
        let with = format!("{key}.npy");
        if self.zip.file_names().any(|n| n == with) {
            with
        } else {
            key.to_owned()
        }
    }

    /// Reads the header of `key` and checks it against the zip entry's sizes.
    fn header(&mut self, key: &str) -> Result<NpyHeader> {
        let name = self.entry_name(key);
        let path = self.path;
        let entry = self
            .zip
            .by_name(&name)
            .map_err(|e| array_err(path, key, format!("cannot open: {e}")))?;
        let (size, compressed) = (entry.size(), entry.compressed_size());
        let header = parse_npy_header(entry).map_err(|p| array_err(path, key, p))?;
        if size
            > compressed
                .saturating_mul(MAX_DEFLATE_RATIO)
                .saturating_add(1 << 20)
        {
            return Err(self.err(
                key,
                format!("zip entry claims {size} bytes from {compressed} compressed: corrupt"),
            ));
        }
        let item = header
            .item_size()
            .ok_or_else(|| self.err(key, format!("unsupported dtype `{}`", header.descr)))?;
        let bytes = header
            .shape
            .iter()
            .try_fold(item, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| self.err(key, format!("shape {} overflows", header.shape_str())))?;
        if bytes > size {
            return Err(self.err(
                key,
                format!(
                    "shape {} needs {bytes} bytes but the entry holds {size}: truncated",
                    header.shape_str()
                ),
            ));
        }
        Ok(header)
    }

    fn read<T: ReadableElement>(&mut self, key: &str) -> Result<ArrayD<T>> {
        let name = self.entry_name(key);
        let path = self.path;
        let entry = self
            .zip
            .by_name(&name)
            .map_err(|e| array_err(path, key, format!("cannot open: {e}")))?;
        ArrayD::<T>::read_npy(entry).map_err(|e| array_err(path, key, format!("cannot read: {e}")))
    }

    /// Images: uint8, `(N, H, W)`, `(N, H, W, 1)` or `(N, H, W, 3)`.
    fn images(&mut self, key: &str) -> Result<Images> {
        let h = self.header(key)?;
        if h.descr != "|u1" && h.descr != "<u1" && h.descr != ">u1" {
            return Err(self.err(
                key,
                format!("images must be uint8, found dtype `{}`", h.descr),
            ));
        }
        let (count, height, width, channels) = match h.shape[..] {
            [n, hh, w] => (n, hh, w, 1),
            [n, hh, w, c @ (1 | 3)] => (n, hh, w, c),
            _ => {
                return Err(self.err(
                    key,
                    format!(
                        "images must have shape (N, H, W) or (N, H, W, 1|3), found {}",
                        h.shape_str()
                    ),
                ));
            }
        };
        if height == 0 || width == 0 {
            return Err(self.err(key, format!("empty images of shape {}", h.shape_str())));
        }
        let array = self.read::<u8>(key)?;
        let data = if array.is_standard_layout() {
            array.into_raw_vec_and_offset().0
        } else {
            array.iter().copied().collect()
        };
        let to =
            |v: u64| usize::try_from(v).map_err(|_| self.err(key, "too large for this machine"));
        Ok(Images::Array {
            width: to(width)?,
            height: to(height)?,
            channels: to(channels)?,
            count: to(count)?,
            data,
        })
    }

    /// Labels: any integer dtype, `(N,)` or `(N, 1)`, non-negative.
    fn labels(&mut self, key: &str) -> Result<Vec<u32>> {
        let h = self.header(key)?;
        match h.shape[..] {
            [_] | [_, 1] => {}
            [_, k] => {
                return Err(self.err(
                    key,
                    format!(
                        "{k} labels per image (multi-label, e.g. ChestMNIST) are not supported"
                    ),
                ));
            }
            _ => {
                return Err(self.err(
                    key,
                    format!(
                        "labels must have shape (N,) or (N, 1), found {}",
                        h.shape_str()
                    ),
                ));
            }
        }
        let values: Vec<i128> = match (h.kind(), h.item_size()) {
            (Some('u'), Some(1)) => self.read::<u8>(key)?.iter().map(|&v| v.into()).collect(),
            (Some('u'), Some(2)) => self.read::<u16>(key)?.iter().map(|&v| v.into()).collect(),
            (Some('u'), Some(4)) => self.read::<u32>(key)?.iter().map(|&v| v.into()).collect(),
            (Some('u'), Some(8)) => self.read::<u64>(key)?.iter().map(|&v| v.into()).collect(),
            (Some('i'), Some(1)) => self.read::<i8>(key)?.iter().map(|&v| v.into()).collect(),
            (Some('i'), Some(2)) => self.read::<i16>(key)?.iter().map(|&v| v.into()).collect(),
            (Some('i'), Some(4)) => self.read::<i32>(key)?.iter().map(|&v| v.into()).collect(),
            (Some('i'), Some(8)) => self.read::<i64>(key)?.iter().map(|&v| v.into()).collect(),
            _ => {
                return Err(self.err(
                    key,
                    format!("labels must be integers, found dtype `{}`", h.descr),
                ));
            }
        };
        values
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                u32::try_from(v)
                    .map_err(|_| self.err(key, format!("row {i}: label {v} is not a class index")))
            })
            .collect()
    }

    fn split(&mut self, name: &str, images_key: &str, labels_key: &str) -> Result<SourceSplit> {
        let images = self.images(images_key)?;
        let labels = self.labels(labels_key)?;
        if labels.len() != images.len() {
            return Err(self.err(
                labels_key,
                format!(
                    "{} labels for {} images in `{images_key}`",
                    labels.len(),
                    images.len()
                ),
            ));
        }
        Ok(SourceSplit {
            name: name.to_owned(),
            labels,
            images,
        })
    }
}

fn array_err(path: &Path, key: &str, problem: impl Into<String>) -> Error {
    Error::NpzArray {
        path: path.to_path_buf(),
        key: key.to_owned(),
        problem: problem.into(),
    }
}

/// Reads every split of a MedMNIST or Keras-layout `.npz` file (see the module docs).
pub fn read_npz(path: &Path) -> Result<Source> {
    read_npz_splits(path, None)
}

/// Like [`read_npz`] but reads only the named splits (all when `None`); a split the file does
/// not have is an error listing those it has.
pub fn read_npz_splits(path: &Path, only: Option<&[String]>) -> Result<Source> {
    let mut npz = Npz::open(path)?;
    let wanted = |s: &str| only.is_none_or(|o| o.iter().any(|w| w == s));
    let medmnist: Vec<&str> = ["train", "val", "test"]
        .into_iter()
        .filter(|s| npz.has(&format!("{s}_images")) && npz.has(&format!("{s}_labels")))
        .collect();
    let keras = medmnist.is_empty() && npz.has("x_train") && npz.has("y_train");
    let keras_test = keras && npz.has("x_test") && npz.has("y_test");
    let available: Vec<String> = if !medmnist.is_empty() {
        medmnist.iter().map(|s| (*s).to_owned()).collect()
    } else if keras {
        let n = if keras_test { 3 } else { 2 };
        ["train", "val", "test"]
            .iter()
            .take(n)
            .map(|s| (*s).to_owned())
            .collect()
    } else {
        return Err(Error::NpzLayout {
            path: path.to_path_buf(),
            found: npz.names.clone(),
        });
    };
    if let Some(missing) = only.and_then(|o| o.iter().find(|w| !available.contains(w))) {
        return Err(Error::MissingSplit {
            path: path.to_path_buf(),
            split: missing.clone(),
            available,
        });
    }
    // Label arrays of every split (to count classes even when only some splits are read).
    let label_keys: Vec<String> = if keras {
        ["y_train", "y_test"]
            .iter()
            .take(if keras_test { 2 } else { 1 })
            .map(|k| (*k).to_owned())
            .collect()
    } else {
        medmnist.iter().map(|s| format!("{s}_labels")).collect()
    };
    let mut splits = Vec::new();
    if keras {
        if wanted("train") || wanted("val") {
            let all = npz.split("train", "x_train", "y_train")?;
            let (train, val) = split_off_val(all);
            splits.extend([train, val].into_iter().filter(|s| wanted(&s.name)));
        }
        if keras_test && wanted("test") {
            splits.push(npz.split("test", "x_test", "y_test")?);
        }
    } else {
        for s in medmnist.into_iter().filter(|s| wanted(s)) {
            splits.push(npz.split(s, &format!("{s}_images"), &format!("{s}_labels"))?);
        }
    }
    let mut max_label = None;
    for key in &label_keys {
        let m = npz.labels(key)?.into_iter().max();
        max_label = max_label.max(m);
    }
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let class_names = match known_class_names(&stem) {
        Some(names) => {
            if let Some(m) = max_label.filter(|&m| m as usize >= names.len()) {
                return Err(Error::Npz {
                    path: path.to_path_buf(),
                    problem: format!(
                        "label {m} found, but `{stem}` has {} classes; rename the file if it is \
                         another dataset",
                        names.len()
                    ),
                });
            }
            names
        }
        None => numbered_class_names(max_label.map_or(1, |m| m as usize + 1)),
    };
    Ok(Source {
        path: path.to_path_buf(),
        name: stem,
        class_names,
        splits,
    })
}

/// Moves the last [`KERAS_VAL_FRACTION`] of a Keras training split into a `val` split.
fn split_off_val(all: SourceSplit) -> (SourceSplit, SourceSplit) {
    let n = all.labels.len();
    let n_val = n * KERAS_VAL_FRACTION.0 / KERAS_VAL_FRACTION.1;
    let n_train = n - n_val;
    let mut labels = all.labels;
    let val_labels = labels.split_off(n_train);
    let (train_images, val_images) = match all.images {
        Images::Array {
            width,
            height,
            channels,
            mut data,
            ..
        } => {
            let val = data.split_off(n_train * width * height * channels);
            (
                Images::Array {
                    width,
                    height,
                    channels,
                    count: n_train,
                    data,
                },
                Images::Array {
                    width,
                    height,
                    channels,
                    count: n_val,
                    data: val,
                },
            )
        }
        Images::Files(mut files) => {
            let val = files.split_off(n_train);
            (Images::Files(files), Images::Files(val))
        }
    };
    (
        SourceSplit {
            name: "train".into(),
            labels,
            images: train_images,
        },
        SourceSplit {
            name: "val".into(),
            labels: val_labels,
            images: val_images,
        },
    )
}

/// Reads one array of any dtype as `f32` (for test fixtures such as `deit_tiny_reference.npz`).
pub fn read_f32_array(path: &Path, key: &str) -> Result<(Vec<usize>, Vec<f32>)> {
    let mut npz = Npz::open(path)?;
    if !npz.has(key) {
        return Err(Error::NpzArray {
            path: path.to_path_buf(),
            key: key.to_owned(),
            problem: format!("not in the file (it has {})", npz.names.join(", ")),
        });
    }
    let h = npz.header(key)?;
    let array: ArrayD<f32> = match h.descr.as_str() {
        "<f4" => npz.read::<f32>(key)?,
        "<f8" => npz.read::<f64>(key)?.mapv(|v| v as f32),
        "|u1" => npz.read::<u8>(key)?.mapv(f32::from),
        d => return Err(npz.err(key, format!("unsupported dtype `{d}` for a float array"))),
    };
    let shape = array.shape().to_vec();
    Ok((shape, array.as_standard_layout().iter().copied().collect()))
}
