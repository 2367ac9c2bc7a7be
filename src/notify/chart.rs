//! The small chart in alert emails: an alert's recent buckets as a PNG.
//!
//! [`render_png`] draws `Transition::recent` — the observed line, each
//! bucket's normal band shaded (at the alert level), the expected value as
//! a thin line, the buckets outside their band as red dots, and the span of
//! the alert's evidence when it covers several buckets (a window, or the
//! series against its peers) as a pale background — with UTC times on the
//! x axis and the KPI name and labels as the title, and returns PNG bytes
//! for an inline MIME part (`email` references it by `cid:`).
//!
//! Drawing is plotters into an RGB buffer in memory ([`BitMapBackend`]),
//! then the `png` crate encodes it. Text uses DejaVu Sans vendored under
//! `assets/fonts/` (licence beside it) and compiled into the binary: CI and
//! containers have no system fonts. It is registered with plotters once per
//! process.
//!
//! The data come from detectors and may be anything: no recent buckets, a
//! single one, NaN values (empty buckets), open band edges (±inf) or NaN
//! edges (no baseline yet). Every such case still gives a readable PNG;
//! only a bad size or a drawing failure is an error ([`ChartError`]).

use std::sync::OnceLock;

use chrono::DateTime;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::alert::{RecentBucket, Transition};

/// DejaVu Sans, compiled in (see `assets/fonts/LICENSE-DejaVu.txt`).
static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// The plotters family name every text in the chart uses; the vendored font
/// is registered under it.
const FAMILY: &str = "sans-serif";

/// The largest width or height accepted: an email chart has no business
/// being bigger, and a typo must not allocate gigabytes.
pub const MAX_SIDE: u32 = 4096;

/// Why a chart could not be drawn.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChartError {
    /// Width or height is 0 or above [`MAX_SIDE`].
    #[error(
        "chart size {width}x{height} is not drawable: each side must be 1..={MAX_SIDE} pixels"
    )]
    Size {
        /// The requested width.
        width: u32,
        /// The requested height.
        height: u32,
    },
    /// The vendored font did not load (a corrupt `assets/fonts/DejaVuSans.ttf`
    /// at build time).
    #[error("the chart font (assets/fonts/DejaVuSans.ttf) could not be loaded")]
    Font,
    /// plotters failed to draw.
    #[error("drawing the chart failed: {0}")]
    Draw(String),
    /// The PNG encoder failed.
    #[error("encoding the chart as PNG failed: {0}")]
    Encode(String),
}

/// Colours: a quiet palette that survives email clients' dark modes well
/// enough (the image has its own white background).
const OBSERVED: RGBColor = RGBColor(0x1f, 0x2d, 0x3d);
const EXPECTED: RGBColor = RGBColor(0x3b, 0x82, 0xc4);
const BAND: RGBColor = RGBColor(0xd6, 0xe6, 0xf5);
/// The span of an alert's evidence (pale amber).
const EVIDENCE: RGBColor = RGBColor(0xfd, 0xf0, 0xd5);
const ANOMALY: RGBColor = RGBColor(0xd6, 0x27, 0x28);
const GRID: RGBColor = RGBColor(0xee, 0xee, 0xee);
const TEXT: RGBColor = RGBColor(0x33, 0x33, 0x33);
const MUTED: RGBColor = RGBColor(0x77, 0x77, 0x77);

/// Registers the vendored font with plotters, once per process. A
/// `OnceLock` rather than a bare `Once` so every later call learns whether
/// the first one succeeded.
fn ensure_font() -> Result<(), ChartError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED
        .get_or_init(|| plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_ok());
    if ok {
        Ok(())
    } else {
        Err(ChartError::Font)
    }
}

