//! `blindtuner extract`: DEiT features of a MedMNIST / Keras `.npz` or an image folder, written
//! as a `Features` file (hospital side; see docs/EXTRACTOR.md).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use extractor::extract::{ExtractOptions, default_threads, extract};
use extractor::model::Model;
use extractor::source::{Selection, Source};
use extractor::{Precision, folder, npz, runtime};

/// Extract DEiT features from a dataset into a Features file.
///
/// Reads a MedMNIST `.npz` (any 2D set, grey or RGB, 28/64/128/224 pixels), a Keras-layout
/// `.npz` (`x_train, y_train, x_test, y_test`; the last 10% of train become `val`), or a folder
/// of PNG/JPEG images; preprocesses each image like the DeiT reference (RGB, Pillow-exact
/// bilinear resize to 224, ImageNet normalisation); runs the ONNX model on all cores in batches;
/// and writes labels, class names and features of every split to `--out` (atomically).
///
/// ONNX Runtime 1.31 is loaded at run time: run `scripts/setup-ort.sh` once (it puts the
/// library in `.ort/`), or set ORT_DYLIB_PATH, or pass --ort-lib.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  blindtuner extract --npz ../shared/assets/bloodmnist.npz --out blood.feat\n  \
                  blindtuner extract --npz mnist.npz --splits train,val,test --limit train=2048,val=512,test=1024 \
                  --stratified --f16 --out mnist.feat\n  blindtuner extract --images xrays/ --labels-csv labels.csv --out xrays.feat"
)]
pub struct Args {
    /// ONNX model: input `pixel_values` float32 [batch,3,224,224], output `features` [batch,dim].
    #[arg(
        long,
        value_name = "FILE",
        default_value = "../shared/assets/deit_tiny_patch16_224.onnx"
    )]
    pub model: PathBuf,

    /// Input `.npz`: MedMNIST keys {train,val,test}_{images,labels}, or Keras keys x_train, y_train,
    /// x_test, y_test.
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "images",
        conflicts_with = "images"
    )]
    pub npz: Option<PathBuf>,

    /// Input folder of PNG/JPEG images: DIR/<class>/*.png, or DIR/<train|val|test>/<class>/*.png,
    /// or any layout with --labels-csv.
    #[arg(long, value_name = "DIR")]
    pub images: Option<PathBuf>,

    /// CSV with a header row and columns `file` (relative to --images), `label` (class name) and
    /// optionally `split` (default `train`).
    #[arg(long, value_name = "FILE", requires = "images")]
    pub labels_csv: Option<PathBuf>,

    /// Splits to extract, comma-separated, in this order [default: all the input has, in the
    /// order train, val, test].
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub splits: Option<Vec<String>>,

    /// At most N rows per split (the first N in file order, or class-stratified with
    /// --stratified); or per split, e.g. `train=2048,val=512,test=1024` (others unlimited).
    #[arg(long, value_name = "N|SPLIT=N,..", value_parser = parse_limit)]
    pub limit: Option<Limit>,

    /// With --limit: share each split's limit among classes in proportion to their frequency
    /// (largest remainder) and take the first rows of each class in file order.
    #[arg(long, requires = "limit")]
    pub stratified: bool,

    /// At most K rows per class in each split (the first K of each class in file order); applied
    /// before --limit.
    #[arg(long, value_name = "K")]
    pub per_class_limit: Option<usize>,

    /// Store features as f16 (half the size; relative error ≤ 2^-11).
    #[arg(long)]
    pub f16: bool,

    /// Images per model call.
    #[arg(long, value_name = "N", default_value_t = 32)]
    pub batch: usize,

    /// Threads for ONNX Runtime and preprocessing [default: all cores].
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,

    /// ONNX Runtime library file (or folder holding it) [default: ORT_DYLIB_PATH, then .ort/
    /// made by scripts/setup-ort.sh].
    #[arg(long, value_name = "PATH")]
    pub ort_lib: Option<PathBuf>,

    /// Inference engine: `ort` (ONNX Runtime, loaded at run time) or `tract` (pure Rust, needs
    /// no library, about half as fast; only in builds with `--features tract`).
    #[arg(long, value_enum, default_value_t = Backend::Ort)]
    pub backend: Backend,

    /// Output Features file (written atomically: nothing is left behind on error).
    #[arg(long, short, value_name = "FILE")]
    pub out: PathBuf,

    /// No progress bar and no per-split summary.
    #[arg(long, short)]
    pub quiet: bool,
}

/// The engine that runs the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// ONNX Runtime through `ort`.
    Ort,
    /// The pure-Rust tract engine.
    Tract,
}

/// A `--limit`: one number for every split and/or numbers for named splits.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Limit {
    pub all: Option<usize>,
    pub per_split: Vec<(String, usize)>,
}

impl Limit {
    fn for_split(&self, split: &str) -> Option<usize> {
        self.per_split
            .iter()
            .find(|(s, _)| s == split)
            .map(|(_, n)| *n)
            .or(self.all)
    }
}

fn parse_limit(s: &str) -> Result<Limit, String> {
    let mut limit = Limit::default();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let number = |n: &str| {
            n.trim()
                .parse::<usize>()
                .map_err(|_| format!("`{n}` is not a row count"))
        };
        match part.split_once('=') {
            Some((split, n)) => limit.per_split.push((split.trim().to_owned(), number(n)?)),
            None if limit.all.is_none() => limit.all = Some(number(part)?),
            None => return Err("give one plain number at most".into()),
        }
    }
    if limit.all.is_none() && limit.per_split.is_empty() {
        return Err("empty limit".into());
    }
    Ok(limit)
}

