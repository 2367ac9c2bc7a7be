//! Specifications of [`KpiModel`] on simulated business series: Poisson
//! counts with a daily and weekly shape, sums of log-normal amounts,
//! averages and ratios, with and without incidents.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal, Poisson};

use super::typical::LogSums;
use super::*;

const MONDAY: i64 = 1_704_067_200;
const DAY: i64 = 86_400;
const WEEK: i64 = 7 * DAY;
/// An alert level for one series: about one false alert a month at
/// 5-minute buckets.
const P_STAR: f64 = 1.0 / 8640.0;
/// What the engine learns an anomalous bucket with.
const SMALL: f64 = 0.05;

/// Events per 5 minutes at `t` for a shop whose peak is `peak`: quiet at
/// 04:00, busy in the afternoon, weekends at 75 %.
fn rate(peak: f64, t: i64) -> f64 {
    let hour = t.rem_euclid(DAY) as f64 / 3600.0;
    let daily = 0.25 + 0.75 * (0.5 - 0.5 * ((hour - 4.0) / 24.0 * std::f64::consts::TAU).cos());
    let weekend = if (t - MONDAY).rem_euclid(WEEK) >= 5 * DAY {
        0.75
    } else {
        1.0
    };
    peak * daily * weekend
}

fn config(kind: Kind) -> KpiConfig {
    KpiConfig {
        kind,
        bucket_width: 300,
        seasonality: Seasonality::Auto,
        min_volume: 0.0,
        threshold: None,
        week_over_week: None,
        estimate_rel_var: 0.0,
    }
}

fn poisson(rng: &mut ChaCha8Rng, lambda: f64) -> f64 {
    if lambda <= 0.0 {
        return 0.0;
    }
    Poisson::new(lambda).map(|d| d.sample(rng)).unwrap_or(0.0)
}

/// What an engine would do with one bucket: judge, decide, learn.
struct Judged {
    t: i64,
    value: f64,
    a: Assessment,
    anomalous: Option<Direction>,
}

fn anomalous(a: &Assessment) -> Option<Direction> {
    if let Some(f) = &a.drop {
        if f.p_adjusted() <= P_STAR {
            return Some(Direction::Drop);
        }
    }
    if let Some(f) = &a.spike {
        if f.p_adjusted() <= P_STAR {
            return Some(Direction::Spike);
        }
    }
    None
}

fn step(model: &mut KpiModel, input: Input) -> Judged {
    let mut a = model.assess(&input);
    if input.others.is_some() {
        model.add_peers(&mut a, &input);
    }
    let anomalous = anomalous(&a);
    let weight = if anomalous.is_some() { SMALL } else { 1.0 };
    model.learn(&input, &a, weight);
    Judged {
        t: input.time,
        value: input.value,
        a,
        anomalous,
    }
}

fn count(t: i64, value: f64) -> Input {
    Input {
        time: t,
        utc_offset: 0,
        value,
        events: value,
        others: None,
        logs: None,
    }
}

/// Runs a count series from `from` to `to` with expected events `lambda(t)`.
fn run_counts(
    model: &mut KpiModel,
    rng: &mut ChaCha8Rng,
    from: i64,
    to: i64,
    lambda: impl Fn(i64) -> f64,
) -> Vec<Judged> {
    (from..to)
        .step_by(300)
        .map(|t| {
            let x = poisson(rng, lambda(t));
            step(model, count(t, x))
        })
        .collect()
}

fn alerts(judged: &[Judged]) -> usize {
    // Alert starts: an anomalous bucket after a normal one.
    let mut n = 0;
    let mut before = false;
    for j in judged {
        let now = j.anomalous.is_some();
        if now && !before {
            n += 1;
        }
        before = now;
    }
    n
}

#[test]
fn a_clean_month_of_seasonal_counts_raises_no_alert_at_any_volume() {
    for (peak, seed) in [(2.0, 1), (20.0, 2), (400.0, 3)] {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut model = KpiModel::new(config(Kind::Count));
        let judged = run_counts(&mut model, &mut rng, MONDAY, MONDAY + 5 * WEEK, |t| {
            rate(peak, t)
        });
        let after_day: Vec<_> = judged.into_iter().filter(|j| j.t >= MONDAY + DAY).collect();
        assert!(
            alerts(&after_day) <= 1,
            "peak {peak}: {} alerts: {:?}",
            alerts(&after_day),
            after_day
                .iter()
                .filter(|j| j.anomalous.is_some())
                .map(|j| (j.t, j.value, j.a.expected))
                .take(5)
                .collect::<Vec<_>>()
        );
    }
}

#[test]
fn nothing_seasonal_alerts_before_a_day_has_been_seen() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut model = KpiModel::new(config(Kind::Count));
    let judged = run_counts(&mut model, &mut rng, MONDAY, MONDAY + DAY, |t| {
        rate(50.0, t)
    });
    assert!(judged.iter().all(|j| !j.a.ready && j.anomalous.is_none()));
}

