//! The streaming pipeline's synchronous core: events in, alert transitions
//! out. No async, no I/O, no clock: the shells (`replay`, the Kafka service)
//! feed it messages and, when they have one, the wall-clock time.
//!
//! # Layout
//!
//! - [`extract`] — pulls the fields KPIs need out of a JSON event.
//! - [`plan`] — per topic: which KPIs an event counts for, series key,
//!   contribution, event time.
//! - [`window`] — event-time tumbling buckets per KPI series; closing,
//!   zero-filled empty buckets, series cap and eviction.
//! - [`engine`] — per-series detectors and the firing/resolved lifecycle.
//! - [`alert`] — the [`alert::Transition`] record and deterministic ids.
//!
//! # One event's path
//!
//! [`Pipeline::record`] reads the event ([`plan::TopicPlan::read`]), moves
//! its partition's clock, and adds it to the open bucket of every KPI
//! series it matches. [`Pipeline::advance`] computes each topic's
//! event-time progress (the minimum over its active partitions of the
//! newest event time; partitions idle for `idle_timeout` of wall-clock time
//! stop holding it back, and a wholly idle topic is advanced by the wall
//! clock), closes every bucket whose end plus lateness it passed, derives
//! ratio KPIs from their parts, and judges each closed bucket in time order.

pub mod alert;
pub mod engine;
pub mod extract;
pub mod plan;
pub mod window;

use std::collections::HashMap;

use prometheus::IntCounter;

use crate::config::model::{Config, Measure};
use crate::telemetry::{EventRejected, LateEvent, Metrics, Origin, RejectReason};

use alert::{Status, Transition};
use engine::Engine;
use extract::Field;
use plan::{Routed, TopicPlan};
use window::{Closed, ClosedBucket, KpiWindows, Recorded};

/// Largest event accepted, in bytes; larger ones are refused as
/// `too_large` before parsing.
pub const MAX_EVENT_BYTES: usize = 1 << 20;

/// What became of one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Read and added to its KPIs' buckets (possibly none matched); every
    /// bucket it touched has closed once the topic's progress reaches
    /// `closed_at`.
    Accepted {
        /// The event's time.
        time: i64,
        /// Event-time progress at which the event's effects are recorded.
        closed_at: i64,
    },
    /// Refused as malformed.
    Rejected(RejectReason),
    /// Its buckets had closed for every KPI it matched.
    Late,
}

/// Event-time progress of one topic, from its partitions.
#[derive(Debug, Default)]
struct Clock {
    /// Per partition: newest event time, and wall time of the last message.
    partitions: HashMap<i32, (i64, Option<i64>)>,
    idle_timeout: i64,
    progress: Option<i64>,
}

impl Clock {
    fn observe(&mut self, partition: i32, time: i64, now: Option<i64>) {
        let p = self.partitions.entry(partition).or_insert((time, now));
        p.0 = p.0.max(time);
        p.1 = now;
    }

    /// Newest progress: the minimum newest event time over partitions that
    /// are not idle; with every partition idle, the wall clock minus the
    /// idle timeout. Never moves back. A topic none of whose partitions has
    /// delivered anything yet does not move: idleness means "caught up",
    /// and a consumer that has read nothing may be far behind.
    fn progress(&mut self, now: Option<i64>) -> Option<i64> {
        let idle = |seen: Option<i64>| match (now, seen) {
            (Some(now), Some(seen)) => now - seen >= self.idle_timeout,
            _ => false,
        };
        let active = self
            .partitions
            .values()
            .filter(|(_, seen)| !idle(*seen))
            .map(|(t, _)| *t)
            .min();
        let newest = self.partitions.values().map(|(t, _)| *t).max();
        let candidate = match (active, now, newest) {
            (Some(t), _, _) => Some(t),
            (None, Some(now), Some(newest)) => Some(newest.max(now - self.idle_timeout)),
            _ => None,
        };
        if let Some(c) = candidate {
            self.progress = Some(self.progress.map_or(c, |p| p.max(c)));
        }
        self.progress
    }
}

