//! What features are extracted from: a [`Source`] with named splits of labelled images, read
//! from a MedMNIST / Keras `.npz` ([`crate::npz`]) or an image folder ([`crate::folder`]), and
//! how a subset of each split is chosen ([`Selection`]).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::preprocess::{Image, ImageRef};

/// Labelled images in named splits.
#[derive(Debug)]
pub struct Source {
    /// The file or folder they were read from (for error messages).
    pub path: PathBuf,
    /// Short name: the file stem (`bloodmnist`) or folder name.
    pub name: String,
    /// Class names; labels index this list.
    pub class_names: Vec<String>,
    /// The splits in their natural order (train, val, test when present).
    pub splits: Vec<SourceSplit>,
}

/// One split of a [`Source`].
#[derive(Debug)]
pub struct SourceSplit {
    pub name: String,
    pub labels: Vec<u32>,
    pub images: Images,
}

/// Images of one split: decoded pixels in memory (from an `.npz`) or files decoded on demand.
#[derive(Debug)]
pub enum Images {
    /// `count` images of `height × width × channels` bytes each, back to back (HWC).
    Array {
        width: usize,
        height: usize,
        channels: usize,
        count: usize,
        data: Vec<u8>,
    },
    /// One image file per row.
    Files(Vec<PathBuf>),
}

/// One image of a split, borrowed from an array or decoded from a file.
#[derive(Debug)]
pub enum LoadedImage<'a> {
    Borrowed(ImageRef<'a>),
    Owned(Image),
}

impl LoadedImage<'_> {
    /// A view of the pixels.
    pub fn view(&self) -> ImageRef<'_> {
        match self {
            Self::Borrowed(r) => *r,
            Self::Owned(i) => i.as_ref(),
        }
    }
}

impl Images {
    /// Number of images.
    pub fn len(&self) -> usize {
        match self {
            Self::Array { count, .. } => *count,
            Self::Files(f) => f.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Image `i`; `source` names the input in errors about array images.
    pub fn get(&self, i: usize, source: &Path) -> Result<LoadedImage<'_>> {
        match self {
            Self::Array {
                width,
                height,
                channels,
                data,
                ..
            } => {
                let size = width * height * channels;
                let pixels = i
                    .checked_mul(size)
                    .and_then(|start| data.get(start..start.checked_add(size)?))
                    .ok_or_else(|| Error::Image {
                        path: source.to_path_buf(),
                        problem: format!("image {i} is out of range"),
                    })?;
                Ok(LoadedImage::Borrowed(ImageRef {
                    width: *width,
                    height: *height,
                    channels: *channels,
                    data: pixels,
                }))
            }
            Self::Files(files) => {
                let path = files.get(i).ok_or_else(|| Error::Image {
                    path: source.to_path_buf(),
                    problem: format!("image {i} is out of range"),
                })?;
                crate::folder::decode_image(path).map(LoadedImage::Owned)
            }
        }
    }
}

impl Source {
    /// The split called `name`, or an error listing the ones there are.
    pub fn split(&self, name: &str) -> Result<&SourceSplit> {
        self.splits
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| Error::MissingSplit {
                path: self.path.clone(),
                split: name.to_owned(),
                available: self.splits.iter().map(|s| s.name.clone()).collect(),
            })
    }
}

/// Which rows of a split to extract. Rows are always taken in file order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    /// At most this many rows per class (the first ones of each class in file order).
    pub per_class: Option<usize>,
    /// At most this many rows in all.
    pub limit: Option<usize>,
    /// With a `limit`: share it among classes in proportion to their frequency (largest
    /// remainder, ties to the lower class) and take the first rows of each class, instead of
    /// simply the first `limit` rows.
    pub stratified: bool,
}

impl Selection {
    /// Indices (ascending) of the rows chosen from `labels`.
    pub fn apply(&self, labels: &[u32]) -> Vec<usize> {
        let classes = labels.iter().map(|&l| l as usize + 1).max().unwrap_or(0);
        let mut eligible: Vec<usize> = match self.per_class {
            None => (0..labels.len()).collect(),
            Some(k) => {
                let mut taken = vec![0usize; classes];
                (0..labels.len())
                    .filter(|&i| {
                        let t = &mut taken[labels[i] as usize];
                        *t += 1;
                        *t <= k
                    })
                    .collect()
            }
        };
        let Some(limit) = self.limit else {
            return eligible;
        };
        if limit >= eligible.len() {
            return eligible;
        }
        if !self.stratified {
            eligible.truncate(limit);
            return eligible;
        }
        let mut counts = vec![0usize; classes];
        for &i in &eligible {
            counts[labels[i] as usize] += 1;
        }
        let quotas = proportional_quotas(&counts, limit);
        let mut taken = vec![0usize; classes];
        eligible
            .into_iter()
            .filter(|&i| {
                let c = labels[i] as usize;
                taken[c] += 1;
                taken[c] <= quotas[c]
            })
            .collect()
    }
}

/// Splits `total` among classes in proportion to `counts` (largest remainder method; ties go to
/// the lower class index). Each quota is at most its count when `total ≤ sum(counts)`.
pub fn proportional_quotas(counts: &[usize], total: usize) -> Vec<usize> {
    let sum: usize = counts.iter().sum();
    if sum == 0 {
        return vec![0; counts.len()];
    }
    let total = total.min(sum);
    let exact: Vec<(usize, usize)> = counts
        .iter()
        .map(|&c| {
            let num = c as u128 * total as u128;
            ((num / sum as u128) as usize, (num % sum as u128) as usize)
        })
        .collect();
    let mut quotas: Vec<usize> = exact.iter().map(|e| e.0).collect();
    let mut left = total - quotas.iter().sum::<usize>();
    let mut order: Vec<usize> = (0..counts.len()).collect();
    order.sort_by(|&a, &b| exact[b].1.cmp(&exact[a].1).then(a.cmp(&b)));
    for c in order {
        if left == 0 {
            break;
        }
        if quotas[c] < counts[c] {
            quotas[c] += 1;
            left -= 1;
        }
    }
    quotas
}