#[test]
fn a_series_that_stops_on_its_first_day_is_reported() {
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let mut model = KpiModel::new(config(Kind::Count));
    // Twelve steady hours, then nothing.
    run_counts(&mut model, &mut rng, MONDAY, MONDAY + 12 * 3600, |_| 20.0);
    let outage = run_counts(
        &mut model,
        &mut rng,
        MONDAY + 12 * 3600,
        MONDAY + 13 * 3600,
        |_| 0.0,
    );
    let first = outage
        .iter()
        .position(|j| j.anomalous == Some(Direction::Drop));
    assert!(
        matches!(first, Some(i) if i <= 2),
        "first alerting bucket {first:?}"
    );
}

#[test]
fn a_total_outage_alerts_on_its_first_or_second_bucket_and_the_baseline_does_not_follow() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut model = KpiModel::new(config(Kind::Count));
    run_counts(&mut model, &mut rng, MONDAY, MONDAY + 2 * WEEK, |t| {
        rate(60.0, t)
    });
    let start = MONDAY + 2 * WEEK + 14 * 3600;
    run_counts(&mut model, &mut rng, MONDAY + 2 * WEEK, start, |t| {
        rate(60.0, t)
    });
    let outage = run_counts(&mut model, &mut rng, start, start + 2 * 3600, |_| 0.0);
    let first = outage
        .iter()
        .position(|j| j.anomalous == Some(Direction::Drop));
    assert!(
        matches!(first, Some(i) if i <= 1),
        "first alerting bucket {first:?}"
    );
    // Two hours later, still expecting normal traffic, and still alerting.
    let last = outage.last().expect("buckets");
    assert!(
        last.a.expected > 0.8 * rate(60.0, last.t),
        "expected {}",
        last.a.expected
    );
    assert!(outage
        .iter()
        .skip(1)
        .all(|j| j.anomalous == Some(Direction::Drop)));
}

#[test]
fn a_quiet_series_that_stops_is_caught_within_six_buckets() {
    // 1-3 events per bucket.
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let mut model = KpiModel::new(config(Kind::Count));
    let lambda = |t: i64| 1.0 + 2.0 * rate(1.0, t);
    run_counts(
        &mut model,
        &mut rng,
        MONDAY,
        MONDAY + 2 * WEEK + 15 * 3600,
        lambda,
    );
    let start = MONDAY + 2 * WEEK + 15 * 3600;
    let outage = run_counts(&mut model, &mut rng, start, start + 3600, |_| 0.0);
    let first = outage
        .iter()
        .position(|j| j.anomalous == Some(Direction::Drop));
    assert!(
        matches!(first, Some(i) if i < 6),
        "first alerting bucket {first:?}"
    );
    let f = outage[first.unwrap_or(0)].a.drop.expect("a finding");
    assert!(f.buckets > 1, "caught by a window: {f:?}");
}

#[test]
fn a_slow_thirty_percent_decline_is_caught_by_a_window() {
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    let mut model = KpiModel::new(config(Kind::Count));
    let start = MONDAY + 2 * WEEK + 10 * 3600;
    run_counts(&mut model, &mut rng, MONDAY, start, |t| rate(30.0, t));
    // Down 10 % per hour for three hours, then held.
    let decline = run_counts(&mut model, &mut rng, start, start + 6 * 3600, |t| {
        let hours = (t - start) as f64 / 3600.0;
        rate(30.0, t) * (1.0 - 0.1 * hours.min(3.0))
    });
    let first = decline
        .iter()
        .position(|j| j.anomalous == Some(Direction::Drop));
    assert!(
        matches!(first, Some(i) if i < 60),
        "first alerting bucket {first:?}"
    );
    let f = decline[first.unwrap_or(0)].a.drop.expect("a finding");
    assert!(f.buckets >= 4, "a window, not a bucket: {f:?}");
}

#[test]
fn a_decline_caught_late_does_not_teach_next_week_the_same_hours() {
    // A busy series (300 a bucket at the peak) declines from 10:00 on a
    // Wednesday, 10 % an hour: the buckets before a window catches it
    // each look normal and are learnt in full. A week later the same
    // hours are normal, and must be expected as such.
    let mut rng = ChaCha8Rng::seed_from_u64(29);
    let mut model = KpiModel::new(config(Kind::Count));
    let wednesday = MONDAY + 2 * WEEK + 2 * DAY;
    let start = wednesday + 10 * 3600;
    run_counts(&mut model, &mut rng, MONDAY, start, |t| rate(300.0, t));
    let decline = run_counts(&mut model, &mut rng, start, start + 6 * 3600, |t| {
        let hours = (t - start) as f64 / 3600.0;
        rate(300.0, t) * (1.0 - 0.1 * hours.min(3.0))
    });
    let caught = decline.iter().position(|j| j.anomalous.is_some());
    assert!(matches!(caught, Some(i) if i > 1), "caught at {caught:?}");
    let next = run_counts(
        &mut model,
        &mut rng,
        start + 6 * 3600,
        start + WEEK + 6 * 3600,
        |t| rate(300.0, t),
    );
    let same_hours: Vec<&Judged> = next
        .iter()
        .filter(|j| (start + WEEK..start + WEEK + 3 * 3600).contains(&j.t))
        .collect();
    let low = same_hours
        .iter()
        .map(|j| j.a.expected / rate(300.0, j.t))
        .fold(f64::INFINITY, f64::min);
    assert!(
        low > 0.97,
        "next week's expectation as low as {low:.3} of normal"
    );
    assert!(same_hours.iter().all(|j| j.anomalous.is_none()));
}