/// Draws `alert.recent` as a `width`×`height` PNG (about 600×240 reads well
/// in an email).
pub fn render_png(alert: &Transition, width: u32, height: u32) -> Result<Vec<u8>, ChartError> {
    if width == 0 || height == 0 || width > MAX_SIDE || height > MAX_SIDE {
        return Err(ChartError::Size { width, height });
    }
    ensure_font()?;
    // Both sides are at most MAX_SIDE, so this cannot overflow.
    let mut rgb = vec![0u8; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (width, height)).into_drawing_area();
        draw(&root, alert).map_err(|e| ChartError::Draw(e.to_string()))?;
        root.present()
            .map_err(|e| ChartError::Draw(e.to_string()))?;
    }
    encode_png(&rgb, width, height)
}

/// PNG bytes of an 8-bit RGB buffer.
fn encode_png(rgb: &[u8], width: u32, height: u32) -> Result<Vec<u8>, ChartError> {
    let mut out = Vec::with_capacity(rgb.len() / 8);
    {
        let mut encoder = png::Encoder::new(&mut out, width, height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        // Per-row filter choice: a chart is mostly flat colour, and this
        // makes it about a third of the size (~14 KB instead of ~38 KB).
        encoder.set_compression(png::Compression::Default);
        encoder.set_adaptive_filter(png::AdaptiveFilterType::Adaptive);
        let mut writer = encoder
            .write_header()
            .map_err(|e| ChartError::Encode(e.to_string()))?;
        writer
            .write_image_data(rgb)
            .map_err(|e| ChartError::Encode(e.to_string()))?;
        writer
            .finish()
            .map_err(|e| ChartError::Encode(e.to_string()))?;
    }
    Ok(out)
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, alert: &Transition) -> DrawResult
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let (width, height) = root.dim_in_pixel();
    let small = height < 180 || width < 400;
    let title_size = if small { 12.0 } else { 15.0 };
    let label_size = if small { 10.0 } else { 12.0 };

    let recent = &alert.recent;
    let frame = Frame::of(recent);

    // Title on the left; on the right, in grey, the UTC date(s) the x axis
    // shows only as times of day.
    let when = frame.map(|f| dates(f.x0, f.x1)).unwrap_or_default();
    let when_font = (FAMILY, label_size).into_font().color(&MUTED);
    let when_width = if when.is_empty() {
        0
    } else {
        let (w, _) = root.estimate_text_size(&when, &when_font)?;
        root.draw(&Text::new(
            when.clone(),
            (width as i32 - w as i32 - 8, 8),
            when_font,
        ))?;
        w + 16
    };
    let title = fit(&title(alert), width.saturating_sub(when_width), title_size);
    root.draw(&Text::new(
        title,
        (10, 6),
        (FAMILY, title_size).into_font().color(&TEXT),
    ))?;
    let body = root.margin(title_size as u32 + 14, 6, 6, 14);

    let Some(frame) = frame else {
        let (w, h) = body.dim_in_pixel();
        body.draw(&Text::new(
            "no recent data",
            (w as i32 / 2 - 45, h as i32 / 2 - 6),
            (FAMILY, label_size).into_font().color(&MUTED),
        ))?;
        return Ok(());
    };

    let mut chart = ChartBuilder::on(&body)
        .x_label_area_size(if small { 18 } else { 22 })
        .y_label_area_size(if small { 40 } else { 52 })
        .build_cartesian_2d(
            (frame.x0..frame.x1).with_key_points(time_ticks(
                frame.x0,
                frame.x1,
                if small { 4 } else { 7 },
            )),
            frame.y0..frame.y1,
        )?;

    let spans_days = day(frame.x0) != day(frame.x1);
    chart
        .configure_mesh()
        .light_line_style(TRANSPARENT)
        .bold_line_style(GRID)
        .axis_style(MUTED)
        .y_labels(if small { 4 } else { 5 })
        .label_style((FAMILY, label_size).into_font().color(&MUTED))
        .x_label_formatter(&|x| time_label(*x, spans_days))
        .y_label_formatter(&|y| value_label(*y))
        .draw()?;

    let clamp = |v: f32| f64::from(v).clamp(frame.y0, frame.y1);

    // The evidence's span, when it is several buckets (a window, or a
    // comparison with peers): the stretch the alert's figures add up, so
    // a reader sees that no single point has to be outside its band.
    let e = &alert.evidence;
    if e.buckets > 1 && e.from < e.to {
        let x0 = e.from.max(frame.x0);
        let x1 = (e.to - frame.step).max(x0).min(frame.x1);
        chart.draw_series(std::iter::once(Rectangle::new(
            [(x0, frame.y0), (x1, frame.y1)],
            EVIDENCE.filled(),
        )))?;
    }

    // The band, one polygon per run of buckets whose edges are known (a NaN
    // edge means no baseline yet: nothing is shaded there). Infinite edges
    // clamp to the plot area: an open band fills to the frame.
    for run in runs(recent, |b| !b.lower.is_nan() && !b.upper.is_nan()) {
        let mut outline: Vec<(i64, f64)> = run.iter().map(|b| (b.t, clamp(b.upper))).collect();
        outline.extend(run.iter().rev().map(|b| (b.t, clamp(b.lower))));
        if run.len() == 1 {
            // One bucket: a short vertical bar, visible but not misleading.
            let b = run[0];
            let half = (frame.step / 6).max(1);
            chart.draw_series(std::iter::once(Rectangle::new(
                [(b.t - half, clamp(b.upper)), (b.t + half, clamp(b.lower))],
                BAND.filled(),
            )))?;
        } else {
            chart.draw_series(std::iter::once(Polygon::new(outline, BAND.filled())))?;
        }
    }

    // Expected: thin, broken where unknown.
    for run in runs(recent, |b| b.expected.is_finite()) {
        chart.draw_series(LineSeries::new(
            run.iter().map(|b| (b.t, clamp(b.expected))),
            EXPECTED.stroke_width(1),
        ))?;
    }

    // Observed: the line people look at; broken where a bucket has no value.
    for run in runs(recent, |b| b.value.is_finite()) {
        if run.len() == 1 {
            chart.draw_series(std::iter::once(Circle::new(
                (run[0].t, run[0].value),
                2,
                OBSERVED.filled(),
            )))?;
        } else {
            chart.draw_series(LineSeries::new(
                run.iter().map(|b| (b.t, b.value)),
                OBSERVED.stroke_width(2),
            ))?;
        }
    }

    // Anomalous buckets. A NaN value (nothing arrived: an absence) sits on
    // the lower frame, where "nothing" is.
    chart.draw_series(recent.iter().filter(|b| b.anomalous).map(|b| {
        let y = if b.value.is_finite() {
            b.value
        } else {
            frame.y0
        };
        Circle::new((b.t, y), 4, ANOMALY.filled())
    }))?;

    Ok(())
}

