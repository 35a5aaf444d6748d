//! Charts: throughput over time per run phase, and the latency-percentile spectrum per server
//! and operation kind, as SVG and PNG.
//!
//! SVG leaves text to the viewer; PNG rasterises it with a TrueType font read at run time
//! (`TIERKV_BENCH_FONT`, else DejaVu Sans or Liberation Sans where distributions install them),
//! so no font is compiled in. Without a font the PNGs are skipped with a note, never drawn
//! without labels. Invariant: every chart is drawn from the report alone (the latency chart
//! from the merged totals' histograms), so they always agree with the printed numbers, and
//! both formats come from the same drawing code.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use thiserror::Error;

use super::report::{BenchReport, Phase, PhaseReport};
use super::stats::Stats;
use super::workload::OpKind;

/// Chart size in pixels.
pub const CHART_SIZE: (u32, u32) = (960, 540);

/// A chart could not be written.
#[derive(Debug, Error)]
#[error("plotting {path}: {reason}")]
pub struct PlotError {
    /// The file being written.
    pub path: PathBuf,
    /// What went wrong.
    pub reason: String,
}

/// The latency spectrum of one server and operation kind: `(percentile, latency µs)` points.
#[derive(Debug, Clone)]
pub struct Spectrum {
    /// Legend label.
    pub label: String,
    /// Points at increasing percentiles.
    pub points: Vec<(f64, f64)>,
}

/// The spectrum is sampled every tenth of a "nine", from 0% to 99.9999%, then at 100%.
const SPECTRUM_STEPS: u32 = 60;

/// Builds spectra for every operation kind in `stats`.
pub fn spectra(server_label: &str, stats: &Stats) -> Vec<Spectrum> {
    OpKind::ALL
        .iter()
        .filter_map(|kind| {
            let h = stats.histogram(*kind)?;
            let percentiles = (0..=SPECTRUM_STEPS)
                .map(|step| 100.0 * (1.0 - 10f64.powf(-f64::from(step) / 10.0)))
                .chain(std::iter::once(100.0));
            let points = percentiles
                .map(|p| (p, h.value_at_percentile(p) as f64 / 1_000.0))
                .collect();
            Some(Spectrum {
                label: format!("{server_label} {}", kind.name()),
                points,
            })
        })
        .collect()
}

/// `-log10(1 - p)`: 90% → 1, 99% → 2, 99.9% → 3, so the tail gets room on the x axis.
fn nines(percentile: f64) -> f64 {
    let rest = (1.0 - percentile / 100.0).max(1e-6);
    -rest.log10()
}

/// Axis label for a position on the "nines" axis: 2 → `99%`.
fn percentile_label(nines_x: f64) -> String {
    let p = 100.0 * (1.0 - 10f64.powf(-nines_x));
    let digits = format!("{p:.4}");
    format!("{}%", digits.trim_end_matches('0').trim_end_matches('.'))
}

fn palette(index: usize) -> RGBColor {
    const COLOURS: [RGBColor; 8] = [
        RGBColor(31, 119, 180),
        RGBColor(214, 39, 40),
        RGBColor(44, 160, 44),
        RGBColor(255, 127, 14),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(23, 190, 207),
    ];
    COLOURS.get(index % COLOURS.len()).copied().unwrap_or(BLACK)
}

/// Where a TrueType font for PNG text is looked for, after `TIERKV_BENCH_FONT`.
const FONT_PATHS: [&str; 5] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
];

/// Registers a font for bitmap text once; `Some(path)` of the font in use.
fn png_font() -> Option<&'static Path> {
    static FONT: OnceLock<Option<PathBuf>> = OnceLock::new();
    FONT.get_or_init(|| {
        let from_env = std::env::var_os("TIERKV_BENCH_FONT").map(PathBuf::from);
        from_env
            .into_iter()
            .chain(FONT_PATHS.iter().map(PathBuf::from))
            .find_map(|path| {
                let bytes = std::fs::read(&path).ok()?;
                // Registered fonts live for the process; this happens once.
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).ok()?;
                Some(path)
            })
    })
    .as_deref()
}

/// Writes `throughput.svg` and `latency.svg` into `dir`, and their `.png` twins when a font is
/// found (see the module docs); returns the paths written.
pub fn write_charts(
    dir: &Path,
    report: &BenchReport,
    spectra: &[Spectrum],
) -> Result<Vec<PathBuf>, PlotError> {
    std::fs::create_dir_all(dir).map_err(|e| PlotError {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    })?;
    let runs: Vec<&PhaseReport> = report
        .phases
        .iter()
        .filter(|p| p.phase == Phase::Run)
        .collect();
    let mut written = Vec::new();
    let png = png_font().is_some();
    if !png {
        eprintln!("note: no TrueType font found (set TIERKV_BENCH_FONT); writing SVG charts only");
    }
    for name in ["throughput", "latency"] {
        let svg = dir.join(format!("{name}.svg"));
        let drawn = {
            let root = SVGBackend::new(&svg, CHART_SIZE).into_drawing_area();
            draw(name, root, &runs, spectra)
        };
        drawn.map_err(|reason| PlotError {
            path: svg.clone(),
            reason,
        })?;
        written.push(svg);
        if png {
            let png = dir.join(format!("{name}.png"));
            let drawn = {
                let root = BitMapBackend::new(&png, CHART_SIZE).into_drawing_area();
                draw(name, root, &runs, spectra)
            };
            drawn.map_err(|reason| PlotError {
                path: png.clone(),
                reason,
            })?;
            written.push(png);
        }
    }
    Ok(written)
}