#[test]
fn a_firing_alert_recovers_when_the_series_does_and_not_before() {
    let mut rng = ChaCha8Rng::seed_from_u64(14);
    let mut model = KpiModel::new(config(Kind::Count));
    let start = MONDAY + 2 * WEEK + 14 * 3600;
    run_counts(&mut model, &mut rng, MONDAY, start, |t| rate(40.0, t));
    // Down 60 % for an hour.
    run_counts(&mut model, &mut rng, start, start + 3600, |t| {
        0.4 * rate(40.0, t)
    });
    assert!(model.recovery(Source::Own, 0.4, 3) < 0.0, "still down");
    run_counts(
        &mut model,
        &mut rng,
        start + 3600,
        start + 3600 + 900,
        |t| rate(40.0, t),
    );
    assert!(model.recovery(Source::Own, 0.4, 3) > 0.0, "back to normal");
}

#[test]
fn bands_of_counts_never_go_below_zero_and_a_flagged_value_is_outside_its_band() {
    let mut rng = ChaCha8Rng::seed_from_u64(15);
    let mut model = KpiModel::new(config(Kind::Count));
    let judged = run_counts(&mut model, &mut rng, MONDAY, MONDAY + 2 * WEEK, |t| {
        rate(3.0, t)
    });
    let start = MONDAY + 2 * WEEK + 13 * 3600;
    run_counts(&mut model, &mut rng, MONDAY + 2 * WEEK, start, |t| {
        rate(3.0, t)
    });
    let outage = run_counts(&mut model, &mut rng, start, start + 3 * 3600, |_| 0.0);
    for j in judged.iter().chain(&outage).filter(|j| j.a.ready) {
        for f in [j.a.drop, j.a.spike].into_iter().flatten() {
            let (lo, hi) = f.band(P_STAR);
            assert!(lo >= 0.0, "{f:?}");
            let outside = f.observed() < lo || f.observed() > hi;
            assert_eq!(outside, f.p_adjusted() <= P_STAR, "{f:?} band {lo}-{hi}");
        }
    }
    assert!(outage.iter().any(|j| j.anomalous.is_some()));
}

/// Revenue of `nodes` nodes: payments Poisson, amounts log-normal.
fn revenue(rng: &mut ChaCha8Rng, lambda: f64, factor: f64) -> (f64, f64) {
    let amounts = LogNormal::new(3.6, 0.6).expect("log-normal");
    let n = poisson(rng, lambda);
    let sum: f64 = (0..n as u64).map(|_| amounts.sample(rng) * factor).sum();
    (sum, n)
}

#[test]
fn a_node_making_fewer_euros_than_its_peers_is_caught_and_ordinary_revenue_is_not() {
    let mut rng = ChaCha8Rng::seed_from_u64(16);
    let cfg = KpiConfig {
        bucket_width: 900,
        ..config(Kind::Sum)
    };
    let mut models: Vec<KpiModel> = (0..6).map(|_| KpiModel::new(cfg)).collect();
    let start = MONDAY + 3 * WEEK + 11 * 3600;
    let mut false_alerts = 0;
    let mut caught = None;
    let mut before = [false; 6];
    for t in (MONDAY..start + 4 * 3600).step_by(900) {
        let incident = t >= start;
        let values: Vec<(f64, f64)> = (0..6)
            .map(|node| {
                let factor = if incident && node == 3 { 0.4 } else { 1.0 };
                revenue(&mut rng, rate(24.0, t) * 3.0 / 6.0, factor)
            })
            .collect();
        let total: f64 = values.iter().map(|v| v.0).sum();
        for (node, model) in models.iter_mut().enumerate() {
            let (value, events) = values[node];
            let input = Input {
                time: t,
                utc_offset: 0,
                value,
                events,
                others: Some(total - value),
                logs: None,
            };
            let j = step(model, input);
            let now = j.anomalous == Some(Direction::Drop);
            if now && !before[node] && t >= MONDAY + DAY {
                if incident && node == 3 {
                    caught.get_or_insert((t - start) / 900);
                } else {
                    false_alerts += 1;
                }
            }
            before[node] = now;
        }
    }
    assert!(false_alerts <= 1, "{false_alerts} false alerts");
    // About twelve payments a node and bucket, 60 % of the euros gone:
    // within the four hours (an ideal test knowing the baseline exactly
    // needs about eight buckets at this alert level).
    assert!(
        matches!(caught, Some(b) if b < 16),
        "caught after {caught:?} buckets"
    );
}

