//! Scenario files: a shop and what happens to it, as TOML, for
//! `kpiwatch simulate --scenario FILE.toml`.
//!
//! Parsed in two steps like the service's config: [`ScenarioToml`] mirrors
//! the file (unknown keys refused, values [`Spanned`] so errors point at
//! them), then [`Scenario::load`] validates it. An incident may change its
//! fields per traffic scale (`[incident.at_scale."0.1"]`) or run only at
//! some scales (`scales = [1, 10]`), because what is a fair test at ×10 can
//! be invisible at ×0.1; [`Scenario::at`] resolves the file at one scale
//! into a [`Shop`], the runtime model [`super::stream`] generates from and
//! [`super::labels`] writes labels from.
//!
//! Every error is a [`ConfigError`]: `file:line:column: what is wrong and
//! what to write instead`.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use chrono::{Offset, TimeZone};
use chrono_tz::Tz;
use serde::Deserialize;
use toml::Spanned;

use crate::config::{ConfigError, Source};

/// Event types the scenario shop writes, with their default rate relative to
/// page views. The order is the order of the generator's streams.
pub const EVENT_TYPES: [(&str, f64); 7] = [
    ("page_view", 1.0),
    ("login", 0.25),
    ("signup", 0.015),
    ("cart", 0.15),
    ("checkout", 0.06),
    ("payment", 0.06),
    ("payment_failed", 0.0015),
];

/// Index of `payment` in [`EVENT_TYPES`] (the type that carries amounts).
pub const PAYMENT: usize = 5;
/// Index of `payment_failed` in [`EVENT_TYPES`] (carries a node, no amount).
pub const PAYMENT_FAILED: usize = 6;

/// A scenario file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioToml {
    /// The shop: when, where, how busy, and its steady behaviour.
    pub shop: Spanned<ShopToml>,
    /// Things going wrong (or changing) that should alert.
    #[serde(default, rename = "incident")]
    pub incidents: Vec<Spanned<ChangeToml>>,
    /// Changes that must not alert (DST, growth, late delivery, an expected
    /// holiday).
    #[serde(default)]
    pub quiet: Vec<Spanned<ChangeToml>>,
}

/// `[shop]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShopToml {
    /// First event time: RFC 3339 with an offset, or a local date-time
    /// (read in `timezone`), quoted or as a TOML date-time.
    pub start: Spanned<toml::Value>,
    /// Days of events.
    pub days: Spanned<f64>,
    /// IANA time zone whose wall clock drives the daily and weekly shape.
    pub timezone: Spanned<String>,
    /// Page views per minute at the busiest hour of a weekday, at scale 1.
    pub peak_page_views: Spanned<f64>,
    /// Steady growth per week, e.g. 0.02 for +2 % a week (default 0).
    pub growth_per_week: Option<Spanned<f64>>,
    /// Distinct users the events are drawn from, at scale 1 (default 20000).
    pub users: Option<Spanned<f64>>,
    /// Payment nodes `node-1` .. `node-N`, sharing payments equally
    /// (default 6).
    pub nodes: Option<Spanned<i64>>,
    /// Countries and their share of traffic (shares add up to 1).
    pub countries: Spanned<BTreeMap<String, Spanned<f64>>>,
    /// Platforms and their share of traffic (shares add up to 1).
    pub platforms: Spanned<BTreeMap<String, Spanned<f64>>>,
    /// Rate of event types relative to page views, overriding the defaults.
    pub funnel: Option<Spanned<BTreeMap<String, Spanned<f64>>>>,
    /// Late delivery all the time: `{ share = 0.1, max_delay = "90s" }`.
    pub late: Option<Spanned<LateToml>>,
}

/// `late = { share, max_delay }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LateToml {
    /// Share of events written late, 0-1.
    pub share: Spanned<f64>,
    /// Longest delay between an event's time and its writing, e.g. "90s";
    /// keep it within the KPI config's `lateness`.
    pub max_delay: Spanned<String>,
}

