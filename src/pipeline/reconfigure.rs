//! A reload of the configuration, applied to a running [`Pipeline`]
//! between two events (the service loop owns the pipeline, so no event is
//! read under one configuration and judged under another).
//!
//! A new pipeline is built from the new configuration, then the state of
//! what goes on is moved into it (see [`crate::config::diff`] for which
//! KPIs keep it): every topic's partition clocks and progress (the topics
//! cannot change without a restart), the open buckets of each KPI that
//! keeps its state, under its new number, and its series in the engine.
//! Events a partition holds (far ahead, not yet confirmed) are read again
//! with the new plans, since which KPIs they count in may have changed;
//! [`reread`] does the same for batches the receiving thread read with the
//! old plans. KPIs removed or started afresh have their firing alerts
//! resolved (handed out by the next [`Pipeline::advance`]) and their state
//! dropped.

use super::read::{ReadBatch, Reader};
use super::Pipeline;
use crate::config::diff::Fate;
use crate::config::model::Config;

/// Why a KPI's firing alerts resolve on a reload, after its description.
const REMOVED: &str = "resolved by a configuration reload: the KPI was removed";
const RESTARTED: &str =
    "resolved by a configuration reload: the KPI's definition changed and it starts afresh";

impl Pipeline {
    /// Takes `config`, with `fates` (one per KPI of `config`) and
    /// `removed` (indices into the current configuration) from
    /// [`crate::config::diff::diff`], whose `restart` list must be empty:
    /// the topics are the same. Returns the number of firing alerts
    /// resolved because their KPI was removed or restarted; the next
    /// [`Pipeline::advance`] hands those transitions out.
    pub fn reconfigure(&mut self, config: Config, fates: &[Fate], removed: &[usize]) -> usize {
        assert_eq!(fates.len(), config.kpis.len(), "one fate per KPI");
        assert_eq!(
            self.topics.len(),
            config.topics.len(),
            "a reload keeps the topics"
        );
        let mut next = Pipeline::new(config, self.metrics.clone());
        let mut resolved = Vec::new();
        for &old in removed {
            resolved.extend(self.engine.withdraw(old, REMOVED));
            let name = self.config.kpis[old].name.as_str();
            let _ = self.metrics.series_live.remove_label_values(&[name]);
        }
        for (kpi, fate) in fates.iter().enumerate() {
            match *fate {
                Fate::Restarted { old } => {
                    resolved.extend(self.engine.withdraw(old, RESTARTED));
                }
                Fate::Kept { old } | Fate::Retuned { old } => {
                    next.engine.adopt(kpi, &mut self.engine, old);
                }
                Fate::Added => {}
            }
        }
        for (t, new) in next.topics.iter_mut().enumerate() {
            let old = &mut self.topics[t];
            // KPI (old number) → its windows: one pass, not one per route.
            let windows_of: super::FastMap<usize, usize> = old
                .plan
                .routes
                .iter()
                .enumerate()
                .map(|(w, r)| (r.kpi, w))
                .collect();
            for (w, route) in new.plan.routes.iter().enumerate() {
                let Some(from) = fates[route.kpi].keeps() else {
                    continue;
                };
                if let Some(&ow) = windows_of.get(&from) {
                    std::mem::swap(&mut new.windows[w], &mut old.windows[ow]);
                    new.windows[w].renumber(route.kpi);
                }
            }
            let idle_timeout = new.clock.idle_timeout;
            new.clock = std::mem::take(&mut old.clock);
            new.clock.idle_timeout = idle_timeout;
            for p in new.clock.partitions.values_mut() {
                if let Some(held) = &mut p.held {
                    let mut fresh = Box::<ReadBatch>::default();
                    reread(&next.reader, held, &mut fresh);
                    *held = fresh;
                }
            }
            new.due_pending = old.due_pending;
            // As the next close would compute them; a KPI started afresh
            // has no bucket yet and holds both at their lowest until then.
            new.next_close = new
                .windows
                .iter()
                .map(|w| w.next_close())
                .min()
                .unwrap_or(i64::MAX);
            new.fits_until = new
                .windows
                .iter()
                .map(|w| w.fits_until())
                .min()
                .unwrap_or(i64::MAX);
        }
        // Buckets judged (for a confirmed jump) since the shell last took
        // them: under the KPIs' new numbers, those of KPIs gone dropped.
        next.tap = self.tap.take().map(|judged| {
            judged
                .into_iter()
                .filter_map(|mut b| {
                    b.kpi = fates.iter().position(|f| f.keeps() == Some(b.kpi))?;
                    Some(b)
                })
                .collect()
        });
        next.settled = std::mem::take(&mut self.settled);
        next.deferred = std::mem::take(&mut self.deferred);
        let count = resolved.len();
        next.deferred.extend(resolved);
        next.interrupt = self.interrupt.take();
        next.interrupted = self.interrupted;
        *self = next;
        count
    }
}