/// Six nodes' revenue over three weeks, 15-minute buckets, one order in
/// 250 a bulk order 10-60x a basket, each node judged against the rest
/// of the group, whose total counts each node as the engine does (its
/// `for_peers`). The peer drop alerts raised, and the buckets whose
/// bulk order the rest counted as an ordinary order.
fn peer_drops_with_bulk_orders(seed: u64) -> (usize, usize) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let cfg = KpiConfig {
        bucket_width: 900,
        ..config(Kind::Sum)
    };
    let mut models: Vec<KpiModel> = (0..6).map(|_| KpiModel::new(cfg)).collect();
    let amounts = LogNormal::new(3.6, 0.6).expect("log-normal");
    let bulk = LogNormal::new(25f64.ln(), 0.6).expect("log-normal");
    let mut alerts = 0;
    let mut set_apart = 0;
    let mut before = [false; 6];
    for t in (MONDAY..MONDAY + 3 * WEEK).step_by(900) {
        let inputs: Vec<Input> = (0..6)
            .map(|_| {
                let n = poisson(&mut rng, rate(12.0, t));
                let values: Vec<f64> = (0..n as u64)
                    .map(|_| {
                        let size = if rng.gen::<f64>() < 0.004 {
                            bulk.sample(&mut rng)
                        } else {
                            1.0
                        };
                        amounts.sample(&mut rng) * size
                    })
                    .collect();
                Input {
                    time: t,
                    utc_offset: 0,
                    value: values.iter().sum(),
                    events: n,
                    others: None,
                    logs: (n > 0.0).then(|| log_sums(&values)),
                }
            })
            .collect();
        let mut assessed: Vec<Assessment> = models
            .iter()
            .zip(&inputs)
            .map(|(m, i)| m.assess(i))
            .collect();
        let total: f64 = assessed.iter().map(|a| a.for_peers).sum();
        for node in 0..6 {
            let input = Input {
                others: Some(total - assessed[node].for_peers),
                ..inputs[node]
            };
            if assessed[node].for_peers < 0.5 * input.value {
                set_apart += 1;
            }
            let a = &mut assessed[node];
            models[node].add_peers(a, &input);
            let drop = a
                .drop
                .filter(|f| f.source == Source::Peers && f.p_adjusted() <= P_STAR);
            let weight = if anomalous(a).is_some() { SMALL } else { 1.0 };
            models[node].learn(&input, a, weight);
            if drop.is_some() && !before[node] {
                alerts += 1;
            }
            before[node] = drop.is_some();
        }
    }
    (alerts, set_apart)
}

#[test]
fn a_node_taking_a_bulk_order_does_not_make_its_peers_look_short() {
    // A bulk order on one node lifts the rest of the group for each of
    // the other five, which then looked short of their share (on the
    // independent shop at four times its volume, 12 of 30 false peer
    // alerts were nodes "dropping" together, up to five in one bucket).
    // The rest counts it as an ordinary order; the budget, one false
    // alert a month for each of six nodes, allows about four a shop.
    for seed in 1..=2 {
        let (alerts, set_apart) = peer_drops_with_bulk_orders(seed);
        assert!(set_apart >= 10, "{set_apart} bulk orders set apart");
        assert!(alerts <= 1, "{alerts} peer drops");
    }
}

#[test]
fn conversion_falling_with_traffic_unchanged_is_caught() {
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    let mut model = KpiModel::new(config(Kind::Ratio));
    let start = MONDAY + 2 * WEEK + 15 * 3600;
    let mut first = None;
    let mut false_alerts = 0;
    for t in (MONDAY..start + 3 * 3600).step_by(300) {
        let carts = poisson(&mut rng, rate(30.0, t));
        let p = if t >= start { 0.2 } else { 0.33 };
        let checkouts = (0..carts as u64).filter(|_| rng.gen_bool(p)).count() as f64;
        if carts == 0.0 {
            continue;
        }
        let j = step(
            &mut model,
            Input {
                time: t,
                utc_offset: 0,
                value: checkouts / carts,
                events: carts,
                others: None,
                logs: None,
            },
        );
        if j.anomalous.is_some() {
            if t >= start {
                first.get_or_insert((t - start) / 300);
            } else if j.a.ready {
                false_alerts += 1;
            }
        }
    }
    assert!(false_alerts <= 1, "{false_alerts} false");
    // Thirty carts a bucket, a third converting, then a fifth: an ideal
    // binomial test needs about nine buckets at this alert level.
    assert!(
        matches!(first, Some(b) if b <= 24),
        "caught after {first:?} buckets"
    );
}

/// The logarithms of a bucket's values, as the aggregator sums them.
fn log_sums(values: &[f64]) -> LogSums {
    LogSums {
        sum: values.iter().map(|v| v.ln()).sum(),
        sum_sq: values.iter().map(|v| v.ln() * v.ln()).sum(),
        squares: values.iter().map(|v| v * v).sum(),
        largest: values.iter().fold(0.0, |m, v| v.max(m)),
    }
}

/// A price bug: from Monday noon of the third week every basket costs 60 %
/// of what it did, in a shop whose afternoon has `peak` baskets a bucket.
/// The buckets to the first anomalous one and its source (None: not
/// caught in four hours), and the false alerts (runs of anomalous buckets)
/// before it. Without `logs` the model has only the averages.
fn price_bug(peak: f64, seed: u64, logs: bool) -> (Option<(i64, Source)>, usize) {
    amount_bug(Kind::Avg, peak, seed, logs, 0.0)
}