/// The plotted ranges.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Frame {
    /// Epoch seconds.
    x0: i64,
    /// Epoch seconds.
    x1: i64,
    y0: f64,
    y1: f64,
    /// The bucket width (seconds), from the data; 60 when unknown.
    step: i64,
}

impl Frame {
    /// Ranges that show every finite number in `recent`; `None` when there
    /// is no bucket at all.
    fn of(recent: &[RecentBucket]) -> Option<Self> {
        let first = recent.first()?.t;
        let last = recent.last()?.t;
        let step = recent
            .windows(2)
            .map(|w| w[1].t.saturating_sub(w[0].t))
            .filter(|d| *d > 0)
            .min()
            .unwrap_or(60);
        // Half a bucket of air on both sides, so the end points are not on
        // the frame.
        let half = (step / 2).max(1);
        let (x0, x1) = (
            first.min(last).saturating_sub(half),
            first.max(last).saturating_add(half),
        );

        let values = recent.iter().flat_map(|b| {
            [
                b.value,
                f64::from(b.expected),
                f64::from(b.lower),
                f64::from(b.upper),
            ]
        });
        let (lo, hi) = values
            .filter(|v| v.is_finite())
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                (lo.min(v), hi.max(v))
            });
        let (y0, y1) = if lo.is_finite() {
            y_range(lo, hi)
        } else {
            (0.0, 1.0)
        };
        Some(Frame {
            x0,
            x1,
            y0,
            y1,
            step,
        })
    }
}