/// `[[incident]]` and `[[quiet]]`, and the per-scale overrides of either
/// (`[incident.at_scale."0.1"]`), which may set any field but `id`,
/// `scales` and `at_scale`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeToml {
    /// Unique name, the incident's id in the labels.
    pub id: Option<Spanned<String>>,
    /// What kind of failure or change this is (free text, e.g.
    /// "total_outage"); results are grouped by it.
    pub kind: Option<Spanned<String>>,
    /// One line for people: what happened.
    pub note: Option<Spanned<String>>,
    /// Start: RFC 3339 with an offset, or a local date-time in the shop's
    /// time zone. Quiet spans without start and duration cover the run.
    pub start: Option<Spanned<toml::Value>>,
    /// How long, e.g. "45m", "2h", "1d".
    pub duration: Option<Spanned<String>>,
    /// The mechanism: "rate", "amount", "route", "users", "duplicate",
    /// "late" (quiet spans may have none).
    pub effect: Option<Spanned<String>>,
    /// Multiplier at full strength (rate, amount, route).
    pub factor: Option<Spanned<f64>>,
    /// Share of users or events affected at full strength (users,
    /// duplicate, late).
    pub share: Option<Spanned<f64>>,
    /// Longest delay of late events (late effect), e.g. "100s".
    pub max_delay: Option<Spanned<String>>,
    /// Time to reach full strength from the start, linearly (default 0).
    pub ramp_in: Option<Spanned<String>>,
    /// Time to return from full strength to normal before the end (default 0).
    pub ramp_out: Option<Spanned<String>>,
    /// Event types affected (default: all).
    pub types: Option<Spanned<Vec<Spanned<String>>>>,
    /// Only events of this country.
    pub country: Option<Spanned<String>>,
    /// Only events of this platform.
    pub platform: Option<Spanned<String>>,
    /// Only payments of this node (amount, route: required for route).
    pub node: Option<Spanned<String>>,
    /// Labels: KPI names (globs) the incident should alert on.
    pub kpis: Option<Spanned<Vec<String>>>,
    /// Labels: the series labels of the incident, e.g. { platform = "ios" }.
    pub labels: Option<Spanned<BTreeMap<String, String>>>,
    /// Labels: "drop", "spike" or "both".
    pub direction: Option<Spanned<String>>,
    /// Labels: the detection delay aimed at, in buckets of the alert's KPI.
    pub target_delay_buckets: Option<Spanned<i64>>,
    /// Run only at these scales (default: every scale).
    pub scales: Option<Spanned<Vec<f64>>>,
    /// Fields that differ at one scale, keyed by the scale ("0.1", "10").
    pub at_scale: Option<BTreeMap<String, Spanned<ChangeToml>>>,
}

/// How an incident changes the stream, at full strength. Ramps scale the
/// strength between nothing and this.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Effect {
    /// A descriptive span (DST, growth): nothing is changed.
    None,
    /// The rate of the targeted events is multiplied.
    Rate {
        /// Multiplier: 0 is an outage, 0.5 a halving, 5 a spike.
        factor: f64,
    },
    /// Payment amounts of the targeted payments are multiplied.
    Amount {
        /// Multiplier of each amount.
        factor: f64,
    },
    /// The node gets this share of its usual payments; the rest go to its
    /// peers (the total is unchanged).
    Route {
        /// Multiplier of the node's weight among the fleet.
        factor: f64,
    },
    /// A share of the users cannot log in: their targeted events vanish.
    Users {
        /// Share of the user pool affected.
        share: f64,
    },
    /// A share of the targeted events is written twice (producer retries).
    Duplicate {
        /// Share of events duplicated.
        share: f64,
    },
    /// A share of the targeted events is written late.
    Late {
        /// Share of events delayed.
        share: f64,
        /// Longest delay, seconds.
        max_delay: i64,
    },
}

/// What an incident's labels say, for the backtest.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelSpec {
    /// KPI names or globs.
    pub kpis: Vec<String>,
    /// Series labels.
    pub labels: BTreeMap<String, String>,
    /// "drop", "spike" or "both".
    pub direction: String,
    /// Target detection delay in buckets.
    pub target_delay_buckets: Option<u32>,
}

/// An incident or quiet span at one scale, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// Unique id.
    pub id: String,
    /// Kind, for grouping results.
    pub kind: String,
    /// What happened, for people.
    pub note: String,
    /// Start, epoch seconds.
    pub start: i64,
    /// End, epoch seconds (exclusive).
    pub end: i64,
    /// The mechanism at full strength.
    pub effect: Effect,
    /// Seconds from `start` to full strength.
    pub ramp_in: i64,
    /// Seconds from full strength back to none at `end`.
    pub ramp_out: i64,
    /// Bit `e` set: event type `EVENT_TYPES[e]` is affected.
    pub types: u16,
    /// Only this country (index into [`Shop::countries`]).
    pub country: Option<usize>,
    /// Only this platform (index into [`Shop::platforms`]).
    pub platform: Option<usize>,
    /// Only this node (0-based).
    pub node: Option<usize>,
    /// Labels for the backtest (incidents only).
    pub label: Option<LabelSpec>,
    /// True for a quiet span written without start and duration: it covers
    /// the whole run and may overlap anything.
    pub whole_run: bool,
}

