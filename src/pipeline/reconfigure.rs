//! A reload of the configuration, applied to a running [`Pipeline`]
//! between two events (the service loop owns the pipeline, so no event is
//! read under one configuration and judged under another).
//!
//! A new pipeline is built from the new configuration, then the state of
//! what goes on is moved into it (see [`crate::reload::diff`] for which
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
use crate::config::model::Config;
use crate::reload::diff::Fate;

/// Why a KPI's firing alerts resolve on a reload, after its description.
const REMOVED: &str = "resolved by a configuration reload: the KPI was removed";
const RESTARTED: &str =
    "resolved by a configuration reload: the KPI's definition changed and it starts afresh";

impl Pipeline {
    /// Takes `config`, with `fates` (one per KPI of `config`) and
    /// `removed` (indices into the current configuration) from
    /// [`crate::reload::diff::diff`], whose `restart` list must be empty:
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
            for (w, route) in new.plan.routes.iter().enumerate() {
                let Some(from) = fates[route.kpi].keeps() else {
                    continue;
                };
                if let Some(ow) = old.plan.routes.iter().position(|r| r.kpi == from) {
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
        next.tap = self.tap.take();
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
