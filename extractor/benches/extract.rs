//! `extract/{batch}`: the whole extraction loop (row selection, Pillow-exact preprocessing of
//! 28×28 RGB images to 224×224 on all cores, ONNX Runtime inference, f32 collection) on the
//! committed tiny model, so the pipeline's own overhead is measured without DeiT's cost.
//! `preprocess/28_rgb` times preprocessing of one image alone.
//!
//! `cargo bench -p extractor --bench extract` (needs the ONNX Runtime library: scripts/setup-ort.sh).

use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use extractor::extract::{ExtractOptions, extract};
use extractor::model::Model;
use extractor::preprocess::{ImageRef, preprocess};
use extractor::source::{Images, Selection, Source, SourceSplit, numbered_class_names};
use extractor::{Precision, runtime};

const IMAGES: usize = 64;

fn source() -> Source {
    let (side, ch) = (28, 3);
    let data = (0..IMAGES * side * side * ch)
        .map(|i| (i * 31 % 251) as u8)
        .collect();
    Source {
        path: PathBuf::from("synthetic"),
        name: "synthetic".into(),
        class_names: numbered_class_names(4),
        splits: vec![SourceSplit {
            name: "test".into(),
            labels: (0..IMAGES as u32).map(|i| i % 4).collect(),
            images: Images::Array {
                width: side,
                height: side,
                channels: ch,
                count: IMAGES,
                data,
            },
        }],
    }
}

fn bench(c: &mut Criterion) {
    let src = source();
    let img: Vec<u8> = (0..28 * 28 * 3).map(|i| (i % 256) as u8).collect();
    c.bench_function("preprocess/28_rgb", |b| {
        b.iter(|| {
            preprocess(black_box(ImageRef {
                width: 28,
                height: 28,
                channels: 3,
                data: &img,
            }))
        })
    });

    let rt = match runtime::load(None) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("skipping extract/*: {e}");
            return;
        }
    };
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/tiny_model/tiny_model.onnx");
    let threads = extractor::extract::default_threads();
    let mut model = Model::load(&path, rt, threads).expect("tiny model loads");
    let mut group = c.benchmark_group("extract");
    for batch in [1usize, 8, 32, 64] {
        let plan = vec![(
            "test".to_string(),
            Selection {
                limit: Some(batch),
                ..Selection::default()
            },
        )];
        let opts = ExtractOptions {
            batch,
            threads,
            precision: Precision::F32,
            progress: false,
        };
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(batch.to_string(), |b| {
            b.iter(|| extract(&mut model, black_box(&src), &plan, &opts).expect("extract"))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