#[cfg(test)]
mod clock_tests {
    use super::Clock;

    fn clock() -> Clock {
        Clock {
            idle_timeout: 30,
            ..Clock::default()
        }
    }

    #[test]
    fn a_topic_that_delivered_nothing_does_not_move_with_the_wall_clock() {
        let mut c = clock();
        assert_eq!(c.progress(Some(1_000_000)), None);
    }

    #[test]
    fn an_idle_partition_stops_holding_the_others_back() {
        let mut c = clock();
        c.observe(0, 1000, Some(5000));
        c.observe(1, 2000, Some(5000));
        assert_eq!(c.progress(Some(5010)), Some(1000));
        c.observe(1, 2100, Some(5040));
        // Partition 0 has been silent for 40 s of wall time: idle.
        assert_eq!(c.progress(Some(5040)), Some(2100));
    }

    #[test]
    fn a_wholly_idle_topic_follows_the_wall_clock_and_never_goes_back() {
        let mut c = clock();
        c.observe(0, 1000, Some(1000));
        assert_eq!(c.progress(Some(1100)), Some(1070));
        assert_eq!(c.progress(Some(1200)), Some(1170));
        c.observe(0, 1150, Some(1200));
        assert_eq!(c.progress(Some(1200)), Some(1170));
    }

    #[test]
    fn without_a_wall_clock_progress_is_event_time_only() {
        let mut c = clock();
        c.observe(0, 1000, None);
        c.observe(1, 900, None);
        assert_eq!(c.progress(None), Some(900));
    }
}

struct RatioPlan {
    kpi: usize,
    numerator: usize,
    denominator: usize,
    zero_numerator: bool,
}

/// Per-KPI counters resolved once, so the hot path does not hash labels.
struct KpiCounters {
    overflow: IntCounter,
    skipped: IntCounter,
}

struct TopicRuntime {
    name: String,
    plan: TopicPlan,
    /// Parallel to `plan.routes`.
    windows: Vec<KpiWindows>,
    counters: Vec<KpiCounters>,
    ratios: Vec<RatioPlan>,
    clock: Clock,
    consumed: IntCounter,
    /// Largest bucket width plus lateness of the topic's KPIs: an event at
    /// `t` has left every open bucket once progress passes `t + horizon`.
    horizon: i64,
    /// Smallest event time at which some bucket of the topic can close.
    next_close: i64,
}

/// The pipeline core; see the module docs.
pub struct Pipeline {
    config: Config,
    metrics: Metrics,
    topics: Vec<TopicRuntime>,
    engine: Engine,
    closed: Vec<Closed>,
    buckets: Vec<ClosedBucket>,
    key: String,
}

impl Pipeline {
    /// A pipeline for `config`, counting into `metrics`.
    pub fn new(config: Config, metrics: Metrics) -> Self {
        let topics = (0..config.topics.len())
            .map(|t| {
                let plan = TopicPlan::new(&config, t);
                let windows = plan
                    .routes
                    .iter()
                    .map(|r| {
                        let def = &config.kpis[r.kpi];
                        let Measure::Events { aggregate, .. } = &def.measure else {
                            unreachable!("routes are built for event KPIs only")
                        };
                        KpiWindows::new(r.kpi, def, aggregate.clone())
                    })
                    .collect();
                let counters = plan
                    .routes
                    .iter()
                    .map(|r| {
                        let name = config.kpis[r.kpi].name.as_str();
                        KpiCounters {
                            overflow: metrics.series_overflow.with_label_values(&[name]),
                            skipped: metrics.values_skipped.with_label_values(&[name]),
                        }
                    })
                    .collect();
                let ratios = config
                    .kpis
                    .iter()
                    .enumerate()
                    .filter_map(|(kpi, def)| match def.measure {
                        Measure::Ratio {
                            numerator,
                            denominator,
                        } if def.topic == t => Some(RatioPlan {
                            kpi,
                            numerator,
                            denominator,
                            zero_numerator: matches!(
                                &config.kpis[numerator].measure,
                                Measure::Events { aggregate, .. } if aggregate.zero_when_empty()
                            ),
                        }),
                        _ => None,
                    })
                    .collect();
                let name = config.topics[t].name.clone();
                let horizon = config
                    .kpis
                    .iter()
                    .filter(|k| k.topic == t)
                    .map(|k| k.bucket + k.lateness)
                    .max()
                    .unwrap_or(0);
                TopicRuntime {
                    horizon,
                    next_close: i64::MIN,
                    consumed: metrics.events_consumed.with_label_values(&[&name]),
                    name,
                    plan,
                    windows,
                    counters,
                    ratios,
                    clock: Clock {
                        idle_timeout: config.topics[t].idle_timeout.as_secs() as i64,
                        ..Clock::default()
                    },
                }
            })
            .collect();
        Self {
            engine: Engine::new(&config.kpis),
            config,
            metrics,
            topics,
            closed: Vec::new(),
            buckets: Vec::new(),
            key: String::new(),
        }
    }