impl Change {
    /// Strength at `t`: 0 outside the span, 1 at full strength, linear on
    /// the ramps.
    pub fn level(&self, t: i64) -> f64 {
        if t < self.start || t >= self.end {
            return 0.0;
        }
        let mut level: f64 = 1.0;
        if self.ramp_in > 0 && t < self.start + self.ramp_in {
            level = level.min((t - self.start) as f64 / self.ramp_in as f64);
        }
        if self.ramp_out > 0 && t >= self.end - self.ramp_out {
            level = level.min((self.end - t) as f64 / self.ramp_out as f64);
        }
        level
    }

    /// Whether the change applies to events of this type, country and
    /// platform.
    pub fn targets(&self, event_type: usize, country: usize, platform: usize) -> bool {
        self.types & (1 << event_type) != 0
            && self.country.is_none_or(|c| c == country)
            && self.platform.is_none_or(|p| p == platform)
    }
}

/// Late delivery: which share of events is written late, and how late at
/// most.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Late {
    /// Share of events delayed, 0-1.
    pub share: f64,
    /// Longest delay, seconds.
    pub max_delay: i64,
}

/// The shop at one scale: what [`super::stream`] generates.
#[derive(Debug, Clone)]
pub struct Shop {
    /// First event time, epoch seconds (a whole minute).
    pub start: i64,
    /// End, epoch seconds (exclusive).
    pub end: i64,
    /// Time zone of the daily and weekly shape.
    pub timezone: Tz,
    /// Page views per minute at the busiest weekday hour, scaled.
    pub peak_page_views: f64,
    /// Growth per week (0.02: +2 % a week), compounding.
    pub growth_per_week: f64,
    /// Size of the user pool, scaled.
    pub users: u32,
    /// Payment nodes.
    pub nodes: usize,
    /// Countries and shares.
    pub countries: Vec<(String, f64)>,
    /// Platforms and shares.
    pub platforms: Vec<(String, f64)>,
    /// Rate of each of [`EVENT_TYPES`] relative to page views.
    pub funnel: [f64; EVENT_TYPES.len()],
    /// Late delivery outside late spans.
    pub late: Late,
    /// Incidents at this scale, in start order.
    pub incidents: Vec<Change>,
    /// Quiet spans, in file order.
    pub quiet: Vec<Change>,
    /// The scale this shop was resolved at.
    pub scale: f64,
    /// Random seed.
    pub seed: u64,
}

impl Shop {
    /// Name of node `i` (0-based).
    pub fn node_name(i: usize) -> String {
        format!("node-{}", i + 1)
    }
}

/// One incident or quiet span as validated: its fields at scales without an
/// override, and at each scale that has one.
#[derive(Debug)]
struct Entry {
    /// The base fields, or why they do not make a complete incident (only
    /// an error when a scale without override uses them).
    base: Result<Change, ConfigError>,
    /// Per-scale resolutions.
    at_scale: Vec<(f64, Change)>,
    /// Scales the entry runs at (`None`: all).
    scales: Option<Vec<f64>>,
    /// Where the entry is, for errors found when resolving a scale.
    span: Range<usize>,
}

/// A validated scenario file.
#[derive(Debug)]
pub struct Scenario {
    /// The file, for errors found when resolving a scale.
    path: PathBuf,
    /// Its text, kept to turn spans into line:column then.
    text: String,
    /// The shop at scale 1, without incidents.
    shop: Shop,
    /// `[[incident]]` entries, in file order.
    incidents: Vec<Entry>,
    /// `[[quiet]]` entries, in file order.
    quiet: Vec<Entry>,
}

