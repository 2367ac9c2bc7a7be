//! The scenario shop's event stream: [`generate`] writes a [`Shop`]'s
//! events as JSON lines in the order they are delivered, and [`expected`]
//! says, without sampling, how many events each incident should change.
//!
//! Per minute, per (country, platform, event type) cell, events arrive as a
//! Poisson process: peak page views × the daily and weekly shape in the
//! shop's *local* time (so a daylight-saving change moves the shape in UTC)
//! × growth × the cell's shares × the type's funnel rate, then the active
//! rate changes. Each event then draws its second, user, node, amount and
//! delivery delay; user-, node-, amount-, duplicate- and late-changes act on
//! those draws.
//!
//! Every cell-minute has a random stream of its own, seeded from (seed,
//! minute, cell), and every event of a type draws the same number of values
//! whatever changes are active. So an incident changes exactly the cells and
//! minutes it targets: outside them the output is byte for byte the one
//! without it, which is what the tests check.
//!
//! Delivery order: an event is written at its time plus its delay; the
//! stream keeps the events not yet due (at most `max_delay` of them) and
//! writes each minute's due ones sorted by write time.

use std::io::Write;

use rand::RngCore;
use rand_distr::{Distribution, LogNormal, Poisson};

use super::scenario::{utc_offset, Change, Effect, Shop, EVENT_TYPES, PAYMENT, PAYMENT_FAILED};

/// Log-normal parameters of a payment's amount in euros (median 36.6,
/// mean 43.8), as in the demo shop.
const AMOUNT_MU: f64 = 3.6;
const AMOUNT_SIGMA: f64 = 0.6;
/// A duplicated event's copy is written 1 to this many seconds after the
/// event's time (a producer retrying an unacknowledged send).
pub const RETRY_DELAY: i64 = 30;

/// Mean amount of a payment, euros.
pub fn mean_amount() -> f64 {
    (AMOUNT_MU + AMOUNT_SIGMA * AMOUNT_SIGMA / 2.0).exp()
}

/// What [`generate`] wrote.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize)]
pub struct Written {
    /// Lines written (duplicates included).
    pub events: u64,
    /// Extra copies written by duplicate changes.
    pub duplicates: u64,
    /// Events written after their time (late delivery).
    pub delayed: u64,
    /// Largest delay between an event's time and its writing, seconds.
    pub max_delay: i64,
}