    /// The configuration this pipeline runs.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The metrics it counts into.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Index of the topic called `name`.
    pub fn topic(&self, name: &str) -> Option<usize> {
        self.topics.iter().position(|t| t.name == name)
    }

    /// Reads one message of topic number `topic` and adds it to its
    /// buckets. `now` is the wall-clock time in epoch seconds, if the shell
    /// has one (the service does, replay does not).
    pub fn record(
        &mut self,
        topic: usize,
        partition: i32,
        offset: i64,
        payload: &[u8],
        now: Option<i64>,
    ) -> Outcome {
        let t = &mut self.topics[topic];
        t.consumed.inc();
        let origin = Origin {
            topic: &t.name,
            partition,
            offset,
        };
        if payload.len() > MAX_EVENT_BYTES {
            EventRejected {
                origin,
                reason: RejectReason::TooLarge,
            }
            .emit(&self.metrics);
            return Outcome::Rejected(RejectReason::TooLarge);
        }
        let mut fields: Vec<Field<'_>> = Vec::new();
        let time = match t.plan.read(payload, &mut fields) {
            Ok(time) => time,
            Err(reason) => {
                EventRejected { origin, reason }.emit(&self.metrics);
                return Outcome::Rejected(reason);
            }
        };
        t.clock.observe(partition, time, now);
        let mut matched = 0;
        let mut late = 0;
        for (i, route) in t.plan.routes.iter().enumerate() {
            match t.plan.route(route, &fields, &mut self.key) {
                Routed::NoMatch => {}
                Routed::BadValue => t.counters[i].skipped.inc(),
                Routed::Match(c) => {
                    matched += 1;
                    match t.windows[i].record(&self.key, time, c) {
                        Recorded::Added => {}
                        Recorded::Overflowed => t.counters[i].overflow.inc(),
                        Recorded::Late => late += 1,
                        Recorded::TooFarAhead => {
                            let reason = RejectReason::TooFarAhead;
                            EventRejected { origin, reason }.emit(&self.metrics);
                            return Outcome::Rejected(reason);
                        }
                    }
                }
            }
        }
        if matched > 0 && late == matched {
            LateEvent {
                origin,
                event_time: time,
            }
            .emit(&self.metrics);
            return Outcome::Late;
        }
        Outcome::Accepted {
            time,
            closed_at: time + t.horizon,
        }
    }

    /// Event-time progress of topic number `topic`, after the last
    /// [`Pipeline::advance`].
    pub fn progress(&self, topic: usize) -> Option<i64> {
        self.topics[topic].clock.progress
    }

    /// The event time from which a new event of `topic` may let a bucket
    /// close; below it, [`Pipeline::advance`] would find nothing to do.
    pub fn next_close(&self, topic: usize) -> i64 {
        self.topics[topic].next_close
    }