/// Class names of the datasets we know by file stem (MedMNIST `INFO` label order; Keras MNIST and
/// CIFAR-10). A `_64`/`_128`/`_224` size suffix (MedMNIST+) is ignored.
pub fn known_class_names(stem: &str) -> Option<Vec<String>> {
    let base = stem.to_ascii_lowercase();
    let base = ["_28", "_64", "_128", "_224"]
        .iter()
        .find_map(|s| base.strip_suffix(s))
        .unwrap_or(&base)
        .to_owned();
    let names: &[&str] = match base.as_str() {
        "bloodmnist" => &[
            "basophil",
            "eosinophil",
            "erythroblast",
            "immature granulocytes (myelocytes, metamyelocytes and promyelocytes)",
            "lymphocyte",
            "monocyte",
            "neutrophil",
            "platelet",
        ],
        "organamnist" | "organcmnist" | "organsmnist" => &[
            "bladder",
            "femur-left",
            "femur-right",
            "heart",
            "kidney-left",
            "kidney-right",
            "liver",
            "lung-left",
            "lung-right",
            "pancreas",
            "spleen",
        ],
        "dermamnist" => &[
            "actinic keratoses and intraepithelial carcinoma",
            "basal cell carcinoma",
            "benign keratosis-like lesions",
            "dermatofibroma",
            "melanoma",
            "melanocytic nevi",
            "vascular lesions",
        ],
        "pathmnist" => &[
            "adipose",
            "background",
            "debris",
            "lymphocytes",
            "mucus",
            "smooth muscle",
            "normal colon mucosa",
            "cancer-associated stroma",
            "colorectal adenocarcinoma epithelium",
        ],
        "octmnist" => &[
            "choroidal neovascularization",
            "diabetic macular edema",
            "drusen",
            "normal",
        ],
        "pneumoniamnist" => &["normal", "pneumonia"],
        "breastmnist" => &["malignant", "normal, benign"],
        "retinamnist" => &["0", "1", "2", "3", "4"],
        "tissuemnist" => &[
            "Collecting Duct, Connecting Tubule",
            "Distal Convoluted Tubule",
            "Glomerular endothelial cells",
            "Interstitial endothelial cells",
            "Leukocytes",
            "Podocytes",
            "Proximal Tubule Segments",
            "Thick Ascending Limb",
        ],
        "mnist" => &["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
        "cifar10" | "cifar-10" => &[
            "airplane",
            "automobile",
            "bird",
            "cat",
            "deer",
            "dog",
            "frog",
            "horse",
            "ship",
            "truck",
        ],
        _ => return None,
    };
    Some(names.iter().map(|s| (*s).to_owned()).collect())
}

/// Class names `"0"`, `"1"`, … for `n` classes.
pub fn numbered_class_names(n: usize) -> Vec<String> {
    (0..n).map(|i| i.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_are_proportional_and_exact() {
        let blood = [852, 2181, 1085, 2026, 849, 993, 2330, 1643];
        let q = proportional_quotas(&blood, 2048);
        assert_eq!(q.iter().sum::<usize>(), 2048);
        for (c, (&n, &k)) in blood.iter().zip(&q).enumerate() {
            let ideal = n as f64 * 2048.0 / 11959.0;
            assert!((k as f64 - ideal).abs() < 1.0, "class {c}: {k} vs {ideal}");
        }
        assert_eq!(proportional_quotas(&[1, 1, 1], 2), vec![1, 1, 0]);
        assert_eq!(proportional_quotas(&[5, 0, 5], 100), vec![5, 0, 5]);
        assert_eq!(proportional_quotas(&[], 3), Vec::<usize>::new());
    }

    #[test]
    fn selections() {
        let labels = [0, 1, 1, 0, 2, 1, 1, 0, 2, 1];
        let all = Selection::default();
        assert_eq!(all.apply(&labels), (0..10).collect::<Vec<_>>());
        let first = Selection {
            limit: Some(3),
            ..all
        };
        assert_eq!(first.apply(&labels), vec![0, 1, 2]);
        let per_class = Selection {
            per_class: Some(1),
            ..all
        };
        assert_eq!(per_class.apply(&labels), vec![0, 1, 4]);
        // 3 of class 0, 5 of class 1, 2 of class 2 → 5 rows: 1.5, 2.5, 1 → 2 + 2 + 1 (the tied
        // remainder goes to the lower class).
        let strat = Selection {
            limit: Some(5),
            stratified: true,
            per_class: None,
        };
        assert_eq!(strat.apply(&labels), vec![0, 1, 2, 3, 4]);
        let big = Selection {
            limit: Some(50),
            stratified: true,
            per_class: Some(2),
        };
        assert_eq!(big.apply(&labels), vec![0, 1, 2, 3, 4, 8]);
        assert!(
            Selection {
                limit: Some(0),
                ..all
            }
            .apply(&labels)
            .is_empty()
        );
    }

    #[test]
    fn class_name_tables() {
        assert_eq!(known_class_names("bloodmnist").unwrap().len(), 8);
        assert_eq!(known_class_names("organamnist_224").unwrap().len(), 11);
        assert_eq!(known_class_names("MNIST").unwrap().len(), 10);
        assert!(known_class_names("fashion_mnist").is_none());
        assert!(known_class_names("something").is_none());
    }
}