/// A padded y range around `lo..=hi`. Non-negative data whose minimum is
/// not far above zero start at zero: for counts and money, the distance to
/// zero is part of the story (a drop to half looks like half).
fn y_range(lo: f64, hi: f64) -> (f64, f64) {
    if hi - lo <= f64::EPSILON * hi.abs().max(1.0) {
        // Constant: centre it with a visible margin.
        let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        return (lo - pad, hi + pad);
    }
    let pad = (hi - lo) * 0.08;
    let y0 = if lo >= 0.0 && lo <= hi * 0.5 {
        0.0
    } else {
        lo - pad
    };
    (y0, hi + pad)
}

/// Maximal runs of consecutive buckets that satisfy `keep`.
fn runs(recent: &[RecentBucket], keep: impl Fn(&RecentBucket) -> bool) -> Vec<&[RecentBucket]> {
    recent
        .split(|b| !keep(b))
        .filter(|run| !run.is_empty())
        .collect()
}

/// `checkouts {country=FI, device=ios}`.
fn title(alert: &Transition) -> String {
    if alert.labels.is_empty() {
        return alert.kpi.clone();
    }
    let labels: Vec<String> = alert
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!("{} {{{}}}", alert.kpi, labels.join(", "))
}

/// `text` cut with an ellipsis so it fits `width` pixels at `size` (an
/// estimate: DejaVu Sans averages about 0.6 em per character).
fn fit(text: &str, width: u32, size: f64) -> String {
    let max_chars = ((f64::from(width) - 20.0) / (size * 0.6)).max(4.0) as usize;
    if text.chars().count() <= max_chars {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max_chars - 1).collect();
    cut.push('…');
    cut
}

/// The UTC day of epoch seconds.
fn day(t: i64) -> i64 {
    t.div_euclid(86_400)
}

/// Round UTC times in `x0..=x1` for the x axis: multiples of the smallest
/// "clock" step (1, 2, 5, 10, 15, 30 minutes, 1, 2, 3, 6, 12 hours, days)
/// that gives at most `max` ticks. Every step up to a day divides a day, so
/// a range that crosses midnight always has a tick there (which shows the
/// date, see [`time_label`]).
fn time_ticks(x0: i64, x1: i64, max: usize) -> Vec<i64> {
    const STEPS: [i64; 16] = [
        60, 120, 300, 600, 900, 1800, 3600, 7200, 10_800, 21_600, 43_200, 86_400, 172_800, 604_800,
        2_592_000, 31_536_000,
    ];
    let span = x1.saturating_sub(x0).max(0);
    let max = i64::try_from(max.max(1)).unwrap_or(i64::MAX);
    let step = STEPS
        .iter()
        .copied()
        .find(|s| span / s <= max)
        // Beyond years: whole days, as many as it takes.
        .unwrap_or_else(|| (span / max / 86_400 + 1).saturating_mul(86_400));
    let first = x0.div_euclid(step) + i64::from(x0.rem_euclid(step) != 0);
    let last = x1.div_euclid(step);
    (first..=last)
        .take(64)
        .map(|k| k.saturating_mul(step))
        .collect()
}

