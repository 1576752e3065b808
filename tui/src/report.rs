//! `blindtuner report`: PNG figures and the markdown results table from the JSON histories of
//! `blindtuner bench train --history` (docs/RESULTS.md is made from them by
//! `scripts/results.sh`; no figure is typed by hand).
//!
//! Per history `NAME.json`: `NAME-curves.png` (test loss and accuracy per step: encrypted,
//! mirror, exact) and, for encrypted runs, `NAME-ops.png` (seconds per step by operation kind,
//! stacked). Drawn with plotters' bitmap backend and the DejaVu Sans font embedded from the
//! `dejavu` crate: no system fonts or libraries at build or run time.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use plotters::prelude::*;
use serde_json::Value;

/// Options of `blindtuner report`.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// History files written by `blindtuner bench train --history`.
    #[arg(required = true)]
    pub histories: Vec<PathBuf>,
    /// Folder for the figures.
    #[arg(long, default_value = "docs/img")]
    pub out_dir: PathBuf,
    /// Write the markdown (results table and figure links) to this file instead of stdout.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// How the markdown links the figures: this prefix and the file name.
    #[arg(long, default_value = "img/")]
    pub img_prefix: String,
}

/// The three runs with their colours and line widths, drawn in this order: the exact run wide
/// at the bottom, the encrypted run thin on top, so that all three show where they agree.
const RUNS: [(&str, RGBColor, u32); 3] = [
    ("exact", RGBColor(160, 160, 160), 6),
    ("mirror", RGBColor(31, 119, 180), 3),
    ("encrypted", RGBColor(214, 39, 40), 1),
];

fn plot_err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow::anyhow!("drawing: {e}")
}

fn register_font() -> Result<()> {
    plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular())
        .map_err(|_| anyhow::anyhow!("the embedded DejaVu Sans font"))
}

/// One history file, checked enough to draw it.
struct History {
    stem: String,
    v: Value,
}

fn load(path: &Path) -> Result<History> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{}: not JSON ({e})", path.display()))?;
    if v["bench"] != "train" || !v["steps"].is_array() {
        bail!(
            "{}: not a `blindtuner bench train --history` file (no bench: train and steps)",
            path.display()
        );
    }
    let stem = path
        .file_stem()
        .map_or_else(|| "run".into(), |s| s.to_string_lossy().to_string());
    Ok(History { stem, v })
}

fn steps(h: &History) -> &[Value] {
    h.v["steps"].as_array().map_or(&[], Vec::as_slice)
}

/// `(step, value)` of the step rows that have `key`.
fn series(h: &History, key: &str, factor: f64) -> Vec<(f64, f64)> {
    steps(h)
        .iter()
        .filter_map(|s| Some((s["step"].as_f64()?, s[key].as_f64()? * factor)))
        .collect()
}

fn range(points: &[&[(f64, f64)]]) -> (f64, f64, f64, f64) {
    let all = points.iter().flat_map(|p| p.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in all {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    if x0 > x1 {
        return (0.0, 1.0, 0.0, 1.0);
    }
    let pad = ((y1 - y0) * 0.05).max(1e-6);
    (x0.min(0.0), x1.max(x0 + 1.0), y0 - pad, y1 + pad)
}

/// Test loss (left) and accuracy (right) per step.
fn curves(h: &History, path: &Path) -> Result<()> {
    let root = BitMapBackend::new(path, (1400, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let title = format!(
        "{} — {}, {}, {} samples per step",
        h.v["dataset"].as_str().unwrap_or("?"),
        h.v["mode"].as_str().unwrap_or("?"),
        h.v["preset"].as_str().unwrap_or("?"),
        h.v["batch_samples"]
    );
    let root = root.titled(&title, ("sans-serif", 26)).map_err(plot_err)?;
    let (left, right) = root.split_horizontally(700);
    for (area, key, factor, label) in [
        (&left, "test_loss", 1.0, "test loss (cross-entropy)"),
        (&right, "test_acc", 100.0, "test accuracy (%)"),
    ] {
        let data: Vec<_> = RUNS
            .iter()
            .map(|&(who, col, w)| (who, col, w, series(h, &format!("{key}_{who}"), factor)))
            .filter(|(_, _, _, p)| !p.is_empty())
            .collect();
        let refs: Vec<&[(f64, f64)]> = data.iter().map(|(_, _, _, p)| p.as_slice()).collect();
        let (x0, x1, y0, y1) = range(&refs);
        let mut chart = ChartBuilder::on(area)
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc("step")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_desc(label)
            .label_style(("sans-serif", 16))
            .axis_desc_style(("sans-serif", 18))
            .draw()
            .map_err(plot_err)?;
        for (who, col, width, p) in data {
            chart
                .draw_series(LineSeries::new(p, col.stroke_width(width)))
                .map_err(plot_err)?
                .label(who)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 24, y)], col.stroke_width(width.max(2)))
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 18))
            .position(if key == "test_loss" {
                SeriesLabelPosition::UpperRight
            } else {
                SeriesLabelPosition::LowerRight
            })
            .draw()
            .map_err(plot_err)?;
    }
    root.present().map_err(plot_err)?;
    Ok(())
}