/// Two scales are the same scale (file keys are decimal text).
fn same_scale(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

impl Scenario {
    /// Reads and validates a scenario file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, text)
    }

    /// Validates `text`, read from `path`.
    pub fn parse(path: &Path, text: String) -> Result<Self, ConfigError> {
        let src = Source::new(path, &text);
        let raw: ScenarioToml = src.parse()?;
        let shop = shop(&src, &raw.shop)?;
        let mut ids = std::collections::BTreeSet::new();
        let mut entries = |list: &[Spanned<ChangeToml>], quiet: bool| {
            list.iter()
                .map(|c| {
                    let id = c.get_ref().id.as_ref().ok_or_else(|| {
                        src.error(c.span(), "this entry has no `id`; give it a unique name, e.g. id = \"checkouts-stop\"")
                    })?;
                    if !ids.insert(id.get_ref().clone()) {
                        return Err(src.error(
                            id.span(),
                            format!("id = {:?} is used twice; ids must be unique", id.get_ref()),
                        ));
                    }
                    entry(&src, &shop, c, quiet)
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let incidents = entries(&raw.incidents, false)?;
        let quiet = entries(&raw.quiet, true)?;
        Ok(Scenario {
            path: path.to_path_buf(),
            text,
            shop,
            incidents,
            quiet,
        })
    }

    /// Scales the file names (in `scales` lists or `at_scale` keys), sorted.
    pub fn named_scales(&self) -> Vec<f64> {
        let mut scales: Vec<f64> = Vec::new();
        for e in self.incidents.iter().chain(&self.quiet) {
            let named = e.scales.iter().flatten().copied();
            for s in named.chain(e.at_scale.iter().map(|(s, _)| *s)) {
                if !scales.iter().any(|&k| same_scale(k, s)) {
                    scales.push(s);
                }
            }
        }
        scales.sort_by(f64::total_cmp);
        scales
    }

    /// The scale whose incidents a run at `scale` gets: the nearest scale
    /// the file names at or below it, or `scale` itself when the file names
    /// none below it. Incidents are sized per scale so each leaves enough
    /// evidence to be detectable there; one sized for less traffic leaves
    /// at least that evidence at more, while one sized for more can leave
    /// none (at ×0.3, ×10's one-hour outage of Belgium's traffic left 5.6
    /// Belgian checkouts missing). So ×0.3 runs the ×0.1 incidents on three
    /// times their traffic, and ×3 the ×1 incidents.
    pub fn sizing_scale(&self, scale: f64) -> f64 {
        self.named_scales()
            .into_iter()
            .rfind(|&s| s <= scale || same_scale(s, scale))
            .unwrap_or(scale)
    }

    /// The shop at `scale` (traffic and users multiplied) with `seed`: each
    /// incident's fields for its [`Scenario::sizing_scale`], those not run
    /// at it left out.
    pub fn at(&self, scale: f64, seed: u64) -> Result<Shop, ConfigError> {
        let src = Source::new(&self.path, &self.text);
        if !(scale > 0.0 && scale.is_finite()) {
            return Err(ConfigError::Invalid {
                path: self.path.clone(),
                line: 1,
                column: 1,
                message: format!("--scale {scale} must be a positive number, e.g. 0.1, 1 or 10"),
            });
        }
        let sized = self.sizing_scale(scale);
        let resolve = |list: &[Entry]| -> Result<Vec<Change>, ConfigError> {
            let mut out = Vec::new();
            for e in list {
                if e.scales
                    .as_ref()
                    .is_some_and(|s| !s.iter().any(|&k| same_scale(k, sized)))
                {
                    continue;
                }
                match e.at_scale.iter().find(|(s, _)| same_scale(*s, sized)) {
                    Some((_, c)) => out.push(c.clone()),
                    None => match &e.base {
                        Ok(c) => out.push(c.clone()),
                        Err(why) => {
                            let hint = format!(
                                "at --scale {scale} the entry uses its own fields: complete them, add [incident.at_scale.\"{sized}\"], or list the scales it runs at in `scales`"
                            );
                            return Err(match why {
                                ConfigError::Invalid {
                                    path,
                                    line,
                                    column,
                                    message,
                                } => ConfigError::Invalid {
                                    path: path.clone(),
                                    line: *line,
                                    column: *column,
                                    message: format!("{message} ({hint})"),
                                },
                                other => src.error(e.span.clone(), format!("{other} ({hint})")),
                            });
                        }
                    },
                }
            }
            Ok(out)
        };
        let mut incidents = resolve(&self.incidents)?;
        incidents.sort_by_key(|c| c.start);
        let quiet = resolve(&self.quiet)?;
        let spans: Vec<&Change> = incidents
            .iter()
            .chain(quiet.iter().filter(|q| !q.whole_run))
            .collect();
        for (i, a) in spans.iter().enumerate() {
            for b in &spans[i + 1..] {
                if a.start < b.end && b.start < a.end {
                    let e = self.span_of(&a.id);
                    return Err(src.error(
                        e,
                        format!(
                            "at --scale {scale}, {:?} ({} to {}) overlaps {:?} ({} to {}); move one so each change's effect can be told apart",
                            a.id,
                            crate::timefmt::rfc3339(a.start),
                            crate::timefmt::rfc3339(a.end),
                            b.id,
                            crate::timefmt::rfc3339(b.start),
                            crate::timefmt::rfc3339(b.end)
                        ),
                    ));
                }
            }
        }
        let mut shop = self.shop.clone();
        shop.peak_page_views *= scale;
        shop.users = ((shop.users as f64 * scale).round() as u32).max(1);
        shop.incidents = incidents;
        shop.quiet = quiet;
        shop.scale = scale;
        shop.seed = seed;
        Ok(shop)
    }

    fn span_of(&self, id: &str) -> Range<usize> {
        self.incidents
            .iter()
            .chain(&self.quiet)
            .find(|e| {
                e.base.as_ref().is_ok_and(|c| c.id == id)
                    || e.at_scale.iter().any(|(_, c)| c.id == id)
            })
            .map_or(0..0, |e| e.span.clone())
    }
}

/// A time written as RFC 3339 with an offset (absolute) or as a local
/// date-time, read in `tz`.
fn time(src: &Source<'_>, v: &Spanned<toml::Value>, key: &str, tz: Tz) -> Result<i64, ConfigError> {
    let text = match v.get_ref() {
        toml::Value::String(s) => s.clone(),
        toml::Value::Datetime(d) => d.to_string(),
        other => {
            return Err(src.error(
                v.span(),
                format!("{key} = {other} is not a time; write e.g. \"2025-03-20T14:00:00\" (local) or \"2025-03-20T13:00:00Z\""),
            ))
        }
    };
    let bad = || {
        src.error(
            v.span(),
            format!("{key} = {text:?} is not a time; write e.g. \"2025-03-20T14:00:00\" (local, in {tz}) or \"2025-03-20T13:00:00Z\""),
        )
    };
    let written = if text.len() == 16 {
        format!("{text}:00")
    } else {
        text.clone()
    };
    let ts = crate::timefmt::parse(&written).ok_or_else(bad)?;
    if !ts.naive {
        return Ok(ts.epoch);
    }
    let naive = chrono::DateTime::from_timestamp(ts.epoch, 0)
        .ok_or_else(bad)?
        .naive_utc();
    match tz.from_local_datetime(&naive) {
        chrono::LocalResult::Single(t) => Ok(t.timestamp()),
        // The hour that repeats when clocks go back: the first of the two.
        chrono::LocalResult::Ambiguous(t, _) => Ok(t.timestamp()),
        chrono::LocalResult::None => Err(src.error(
            v.span(),
            format!("{key} = {text:?} does not exist in {tz}: the clocks skip it; use a time an hour later, or UTC with Z"),
        )),
    }
}

/// A duration like "45m" within `min..=max` seconds.
fn seconds(
    src: &Source<'_>,
    v: &Spanned<String>,
    key: &str,
    min: i64,
    max: i64,
) -> Result<i64, ConfigError> {
    let d = humantime::parse_duration(v.get_ref())
        .map_err(|_| {
            src.error(
                v.span(),
                format!(
                    "{key} = {:?} is not a duration; write e.g. \"45m\", \"2h\", \"1d\"",
                    v.get_ref()
                ),
            )
        })?
        .as_secs() as i64;
    if !(min..=max).contains(&d) {
        return Err(src.error(
            v.span(),
            format!(
                "{key} = {:?} is out of range; use {min} s to {max} s",
                v.get_ref()
            ),
        ));
    }
    Ok(d)
}

/// A number in `range`.
fn number(
    src: &Source<'_>,
    v: &Spanned<f64>,
    key: &str,
    range: Range<f64>,
    hint: &str,
) -> Result<f64, ConfigError> {
    let x = *v.get_ref();
    if !(x.is_finite() && x >= range.start && x < range.end) {
        return Err(src.error(v.span(), format!("{key} = {x} is out of range; {hint}")));
    }
    Ok(x)
}

/// Named shares that add up to 1.
fn shares(
    src: &Source<'_>,
    v: &Spanned<BTreeMap<String, Spanned<f64>>>,
    key: &str,
) -> Result<Vec<(String, f64)>, ConfigError> {
    let mut out = Vec::new();
    for (name, share) in v.get_ref() {
        let s = number(
            src,
            share,
            &format!("{key}.{name}"),
            0.0..1.000_001,
            "a share is between 0 and 1",
        )?;
        out.push((name.clone(), s));
    }
    let total: f64 = out.iter().map(|(_, s)| s).sum();
    if out.is_empty() || (total - 1.0).abs() > 1e-3 {
        return Err(src.error(
            v.span(),
            format!("{key} shares add up to {total}; make them add up to 1, e.g. {{ DE = 0.6, FR = 0.4 }}"),
        ));
    }
    Ok(out)
}

fn shop(src: &Source<'_>, s: &Spanned<ShopToml>) -> Result<Shop, ConfigError> {
    let raw = s.get_ref();
    let timezone: Tz = raw.timezone.get_ref().parse().map_err(|_| {
        src.error(
            raw.timezone.span(),
            format!("timezone = {:?} is not an IANA time zone; write e.g. \"Europe/Berlin\" or \"America/New_York\"", raw.timezone.get_ref()),
        )
    })?;
    let start = time(src, &raw.start, "start", timezone)?;
    let days = number(
        src,
        &raw.days,
        "days",
        1.0 / 24.0..3661.0,
        "use 1/24 to 3660 days",
    )?;
    let peak_page_views = number(
        src,
        &raw.peak_page_views,
        "peak_page_views",
        1e-3..1e7,
        "page views per minute at the busiest hour, e.g. 75",
    )?;
    let growth_per_week = match &raw.growth_per_week {
        Some(g) => number(
            src,
            g,
            "growth_per_week",
            -0.5..1.0,
            "a weekly growth rate, e.g. 0.02 for +2 % a week",
        )?,
        None => 0.0,
    };
    let users = match &raw.users {
        Some(u) => number(
            src,
            u,
            "users",
            1.0..1e9,
            "the user pool at scale 1, e.g. 20000",
        )?,
        None => 20_000.0,
    };
    let nodes = match &raw.nodes {
        Some(n) if !(1..=64).contains(n.get_ref()) => {
            return Err(src.error(
                n.span(),
                format!("nodes = {} is out of range; use 1 to 64", n.get_ref()),
            ))
        }
        Some(n) => *n.get_ref() as usize,
        None => 6,
    };
    let mut funnel = EVENT_TYPES.map(|(_, r)| r);
    if let Some(f) = &raw.funnel {
        for (name, rate) in f.get_ref() {
            let i = event_type(name).ok_or_else(|| {
                src.error(
                    f.span(),
                    format!("funnel.{name} is not an event type; use {}", type_names()),
                )
            })?;
            funnel[i] = number(
                src,
                rate,
                &format!("funnel.{name}"),
                0.0..100.0,
                "a rate relative to page views, e.g. 0.06",
            )?;
        }
    }
    let late = match &raw.late {
        Some(l) => Late {
            share: number(
                src,
                &l.get_ref().share,
                "late.share",
                0.0..1.000_001,
                "a share between 0 and 1",
            )?,
            max_delay: seconds(src, &l.get_ref().max_delay, "late.max_delay", 1, 3600)?,
        },
        None => Late {
            share: 0.0,
            max_delay: 0,
        },
    };
    Ok(Shop {
        start: start.div_euclid(60) * 60,
        end: start + (days * 86_400.0).round() as i64,
        timezone,
        peak_page_views,
        growth_per_week,
        users: users.round() as u32,
        nodes,
        countries: shares(src, &raw.countries, "countries")?,
        platforms: shares(src, &raw.platforms, "platforms")?,
        funnel,
        late,
        incidents: Vec::new(),
        quiet: Vec::new(),
        scale: 1.0,
        seed: 1,
    })
}

fn event_type(name: &str) -> Option<usize> {
    EVENT_TYPES.iter().position(|(t, _)| *t == name)
}

fn type_names() -> String {
    EVENT_TYPES.map(|(t, _)| t).join(", ")
}

/// Validates an incident or quiet span: its base fields and each per-scale
/// override merged over them.
fn entry(
    src: &Source<'_>,
    shop: &Shop,
    c: &Spanned<ChangeToml>,
    quiet: bool,
) -> Result<Entry, ConfigError> {
    let raw = c.get_ref();
    let scales = match &raw.scales {
        Some(s)
            if s.get_ref().is_empty()
                || s.get_ref().iter().any(|x| !(*x > 0.0 && x.is_finite())) =>
        {
            return Err(src.error(s.span(), "scales must list positive scales, e.g. [1, 10]"))
        }
        Some(s) => Some(s.get_ref().clone()),
        None => None,
    };
    let mut at_scale = Vec::new();
    for (key, over) in raw.at_scale.iter().flatten() {
        let scale: f64 = key.parse().ok().filter(|s: &f64| *s > 0.0 && s.is_finite()).ok_or_else(|| {
            src.error(over.span(), format!("at_scale.{key:?} is not a scale; key overrides by a positive number, e.g. [incident.at_scale.\"0.1\"]"))
        })?;
        let o = over.get_ref();
        for (set, name) in [
            (o.id.is_some(), "id"),
            (o.scales.is_some(), "scales"),
            (o.at_scale.is_some(), "at_scale"),
        ] {
            if set {
                return Err(src.error(
                    over.span(),
                    format!("`{name}` cannot change per scale; set it on the entry itself"),
                ));
            }
        }
        at_scale.push((scale, change(src, shop, raw, Some(o), quiet)?));
    }
    // Without overrides the entry's own fields must be complete; with
    // them, only a scale that uses them needs them (see `Scenario::at`).
    let mut base = change(src, shop, raw, None, quiet);
    if at_scale.is_empty() {
        base = Ok(base?);
    }
    Ok(Entry {
        base,
        at_scale,
        scales,
        span: c.span(),
    })
}

/// The change described by `base` with `over`'s fields in place of its own.
fn change(
    src: &Source<'_>,
    shop: &Shop,
    base: &ChangeToml,
    over: Option<&ChangeToml>,
    quiet: bool,
) -> Result<Change, ConfigError> {
    macro_rules! pick {
        ($f:ident) => {
            over.and_then(|o| o.$f.as_ref()).or(base.$f.as_ref())
        };
    }
    let id = base
        .id
        .as_ref()
        .map(|i| i.get_ref().clone())
        .unwrap_or_default();
    let missing = |what: &str, example: &str| {
        src.error(
            base.id.as_ref().map_or(0..0, Spanned::span),
            format!("{id:?} has no `{what}`; add e.g. {what} = {example}"),
        )
    };
    let kind = pick!(kind).ok_or_else(|| missing("kind", "\"total_outage\""))?;
    let (start, end, whole_run) = match (pick!(start), pick!(duration)) {
        (Some(s), Some(d)) => {
            let start = time(src, s, "start", shop.timezone)?;
            let d = seconds(src, d, "duration", 60, 366 * 86_400)?;
            (start, start + d, false)
        }
        (None, None) if quiet => (shop.start, shop.end, true),
        (None, _) => return Err(missing("start", "\"2025-03-20T14:00:00\"")),
        (Some(_), None) => return Err(missing("duration", "\"45m\"")),
    };
    if start < shop.start || end > shop.end {
        let at = pick!(start).map_or(0..0, Spanned::span);
        return Err(src.error(
            at,
            format!(
                "{id:?} runs from {} to {}, outside the shop's events ({} to {}); move it inside",
                crate::timefmt::rfc3339(start),
                crate::timefmt::rfc3339(end),
                crate::timefmt::rfc3339(shop.start),
                crate::timefmt::rfc3339(shop.end)
            ),
        ));
    }
    let factor = |hint: &str| -> Result<f64, ConfigError> {
        let f = pick!(factor).ok_or_else(|| missing("factor", hint))?;
        number(
            src,
            f,
            "factor",
            0.0..1000.0,
            "a multiplier >= 0: 0 stops, 0.5 halves, 5 is a spike",
        )
    };
    let share = || -> Result<f64, ConfigError> {
        let s = pick!(share).ok_or_else(|| missing("share", "0.3"))?;
        number(src, s, "share", 0.0..1.000_001, "a share between 0 and 1")
    };
    let effect = match pick!(effect) {
        None if quiet => Effect::None,
        None => return Err(missing("effect", "\"rate\"")),
        Some(e) => match e.get_ref().as_str() {
            "rate" => Effect::Rate { factor: factor("0")? },
            "amount" => Effect::Amount { factor: factor("0.5")? },
            "route" => Effect::Route { factor: factor("0.4")? },
            "users" => Effect::Users { share: share()? },
            "duplicate" => Effect::Duplicate { share: share()? },
            "late" => Effect::Late {
                share: share()?,
                max_delay: seconds(src, pick!(max_delay).ok_or_else(|| missing("max_delay", "\"100s\""))?, "max_delay", 1, 3600)?,
            },
            other => {
                return Err(src.error(
                    e.span(),
                    format!("effect = {other:?} is not known; use \"rate\", \"amount\", \"route\", \"users\", \"duplicate\" or \"late\""),
                ))
            }
        },
    };
    let ramp = |v: Option<&Spanned<String>>, key: &str| match v {
        Some(v) => seconds(src, v, key, 0, end - start),
        None => Ok(0),
    };
    let ramp_in = ramp(pick!(ramp_in), "ramp_in")?;
    let ramp_out = ramp(pick!(ramp_out), "ramp_out")?;
    if ramp_in + ramp_out > end - start {
        return Err(src.error(
            pick!(ramp_out).map_or(0..0, Spanned::span),
            format!("{id:?}: ramp_in + ramp_out are longer than its duration; shorten them"),
        ));
    }
    let types = match pick!(types) {
        None => (1u16 << EVENT_TYPES.len()) - 1,
        Some(list) => {
            let mut mask = 0;
            for t in list.get_ref() {
                let i = event_type(t.get_ref()).ok_or_else(|| {
                    src.error(
                        t.span(),
                        format!(
                            "{:?} is not an event type; use {}",
                            t.get_ref(),
                            type_names()
                        ),
                    )
                })?;
                mask |= 1 << i;
            }
            if mask == 0 {
                return Err(src.error(
                    list.span(),
                    "types is empty; list the event types affected, or leave it out for all",
                ));
            }
            mask
        }
    };
    let named =
        |v: Option<&Spanned<String>>, key: &str, plural: &str, names: &[(String, f64)]| match v {
            None => Ok(None),
            Some(v) => names
                .iter()
                .position(|(n, _)| n == v.get_ref())
                .map(Some)
                .ok_or_else(|| {
                    let known: Vec<&str> = names.iter().map(|(n, _)| n.as_str()).collect();
                    src.error(
                        v.span(),
                        format!(
                            "{key} = {:?} is not one of the shop's {plural}: {}",
                            v.get_ref(),
                            known.join(", ")
                        ),
                    )
                }),
        };
    let country = named(pick!(country), "country", "countries", &shop.countries)?;
    let platform = named(pick!(platform), "platform", "platforms", &shop.platforms)?;
    let node_names: Vec<(String, f64)> =
        (0..shop.nodes).map(|i| (Shop::node_name(i), 0.0)).collect();
    let node = named(pick!(node), "node", "nodes", &node_names)?;
    if matches!(effect, Effect::Route { .. }) && node.is_none() {
        return Err(missing(
            "node",
            "\"node-4\" (the node payments are routed away from)",
        ));
    }
    let label_keys = [
        (pick!(kpis).map(Spanned::span), "kpis"),
        (pick!(labels).map(Spanned::span), "labels"),
        (pick!(direction).map(Spanned::span), "direction"),
        (
            pick!(target_delay_buckets).map(Spanned::span),
            "target_delay_buckets",
        ),
    ];
    let label = if quiet {
        if let Some((Some(span), key)) = label_keys.into_iter().find(|(s, _)| s.is_some()) {
            return Err(src.error(
                span,
                format!("`{key}` labels an incident; a quiet span must not alert, so it has none"),
            ));
        }
        None
    } else {
        let kpis =
            pick!(kpis).ok_or_else(|| missing("kpis", "[\"checkouts\", \"checkouts_by_*\"]"))?;
        if kpis.get_ref().is_empty() {
            return Err(src.error(
                kpis.span(),
                "kpis is empty; name the KPIs (globs allowed) this incident should alert on",
            ));
        }
        let direction = match pick!(direction) {
            None => "both".to_string(),
            Some(d) if ["drop", "spike", "both"].contains(&d.get_ref().as_str()) => {
                d.get_ref().clone()
            }
            Some(d) => {
                return Err(src.error(
                    d.span(),
                    format!(
                        "direction = {:?} is not known; use \"drop\", \"spike\" or \"both\"",
                        d.get_ref()
                    ),
                ))
            }
        };
        let target_delay_buckets = match pick!(target_delay_buckets) {
            None => None,
            Some(t) if (1..=10_000).contains(t.get_ref()) => Some(*t.get_ref() as u32),
            Some(t) => {
                return Err(src.error(
                    t.span(),
                    format!(
                        "target_delay_buckets = {} is out of range; use 1 to 10000",
                        t.get_ref()
                    ),
                ))
            }
        };
        Some(LabelSpec {
            kpis: kpis.get_ref().clone(),
            labels: pick!(labels)
                .map(|l| l.get_ref().clone())
                .unwrap_or_default(),
            direction,
            target_delay_buckets,
        })
    };
    if quiet && kind.get_ref() == "dst" && !has_offset_change(shop.timezone, start, end) {
        return Err(src.error(
            kind.span(),
            format!(
                "{id:?} is a dst span, but {} does not change its UTC offset between {} and {}; move it over a daylight-saving change",
                shop.timezone,
                crate::timefmt::rfc3339(start),
                crate::timefmt::rfc3339(end)
            ),
        ));
    }
    Ok(Change {
        id,
        kind: kind.get_ref().clone(),
        note: pick!(note).map(|n| n.get_ref().clone()).unwrap_or_default(),
        start,
        end,
        effect,
        ramp_in,
        ramp_out,
        types,
        country,
        platform,
        node,
        label,
        whole_run,
    })
}

/// Seconds `tz` is ahead of UTC at `t`.
pub fn utc_offset(tz: Tz, t: i64) -> i64 {
    let utc = chrono::DateTime::from_timestamp(t, 0)
        .unwrap_or_default()
        .naive_utc();
    i64::from(tz.offset_from_utc_datetime(&utc).fix().local_minus_utc())
}

/// Whether `tz`'s UTC offset changes within `start..end` (checked hourly:
/// zones change on the hour or half hour, and an offset that changes and
/// changes back within an hour does not exist).
fn has_offset_change(tz: Tz, start: i64, end: i64) -> bool {
    let first = utc_offset(tz, start);
    (start..end)
        .step_by(1800)
        .any(|t| utc_offset(tz, t) != first)
        || utc_offset(tz, end - 1) != first
}