/// The UTC date(s) of `x0..x1`: `2024-01-01 UTC`, or
/// `2024-01-13 – 01-14 UTC` across days.
fn dates(x0: i64, x1: i64) -> String {
    let at = |t: i64| DateTime::from_timestamp(t, 0);
    match (at(x0), at(x1)) {
        (Some(a), Some(b)) if a.date_naive() == b.date_naive() => {
            format!("{} UTC", a.format("%Y-%m-%d"))
        }
        (Some(a), Some(b)) if a.format("%Y").to_string() == b.format("%Y").to_string() => {
            format!("{} – {} UTC", a.format("%Y-%m-%d"), b.format("%m-%d"))
        }
        (Some(a), Some(b)) => format!("{} – {} UTC", a.format("%Y-%m-%d"), b.format("%Y-%m-%d")),
        _ => String::new(),
    }
}

/// `14:05` (UTC); at midnight of a chart that spans days, the date
/// (`Jan 02`) instead.
fn time_label(t: i64, spans_days: bool) -> String {
    match DateTime::from_timestamp(t, 0) {
        Some(d) if spans_days && d.format("%H:%M").to_string() == "00:00" => {
            d.format("%b %d").to_string()
        }
        Some(d) => d.format("%H:%M").to_string(),
        None => String::new(),
    }
}

/// Compact axis values: `950`, `12.5`, `1.2k`, `3.4M`.
fn value_label(v: f64) -> String {
    let a = v.abs();
    let (scaled, suffix) = if a >= 1e9 {
        (v / 1e9, "G")
    } else if a >= 1e6 {
        (v / 1e6, "M")
    } else if a >= 1e4 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    let text = if scaled.abs() >= 100.0 || scaled.fract() == 0.0 {
        format!("{scaled:.0}")
    } else if scaled.abs() >= 10.0 {
        format!("{scaled:.1}")
    } else {
        format!("{scaled:.2}")
    };
    // "1.50" → "1.5", "2.00" never happens (fract == 0 above).
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    };
    format!("{text}{suffix}")
}

#[cfg(test)]
pub(crate) mod testing {
    //! A realistic transition for the notifier's unit tests.

    use std::collections::BTreeMap;

    use detectors::Direction;

    use crate::alert::{RecentBucket, Severity, Status, Transition};

    /// 2024-01-01 00:00:00 UTC.
    pub const T0: i64 = 1_704_067_200;

    /// Checkouts in FI dropping 63% after 40 normal minutes, one bucket a
    /// minute, ending at the transition's bucket.
    pub fn checkouts_drop() -> Transition {
        let recent: Vec<RecentBucket> = (0..48)
            .map(|i| {
                let t = T0 + 36_000 + i * 60;
                let expected = 120.0 + 15.0 * (((i - 47) as f64) / 8.0).sin();
                let value = if i >= 44 {
                    expected * 0.37
                } else {
                    expected + 6.0 * ((i * 7 % 5) as f64 - 2.0)
                };
                RecentBucket {
                    t,
                    value,
                    expected: expected as f32,
                    lower: (expected * 0.8) as f32,
                    upper: (expected * 1.2) as f32,
                    anomalous: i >= 44,
                }
            })
            .collect();
        let last = *recent.last().expect("48 buckets");
        Transition {
            status: Status::Firing,
            alert_id: "3f2a9c1d00e4b7a1".to_string(),
            kpi: "checkouts".to_string(),
            labels: BTreeMap::from([("country".to_string(), "FI".to_string())]),
            severity: Severity::Critical,
            escalated_from: None,
            direction: Direction::Drop,
            started_at: recent[44].t,
            bucket_start: last.t,
            bucket_end: last.t + 60,
            observed: last.value,
            expected: f64::from(last.expected),
            lower: f64::from(last.lower),
            upper: f64::from(last.upper),
            score: 0.62,
            deviation_pct: Some((last.value / f64::from(last.expected) - 1.0) * 100.0),
            evidence: Default::default(),
            description: Some("Completed checkouts per minute".to_string()),
            runbook: Some("https://wiki.example.com/runbooks/checkouts".to_string()),
            dashboard: None,
            recent,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{checkouts_drop, T0};
    use super::*;

    const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];

    /// Decodes `png` and returns (width, height, distinct colours seen).
    fn decode(png: &[u8]) -> (u32, u32, usize) {
        assert_eq!(png[..8], PNG_SIGNATURE, "PNG signature");
        let decoder = png::Decoder::new(png);
        let mut reader = decoder.read_info().expect("a readable PNG header");
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).expect("decodable image data");
        let pixels = &buf[..info.buffer_size()];
        let colours: std::collections::HashSet<&[u8]> = pixels.chunks(3).collect();
        (info.width, info.height, colours.len())
    }

