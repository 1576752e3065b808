//! Small synthetic datasets written by the tests: `.npz` files in MedMNIST and Keras layouts
//! and image folders.

use std::fs::File;
use std::path::Path;

use ndarray::{ArrayD, IxDyn};
use ndarray_npy::{WritableElement, WriteNpyExt};
use zip::ZipWriter;
use zip::write::SimpleFileOptions;

/// Writes an `.npz` (stored, uncompressed) with the arrays `add` puts in it.
pub fn write_npz(path: &Path, add: impl FnOnce(&mut NpzBuilder)) {
    let mut b = NpzBuilder {
        zip: ZipWriter::new(File::create(path).unwrap()),
    };
    add(&mut b);
    b.zip.finish().unwrap();
}

pub struct NpzBuilder {
    zip: ZipWriter<File>,
}

impl NpzBuilder {
    pub fn add<T: WritableElement>(&mut self, name: &str, shape: &[usize], data: Vec<T>) {
        let opts = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        self.zip.start_file(format!("{name}.npy"), opts).unwrap();
        ArrayD::from_shape_vec(IxDyn(shape), data)
            .unwrap()
            .write_npy(&mut self.zip)
            .unwrap();
    }
}

/// Deterministic pixel `k` of image `n`.
pub fn pixel(n: usize, k: usize) -> u8 {
    ((n * 37 + k * 11 + (k * k) % 7) % 256) as u8
}

/// `count` images of `side × side × channels` (channels 0 = no channel axis).
pub fn images(count: usize, side: usize, channels: usize) -> (Vec<usize>, Vec<u8>) {
    let c = channels.max(1);
    let shape = if channels == 0 {
        vec![count, side, side]
    } else {
        vec![count, side, side, channels]
    };
    let data = (0..count)
        .flat_map(|n| (0..side * side * c).map(move |k| pixel(n, k)))
        .collect();
    (shape, data)
}

/// A MedMNIST-layout file: splits of 10, 4 and 6 images, labels `(N, 1)` cycling over 3 classes.
pub fn medmnist(path: &Path, side: usize, channels: usize) {
    write_npz(path, |b| {
        for (split, n) in [("train", 10), ("val", 4), ("test", 6)] {
            let (shape, data) = images(n, side, channels);
            b.add(&format!("{split}_images"), &shape, data);
            b.add(
                &format!("{split}_labels"),
                &[n, 1],
                (0..n).map(|i| (i % 3) as u8).collect::<Vec<u8>>(),
            );
        }
    });
}
