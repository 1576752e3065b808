//! Reading labelled images from a folder of PNG / JPEG files.
//!
//! Labels come from subfolder names or from a CSV file:
//! - `DIR/<class>/<image>`: one split, `train`, with a class per subfolder.
//! - `DIR/<split>/<class>/<image>` where `<split>` is `train`, `val` or `test`: those splits.
//! - `--labels-csv FILE`: a CSV with a header row naming a `file` column (paths relative to
//!   `DIR`, or absolute) and a `label` column (class names), and optionally a `split` column
//!   (rows without it go to `train`).
//!
//! Class names are sorted: numerically when all of them are integers, otherwise as strings, so
//! class indices do not depend on the order files are listed in. Files with other extensions
//! and hidden files are ignored; images are listed in file-name order and decoded only when
//! features are extracted. Grey images (8 or 16 bit, with or without alpha) stay grey; everything
//! else becomes 8-bit RGB (alpha dropped, 16-bit scaled to 8).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::preprocess::Image;
use crate::source::{Images, Source, SourceSplit};

/// File extensions read as images (lower case).
pub const IMAGE_EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// Split folder names recognised under the root.
const SPLIT_DIRS: [&str; 3] = ["train", "val", "test"];

/// Decodes one PNG / JPEG file to 8-bit grey or RGB.
pub fn decode_image(path: &Path) -> Result<Image> {
    let bad = |problem: String| Error::Image {
        path: path.to_path_buf(),
        problem,
    };
    let reader = image::ImageReader::open(path)
        .map_err(|e| Error::io(path, e))?
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))?;
    let img = reader
        .decode()
        .map_err(|e| bad(format!("cannot decode image: {e}")))?;
    let (width, height) = (img.width() as usize, img.height() as usize);
    if width == 0 || height == 0 {
        return Err(bad(format!("empty image ({width}×{height})")));
    }
    use image::ColorType as C;
    let (channels, data) = match img.color() {
        C::L8 | C::La8 | C::L16 | C::La16 => (1, img.to_luma8().into_raw()),
        _ => (3, img.to_rgb8().into_raw()),
    };
    Ok(Image {
        width,
        height,
        channels,
        data,
    })
}

fn is_image(path: &Path) -> bool {
    let hidden = path
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with('.'));
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    !hidden && path.is_file() && ext.is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.as_str()))
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut entries = fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| Error::io(dir, e))?;
    entries.sort();
    Ok(entries)
}