/// Seconds per encrypted step by operation kind, stacked.
fn ops(h: &History, path: &Path) -> Result<()> {
    let kinds = [
        ("mult", RGBColor(31, 119, 180)),
        ("rot", RGBColor(255, 127, 14)),
        ("refresh", RGBColor(44, 160, 44)),
        ("other", RGBColor(150, 150, 150)),
    ];
    let rows: Vec<(f64, [f64; 4])> = steps(h)
        .iter()
        .filter_map(|s| {
            let t = |k: &str| s[format!("seconds_{k}")].as_f64();
            Some((
                s["step"].as_f64()?,
                [t("mult")?, t("rot")?, t("refresh")?, t("other")?],
            ))
        })
        .collect();
    let top = rows
        .iter()
        .map(|(_, t)| t.iter().sum::<f64>())
        .fold(0.0, f64::max)
        * 1.1;
    let x1 = rows.last().map_or(1.0, |r| r.0).max(1.0);
    let root = BitMapBackend::new(path, (1000, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let title = format!(
        "{} — seconds per encrypted step by operation ({}, {} thread(s))",
        h.v["dataset"].as_str().unwrap_or("?"),
        h.v["preset"].as_str().unwrap_or("?"),
        h.v["threads"]
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..x1, 0.0..top.max(1e-3))
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("step")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_desc("seconds")
        .label_style(("sans-serif", 16))
        .axis_desc_style(("sans-serif", 18))
        .draw()
        .map_err(plot_err)?;
    // The cumulative sums, largest first, each drawn over the previous one.
    for k in (0..kinds.len()).rev() {
        let (name, col) = kinds.get(k).copied().unwrap_or(("?", BLACK));
        let points: Vec<(f64, f64)> = rows
            .iter()
            .map(|(x, t)| (*x, t.iter().take(k + 1).sum::<f64>()))
            .collect();
        chart
            .draw_series(AreaSeries::new(points, 0.0, col.mix(0.85)).border_style(col))
            .map_err(plot_err)?
            .label(name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 18, y + 6)], col.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 18))
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(plot_err)?;
    root.present().map_err(plot_err)?;
    Ok(())
}

fn pct(v: &Value) -> String {
    v.as_f64()
        .map_or_else(|| "—".into(), |x| format!("{:.2} %", x * 100.0))
}

fn secs(s: f64) -> String {
    if s < 0.1 {
        format!("{:.2} ms", s * 1e3)
    } else if s >= 3600.0 {
        format!("{:.1} h", s / 3600.0)
    } else if s >= 60.0 {
        format!("{:.1} min", s / 60.0)
    } else {
        format!("{s:.1} s")
    }
}

/// The markdown table row of one run.
fn row(h: &History) -> String {
    let v = &h.v;
    let delta = match (v["encrypted_acc"].as_f64(), v["exact_acc"].as_f64()) {
        (Some(e), Some(x)) => format!("{:+.2}", (e - x) * 100.0),
        _ => "—".into(),
    };
    let machine = format!(
        "{} ({} cores), {} thread(s)",
        v["machine"]["cpu"].as_str().unwrap_or("?"),
        v["machine"]["cores"],
        v["threads"]
    );
    format!(
        "| {} | {} | {} | {} | {} / {} / {} | {} / {} | {} | {} | {} | {} | {} | {} | {} |",
        v["dataset"].as_str().unwrap_or("?"),
        v["mode"].as_str().unwrap_or("?"),
        v["preset"].as_str().unwrap_or("?"),
        v["batch_samples"],
        v["train_samples"],
        v["val_samples"],
        v["test_samples"],
        v["epochs_run"],
        v["steps_run"],
        pct(&v["exact_acc"]),
        pct(&v["mirror_acc"]),
        pct(&v["encrypted_acc"]),
        delta,
        secs(v["seconds_per_step"].as_f64().unwrap_or(0.0)),
        secs(v["total_seconds"].as_f64().unwrap_or(0.0)),
        machine
    )
}

/// The markdown: the table of all runs, then the figures of each.
fn markdown(hs: &[History], prefix: &str) -> String {
    let mut s = String::new();
    s.push_str(
        "| data | mode | preset | batch | train / val / test | epochs / steps | exact | mirror | encrypted | encrypted − exact (points) | time per step | total time | machine |\n",
    );
    s.push_str("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for h in hs {
        s.push_str(&row(h));
        s.push('\n');
    }
    for h in hs {
        let v = &h.v;
        let _ = write!(
            s,
            "\n**{}** ({}, {}, {} weights; source `{}`, commit {}):\n\n![{} curves]({prefix}{}-curves.png)\n",
            v["dataset"].as_str().unwrap_or("?"),
            v["mode"].as_str().unwrap_or("?"),
            v["preset"].as_str().unwrap_or("?"),
            v["weights"].as_str().unwrap_or("final"),
            v["source"].as_str().unwrap_or("?"),
            v["git_commit"].as_str().unwrap_or("unknown"),
            h.stem,
            h.stem
        );
        if v["mode"] == "encrypted" {
            let _ = writeln!(s, "![{} op times]({prefix}{}-ops.png)", h.stem, h.stem);
        }
    }
    s
}

/// `blindtuner report`.
pub fn run(a: &Args) -> Result<()> {
    let hs: Vec<History> = a.histories.iter().map(|p| load(p)).collect::<Result<_>>()?;
    register_font()?;
    std::fs::create_dir_all(&a.out_dir)
        .with_context(|| format!("creating {}", a.out_dir.display()))?;
    for h in &hs {
        let p = a.out_dir.join(format!("{}-curves.png", h.stem));
        curves(h, &p).with_context(|| format!("writing {}", p.display()))?;
        eprintln!("report: {}", p.display());
        if h.v["mode"] == "encrypted" {
            let p = a.out_dir.join(format!("{}-ops.png", h.stem));
            ops(h, &p).with_context(|| format!("writing {}", p.display()))?;
            eprintln!("report: {}", p.display());
        }
    }
    let md = markdown(&hs, &a.img_prefix);
    match &a.markdown {
        Some(p) => {
            crate::files::write_atomic(p, md.as_bytes(), false)?;
            eprintln!("report: {}", p.display());
        }
        None => print!("{md}"),
    }
    Ok(())
}