/// Calm buckets after which the engine resolves an alert (its default).
const RESOLVE_AFTER: u32 = 3;

/// [`price_bug`] for a KPI of `kind`, the baskets' average or their sum,
/// in a shop where a share `bulk` of the orders are bulk orders, 10-60x a
/// basket (25x its median, log-normal).
fn amount_bug(
    kind: Kind,
    peak: f64,
    seed: u64,
    logs: bool,
    bulk: f64,
) -> (Option<(i64, Source)>, usize) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut model = KpiModel::new(config(kind));
    let amounts = LogNormal::new(3.6, 0.6).expect("log-normal");
    let bulk_factor = LogNormal::new(25f64.ln(), 0.6).expect("log-normal");
    let start = MONDAY + 2 * WEEK + 12 * 3600;
    let mut first = None;
    let mut false_alerts = 0;
    // Buckets since the last anomalous one: an alert resolves after
    // three calm ones, and one anomalous bucket after fewer is the same
    // alert.
    let mut calm = RESOLVE_AFTER;
    for t in (MONDAY..start + 4 * 3600).step_by(300) {
        let n = poisson(&mut rng, rate(peak, t));
        if n == 0.0 {
            continue;
        }
        let factor = if t >= start { 0.6 } else { 1.0 };
        let values: Vec<f64> = (0..n as u64)
            .map(|_| {
                let size = if bulk > 0.0 && rng.gen::<f64>() < bulk {
                    bulk_factor.sample(&mut rng)
                } else {
                    1.0
                };
                amounts.sample(&mut rng) * factor * size
            })
            .collect();
        let sums = log_sums(&values);
        let j = step(
            &mut model,
            Input {
                time: t,
                utc_offset: 0,
                value: values.iter().sum::<f64>() / if kind == Kind::Avg { n } else { 1.0 },
                events: n,
                others: None,
                logs: logs.then_some(sums),
            },
        );
        if let Some(d) = j.anomalous {
            if t >= start {
                let f = j.a.finding(d).expect("anomalous");
                first.get_or_insert(((t - start) / 300, f.source));
            } else if j.a.ready && calm >= RESOLVE_AFTER {
                false_alerts += 1;
            }
        }
        calm = if j.anomalous.is_some() { 0 } else { calm + 1 };
    }
    (first, false_alerts)
}

#[test]
fn a_price_bug_lowering_the_average_basket_is_caught() {
    let (first, false_alerts) = price_bug(20.0, 18, true);
    assert!(false_alerts <= 1, "{false_alerts} false");
    assert!(
        matches!(first, Some((b, _)) if b <= 6),
        "caught after {first:?} buckets"
    );
}

#[test]
fn a_price_bug_at_two_baskets_a_bucket_is_caught_through_the_typical_basket() {
    // Two baskets a bucket at the afternoon's peak: the mean basket, whose
    // noise is the few largest baskets' and whose expectation follows a
    // seasonal profile known to ~10 % at this volume, shows a 40 % cut
    // late or not at all; the baskets' mean log moves by ln 0.6 against a
    // spread of 0.6 per basket and an expectation known from thousands.
    // Caught in every shop, where the wander learnt bucket by bucket (as
    // wide as 0.09 from noise alone) hid it in one.
    let runs: Vec<_> = (1..=6)
        .map(|seed| (price_bug(2.0, seed, true), price_bug(2.0, seed, false).0))
        .collect();
    // The budget, one false alert a month, allows 2.6 over six shops'
    // 13 days after warm-up.
    let false_alerts: usize = runs.iter().map(|((_, f), _)| f).sum();
    assert!(false_alerts <= 4, "{runs:?}");
    let caught = |with: bool| {
        runs.iter()
            .filter(|((w, _), wo)| if with { w.is_some() } else { wo.is_some() })
            .count()
    };
    let by_typical = runs
        .iter()
        .filter(|((w, _), _)| matches!(w, Some((_, Source::Typical))))
        .count();
    assert!(
        caught(true) >= 6 && caught(false) <= 3 && by_typical >= 5,
        "{runs:?}"
    );
}

#[test]
fn revenue_booked_at_sixty_percent_of_every_amount_is_caught_through_the_typical_payment() {
    // Revenue (a sum) at ten payments a bucket, every amount at 60 %: the
    // sum falls 40 % too, but its noise is its largest payments' and it
    // follows traffic; the typical payment does not.
    let runs: Vec<_> = (1..=3)
        .map(|seed| {
            (
                amount_bug(Kind::Sum, 10.0, seed, true, 0.0),
                amount_bug(Kind::Sum, 10.0, seed, false, 0.0).0,
            )
        })
        .collect();
    for ((with, false_alerts), without) in &runs {
        assert!(*false_alerts <= 1, "{runs:?}");
        let Some((buckets, Source::Typical)) = with else {
            panic!("not found by the typical payment: {runs:?}");
        };
        assert!(*buckets <= 6, "{runs:?}");
        assert!(without.is_none_or(|(b, _)| b >= *buckets), "{runs:?}");
    }
}