fn subdirs(dir: &Path) -> Result<Vec<PathBuf>> {
    Ok(sorted_entries(dir)?
        .into_iter()
        .filter(|p| {
            p.is_dir()
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect())
}

fn name_of(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Sorts class names numerically if they all are integers, else as strings.
fn sort_classes(names: BTreeSet<String>) -> Vec<String> {
    let mut v: Vec<String> = names.into_iter().collect();
    if v.iter().all(|n| n.parse::<u64>().is_ok()) {
        v.sort_by_key(|n| n.parse::<u64>().unwrap_or(u64::MAX));
    }
    v
}

/// Reads a folder of images (see the module docs); `only` restricts the splits.
pub fn read_folder(
    dir: &Path,
    labels_csv: Option<&Path>,
    only: Option<&[String]>,
) -> Result<Source> {
    if !dir.is_dir() {
        return Err(Error::io(
            dir,
            std::io::Error::new(std::io::ErrorKind::NotFound, "not a folder"),
        ));
    }
    // (split, class name, file) triples.
    let mut rows: Vec<(String, String, PathBuf)> = Vec::new();
    let hint;
    if let Some(csv_path) = labels_csv {
        rows = read_labels_csv(dir, csv_path)?;
        hint = format!("{} lists no rows", csv_path.display());
    } else {
        let top = subdirs(dir)?;
        let split_dirs: Vec<&PathBuf> = top
            .iter()
            .filter(|p| SPLIT_DIRS.contains(&name_of(p).as_str()))
            .collect();
        let layout: Vec<(String, PathBuf)> = if split_dirs.is_empty() {
            vec![("train".to_owned(), dir.to_path_buf())]
        } else {
            split_dirs
                .iter()
                .map(|p| (name_of(p), (*p).clone()))
                .collect()
        };
        for (split, root) in layout {
            for class_dir in subdirs(&root)? {
                let class = name_of(&class_dir);
                for file in sorted_entries(&class_dir)?
                    .into_iter()
                    .filter(|p| is_image(p))
                {
                    rows.push((split.clone(), class.clone(), file));
                }
            }
        }
        hint = format!(
            "expected {0}/<class>/<image>.png|jpg or {0}/<train|val|test>/<class>/<image>, or pass --labels-csv",
            dir.display()
        );
    }
    if rows.is_empty() {
        return Err(Error::NoImages {
            path: dir.to_path_buf(),
            hint,
        });
    }
    let class_names = sort_classes(rows.iter().map(|r| r.1.clone()).collect());
    let mut split_names: Vec<String> = Vec::new();
    for r in &rows {
        if !split_names.contains(&r.0) {
            split_names.push(r.0.clone());
        }
    }
    // Natural order: train, val, test, then others as first seen.
    split_names.sort_by_key(|s| {
        SPLIT_DIRS
            .iter()
            .position(|d| d == s)
            .unwrap_or(SPLIT_DIRS.len())
    });
    if let Some(only) = only {
        if let Some(missing) = only.iter().find(|w| !split_names.contains(w)) {
            return Err(Error::MissingSplit {
                path: dir.to_path_buf(),
                split: missing.clone(),
                available: split_names,
            });
        }
        split_names.retain(|s| only.contains(s));
    }
    let splits = split_names
        .into_iter()
        .map(|name| {
            let (labels, files) = rows
                .iter()
                .filter(|r| r.0 == name)
                .map(|r| {
                    (
                        class_names.iter().position(|c| *c == r.1).unwrap_or(0) as u32,
                        r.2.clone(),
                    )
                })
                .unzip();
            SourceSplit {
                name,
                labels,
                images: Images::Files(files),
            }
        })
        .collect();
    Ok(Source {
        path: dir.to_path_buf(),
        name: name_of(dir),
        class_names,
        splits,
    })
}

fn read_labels_csv(dir: &Path, csv_path: &Path) -> Result<Vec<(String, String, PathBuf)>> {
    let err = |line: u64, problem: String| Error::LabelsCsv {
        path: csv_path.to_path_buf(),
        line,
        problem,
    };
    let file = fs::File::open(csv_path).map_err(|e| Error::io(csv_path, e))?;
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(file);
    let headers = reader
        .headers()
        .map_err(|e| err(1, format!("cannot read the header row: {e}")))?
        .clone();
    let col = |names: &[&str]| {
        headers
            .iter()
            .position(|h| names.contains(&h.to_ascii_lowercase().as_str()))
    };
    let file_col = col(&["file", "filename", "path", "image"]).ok_or_else(|| {
        err(
            1,
            "the header row has no `file` column (also accepted: filename, path, image)".into(),
        )
    })?;
    let label_col = col(&["label", "class"]).ok_or_else(|| {
        err(
            1,
            "the header row has no `label` column (also accepted: class)".into(),
        )
    })?;
    let split_col = col(&["split"]);
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            err(line, format!("{e}"))
        })?;
        let line = record.position().map_or(0, |p| p.line());
        let field = |i: usize, what: &str| {
            record
                .get(i)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| err(line, format!("empty {what}")))
        };
        let file = field(file_col, "file name")?;
        let label = field(label_col, "label")?;
        let split = match split_col {
            Some(c) => field(c, "split")?,
            None => "train".to_owned(),
        };
        let path = dir.join(&file);
        if !path.is_file() {
            return Err(err(
                line,
                format!("image {} does not exist", path.display()),
            ));
        }
        rows.push((split, label, path));
    }
    Ok(rows)
}
