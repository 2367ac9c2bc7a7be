//! A simulated shop: the event stream `kpiwatch simulate` writes and the
//! demo produces.
//!
//! Per minute and per (country, platform), page views arrive as a Poisson
//! process whose rate follows a daily shape (quiet at 04:00 UTC, busy in the
//! afternoon) and a weekly one (weekends at 75 %). The funnel below page
//! views — logins, signups, carts, checkouts, payments with amounts from a
//! log-normal — are Poisson with fixed shares of that rate, and each
//! payment is processed by one of four nodes. [`Incident`]s scale the rate
//! of one event type (optionally on one country, platform or node) for a
//! time window, or scale the amounts one node records: an outage is factor
//! 0, a partial drop 0.4, a spike 5.
//!
//! Deterministic: the same model and seed give the same bytes.
//!
//! Scenario files (`kpiwatch simulate --scenario`) describe a richer shop
//! and labelled incidents for measuring detection honestly:
//!
//! - [`scenario`] — the TOML file (shop, `[[incident]]`, `[[quiet]]`,
//!   per-scale overrides) validated into a [`scenario::Shop`] at one scale;
//! - [`stream`] — the shop's events in delivery order (local-time
//!   seasonality across DST, growth, a user pool, a node fleet, late and
//!   duplicated delivery), and each incident's expected effect;
//! - [`labels`] — the labels file the backtest reads.
//!
//! [`generate`], [`ShopModel`] and [`Incident`] stay as they are: the demo
//! and the tests depend on their exact output.

pub mod labels;
pub mod scenario;
pub mod stream;

use std::io::Write;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal, Poisson};

use crate::timefmt::rfc3339;

/// Countries and their share of traffic.
pub const COUNTRIES: [(&str, f64); 4] = [("FI", 0.4), ("SE", 0.3), ("NO", 0.2), ("DK", 0.1)];
/// Platforms and their share of traffic.
pub const PLATFORMS: [(&str, f64); 3] = [("web", 0.5), ("ios", 0.3), ("android", 0.2)];
/// Nodes that process payments, equally.
pub const NODES: [&str; 4] = ["node-1", "node-2", "node-3", "node-4"];
/// Event types and their rate relative to page views.
pub const FUNNEL: [(&str, f64); 6] = [
    ("page_view", 1.0),
    ("login", 0.3),
    ("signup", 0.02),
    ("cart", 0.12),
    ("checkout", 0.04),
    ("payment", 0.04),
];

/// Something going wrong in the shop for a while.
#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    /// Event type whose rate changes (`None`: amounts of `node` change).
    pub event_type: Option<String>,
    /// Multiplier of the rate (or of the amounts for a node incident).
    pub factor: f64,
    /// Start, epoch seconds.
    pub start: i64,
    /// End, epoch seconds (exclusive).
    pub end: i64,
    /// Only this country.
    pub country: Option<String>,
    /// Only this platform.
    pub platform: Option<String>,
    /// Only this payment node.
    pub node: Option<String>,
}