    /// Closes every bucket the topics' progress has passed and judges it,
    /// appending alert transitions to `out` in bucket order.
    pub fn advance(&mut self, now: Option<i64>, out: &mut Vec<Transition>) {
        for t in 0..self.topics.len() {
            let Some(progress) = self.topics[t].clock.progress(now) else {
                continue;
            };
            let topic = &mut self.topics[t];
            let mut next_close = i64::MAX;
            for w in &mut topic.windows {
                w.close(progress, &mut self.closed);
                next_close = next_close.min(w.next_close());
            }
            topic.next_close = next_close;
            self.judge_closed(t, out);
        }
    }

    /// End of data: closes every open bucket and judges it.
    pub fn finish(&mut self, out: &mut Vec<Transition>) {
        for t in 0..self.topics.len() {
            for w in &mut self.topics[t].windows {
                w.flush(&mut self.closed);
            }
            self.judge_closed(t, out);
        }
    }

    fn judge_closed(&mut self, topic: usize, out: &mut Vec<Transition>) {
        if self.closed.is_empty() {
            return;
        }
        self.buckets.clear();
        for c in self.closed.drain(..) {
            match c {
                Closed::Bucket(b) => self.buckets.push(b),
                Closed::Evicted { kpi, key } => {
                    self.engine.evict(kpi, &key);
                    let name = &self.config.kpis[kpi].name;
                    self.metrics.series_evicted.with_label_values(&[name]).inc();
                    for r in &self.topics[topic].ratios {
                        if r.denominator == kpi {
                            self.engine.evict(r.kpi, &key);
                        }
                    }
                }
            }
        }
        derive_ratios(&self.topics[topic].ratios, &mut self.buckets);
        // Time order across series, so transitions come out in the order
        // things happened; stable within a series.
        self.buckets.sort_by(|a, b| {
            (a.start, a.kpi)
                .cmp(&(b.start, b.kpi))
                .then_with(|| a.key.cmp(&b.key))
        });
        let before = out.len();
        let mut per_kpi: HashMap<usize, u64> = HashMap::new();
        for b in &self.buckets {
            *per_kpi.entry(b.kpi).or_default() += 1;
            self.engine.judge(b, out);
        }
        for (kpi, n) in per_kpi {
            let name = self.config.kpis[kpi].name.as_str();
            self.metrics
                .buckets_closed
                .with_label_values(&[name])
                .inc_by(n);
            self.metrics
                .detector_evaluations
                .with_label_values(&[name])
                .inc_by(n);
            self.metrics
                .series_live
                .with_label_values(&[name])
                .set(self.engine.live_series(kpi) as i64);
        }
        for tr in &out[before..] {
            let status = match tr.status {
                Status::Firing => "firing",
                Status::Resolved => "resolved",
            };
            self.metrics
                .alert_transitions
                .with_label_values(&[&tr.kpi, status])
                .inc();
        }
    }
}

/// Appends the buckets of ratio KPIs, computed from their numerator's and
/// denominator's buckets closed in the same pass.
fn derive_ratios(ratios: &[RatioPlan], buckets: &mut Vec<ClosedBucket>) {
    for r in ratios {
        let numerators: HashMap<(&str, i64), Option<f64>> = buckets
            .iter()
            .filter(|b| b.kpi == r.numerator)
            .map(|b| ((&*b.key, b.start), b.value))
            .collect();
        let derived: Vec<ClosedBucket> = buckets
            .iter()
            .filter(|b| b.kpi == r.denominator)
            .map(|d| {
                let num = numerators
                    .get(&(&*d.key, d.start))
                    .copied()
                    .unwrap_or(r.zero_numerator.then_some(0.0));
                let value = match (num, d.value) {
                    (Some(n), Some(den)) if den != 0.0 => Some(n / den),
                    _ => None,
                };
                ClosedBucket {
                    kpi: r.kpi,
                    key: d.key.clone(),
                    start: d.start,
                    value,
                    volume: d.volume,
                }
            })
            .collect();
        buckets.extend(derived);
    }
}
