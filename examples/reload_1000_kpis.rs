//! Times a live reload of a configuration of 1,000 KPIs (the first
//! argument sets another count) with every KPI holding learned state:
//! the path `POST /api/v1/reload` and SIGHUP take in the service loop
//! (`kpiwatch::reload::apply`: read and validate the file, compare it with
//! the running one, give the notifier and the pipeline the new one),
//! without the HTTP round trip. The file alternates between two versions
//! that differ as an analyst's edit does: one KPI retuned
//! (`fire_after`), one with a new filter (restarted). Prints the median
//! and slowest of 10 reloads, and the median of reading and validating
//! the file alone. The README's reload section quotes it.
//!
//! usage: `cargo run --release --example reload_1000_kpis [KPIS]`

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use kpiwatch::clock::{Clock, SystemClock};
use kpiwatch::http::access::{Access, LiveAccess};
use kpiwatch::notify::notifier::Notifier;
use kpiwatch::notify::silence::SilenceStore;
use kpiwatch::pipeline::Pipeline;
use kpiwatch::reload::{Live, ReloadMetrics};
use kpiwatch::telemetry::Metrics;

#[path = "common/kpis.rs"]
mod kpis;

/// Bucket starts of learned history per KPI (5-minute buckets: a day).
const BUCKETS: i64 = 288;
const T0: i64 = 1_704_067_200;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = match std::env::args().nth(1) {
        Some(a) => a.parse()?,
        None => 1_000,
    };
    let state = tempfile::tempdir()?;
    let header = format!(
        "[service]\nlisten = \"127.0.0.1:0\"\nstate_dir = {:?}\n[kafka]\nbrokers = \"127.0.0.1:9\"\ngroup_id = \"reload\"\n",
        state.path()
    );
    let a = format!("{header}{}", kpis::config_of(n)).replacen(
        "name = \"shop\"\n",
        "name = \"shop\"\ntime_format = \"epoch_seconds\"\n",
        1,
    );
    // kpi_1 retuned, kpi_0 counts another event type.
    let b = a
        .replacen(
            "name = \"kpi_1\"\nwhere = { type = \"t1\" }\naggregate = \"count\"\nbucket = \"5m\"\n",
            "name = \"kpi_1\"\nwhere = { type = \"t1\" }\naggregate = \"count\"\nbucket = \"5m\"\n[kpi.alerting]\nfire_after = 2\n",
            1,
        )
        .replacen("type = \"t0\" }", "type = \"t0b\" }", 1);
    assert_ne!(a, b);
    let path = state.path().join("kpiwatch.toml");
    std::fs::write(&path, &a)?;
    let config = kpiwatch::config::load(&path)?;
    let notify = config.notify.clone();

    // A day of 5-minute buckets for every event KPI: each has a model.
    let metrics = Metrics::default();
    let mut pipeline = Pipeline::new(config, metrics.clone());
    let mut out = Vec::new();
    let mut offset = 0;
    for bucket in 0..BUCKETS {
        let t = T0 + bucket * 300 + 10;
        for i in 0..n {
            let payload = format!(r#"{{"time":{t},"type":"t{i}"}}"#);
            pipeline.record(0, 0, offset, payload.as_bytes(), None);
            offset += 1;
        }
        pipeline.advance(None, &mut out);
        out.clear();
    }
    let series: usize = pipeline
        .snapshot()
        .kpis
        .iter()
        .map(|k| k.series.len())
        .sum();
    assert!(series >= n * 9 / 10, "only {series} series learned");

    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let silences = Arc::new(Mutex::new(SilenceStore::in_memory()));
        let mut notifier = Notifier::start(
            &notify,
            state.path(),
            silences.clone(),
            clock.clone(),
            metrics.clone(),
        )?;
        let bound = "127.0.0.1:9".parse()?;
        let access = Access::new(bound, false, &[], |_| None)?;
        let live = Live {
            path: Some(path.clone()),
            readers: Arc::new(kpiwatch::reload::Readers::new(pipeline.reader())),
            access: Arc::new(LiveAccess::new(Arc::new(access))),
            bound,
            tls: false,
            silences,
            health: Arc::new(kpiwatch::kafka::Health::default()),
            clock: clock.clone(),
            metrics: ReloadMetrics::register(&metrics.registry, clock.now())?,
        };
        let mut reloads = Vec::new();
        let mut loads = Vec::new();
        for round in 0..10 {
            std::fs::write(&path, if round % 2 == 0 { &b } else { &a })?;
            let began = Instant::now();
            let report = kpiwatch::reload::apply(&live, &mut pipeline, &mut notifier)
                .await
                .map_err(|f| format!("{}: {:?}", f.error, f.errors))?;
            reloads.push(began.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(report.kpis.restarted, ["kpi_0"]);
            assert_eq!(report.kpis.kept.len() + report.kpis.retuned.len(), n - 1);
            let began = Instant::now();
            kpiwatch::config::load(Path::new(&path))?;
            loads.push(began.elapsed().as_secs_f64() * 1000.0);
        }
        let slowest = reloads.iter().copied().fold(0.0, f64::max);
        println!(
            "reload of {n} KPIs ({series} series with state, {:.0} KB of TOML): median {:.1} ms, slowest {slowest:.1} ms of 10; reading and validating the file alone: median {:.1} ms",
            a.len() as f64 / 1e3,
            median(reloads),
            median(loads),
        );
        notifier.stop().await;
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;
    Ok(())
}
