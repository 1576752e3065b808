//! The committed feature fixtures: checksums, contents, and that they carry signal.

use std::path::Path;

use extractor::Features;
use extractor::fixtures::{self, Dataset};
use sha2::{Digest, Sha256};

fn fixtures_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures"))
}

#[test]
fn files_match_sha256sums() {
    let sums = std::fs::read_to_string(fixtures_dir().join("SHA256SUMS")).unwrap();
    let mut checked = 0;
    for line in sums.lines().filter(|l| !l.trim().is_empty()) {
        let (hash, name) = line.split_once("  ").expect("`HASH  PATH` lines");
        let bytes = std::fs::read(fixtures_dir().join(name)).unwrap();
        let got: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(got, hash, "{name}");
        checked += 1;
    }
    assert_eq!(checked, Dataset::ALL.len());
}

/// Nearest-class-mean accuracy on `test` with means from `train`.
fn nearest_mean_accuracy(f: &Features) -> f64 {
    let (train, test, d, k) = (
        f.split("train").unwrap(),
        f.split("test").unwrap(),
        f.dim,
        f.num_classes(),
    );
    let mut means = vec![vec![0f64; d]; k];
    let counts = train.class_counts(k);
    for r in 0..train.rows() {
        let c = train.labels[r] as usize;
        for (m, v) in means[c].iter_mut().zip(train.row(r, d).unwrap()) {
            *m += f64::from(v) / counts[c] as f64;
        }
    }
    let correct = (0..test.rows())
        .filter(|&r| {
            let x = test.row(r, d).unwrap();
            let dist = |m: &Vec<f64>| {
                m.iter()
                    .zip(&x)
                    .map(|(a, b)| (a - f64::from(*b)).powi(2))
                    .sum::<f64>()
            };
            let best = (0..k)
                .min_by(|&a, &b| dist(&means[a]).total_cmp(&dist(&means[b])))
                .unwrap();
            best == test.labels[r] as usize
        })
        .count();
    correct as f64 / test.rows() as f64
}

#[test]
fn embedded_fixtures_load_with_the_expected_shape() {
    for ds in Dataset::ALL {
        let f = fixtures::load(ds).unwrap();
        let on_disk = std::fs::read(fixtures_dir().join("features").join(ds.file_name())).unwrap();
        assert_eq!(
            ds.bytes(),
            on_disk.as_slice(),
            "{ds:?}: embedded bytes differ from the file"
        );
        assert_eq!(
            Features::load(fixtures_dir().join("features").join(ds.file_name())).unwrap(),
            f
        );
        assert_eq!(f.dim, 192, "{ds:?}");
        assert_eq!(f.num_classes(), ds.classes(), "{ds:?}");
        assert_eq!(f.model, "deit_tiny_patch16_224");
        assert_eq!(f.split_names(), ["train", "val", "test"], "{ds:?}");
        for (split, rows) in [("train", 2048), ("val", 512), ("test", 1024)] {
            let s = f.split(split).unwrap();
            assert_eq!(s.rows(), rows, "{ds:?} {split}");
            assert_eq!(s.values.precision(), extractor::Precision::F16);
            assert!(
                s.class_counts(ds.classes()).iter().all(|&c| c > 0),
                "{ds:?} {split}: a class is empty"
            );
            assert!(
                s.indices.windows(2).all(|w| w[0] < w[1]),
                "{ds:?} {split}: rows not in file order"
            );
        }
        let acc = nearest_mean_accuracy(&f);
        let chance = 1.0 / ds.classes() as f64;
        eprintln!("{ds:?}: nearest-class-mean test accuracy {acc:.3} (chance {chance:.3})");
        assert!(
            acc > 3.0 * chance,
            "{ds:?}: features look like noise ({acc})"
        );
        assert_eq!(Dataset::from_name(ds.name()), Some(ds));
    }
}