#[test]
fn bulk_orders_are_learnt_as_part_of_revenue_and_the_basket_and_a_cut_in_every_amount_is_still_caught(
) {
    // One order in 250 is a bulk order, 10-60x a basket: at ten payments a
    // bucket, one afternoon bucket in 25 has one, lifting its revenue and
    // its mean basket several-fold. Judged by the noise learnt from
    // ordinary buckets alone, each looked like an incident: 29 false
    // alerts for the sum and 62 for the average in these four shops' 13
    // days. The values' own second moment widens the upper tail, and a
    // spike must be more than the window's largest order (one 150x a
    // basket is beyond a log-normal's reach). The budget, one false alert
    // a month, allows 1.7; a cut of every amount to 60 % is still found.
    for kind in [Kind::Sum, Kind::Avg] {
        let runs: Vec<_> = (1..=4)
            .map(|seed| amount_bug(kind, 10.0, seed, true, 0.004))
            .collect();
        let false_alerts: usize = runs.iter().map(|(_, f)| f).sum();
        assert!(false_alerts <= 2, "{kind:?}: {runs:?}");
        assert!(
            runs.iter()
                .all(|(first, _)| matches!(first, Some((b, _)) if *b <= 6)),
            "{kind:?}: {runs:?}"
        );
    }
}

#[test]
fn the_typical_basket_is_reported_as_a_geometric_mean_outside_its_band() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut model = KpiModel::new(config(Kind::Avg));
    let amounts = LogNormal::new(3.6, 0.6).expect("log-normal");
    let start = MONDAY + 2 * WEEK + 12 * 3600;
    for t in (MONDAY..start + 3 * 3600).step_by(300) {
        let n = poisson(&mut rng, rate(2.0, t)).max(1.0);
        let factor = if t >= start { 0.6 } else { 1.0 };
        let values: Vec<f64> = (0..n as u64)
            .map(|_| amounts.sample(&mut rng) * factor)
            .collect();
        let logs = log_sums(&values);
        let input = Input {
            time: t,
            utc_offset: 0,
            value: values.iter().sum::<f64>() / n,
            events: n,
            others: None,
            logs: Some(logs),
        };
        let j = step(&mut model, input);
        let Some(f) =
            j.a.drop
                .filter(|f| f.source == Source::Typical && f.p_adjusted() <= P_STAR)
        else {
            continue;
        };
        // The window's geometric mean of baskets, and its expectation
        // near the distribution's median, e^3.6 = 36.6.
        let (lower, upper) = f.band(P_STAR);
        assert!(f.observed() < lower && lower < f.expected() && f.expected() < upper);
        assert!(
            (f.expected() / 3.6f64.exp() - 1.0).abs() < 0.1,
            "{}",
            f.expected()
        );
        assert!(f.observed() / f.expected() < 0.8, "{}", f.observed());
        return;
    }
    panic!("the price bug was not found by the typical basket");
}

#[test]
fn a_static_rule_is_reported_with_its_limit_from_the_first_bucket() {
    let mut model = KpiModel::new(KpiConfig {
        threshold: Some(StaticThreshold {
            min: Some(5.0),
            max: None,
        }),
        ..config(Kind::Count)
    });
    let a = model.assess(&count(MONDAY, 2.0));
    let rule = a.rule.expect("broken");
    assert_eq!(
        (rule.kind, rule.limit, rule.direction),
        (RuleKind::Min, 5.0, Direction::Drop)
    );
    model.learn(&count(MONDAY, 2.0), &a, 1.0);
    assert!(model.assess(&count(MONDAY + 300, 6.0)).rule.is_none());
}

#[test]
fn a_snapshot_restores_the_same_verdicts() {
    let mut rng = ChaCha8Rng::seed_from_u64(19);
    let mut model = KpiModel::new(config(Kind::Count));
    run_counts(&mut model, &mut rng, MONDAY, MONDAY + 9 * DAY, |t| {
        rate(10.0, t)
    });
    let json = serde_json::to_string(&model).expect("serialises");
    let back: KpiModel = serde_json::from_str(&json).expect("deserialises");
    let input = count(MONDAY + 9 * DAY, 0.0);
    assert_eq!(model.assess(&input), back.assess(&input));
}