fn read_source(args: &Args) -> Result<Source> {
    let only = args.splits.as_deref();
    if let Some(path) = &args.npz {
        npz::read_npz_splits(path, only)
            .with_context(|| format!("cannot read the dataset {}", path.display()))
    } else if let Some(dir) = &args.images {
        folder::read_folder(dir, args.labels_csv.as_deref(), only)
            .with_context(|| format!("cannot read the image folder {}", dir.display()))
    } else {
        bail!("give --npz FILE or --images DIR")
    }
}

fn check_out(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        bail!(
            "{}: the output folder {} does not exist",
            path.display(),
            dir.display()
        );
    }
    if path.is_dir() {
        bail!("{}: is a folder, expected a file name", path.display());
    }
    Ok(())
}

/// Opens the model in the chosen engine; returns it with a description of the engine.
fn open_model(args: &Args, threads: usize) -> Result<(Model, String)> {
    match args.backend {
        Backend::Ort => {
            let rt = runtime::load(args.ort_lib.as_deref()).context("cannot load ONNX Runtime")?;
            let model = Model::load(&args.model, rt, threads).context("cannot open the model")?;
            Ok((model, format!("ONNX Runtime {}", rt.library().display())))
        }
        #[cfg(feature = "tract")]
        Backend::Tract => {
            let model = Model::load_tract(&args.model, threads).context("cannot open the model")?;
            Ok((model, "tract (pure Rust)".to_owned()))
        }
        #[cfg(not(feature = "tract"))]
        Backend::Tract => bail!(
            "--backend tract: this blindtuner was built without the `tract` feature; rebuild with \
             `cargo build --release -p tui --features tract`, or use the default ONNX Runtime backend"
        ),
    }
}

/// Runs `blindtuner extract`.
pub fn run(args: &Args) -> Result<()> {
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    let threads = args.threads.unwrap_or_else(default_threads);
    if threads == 0 {
        bail!("--threads must be at least 1");
    }
    let limited: &[(String, usize)] = args.limit.as_ref().map_or(&[], |l| &l.per_split);
    if let Some((split, _)) = limited
        .iter()
        .find(|(s, _)| args.splits.as_ref().is_some_and(|only| !only.contains(s)))
    {
        bail!("--limit names split `{split}`, which --splits does not include");
    }
    check_out(&args.out)?;
    let source = read_source(args)?;
    for (split, _) in limited {
        source
            .split(split)
            .with_context(|| format!("--limit names split `{split}`"))?;
    }
    let (mut model, engine) = open_model(args, threads)?;
    // Extract in the order of --splits when given, else in the input's order.
    let names: Vec<String> = match &args.splits {
        Some(order) => order.clone(),
        None => source.splits.iter().map(|s| s.name.clone()).collect(),
    };
    let plan: Vec<(String, Selection)> = names
        .into_iter()
        .map(|name| {
            let limit = args.limit.as_ref().and_then(|l| l.for_split(&name));
            let selection = Selection {
                per_class: args.per_class_limit,
                limit,
                stratified: args.stratified,
            };
            (name, selection)
        })
        .collect();
    let options = ExtractOptions {
        batch: args.batch,
        threads,
        precision: if args.f16 {
            Precision::F16
        } else {
            Precision::F32
        },
        progress: !args.quiet,
    };
    if !args.quiet {
        eprintln!(
            "extracting {} ({} classes) with {} (dim {}) on {threads} threads, batch {}, {engine}",
            source.path.display(),
            source.class_names.len(),
            model.name(),
            model.dim(),
            args.batch,
        );
    }
    let started = Instant::now();
    let (features, reports) = extract(&mut model, &source, &plan, &options)
        .with_context(|| format!("feature extraction from {} failed", source.path.display()))?;
    features
        .save(&args.out)
        .context("cannot write the features")?;
    if !args.quiet {
        for r in &reports {
            eprintln!(
                "{:>6}: {:>6} images in {:>7.1} s ({:.1} images/s); per class {:?}",
                r.name,
                r.rows,
                r.seconds,
                r.rate(),
                r.class_counts
            );
        }
        let size = std::fs::metadata(&args.out).map(|m| m.len()).unwrap_or(0);
        eprintln!(
            "wrote {} ({} bytes, {}, {} splits) in {:.1} s",
            args.out.display(),
            size,
            options.precision.name(),
            features.splits.len(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse() {
        assert_eq!(
            parse_limit("10").unwrap(),
            Limit {
                all: Some(10),
                per_split: vec![]
            }
        );
        let l = parse_limit("train=2048, val=512,test=1024").unwrap();
        assert_eq!(l.for_split("val"), Some(512));
        assert_eq!(l.for_split("other"), None);
        let l = parse_limit("5,train=7").unwrap();
        assert_eq!(
            (l.for_split("train"), l.for_split("test")),
            (Some(7), Some(5))
        );
        assert!(parse_limit("x").is_err());
        assert!(parse_limit("1,2").is_err());
        assert!(parse_limit("").is_err());
        assert!(parse_limit("train=").is_err());
    }
}