fn draw<DB: DrawingBackend>(
    name: &str,
    root: DrawingArea<DB, Shift>,
    runs: &[&PhaseReport],
    spectra: &[Spectrum],
) -> Result<(), String> {
    if name == "throughput" {
        throughput_chart(root, runs)
    } else {
        latency_chart(root, spectra)
    }
}

fn throughput_chart<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    runs: &[&PhaseReport],
) -> Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let x_max = runs
        .iter()
        .flat_map(|r| r.timeline.iter().map(|p| p[0]))
        .fold(1.0f64, f64::max);
    let y_max = runs
        .iter()
        .flat_map(|r| r.timeline.iter().map(|p| p[1]))
        .fold(1.0f64, f64::max)
        * 1.1;
    let mut chart = ChartBuilder::on(&root)
        .caption("Throughput over time", ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("seconds since phase start")
        .y_desc("operations / s")
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(|e| e.to_string())?;
    for (index, run) in runs.iter().enumerate() {
        let colour = palette(index);
        let label = format!("{} ({}) round {}", run.server, run.role.name(), run.round);
        chart
            .draw_series(LineSeries::new(
                run.timeline.iter().map(|p| (p[0], p[1])),
                colour.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}

fn latency_chart<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    spectra: &[Spectrum],
) -> Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let y_max = spectra
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(10.0f64, f64::max)
        * 1.5;
    let y_min = spectra
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(f64::INFINITY, f64::min)
        .clamp(0.1, 1_000.0)
        / 1.5;
    let mut chart = ChartBuilder::on(&root)
        .caption("Latency by percentile", ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..nines(99.9999), (y_min..y_max).log_scale())
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (µs)")
        .x_labels(7)
        .x_label_formatter(&|x| percentile_label(*x))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(|e| e.to_string())?;
    for (index, spectrum) in spectra.iter().enumerate() {
        let colour = palette(index);
        chart
            .draw_series(LineSeries::new(
                spectrum
                    .points
                    .iter()
                    .map(|(p, v)| (nines(*p), v.max(y_min))),
                colour.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?
            .label(spectrum.label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::config::BenchConfig;
    use crate::bench::report::Role;
    use crate::bench::runner::PhaseOutcome;
    use clap::Parser;
    use std::time::Duration;

    /// SVG always; PNG too where a font is installed (.ci/run installs DejaVu and sets
    /// TIERKV_BENCH_REQUIRE_PNG, so CI checks the PNGs).
    #[test]
    fn charts_are_written_as_svg_and_png() {
        let mut stats = Stats::default();
        for us in 1..=2000u64 {
            stats.record(OpKind::Get, Duration::from_micros(us));
        }
        let config = BenchConfig::parse_from(["tierkv-bench"]);
        let resolved = config.validate().unwrap();
        let outcome = PhaseOutcome {
            addr: "a:1".into(),
            role: Role::Target,
            phase: Phase::Run,
            round: 0,
            elapsed: Duration::from_secs(2),
            stats: stats.clone(),
            timeline: vec![[1.0, 1000.0], [2.0, 1000.0]],
        };
        let report = BenchReport::build(&config, &resolved, &[outcome]);
        let dir = tempfile::tempdir().unwrap();
        let spectra = spectra("a", &stats);
        assert_eq!(spectra.len(), 1);
        assert!(spectra[0].points.windows(2).all(|w| w[0].1 <= w[1].1));
        let paths = write_charts(dir.path(), &report, &spectra).unwrap();
        let png_expected =
            png_font().is_some() || std::env::var_os("TIERKV_BENCH_REQUIRE_PNG").is_some();
        assert_eq!(paths.len(), if png_expected { 4 } else { 2 }, "{paths:?}");
        for path in paths {
            let bytes = std::fs::read(&path).unwrap();
            if path.extension().is_some_and(|e| e == "png") {
                assert!(
                    bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
                    "{}",
                    path.display()
                );
                assert!(bytes.len() > 10_000, "{} is nearly empty", path.display());
            } else {
                let svg = String::from_utf8(bytes).unwrap();
                assert!(svg.starts_with("<svg"), "{}", path.display());
                assert!(svg.contains("<polyline"), "{} has no line", path.display());
            }
        }
    }

    #[test]
    fn nines_spreads_the_tail() {
        assert_eq!(percentile_label(0.0), "0%");
        assert_eq!(percentile_label(2.0), "99%");
        assert_eq!(percentile_label(3.0), "99.9%");
        assert!((nines(90.0) - 1.0).abs() < 1e-9);
        assert!((nines(99.9) - 3.0).abs() < 1e-9);
        assert_eq!(nines(0.0), 0.0);
    }
}