#[test]
fn a_quiet_series_falling_to_a_fifth_on_its_second_saturday_is_caught_in_half_the_shops() {
    // Under one event a bucket at the afternoon peak, on a weekday seen
    // once: the expectation is known to ~14 % (the Saturday factor from
    // one day of ~100 events, the level, the hour-of-week cells), and
    // four hours at a fifth are 3 to 9 events where 30 were expected. A
    // scaled Poisson stretched to the expectation's variance made that
    // 2.5 to 10 times likelier than a Poisson whose rate is uncertain by
    // 14 % does, and caught it in two shops of six (seeds 4 and 6); at
    // this volume and this uncertainty the rest are at the limit of one
    // false alert a month.
    let start = MONDAY + WEEK + 5 * DAY + 13 * 3600;
    let caught: Vec<Option<i64>> = (1..=6)
        .map(|seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut model = KpiModel::new(config(Kind::Count));
            let judged = run_counts(&mut model, &mut rng, MONDAY, start + 5 * 3600, |t| {
                rate(0.9, t) * if t >= start { 0.2 } else { 1.0 }
            });
            judged
                .iter()
                .find(|j| j.t >= start && j.anomalous == Some(Direction::Drop))
                .map(|j| (j.t - start) / 300)
        })
        .collect();
    assert!(caught.iter().flatten().count() >= 3, "{caught:?}");
}

#[test]
fn a_ratio_at_a_cart_a_bucket_whose_first_value_is_0_learns_its_level_on_the_first_day() {
    // About one cart a bucket, a tenth of them checking out, the first
    // bucket without a checkout. By the second morning the expectation is
    // the conversion, not 0 (the level stayed at 1e-12 for a day) and not
    // thousands of checkouts per cart (the day's shape then read against
    // that level).
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut model = KpiModel::new(config(Kind::Ratio));
    let mut expected = Vec::new();
    for (i, t) in (MONDAY..MONDAY + 2 * DAY).step_by(300).enumerate() {
        let carts = poisson(&mut rng, rate(1.0, t)).max(1.0);
        let checkouts = if i == 0 {
            0.0
        } else {
            (0..carts as u64).filter(|_| rng.gen_bool(0.1)).count() as f64
        };
        let j = step(
            &mut model,
            Input {
                value: checkouts / carts,
                events: carts,
                ..count(t, 0.0)
            },
        );
        if t >= MONDAY + DAY + 6 * 3600 {
            expected.push(j.a.expected);
        }
    }
    for e in &expected {
        assert!((0.02..0.5).contains(e), "{expected:?}");
    }
}

/// Runs a group of count series, each judged against the rest of the
/// group as peers, from `MONDAY` to `to`; `lambda(member, t)` is a
/// member's expected events. Returns each member's judged buckets.
fn run_group(
    rng: &mut ChaCha8Rng,
    members: usize,
    to: i64,
    lambda: impl Fn(usize, i64) -> f64,
) -> Vec<Vec<Judged>> {
    let mut models: Vec<KpiModel> = (0..members)
        .map(|_| KpiModel::new(config(Kind::Count)))
        .collect();
    let mut judged: Vec<Vec<Judged>> = (0..members).map(|_| Vec::new()).collect();
    for t in (MONDAY..to).step_by(300) {
        let values: Vec<f64> = (0..members).map(|m| poisson(rng, lambda(m, t))).collect();
        let total: f64 = values.iter().sum();
        for (m, model) in models.iter_mut().enumerate() {
            let input = Input {
                others: Some(total - values[m]),
                ..count(t, values[m])
            };
            judged[m].push(step(model, input));
        }
    }
    judged
}

#[test]
fn a_quiet_member_falling_behind_a_quiet_group_is_caught_against_its_peers() {
    // The Saturday above, with four other countries beside it that
    // together have about two events a bucket: one bucket in seven of
    // theirs is empty. Such a bucket is still a comparison (it expects
    // nothing of this country either), so windows against peers reach over
    // the afternoon; when it broke them, no peer window grew past a few
    // buckets, and none came near the alert level in any of the six shops.
    let start = MONDAY + WEEK + 5 * DAY + 13 * 3600;
    let mut caught = 0;
    let mut by_peers = 0;
    for seed in 1..=6 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let judged = run_group(&mut rng, 5, start + 5 * 3600, |m, t| {
            if m == 0 {
                rate(0.9, t) * if t >= start { 0.2 } else { 1.0 }
            } else {
                rate(0.5, t)
            }
        });
        let during = || judged[0].iter().filter(|j| j.t >= start);
        if during().any(|j| j.anomalous == Some(Direction::Drop)) {
            caught += 1;
        }
        if during().any(|j| {
            j.a.drop
                .is_some_and(|f| f.source == Source::Peers && f.p_adjusted() <= P_STAR)
        }) {
            by_peers += 1;
        }
    }
    assert_eq!(caught, 6);
    assert!(by_peers >= 3, "against peers in {by_peers} of 6");
}

#[test]
fn a_quiet_group_judged_against_its_peers_raises_no_alert_in_a_clean_month() {
    // Three platforms at one, two and three events a bucket at the peak,
    // in six shops: 18 series-months, which P_STAR allows about 18 false
    // alerts. The rest of the group's count is an uncertain rate for a
    // window's expectation from peers (two events of the rest know it to
    // 70 %); taken as a bucket's noise, it made such windows too sure of
    // their expectation, and the six shops raised 10 alerts.
    let mut false_alerts = 0;
    for seed in 21..27 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let judged = run_group(&mut rng, 3, MONDAY + 4 * WEEK, |m, t| {
            rate(1.0 + m as f64, t)
        });
        let n: usize = judged
            .iter()
            .map(|j| alerts(&j[(DAY / 300) as usize..]))
            .sum();
        false_alerts += n;
    }
    assert!(false_alerts <= 6, "{false_alerts} false alerts");
}