/// Reads the events of `batch` again with `reader` onto the end of `out`:
/// for a batch read with the plans of a configuration since replaced.
/// Needs the payloads, which [`Reader::read`] keeps.
pub fn reread(reader: &Reader, batch: &ReadBatch, out: &mut ReadBatch) {
    for i in 0..batch.len() {
        let (topic, partition, offset, payload) = batch.event(i);
        reader.read(topic, partition, offset, payload, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::diff::diff;
    use crate::config::{validate, Source};
    use crate::telemetry::Metrics;

    const CHECKOUTS: &str =
        "[[kpi]]\nname = \"checkouts\"\nwhere = { type = \"checkout\" }\naggregate = \"count\"\n";
    const LOGINS: &str =
        "[[kpi]]\nname = \"logins\"\nwhere = { type = \"login\" }\naggregate = \"count\"\n";

    fn config(kpis: &str) -> Config {
        let text = format!(
            "[service]\nstate_dir = \"/tmp/kpiwatch-reconfigure-test\"\n[kafka]\nbrokers = \"b:9092\"\ngroup_id = \"g\"\n[[topic]]\nname = \"shop\"\ntime_format = \"epoch_seconds\"\n[defaults]\nbucket = \"1m\"\nlateness = \"0s\"\n{kpis}"
        );
        validate(&Source::new(std::path::Path::new("t.toml"), &text)).unwrap()
    }

    fn record(p: &mut Pipeline, offset: &mut i64, t: i64, kind: &str) {
        let payload = format!(r#"{{"time":{t},"type":"{kind}"}}"#);
        p.record(0, 0, *offset, payload.as_bytes(), None);
        *offset += 1;
    }

    #[test]
    fn a_kept_kpi_moved_down_the_file_keeps_its_open_bucket_under_its_new_number() {
        let old = config(CHECKOUTS);
        let new = config(&format!("{LOGINS}{CHECKOUTS}"));
        let d = diff(&old, &new);
        assert_eq!(d.fates, [Fate::Added, Fate::Kept { old: 0 }]);
        let mut p = Pipeline::new(old, Metrics::default());
        p.tap_buckets();
        let mut out = Vec::new();
        let mut offset = 0;
        for m in 0..3 {
            record(&mut p, &mut offset, 60 * m + 10, "checkout");
            p.advance(None, &mut out);
        }
        // Minute 2 is open with one checkout when the reload comes.
        p.reconfigure(new, &d.fates, &d.removed);
        record(&mut p, &mut offset, 150, "checkout");
        record(&mut p, &mut offset, 155, "login");
        record(&mut p, &mut offset, 190, "checkout");
        p.advance(None, &mut out);
        let judged = p.take_judged();
        let minute_2: Vec<_> = judged
            .iter()
            .filter(|b| b.start == 120)
            .map(|b| (p.config().kpis[b.kpi].name.as_str(), b.value))
            .collect();
        // checkouts counts both events of minute 2 under its new number;
        // logins, new, starts at the reload's progress: its first bucket
        // is minute 2, holding the one login.
        assert!(minute_2.contains(&("checkouts", Some(2.0))), "{minute_2:?}");
        assert!(minute_2.contains(&("logins", Some(1.0))), "{minute_2:?}");
    }

    #[test]
    fn a_removed_kpis_firing_alert_is_resolved_by_the_next_advance() {
        let floor = "[kpi.detectors]\nmin = 1.0\n[kpi.alerting]\nfire_after = 1\n";
        let old = config(&format!("{CHECKOUTS}{floor}{LOGINS}"));
        let new = config(LOGINS);
        let d = diff(&old, &new);
        assert_eq!(d.removed, [0]);
        let mut p = Pipeline::new(old, Metrics::default());
        let mut out = Vec::new();
        let mut offset = 0;
        record(&mut p, &mut offset, 10, "checkout");
        // Minute 1 without a checkout: fires when minute 2 closes it.
        record(&mut p, &mut offset, 70, "login");
        record(&mut p, &mut offset, 130, "login");
        p.advance(None, &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        let fired = out.pop().unwrap();
        assert_eq!(p.reconfigure(new, &d.fates, &d.removed), 1);
        p.advance(None, &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].status, crate::alert::Status::Resolved);
        assert_eq!(out[0].alert_id, fired.alert_id);
        assert!(out[0]
            .description
            .as_deref()
            .is_some_and(|d| d.contains("the KPI was removed")));
    }
}