impl Incident {
    /// Parses `type=checkout,factor=0,start=2024-01-22T14:00:00Z,duration=30m`
    /// (plus optional `country=`, `platform=`, `node=`). With `node=` and no
    /// `type=`, the factor scales that node's payment amounts.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut i = Incident {
            event_type: None,
            factor: f64::NAN,
            start: i64::MIN,
            end: i64::MIN,
            country: None,
            platform: None,
            node: None,
        };
        let mut duration = None;
        for part in spec.split(',') {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("incident part {part:?} is not key=value"))?;
            match k.trim() {
                "type" => {
                    if !FUNNEL.iter().any(|(t, _)| *t == v) {
                        let known: Vec<_> = FUNNEL.iter().map(|(t, _)| *t).collect();
                        return Err(format!("incident type {v:?} is not one of {}", known.join(", ")));
                    }
                    i.event_type = Some(v.to_string());
                }
                "factor" => {
                    i.factor = v
                        .parse()
                        .ok()
                        .filter(|f: &f64| *f >= 0.0 && f.is_finite())
                        .ok_or_else(|| format!("incident factor {v:?} is not a number >= 0"))?
                }
                "start" => {
                    i.start = crate::timefmt::parse(v)
                        .ok_or_else(|| format!("incident start {v:?} is not an RFC 3339 time"))?
                        .epoch
                }
                "duration" => {
                    duration = Some(
                        humantime::parse_duration(v)
                            .map_err(|_| format!("incident duration {v:?} is not a duration like 30m"))?
                            .as_secs() as i64,
                    )
                }
                "country" => i.country = Some(v.to_string()),
                "platform" => i.platform = Some(v.to_string()),
                "node" => i.node = Some(v.to_string()),
                other => return Err(format!("incident key {other:?} is not known; use type, factor, start, duration, country, platform, node")),
            }
        }
        if i.factor.is_nan() || i.start == i64::MIN || duration.is_none() {
            return Err("an incident needs factor=, start= and duration=".into());
        }
        if i.event_type.is_none() && i.node.is_none() {
            return Err("an incident needs type= (an event type) or node= (a payment node)".into());
        }
        i.end = i.start + duration.unwrap_or(0);
        Ok(i)
    }

    fn active(&self, t: i64) -> bool {
        (self.start..self.end).contains(&t)
    }
}

/// What to simulate.
#[derive(Debug, Clone)]
pub struct ShopModel {
    /// First minute, epoch seconds (rounded down to a minute).
    pub start: i64,
    /// End, epoch seconds (exclusive).
    pub end: i64,
    /// Page views per minute at the busiest time of a weekday.
    pub peak_page_views: f64,
    /// What goes wrong, and when.
    pub incidents: Vec<Incident>,
    /// Random seed.
    pub seed: u64,
    /// Seconds added to event time to get the shop's local time, which
    /// drives the daily and weekly shape (0: the shop lives in UTC).
    pub local_offset: i64,
}

/// Daily and weekly shape of traffic at `t`, between 0.1875 and 1.
pub fn seasonality(t: i64) -> f64 {
    let hour = (t.rem_euclid(86_400)) as f64 / 3600.0;
    let day = (t.div_euclid(86_400) + 3).rem_euclid(7); // 0 = Monday
    let daily = 0.25 + 0.75 * (0.5 - 0.5 * ((hour - 4.0) / 24.0 * std::f64::consts::TAU).cos());
    let weekly = if day >= 5 { 0.75 } else { 1.0 };
    daily * weekly
}

