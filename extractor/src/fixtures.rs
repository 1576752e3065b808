//! The committed DeiT-tiny feature fixtures (`fixtures/features/`), embedded in the library so
//! that training, demos and fast tests need neither the datasets nor ONNX Runtime.
//!
//! Each holds 2048 train / 512 val / 1024 test rows of 192-d f16 features, chosen class-
//! stratified (each split's count shared among classes in proportion to their frequency, first
//! rows of each class in file order). `fixtures/README.md` has the commands that made them and
//! `fixtures/SHA256SUMS` their checksums.

use crate::features::{Features, FormatError};

/// A dataset with an embedded fixture.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dataset {
    /// BloodMNIST, 8 classes, RGB.
    Blood,
    /// OrganAMNIST (MedMNIST+ release), 11 classes, grey.
    OrganA,
    /// MNIST (val = last 10 % of the Keras training split), 10 classes, grey.
    Mnist,
}

static BLOOD: &[u8] = include_bytes!("../../fixtures/features/bloodmnist.feat");
static ORGANA: &[u8] = include_bytes!("../../fixtures/features/organamnist.feat");
static MNIST: &[u8] = include_bytes!("../../fixtures/features/mnist.feat");

impl Dataset {
    /// Every dataset with a fixture.
    pub const ALL: [Dataset; 3] = [Dataset::Blood, Dataset::OrganA, Dataset::Mnist];

    /// Short name, as accepted by [`Dataset::from_name`]: `blood`, `organa`, `mnist`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Blood => "blood",
            Self::OrganA => "organa",
            Self::Mnist => "mnist",
        }
    }

    /// The dataset called `name` (`blood`/`bloodmnist`, `organa`/`organamnist`, `mnist`).
    pub fn from_name(name: &str) -> Option<Dataset> {
        match name.to_ascii_lowercase().as_str() {
            "blood" | "bloodmnist" => Some(Self::Blood),
            "organa" | "organamnist" => Some(Self::OrganA),
            "mnist" => Some(Self::Mnist),
            _ => None,
        }
    }

    /// File name under `fixtures/features/`.
    pub fn file_name(self) -> &'static str {
        match self {
            Self::Blood => "bloodmnist.feat",
            Self::OrganA => "organamnist.feat",
            Self::Mnist => "mnist.feat",
        }
    }

    /// Number of classes.
    pub fn classes(self) -> usize {
        match self {
            Self::Blood => 8,
            Self::OrganA => 11,
            Self::Mnist => 10,
        }
    }

    /// The embedded file bytes.
    pub fn bytes(self) -> &'static [u8] {
        match self {
            Self::Blood => BLOOD,
            Self::OrganA => ORGANA,
            Self::Mnist => MNIST,
        }
    }
}

/// Parses the embedded fixture of `dataset`.
pub fn load(dataset: Dataset) -> Result<Features, FormatError> {
    Features::from_bytes(dataset.bytes())
}