    fn has_colour(png: &[u8], colour: RGBColor) -> bool {
        let decoder = png::Decoder::new(png);
        let mut reader = decoder.read_info().expect("a readable PNG header");
        let mut buf = vec![0; reader.output_buffer_size()];
        reader.next_frame(&mut buf).expect("decodable image data");
        buf.chunks(3).any(|p| p == [colour.0, colour.1, colour.2])
    }

    #[test]
    fn renders_a_png_of_the_requested_size() {
        let png = render_png(&checkouts_drop(), 600, 240).expect("chart renders");
        let (w, h, colours) = decode(&png);
        assert_eq!((w, h), (600, 240));
        // Text antialiasing, lines, band: far more than a blank image.
        assert!(colours > 20, "only {colours} colours: nothing was drawn?");
        assert!(
            png.len() < 30_000,
            "an email chart stays small: {} bytes",
            png.len()
        );
    }

    #[test]
    fn marks_anomalous_buckets_in_red_and_shades_the_band() {
        let png = render_png(&checkouts_drop(), 600, 240).expect("chart renders");
        assert!(has_colour(&png, ANOMALY), "red anomaly markers");
        assert!(has_colour(&png, BAND), "shaded band");

        let mut calm = checkouts_drop();
        calm.recent.iter_mut().for_each(|b| b.anomalous = false);
        let png = render_png(&calm, 600, 240).expect("chart renders");
        assert!(!has_colour(&png, ANOMALY), "no red without anomalies");
    }

    #[test]
    fn a_window_of_evidence_is_shaded_and_a_single_bucket_is_not() {
        let mut alert = checkouts_drop();
        let last = alert.recent.last().expect("buckets").t;
        alert.evidence = crate::alert::Evidence {
            kind: crate::alert::EvidenceKind::Window,
            from: last - 11 * 60,
            to: last + 60,
            buckets: 12,
            p: Some(1e-9),
            rule: None,
            share: None,
        };
        let png = render_png(&alert, 600, 240).expect("chart renders");
        assert!(has_colour(&png, EVIDENCE), "the window is shaded");
        alert.evidence = crate::alert::Evidence::bucket(last, last + 60, Some(1e-9));
        let png = render_png(&alert, 600, 240).expect("chart renders");
        assert!(!has_colour(&png, EVIDENCE), "one bucket needs no span");
    }

    #[test]
    fn empty_recent_still_renders_a_titled_png() {
        let mut alert = checkouts_drop();
        alert.recent.clear();
        let png = render_png(&alert, 600, 240).expect("chart renders");
        let (w, h, colours) = decode(&png);
        assert_eq!((w, h), (600, 240));
        assert!(colours > 2, "title and message are drawn");
    }

    #[test]
    fn one_bucket_renders() {
        let mut alert = checkouts_drop();
        alert.recent.drain(..alert.recent.len() - 1);
        let png = render_png(&alert, 600, 240).expect("chart renders");
        assert_eq!(decode(&png).0, 600);
        assert!(
            has_colour(&png, ANOMALY),
            "the single anomalous bucket shows"
        );
    }

