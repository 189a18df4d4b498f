//! The cost curve as a PNG: four small panels (peak RSS, CPU per steady window, start → ready, fire → patch
//! p99) against Deployments on a log axis, each point labelled with its value.
//!
//! Input: the [`Point`]s of one backend, a TrueType font file and the output path. Output: the PNG, drawn by
//! plotters' bitmap backend. Text is rasterised by ab_glyph from the font file, read at run time, so nothing
//! of the system's font stack (fontconfig, freetype) is needed: only the file. A figure that is missing, or
//! whose run failed, gets no point (a point at 0 would read as "free"): a grey line at its size says why.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{anyhow, bail};
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use super::point::Point;
use super::table::{backend_words, thousands};

/// The picture's size in pixels.
pub const SIZE: (u32, u32) = (1200, 860);
/// The font file the plot looks for.
const FONT_FILE: &str = "DejaVuSans.ttf";
/// Where distributions put it: Debian and Ubuntu (`fonts-dejavu-core`), Arch, Fedora.
const FONT_DIRS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu",
    "/usr/share/fonts/TTF",
    "/usr/share/fonts/dejavu-sans-fonts",
    "/usr/share/fonts/dejavu",
];
/// The family name the font is registered under.
const FAMILY: &str = "sans-serif";

const LINE: RGBColor = RGBColor(31, 119, 180);
const MISSING: RGBColor = RGBColor(150, 150, 150);
const FAILED: RGBColor = RGBColor(200, 40, 40);

/// The font to draw with: `explicit` when given, else DejaVu Sans where a distribution installs it.
pub fn find_font(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        if !path.is_file() {
            bail!("--font {}: no such file", path.display());
        }
        return Ok(path.to_owned());
    }
    FONT_DIRS
        .iter()
        .map(|dir| Path::new(dir).join(FONT_FILE))
        .find(|path| path.is_file())
        .ok_or_else(|| {
            anyhow!(
                "no font for the cost-curve plot: {FONT_FILE} is in none of {}; install Debian's \
                 `fonts-dejavu-core` (apt-get install fonts-dejavu-core) or give --font PATH to a TrueType font",
                FONT_DIRS.join(", ")
            )
        })
}

/// Registers `path` as the plot's font, once per process (plotters keeps fonts in a global table and
/// wants them `'static`: the file is read once and kept for the life of the process).
fn register(path: &Path) -> anyhow::Result<()> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            let bytes = std::fs::read(path)
                .map_err(|e| format!("failed to read the font {}: {e}", path.display()))?;
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            register_font(FAMILY, FontStyle::Normal, bytes)
                .map_err(|_| format!("{} is not a font ab_glyph can read", path.display()))
        })
        .clone()
        .map_err(|e| anyhow!(e))
}

/// One panel: a figure of every point.
struct Panel {
    title: &'static str,
    unit: &'static str,
    value: fn(&Point) -> Option<f64>,
    label: fn(f64) -> String,
}

const PANELS: [Panel; 4] = [
    Panel {
        title: "peak RSS after the windows",
        unit: "MiB",
        value: |p| p.peak_rss_after_windows_mib,
        label: |v| format!("{v:.1} MiB"),
    },
    Panel {
        title: "CPU per steady window",
        unit: "CPU s",
        value: |p| p.cpu_per_steady_window_s,
        label: |v| format!("{v:.3} s"),
    },
    Panel {
        title: "start → ready",
        unit: "s",
        value: |p| p.start_to_ready_s,
        label: |v| format!("{v:.2} s"),
    },
    Panel {
        title: "fire → patch p99, window 1",
        unit: "s",
        value: |p| p.fire_to_patch_p99_s,
        label: |v| format!("{v:.2} s"),
    },
];