/// Generates the model's events minute by minute, in time order, calling
/// `emit(event_time, json_line_without_newline)` for each.
pub fn generate(model: &ShopModel, mut emit: impl FnMut(i64, &[u8])) {
    let mut rng = ChaCha8Rng::seed_from_u64(model.seed);
    let amounts = LogNormal::new(3.6, 0.6).expect("valid log-normal");
    let mut minute_events: Vec<(i64, usize, usize, usize)> = Vec::new();
    let mut line = Vec::with_capacity(256);
    let mut minute = model.start.div_euclid(60) * 60;
    while minute < model.end {
        minute_events.clear();
        let shape = model.peak_page_views * seasonality(minute + model.local_offset);
        for (c, (country, c_share)) in COUNTRIES.iter().enumerate() {
            for (p, (platform, p_share)) in PLATFORMS.iter().enumerate() {
                for (e, (event_type, e_share)) in FUNNEL.iter().enumerate() {
                    let mut rate = shape * c_share * p_share * e_share;
                    for i in &model.incidents {
                        let applies = i.active(minute)
                            && i.event_type.as_deref().is_some_and(|t| {
                                t == *event_type || (t == "checkout" && *event_type == "payment")
                            })
                            && i.country.as_deref().is_none_or(|x| x == *country)
                            && i.platform.as_deref().is_none_or(|x| x == *platform)
                            && i.node.is_none();
                        if applies {
                            rate *= i.factor;
                        }
                    }
                    if rate <= 0.0 {
                        continue;
                    }
                    let n = Poisson::new(rate)
                        .map(|d| d.sample(&mut rng) as u64)
                        .unwrap_or(0);
                    for _ in 0..n {
                        minute_events.push((minute + rng.gen_range(0..60), c, p, e));
                    }
                }
            }
        }
        minute_events.sort_unstable();
        for &(t, c, p, e) in &minute_events {
            line.clear();
            let user: u32 = rng.gen_range(0..200_000);
            let _ = write!(
                line,
                r#"{{"time":"{}","type":"{}","user":"u{user}","country":"{}","platform":"{}""#,
                rfc3339(t),
                FUNNEL[e].0,
                COUNTRIES[c].0,
                PLATFORMS[p].0
            );
            if FUNNEL[e].0 == "payment" {
                let node = NODES[rng.gen_range(0..NODES.len())];
                let mut amount: f64 = amounts.sample(&mut rng);
                for i in &model.incidents {
                    if i.event_type.is_none() && i.active(t) && i.node.as_deref() == Some(node) {
                        amount *= i.factor;
                    }
                }
                let _ = write!(line, r#","node":"{node}","amount":{:.2}"#, amount);
            }
            line.push(b'}');
            emit(t, &line);
        }
        minute += 60;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MONDAY: i64 = 1_704_067_200;

    fn count(model: &ShopModel, event_type: &str) -> usize {
        let needle = format!(r#""type":"{event_type}""#);
        let mut n = 0;
        generate(model, |_, line| {
            if std::str::from_utf8(line).unwrap().contains(&needle) {
                n += 1;
            }
        });
        n
    }

    fn model(incidents: Vec<Incident>) -> ShopModel {
        ShopModel {
            start: MONDAY + 12 * 3600,
            end: MONDAY + 13 * 3600,
            peak_page_views: 60.0,
            incidents,
            seed: 1,
            local_offset: 0,
        }
    }

    #[test]
    fn same_seed_same_bytes() {
        let mut a = Vec::new();
        let mut b = Vec::new();
        generate(&model(vec![]), |_, l| a.extend_from_slice(l));
        generate(&model(vec![]), |_, l| b.extend_from_slice(l));
        assert_eq!(a, b);
        assert!(!a.is_empty());
    }

    #[test]
    fn events_are_valid_json_in_time_order() {
        let mut last = i64::MIN;
        generate(&model(vec![]), |t, line| {
            let v: serde_json::Value = serde_json::from_slice(line).unwrap();
            assert!(v["time"].is_string() && v["country"].is_string());
            assert!(t >= last);
            last = t;
        });
    }

    #[test]
    fn an_outage_removes_checkouts_and_payments_in_its_window() {
        let outage =
            Incident::parse("type=checkout,factor=0,start=2024-01-01T12:00:00Z,duration=1h")
                .unwrap();
        let m = model(vec![outage]);
        assert_eq!(count(&m, "checkout"), 0);
        assert_eq!(count(&m, "payment"), 0);
        assert!(count(&m, "cart") > 100);
    }

    #[test]
    fn incident_specs_are_checked() {
        assert!(
            Incident::parse("type=refund,factor=0,start=2024-01-01T00:00:00Z,duration=1h")
                .unwrap_err()
                .contains("not one of")
        );
        assert!(Incident::parse("type=checkout,start=2024-01-01T00:00:00Z,duration=1h").is_err());
        let node = Incident::parse("node=node-3,factor=0.5,start=2024-01-01T00:00:00Z,duration=2h")
            .unwrap();
        assert_eq!(node.end - node.start, 7200);
    }

    #[test]
    fn nights_are_quieter_than_afternoons_and_weekends_than_weekdays() {
        assert!(seasonality(MONDAY + 4 * 3600) < 0.3);
        assert!(seasonality(MONDAY + 16 * 3600) > 0.95);
        assert!(seasonality(MONDAY + 5 * 86_400 + 16 * 3600) < 0.8);
    }
}