    #[test]
    fn nan_and_infinite_band_edges_and_values_render() {
        let mut alert = checkouts_drop();
        for (i, b) in alert.recent.iter_mut().enumerate() {
            match i % 4 {
                0 => b.lower = f32::NEG_INFINITY,
                1 => b.upper = f32::INFINITY,
                2 => {
                    b.lower = f32::NAN;
                    b.expected = f32::NAN;
                }
                _ => b.value = f64::NAN,
            }
        }
        let png = render_png(&alert, 600, 240).expect("chart renders");
        assert_eq!(decode(&png).0, 600);

        // Nothing finite at all.
        for b in &mut alert.recent {
            *b = RecentBucket {
                value: f64::NAN,
                expected: f32::NAN,
                lower: f32::NEG_INFINITY,
                upper: f32::INFINITY,
                ..*b
            };
        }
        let png = render_png(&alert, 600, 240).expect("chart renders");
        assert_eq!(decode(&png).1, 240);
    }

    #[test]
    fn constant_values_render() {
        for level in [0.0, 5.0, -3.0, 1e12] {
            let mut alert = checkouts_drop();
            for b in &mut alert.recent {
                b.value = level;
                b.expected = level as f32;
                b.lower = level as f32;
                b.upper = level as f32;
            }
            let png = render_png(&alert, 600, 240).expect("chart renders");
            assert_eq!(decode(&png).0, 600, "level {level}");
        }
    }

    #[test]
    fn tiny_and_absurd_sizes() {
        let alert = checkouts_drop();
        let png = render_png(&alert, 120, 60).expect("a tiny chart still renders");
        assert_eq!(decode(&png).0, 120);
        assert_eq!(
            render_png(&alert, 0, 240),
            Err(ChartError::Size {
                width: 0,
                height: 240
            })
        );
        assert!(matches!(
            render_png(&alert, 600, MAX_SIDE + 1),
            Err(ChartError::Size { .. })
        ));
    }

    #[test]
    fn time_labels_show_the_date_only_across_days() {
        let t = T0 + 14 * 3600 + 5 * 60;
        assert_eq!(time_label(t, false), "14:05");
        assert_eq!(time_label(t, true), "14:05");
        assert_eq!(time_label(T0 + 86_400, true), "Jan 02");
        assert_eq!(time_label(T0 + 86_400, false), "00:00");
        assert_eq!(dates(t, t + 60), "2024-01-01 UTC");
        assert_eq!(dates(t, t + 86_400), "2024-01-01 – 01-02 UTC");
    }

    #[test]
    fn time_ticks_fall_on_round_clock_times() {
        let t = |h: i64, m: i64| T0 + h * 3600 + m * 60;
        // 10:02..10:49, at most 7 ticks: every 10 minutes.
        assert_eq!(
            time_ticks(t(10, 2), t(10, 49), 7),
            vec![t(10, 10), t(10, 20), t(10, 30), t(10, 40)]
        );
        // Across midnight, in hours: midnight is one of the ticks.
        let ticks = time_ticks(t(20, 0), t(28, 0), 7);
        assert!(ticks.contains(&t(24, 0)), "{ticks:?}");
        assert!(ticks.len() <= 7);
        // Degenerate ranges do not loop or panic.
        assert!(time_ticks(t(1, 0), t(1, 0), 7).len() <= 1);
        assert!(time_ticks(0, 1_000_000_000_000, 7).len() <= 7);
        assert!(time_ticks(i64::MIN, i64::MAX, 7).len() <= 64);
    }

    #[test]
    fn value_labels_are_compact() {
        assert_eq!(value_label(950.0), "950");
        assert_eq!(value_label(12.5), "12.5");
        assert_eq!(value_label(1.5), "1.5");
        assert_eq!(value_label(0.0), "0");
        assert_eq!(value_label(12_500.0), "12.5k");
        assert_eq!(value_label(3_400_000.0), "3.4M");
        assert_eq!(value_label(-250.0), "-250");
    }

    #[test]
    fn long_titles_are_cut_to_fit() {
        let text = "x".repeat(500);
        let cut = fit(&text, 600, 15.0);
        assert!(cut.chars().count() < 80);
        assert!(cut.ends_with('…'));
        assert_eq!(fit("checkouts", 600, 15.0), "checkouts");
    }
}