/// A SplitMix64 stream. Chosen over ChaCha because a run seeds millions of
/// streams (one per cell-minute) and SplitMix seeds in one step; its output
/// passes BigCrush, plenty for simulated traffic.
struct Stream(u64);

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Stream {
    fn new(seed: u64, minute: i64, cell: usize) -> Self {
        Stream(mix(seed
            ^ mix(
                (minute as u64) ^ mix(cell as u64 ^ 0x9e37_79b9_7f4a_7c15)
            )))
    }

    /// Uniform in 0..n with one draw (multiply-shift, no rejection: the bias
    /// is below 2^-32 for the sizes used here, and a fixed number of draws
    /// keeps streams aligned).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

impl RngCore for Stream {
    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

/// One minute of the shop: its base rate and the changes active in it.
struct Minute<'a> {
    /// Page views per minute before shares and changes.
    base: f64,
    /// Active changes and their strength (0-1].
    active: Vec<(&'a Change, f64)>,
}

impl<'a> Minute<'a> {
    fn new(shop: &'a Shop, m: i64) -> Self {
        let local = m + utc_offset(shop.timezone, m);
        let weeks = (m - shop.start) as f64 / (7.0 * 86_400.0);
        let base = shop.peak_page_views
            * super::seasonality(local)
            * (1.0 + shop.growth_per_week).powf(weeks);
        let active = shop
            .incidents
            .iter()
            .chain(&shop.quiet)
            .filter_map(|c| {
                let level = c.level(m);
                (level > 0.0 && c.effect != Effect::None).then_some((c, level))
            })
            .collect();
        Minute { base, active }
    }

    /// Expected events of a cell this minute, with the rate changes except
    /// `without` applied.
    fn rate(&self, shop: &Shop, c: usize, p: usize, e: usize, without: Option<&Change>) -> f64 {
        let mut rate = self.base * shop.countries[c].1 * shop.platforms[p].1 * shop.funnel[e];
        for &(ch, level) in &self.active {
            if let Effect::Rate { factor } = ch.effect {
                if ch.targets(e, c, p) && !without.is_some_and(|w| std::ptr::eq(w, ch)) {
                    rate *= 1.0 + (factor - 1.0) * level;
                }
            }
        }
        rate
    }

    /// Share of the cell's events that vanish (users locked out) or are
    /// written twice; the largest active share.
    fn share(&self, c: usize, p: usize, e: usize, duplicate: bool) -> f64 {
        let mut share: f64 = 0.0;
        for &(ch, level) in &self.active {
            match ch.effect {
                Effect::Users { share: s } if !duplicate && ch.targets(e, c, p) => {
                    share = share.max(s * level)
                }
                Effect::Duplicate { share: s } if duplicate && ch.targets(e, c, p) => {
                    share = share.max(s * level)
                }
                _ => {}
            }
        }
        share
    }

    /// Late delivery for the cell: an active late change, else the shop's.
    fn late(&self, shop: &Shop, c: usize, p: usize, e: usize) -> (f64, i64) {
        for &(ch, level) in &self.active {
            if let Effect::Late { share, max_delay } = ch.effect {
                if ch.targets(e, c, p) {
                    return (share * level, max_delay);
                }
            }
        }
        (shop.late.share, shop.late.max_delay)
    }

    /// Node weights for the cell's payments (route changes applied, except
    /// `without`): a routed node keeps `factor` times its share of the
    /// fleet's payments; its peers share the rest in their proportions.
    fn weights(
        &self,
        shop: &Shop,
        c: usize,
        p: usize,
        e: usize,
        without: Option<&Change>,
        w: &mut Vec<f64>,
    ) {
        w.clear();
        w.resize(shop.nodes, 1.0);
        for &(ch, level) in &self.active {
            if let (Effect::Route { factor }, Some(n)) = (ch.effect, ch.node) {
                if ch.targets(e, c, p) && !without.is_some_and(|x| std::ptr::eq(x, ch)) {
                    let total: f64 = w.iter().sum();
                    let peers = total - w[n];
                    let share = (w[n] / total * (1.0 + (factor - 1.0) * level)).min(1.0);
                    if share < 1.0 && peers > 0.0 {
                        w[n] = share * peers / (1.0 - share);
                    }
                }
            }
        }
    }

    /// Multiplier of a payment's amount on node `n`.
    fn amount(&self, c: usize, p: usize, n: usize) -> f64 {
        let mut f = 1.0;
        for &(ch, level) in &self.active {
            if let Effect::Amount { factor } = ch.effect {
                if ch.targets(PAYMENT, c, p) && ch.node.is_none_or(|x| x == n) {
                    f *= 1.0 + (factor - 1.0) * level;
                }
            }
        }
        f
    }
}

/// An event drawn but maybe not yet written.
struct Pending {
    write: i64,
    time: i64,
    /// Generation order: ties in (write, time) are written in it.
    seq: u64,
    country: u8,
    platform: u8,
    event_type: u8,
    node: u8,
    user: u32,
    cents: u64,
}

/// Writes the shop's events, one JSON line each (no newline) to
/// `emit(event_time, line)`, in delivery order.
pub fn generate(shop: &Shop, mut emit: impl FnMut(i64, &[u8])) -> Written {
    let amounts = LogNormal::new(AMOUNT_MU, AMOUNT_SIGMA).expect("valid log-normal");
    let nodes: Vec<String> = (0..shop.nodes).map(Shop::node_name).collect();
    let mut written = Written::default();
    let mut pending: Vec<Pending> = Vec::new();
    let mut weights = Vec::with_capacity(shop.nodes);
    let mut line = Vec::with_capacity(256);
    let mut seq = 0u64;
    let types = EVENT_TYPES.len();
    let cells = shop.countries.len() * shop.platforms.len() * types;
    let mut m = shop.start;
    while m < shop.end {
        let minute = Minute::new(shop, m);
        for c in 0..shop.countries.len() {
            for p in 0..shop.platforms.len() {
                for e in 0..types {
                    let cell = (c * shop.platforms.len() + p) * types + e;
                    debug_assert!(cell < cells);
                    let rate = minute.rate(shop, c, p, e, None);
                    if rate <= 0.0 {
                        continue;
                    }
                    let mut rng = Stream::new(shop.seed, m, cell);
                    let n = Poisson::new(rate).map_or(0, |d| d.sample(&mut rng) as u64);
                    if n == 0 {
                        continue;
                    }
                    let vanish = minute.share(c, p, e, false);
                    let duplicate = minute.share(c, p, e, true);
                    let (late_share, max_delay) = minute.late(shop, c, p, e);
                    let has_node = e == PAYMENT || e == PAYMENT_FAILED;
                    if has_node {
                        minute.weights(shop, c, p, e, None, &mut weights);
                    }
                    for _ in 0..n {
                        // Every draw is made whatever is active (see the
                        // module map).
                        let time = m + rng.below(60) as i64;
                        let user = rng.below(u64::from(shop.users)) as u32;
                        let late_u = rng.unit();
                        let delay_u = rng.unit();
                        let dup_u = rng.unit();
                        let retry_u = rng.unit();
                        let node_u = rng.unit();
                        let amount: f64 = if e == PAYMENT {
                            amounts.sample(&mut rng)
                        } else {
                            0.0
                        };
                        if f64::from(user) < vanish * f64::from(shop.users) {
                            continue;
                        }
                        let node = if has_node { pick(&weights, node_u) } else { 0 };
                        let cents = if e == PAYMENT {
                            (amount * minute.amount(c, p, node) * 100.0).round() as u64
                        } else {
                            0
                        };
                        let delay = if late_u < late_share {
                            1 + (delay_u * max_delay as f64) as i64
                        } else {
                            0
                        };
                        let event = |write, seq| Pending {
                            write,
                            time,
                            seq,
                            country: c as u8,
                            platform: p as u8,
                            event_type: e as u8,
                            node: node as u8,
                            user,
                            cents,
                        };
                        pending.push(event(time + delay, seq));
                        seq += 1;
                        if dup_u < duplicate {
                            let retry = 1 + (retry_u * RETRY_DELAY as f64) as i64;
                            pending.push(event(time + retry, seq));
                            seq += 1;
                            written.duplicates += 1;
                        }
                    }
                }
            }
        }
        // Events of later minutes are written at their time or after, so
        // everything due before the next minute can go now.
        m += 60;
        let due_before = if m < shop.end { m } else { i64::MAX };
        pending.sort_unstable_by_key(|e| (e.write, e.time, e.seq));
        let due = pending.partition_point(|e| e.write < due_before);
        for ev in pending.drain(..due) {
            line.clear();
            format_event(&mut line, shop, &nodes, &ev);
            written.events += 1;
            if ev.write > ev.time {
                written.delayed += 1;
                written.max_delay = written.max_delay.max(ev.write - ev.time);
            }
            emit(ev.time, &line);
        }
    }
    written
}

/// Index of the node `u` (uniform in [0, 1)) falls on, by weight.
fn pick(weights: &[f64], u: f64) -> usize {
    let total: f64 = weights.iter().sum();
    let mut x = u * total;
    for (i, w) in weights.iter().enumerate() {
        if x < *w {
            return i;
        }
        x -= w;
    }
    weights.len() - 1
}

fn format_event(line: &mut Vec<u8>, shop: &Shop, nodes: &[String], ev: &Pending) {
    line.extend_from_slice(br#"{"time":""#);
    push_rfc3339(line, ev.time);
    let e = usize::from(ev.event_type);
    let _ = write!(
        line,
        r#"","type":"{}","user":"u{}","country":"{}","platform":"{}""#,
        EVENT_TYPES[e].0,
        ev.user,
        shop.countries[usize::from(ev.country)].0,
        shop.platforms[usize::from(ev.platform)].0
    );
    if e == PAYMENT || e == PAYMENT_FAILED {
        let _ = write!(line, r#","node":"{}""#, nodes[usize::from(ev.node)]);
    }
    if e == PAYMENT {
        let _ = write!(
            line,
            r#","amount":{}.{:02}"#,
            ev.cents / 100,
            ev.cents % 100
        );
    }
    line.push(b'}');
}

/// Appends `t` as `YYYY-MM-DDTHH:MM:SSZ`: the same text as
/// [`crate::timefmt::rfc3339`] without a `String` per event.
fn push_rfc3339(out: &mut Vec<u8>, t: i64) {
    use chrono::{Datelike, Timelike};
    let _ = match chrono::DateTime::from_timestamp(t, 0) {
        Some(d) => write!(
            out,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            d.year(),
            d.month(),
            d.day(),
            d.hour(),
            d.minute(),
            d.second()
        ),
        None => write!(out, "{t}"),
    };
}

/// What an incident should change, in expectation, in the series it hits:
/// the events of its first targeted type in funnel order that it changes
/// (checkouts, for an outage of checkouts and the payments behind them).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Expected {
    /// The incident.
    pub id: String,
    /// The event type counted.
    pub event_type: &'static str,
    /// Expected events of that type and its targets in its window, without
    /// it.
    pub events: f64,
    /// Expected change in the number of those events written (negative:
    /// lost).
    pub delta_events: f64,
    /// Expected change in payment amounts, euros (all payments).
    pub delta_euros: f64,
    /// `events` per 5 minutes over the window: the size of the series.
    pub per_5min: f64,
}

impl Expected {
    /// Events whose presence or amount the incident changes: what a
    /// detector has to go on.
    pub fn affected(&self) -> f64 {
        if self.delta_events == 0.0 && self.delta_euros != 0.0 {
            self.events
        } else {
            self.delta_events.abs()
        }
    }
}

/// The expected effect of each of the shop's incidents (in its order),
/// computed from the rates, without sampling.
pub fn expected(shop: &Shop) -> Vec<Expected> {
    let mut weights = Vec::new();
    let mut before = Vec::new();
    shop.incidents
        .iter()
        .map(|inc| {
            // Per event type: expected events without the incident, change.
            let mut events = [0.0; EVENT_TYPES.len()];
            let mut delta = [0.0; EVENT_TYPES.len()];
            let mut delta_euros = 0.0;
            let mut m = inc.start.div_euclid(60) * 60;
            while m < inc.end {
                let minute = Minute::new(shop, m);
                let level = inc.level(m);
                for c in 0..shop.countries.len() {
                    for p in 0..shop.platforms.len() {
                        for e in 0..EVENT_TYPES.len() {
                            if !inc.targets(e, c, p) {
                                continue;
                            }
                            let without = minute.rate(shop, c, p, e, Some(inc));
                            let with = minute.rate(shop, c, p, e, None);
                            match inc.effect {
                                Effect::Rate { .. } => {
                                    events[e] += without;
                                    delta[e] += with - without;
                                }
                                Effect::Users { share } => {
                                    events[e] += with;
                                    delta[e] -= with * share * level;
                                }
                                Effect::Duplicate { share } => {
                                    events[e] += with;
                                    delta[e] += with * share * level;
                                }
                                Effect::Late { share, .. } => events[e] += with * share * level,
                                Effect::Amount { factor } if e == PAYMENT => {
                                    let on_node = inc.node.map_or(1.0, |_| 1.0 / shop.nodes as f64);
                                    events[e] += with * on_node;
                                    delta_euros +=
                                        with * on_node * mean_amount() * (factor - 1.0) * level;
                                }
                                Effect::Route { .. } if e == PAYMENT || e == PAYMENT_FAILED => {
                                    let n = inc.node.unwrap_or(0);
                                    minute.weights(shop, c, p, e, Some(inc), &mut before);
                                    minute.weights(shop, c, p, e, None, &mut weights);
                                    let share_before = before[n] / before.iter().sum::<f64>();
                                    let share_after = weights[n] / weights.iter().sum::<f64>();
                                    events[e] += with * share_before;
                                    delta[e] += with * (share_after - share_before);
                                    if e == PAYMENT {
                                        delta_euros +=
                                            with * (share_after - share_before) * mean_amount();
                                    }
                                }
                                _ => {}
                            }
                        }
                    }
                }
                m += 60;
            }
            let first = events.iter().position(|n| *n > 0.0).unwrap_or(0);
            Expected {
                id: inc.id.clone(),
                event_type: EVENT_TYPES[first].0,
                events: events[first],
                delta_events: delta[first],
                delta_euros,
                per_5min: events[first] / ((inc.end - inc.start) as f64 / 300.0),
            }
        })
        .collect()
}