/// A group of `members` count series whose shares move with the time of
/// day: member `m`'s day peaks `2m` hours later (customers in other time
/// zones, mobile in the evening), in clean weeks.
fn shares_moving_with_the_hour(m: usize, t: i64) -> f64 {
    rate(8.0, t - m as i64 * 2 * 3600)
}

#[test]
fn members_whose_share_moves_with_the_hour_raise_no_alert_against_their_peers() {
    // Each member's share swings by a factor of three over the day, and
    // is the same every day: whole days, where the swings cancel, showed
    // a ratio known to 1 %, and the evening's shares were taken for
    // incidents. The hours show how far the share wanders; four clean
    // weeks of four members, six shops, stay near their budget.
    let mut by_peers = 0;
    for seed in 31..37 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let judged = run_group(&mut rng, 4, MONDAY + 4 * WEEK, shares_moving_with_the_hour);
        for series in &judged {
            by_peers += peer_alert_starts(&series[(WEEK / 300) as usize..]);
        }
    }
    // 24 series over three judged weeks: P_STAR allows about 17 alerts.
    // Each hour of the day has its own share (15 alerts); with one share
    // for the day and an hourly error, ramps within an hour still moved
    // it (36), and with the ratio's error learnt from whole days only,
    // they raised 1,330.
    assert!(by_peers <= 20, "{by_peers} alerts against peers");
}

/// Alert starts against peers in `series` (a bucket anomalous against
/// peers after one that was not).
fn peer_alert_starts(series: &[Judged]) -> usize {
    let peer = |j: &Judged| {
        [&j.a.drop, &j.a.spike]
            .into_iter()
            .any(|f| f.is_some_and(|f| f.source == Source::Peers && f.p_adjusted() <= P_STAR))
    };
    series
        .windows(2)
        .filter(|w| !peer(&w[0]) && peer(&w[1]))
        .count()
}

#[test]
fn a_member_whose_share_is_larger_at_the_weekend_is_not_flagged_on_its_first_weekend() {
    // Mobile takes 60 % more of the group on Saturdays and Sundays, from
    // the first weekend on. The first Saturday, the share learnt from
    // weekdays says nothing of it: compared, it drew 91 alerts in the six
    // shops (every one of them), on the first weekend and, having learnt
    // that weekend as an anomaly, on the second. A weekday is compared
    // once it has been seen.
    let weekend = |t: i64| ((t - MONDAY).rem_euclid(WEEK) / DAY) >= 5;
    let mut by_peers = 0;
    for seed in 51..57 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let judged = run_group(&mut rng, 3, MONDAY + 2 * WEEK, |m, t| {
            let mobile = if m == 0 && weekend(t) { 1.6 } else { 1.0 };
            rate(6.0, t) * mobile
        });
        by_peers += peer_alert_starts(&judged[0][(DAY / 300) as usize..]);
    }
    // 6 series-fortnights: P_STAR allows about 3 alerts. The share a
    // weekend brings is not modelled (only the hour's): one shop still
    // draws 4 on its second weekend's nights, where a few events an hour
    // carry the 60 %.
    assert!(by_peers <= 6, "{by_peers} alerts against peers");
}

#[test]
fn a_busy_day_is_measured_by_its_morning_and_its_evening_drop_still_caught() {
    // Days that differ by ~12 % as a whole (a busy Monday, a quiet
    // Thursday) share that factor in every bucket: by the evening the day
    // has shown it, so its windows are judged against it, not against
    // the average day with a 12 % band. On the last day, 15 % busier
    // than usual all day, logins fall 40 % from 18:00 for two hours:
    // caught within the hour in every shop, and nothing flagged before.
    let last = MONDAY + 3 * WEEK + DAY;
    let drop = last + 18 * 3600;
    let mut caught = 0;
    let mut early = 0;
    for seed in 41..47 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut model = KpiModel::new(config(Kind::Count));
        let days: Vec<f64> = (0..22)
            .map(|_| (0.12 * rng.sample::<f64, _>(rand_distr::StandardNormal)).exp())
            .collect();
        let judged = run_counts(&mut model, &mut rng, MONDAY, last + DAY, |t| {
            let d = ((t - MONDAY) / DAY) as usize;
            let day = if t >= last { 1.15 } else { days[d] };
            let down = if (drop..drop + 2 * 3600).contains(&t) {
                0.6
            } else {
                1.0
            };
            rate(40.0, t) * day * down
        });
        let first = judged
            .iter()
            .find(|j| j.t >= last && j.anomalous == Some(Direction::Drop))
            .map(|j| j.t);
        if first.is_some_and(|t| (drop..drop + 3600).contains(&t)) {
            caught += 1;
        }
        if judged
            .iter()
            .any(|j| (last..drop).contains(&j.t) && j.anomalous.is_some())
        {
            early += 1;
        }
    }
    // Judged against the average day, 5 of 6 and one flagged early.
    assert_eq!((caught, early), (6, 0));
}