/// Draws the four panels of `points` (one backend, by size) into the PNG at `out`.
pub fn render(points: &[Point], font: &Path, out: &Path) -> anyhow::Result<()> {
    register(font)?;
    let draw = || -> Result<(), Box<dyn std::error::Error>> {
        let root = BitMapBackend::new(out, SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        let backend = points.first().map_or("real", |p| p.backend.as_str());
        let title = format!(
            "watch-cluster cost curve, 10 % of the Deployments watched — {}",
            if backend == "real" {
                "real control plane"
            } else {
                "simulator"
            }
        );
        let root = root.titled(&title, (FAMILY, 26))?;
        let note = format!("runs on {}", backend_words(backend));
        root.draw_text(&note, &(FAMILY, 14).into_text_style(&root), (12, 0))?;
        let (_, body) = root.split_vertically(20);
        for (area, panel) in body.split_evenly((2, 2)).iter().zip(PANELS.iter()) {
            draw_panel(area, panel, points)?;
        }
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| anyhow!("failed to draw the cost curve into {}: {e}", out.display()))
}

/// The x range: the sizes with room on both sides (a factor of 2 on a log axis).
fn x_range(points: &[Point]) -> (f64, f64) {
    let min = points.iter().map(|p| p.deployments).min().unwrap_or(1000) as f64;
    let max = points.iter().map(|p| p.deployments).max().unwrap_or(1000) as f64;
    ((min / 2.0).max(1.0), max * 2.0)
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    panel: &Panel,
    points: &[Point],
) -> Result<(), Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    let values: Vec<(f64, Option<f64>, &Point)> = points
        .iter()
        .map(|p| (p.deployments as f64, (panel.value)(p), p))
        .collect();
    let top = values
        .iter()
        .filter_map(|(_, v, _)| *v)
        .fold(0.0_f64, f64::max);
    // Room above the highest point for its label; a panel with no figure at all still gets an axis.
    let y_max = if top > 0.0 { top * 1.3 } else { 1.0 };
    let (x_lo, x_hi) = x_range(points);
    let mut chart = ChartBuilder::on(area)
        .caption(panel.title, (FAMILY, 20))
        .margin(14)
        .margin_right(48)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d((x_lo..x_hi).log_scale(), 0.0..y_max)?;
    // Enough decimals to tell the axis' steps apart (plotters puts up to ~10 on it).
    let y_decimals = (-(y_max / 10.0).log10()).ceil().max(0.0) as usize;
    chart
        .configure_mesh()
        .y_labels(8)
        .x_desc("Deployments (log scale)")
        .y_desc(panel.unit)
        .x_label_formatter(&|x| thousands(x.round() as u64))
        .y_label_formatter(&|y| format!("{y:.y_decimals$}"))
        .label_style((FAMILY, 14))
        .axis_desc_style((FAMILY, 15))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()?;
    // Lines join neighbouring sizes that both have the figure; a missing one breaks the line.
    for pair in values.windows(2) {
        if let [(x0, Some(y0), _), (x1, Some(y1), _)] = pair {
            chart.draw_series(LineSeries::new(
                [(*x0, *y0), (*x1, *y1)],
                LINE.stroke_width(2),
            ))?;
        }
    }
    for (x, value, point) in &values {
        match value {
            Some(y) => {
                chart.draw_series(std::iter::once(
                    EmptyElement::at((*x, *y))
                        + Circle::new((0, 0), 5, LINE.filled())
                        + Text::new((panel.label)(*y), (6, -22), (FAMILY, 15)),
                ))?;
            }
            None => {
                let (why, colour) = if point.failed.is_some() {
                    ("run failed", FAILED)
                } else {
                    ("not measured", MISSING)
                };
                chart.draw_series(DashedLineSeries::new(
                    [(*x, 0.0), (*x, y_max)],
                    6,
                    4,
                    MISSING.stroke_width(1),
                ))?;
                chart.draw_series(std::iter::once(Text::new(
                    why,
                    (*x, y_max * 0.95),
                    (FAMILY, 14).into_font().color(&colour),
                )))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::curve::point::failed_record;
    use serde_json::json;
    use std::collections::HashSet;

    fn point(size: u64, rss: Option<f64>) -> Point {
        Point::from_json(
            &json!({"backend": "real", "deployments": size, "watched": size / 10, "windows": 10,
                    "period_s": 20, "setup_s": 30.0, "start_to_ready_s": 0.4 + size as f64 / 1e5,
                    "peak_rss_after_windows_mib": rss, "cpu_per_steady_window_s": 0.05,
                    "fire_to_patch_p50_s": 0.2, "fire_to_patch_p99_s": 0.8}),
            "t",
        )
        .unwrap()
    }

    /// Width, height and the distinct colours of a PNG.
    fn decode(path: &Path) -> (u32, u32, HashSet<[u8; 3]>) {
        let decoder = png::Decoder::new(std::fs::File::open(path).unwrap());
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!(info.color_type, png::ColorType::Rgb, "plotters writes RGB");
        let colours = buf[..info.buffer_size()]
            .chunks_exact(3)
            .map(|c| [c[0], c[1], c[2]])
            .collect();
        (info.width, info.height, colours)
    }

    #[test]
    fn the_curve_is_a_png_of_the_expected_size_with_more_than_a_background() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("cost-curve.png");
        let failed =
            Point::from_json(&failed_record("real", 50000, "exit status: 1"), "t").unwrap();
        let points = [point(1000, Some(14.2)), point(10000, None), failed];
        render(&points, &find_font(None).unwrap(), &out).unwrap();
        let head = std::fs::read(&out).unwrap();
        assert_eq!(&head[..8], b"\x89PNG\r\n\x1a\n", "the PNG signature");
        let (width, height, colours) = decode(&out);
        assert_eq!((width, height), SIZE);
        for colour in [
            [255, 255, 255],
            [0, 0, 0],
            [LINE.0, LINE.1, LINE.2],
            [FAILED.0, FAILED.1, FAILED.2],
        ] {
            assert!(colours.contains(&colour), "{colour:?} is drawn");
        }
        // Antialiased text and lines blend: a picture with text has many shades.
        assert!(colours.len() > 20, "only {} colours", colours.len());
    }

    #[test]
    fn a_font_that_is_not_there_is_named() {
        let e = find_font(Some(Path::new("/nonexistent/font.ttf"))).unwrap_err();
        assert_eq!(e.to_string(), "--font /nonexistent/font.ttf: no such file");
    }
}
