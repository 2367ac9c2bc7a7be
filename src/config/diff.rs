//! What a reload would change: the old and the new validated [`Config`]
//! compared, with no I/O and no state, so every rule below has a unit test.
//!
//! KPIs are matched by name and compared as validated (a ratio's parts by
//! name, not by their position in the file, so adding a KPI above one
//! changes nothing). Each KPI of the new file gets a [`Fate`]:
//!
//! - [`Fate::Kept`]: the same definition; its state goes on untouched.
//! - [`Fate::Retuned`]: only what judging reads afresh for every bucket
//!   changed (`false_alarms`/`threshold`, `critical`, `fire_after`,
//!   `resolve_after`, `recent_buckets`, `direction`, description and
//!   links): its models, open buckets and firing alerts are kept, and the
//!   next bucket is judged with the new settings. This is the analyst's
//!   tuning loop, which must not cost weeks of learning.
//! - [`Fate::Restarted`]: something its learned state or its buckets
//!   depend on changed (what it measures, filters, `group_by`, bucket,
//!   lateness, time zone, detectors, `min_volume`, series limits, or one
//!   of a ratio's parts restarted): it starts afresh, as a KPI whose
//!   definition changed does at a restart.
//! - [`Fate::Added`].
//!
//! What a running service cannot change (the Kafka connection, the topics
//! and how their event time is read, where state lives, the listener) is
//! listed in [`Diff::restart`]: a reload that changes any of it is refused
//! whole, so the service never runs a mix of two files.

use std::collections::BTreeMap;

use crate::config::model::{Config, Kpi, Measure};

/// What to do with one KPI of the new configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Unchanged; `old` is its index in the old configuration.
    Kept {
        /// Index in the old configuration.
        old: usize,
    },
    /// Only judging settings changed: state kept, new settings from the
    /// next bucket.
    Retuned {
        /// Index in the old configuration.
        old: usize,
    },
    /// Its definition changed: starts afresh; `old`'s firing alerts are
    /// resolved.
    Restarted {
        /// Index in the old configuration.
        old: usize,
    },
    /// New.
    Added,
}

impl Fate {
    /// The old index whose state the KPI keeps, if it keeps any.
    pub fn keeps(self) -> Option<usize> {
        match self {
            Fate::Kept { old } | Fate::Retuned { old } => Some(old),
            Fate::Restarted { .. } | Fate::Added => None,
        }
    }
}

/// Names of things of one kind, by what happened to them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Names {
    /// In both, equal.
    pub kept: Vec<String>,
    /// In both, different.
    pub changed: Vec<String>,
    /// Only in the new configuration.
    pub added: Vec<String>,
    /// Only in the old one.
    pub removed: Vec<String>,
}

impl Names {
    /// Compares two lists of named things.
    fn of<T: PartialEq>(old: &[T], new: &[T], name: impl Fn(&T) -> &str) -> Self {
        let mut out = Names::default();
        let by_name: BTreeMap<&str, &T> = old.iter().map(|o| (name(o), o)).collect();
        let in_new: std::collections::BTreeSet<&str> = new.iter().map(&name).collect();
        for n in new {
            match by_name.get(name(n)).copied() {
                Some(o) if o == n => out.kept.push(name(n).to_string()),
                Some(_) => out.changed.push(name(n).to_string()),
                None => out.added.push(name(n).to_string()),
            }
        }
        out.removed = old
            .iter()
            .filter(|o| !in_new.contains(name(o)))
            .map(|o| name(o).to_string())
            .collect();
        out
    }

    /// Whether anything differs.
    pub fn any_change(&self) -> bool {
        !(self.changed.is_empty() && self.added.is_empty() && self.removed.is_empty())
    }
}

/// Everything a reload from `old` to `new` changes.
#[derive(Debug, Clone, PartialEq)]
pub struct Diff {
    /// Settings that only a restart can change, as `what (old → new)`
    /// phrases; a reload is refused while this is not empty.
    pub restart: Vec<String>,
    /// Per KPI of the new configuration, in its order.
    pub fates: Vec<Fate>,
    /// Indices (old configuration) of KPIs no longer configured.
    pub removed: Vec<usize>,
    /// Receivers.
    pub receivers: Names,
    /// Subscriptions.
    pub subscriptions: Names,
    /// Time windows.
    pub time_windows: Names,
    /// SMTP relay, From, mail directory, external URL or retry policy:
    /// every receiver's delivery worker starts again with them.
    pub delivery_changed: bool,
    /// `[[service.api_token]]` changed.
    pub tokens_changed: bool,
    /// Other live settings that changed (`silence_max_ahead`,
    /// `stall_after`, a topic's `idle_timeout` or `max_ahead`), by key.
    pub settings: Vec<String>,
}

impl Diff {
    /// KPI names of the new configuration by fate, and those removed.
    pub fn kpi_names(&self, old: &Config, new: &Config) -> KpiNames {
        let mut out = KpiNames::default();
        for (kpi, fate) in new.kpis.iter().zip(&self.fates) {
            let list = match fate {
                Fate::Kept { .. } => &mut out.kept,
                Fate::Retuned { .. } => &mut out.retuned,
                Fate::Restarted { .. } => &mut out.restarted,
                Fate::Added => &mut out.added,
            };
            list.push(kpi.name.clone());
        }
        out.removed = self
            .removed
            .iter()
            .map(|&i| old.kpis[i].name.clone())
            .collect();
        out
    }
}

/// KPI names by what a reload does to them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct KpiNames {
    /// Unchanged: state, open buckets and alerts kept.
    pub kept: Vec<String>,
    /// Judging settings changed: state kept, new settings from the next
    /// bucket.
    pub retuned: Vec<String>,
    /// Definition changed: started afresh, firing alerts resolved.
    pub restarted: Vec<String>,
    /// New.
    pub added: Vec<String>,
    /// Gone: state dropped, firing alerts resolved.
    pub removed: Vec<String>,
}

/// Compares two validated configurations (see the module docs).
pub fn diff(old: &Config, new: &Config) -> Diff {
    let mut restart = Vec::new();
    let r = &mut restart;
    let (ok, nk) = (&old.kafka, &new.kafka);
    must(r, "kafka.brokers", ok.brokers.clone(), nk.brokers.clone());
    must(
        r,
        "kafka.group_id",
        ok.group_id.clone(),
        nk.group_id.clone(),
    );
    must(
        r,
        "kafka.dead_letter_topic",
        format!("{:?}", ok.dead_letter_topic),
        format!("{:?}", nk.dead_letter_topic),
    );
    // Read when a partition without a committed offset is assigned, from
    // the consumer made at start.
    must(
        r,
        "kafka.start_from",
        format!("{:?}", ok.start_from),
        format!("{:?}", nk.start_from),
    );
    if ok.options != nk.options || ok.options_from_env != nk.options_from_env {
        r.push("[kafka.options]".to_string());
    }
    let names = |c: &Config| c.topics.iter().map(|t| t.name.clone()).collect::<Vec<_>>();
    must(
        r,
        "the [[topic]] list",
        names(old).join(", "),
        names(new).join(", "),
    );
    let mut settings = Vec::new();
    if names(old) == names(new) {
        for (o, n) in old.topics.iter().zip(&new.topics) {
            let what = |key: &str| format!("[[topic]] {:?} {key}", n.name);
            must(
                &mut restart,
                &what("time_field"),
                o.time_field.to_string(),
                n.time_field.to_string(),
            );
            must(
                &mut restart,
                &what("time_format"),
                format!("{:?}", o.time_format),
                format!("{:?}", n.time_format),
            );
            if o.idle_timeout != n.idle_timeout {
                settings.push(format!("[[topic]] {:?} idle_timeout", n.name));
            }
            if o.max_ahead != n.max_ahead {
                settings.push(format!("[[topic]] {:?} max_ahead", n.name));
            }
        }
    }
    let (os, ns) = (&old.service, &new.service);
    let r = &mut restart;
    must(
        r,
        "service.listen",
        os.listen.to_string(),
        ns.listen.to_string(),
    );
    must(
        r,
        "service.state_dir",
        os.state_dir.display().to_string(),
        ns.state_dir.display().to_string(),
    );
    must(
        r,
        "service.alert_log",
        format!("{:?}", os.alert_log),
        format!("{:?}", ns.alert_log),
    );
    must(
        r,
        "service.snapshot_interval",
        format!("{:?}", os.snapshot_interval),
        format!("{:?}", ns.snapshot_interval),
    );
    must(
        r,
        "service.cert_file/key_file",
        format!("{:?}", os.api.tls),
        format!("{:?}", ns.api.tls),
    );
    must(
        r,
        "notify.outbox_dir",
        old.notify.outbox_dir.display().to_string(),
        new.notify.outbox_dir.display().to_string(),
    );
    // The feedback endpoints check links with the key read at start: a
    // new key in the emails would make every new link fail there.
    must(
        r,
        "notify.feedback_key_env/feedback_link_ttl",
        format!("{:?}", old.notify.feedback_links),
        format!("{:?}", new.notify.feedback_links),
    );
    if os.api.silence_max_ahead != ns.api.silence_max_ahead {
        settings.push("service.silence_max_ahead".to_string());
    }
    if os.stall_after != ns.stall_after {
        settings.push("service.stall_after".to_string());
    }

    let (fates, removed) = kpi_fates(old, new);
    let (on, nn) = (&old.notify, &new.notify);
    Diff {
        restart,
        fates,
        removed,
        receivers: Names::of(&on.receivers, &nn.receivers, |r| &r.name),
        subscriptions: Names::of(&on.subscriptions, &nn.subscriptions, |s| &s.name),
        time_windows: Names::of(&on.time_windows, &nn.time_windows, |w| &w.name),
        delivery_changed: on.smtp != nn.smtp
            || on.from != nn.from
            || on.mail_dir != nn.mail_dir
            || on.external_url != nn.external_url
            || on.retry != nn.retry,
        tokens_changed: os.api.tokens != ns.api.tokens,
        settings,
    }
}

/// Notes `what` as needing a restart if `a` and `b` differ.
fn must(restart: &mut Vec<String>, what: &str, a: String, b: String) {
    if a != b {
        restart.push(format!("{what} ({a} → {b})"));
    }
}

/// What a KPI's learned state and open buckets depend on, with a ratio's
/// parts by name.
fn learned(c: &Config, k: &Kpi) -> String {
    let measure = match &k.measure {
        Measure::Ratio {
            numerator,
            denominator,
        } => format!(
            "ratio({:?} / {:?})",
            c.kpis[*numerator].name, c.kpis[*denominator].name
        ),
        m => format!("{m:?}"),
    };
    format!(
        "{}|{measure}|{:?}|{}|{}|{}|{}|{}|{}|{:?}",
        c.topics[k.topic].name,
        k.group_by,
        k.bucket,
        k.lateness,
        k.timezone,
        k.max_series,
        k.evict_after,
        k.min_volume,
        k.detectors,
    )
}

/// What judging reads afresh for every bucket (calendars too: the
/// engine looks each bucket up in the KPI's current ones, so a holiday
/// added to a calendar retunes its KPIs, it does not throw away what
/// they learnt).
fn judging(k: &Kpi) -> String {
    format!(
        "{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
        k.alerting, k.direction, k.description, k.runbook, k.dashboard, k.calendars
    )
}

fn kpi_fates(old: &Config, new: &Config) -> (Vec<Fate>, Vec<usize>) {
    let by_name: BTreeMap<&str, usize> = old
        .kpis
        .iter()
        .enumerate()
        .map(|(i, k)| (k.name.as_str(), i))
        .collect();
    let mut fates: Vec<Fate> = new
        .kpis
        .iter()
        .map(|k| match by_name.get(k.name.as_str()) {
            None => Fate::Added,
            Some(&o) if learned(old, &old.kpis[o]) != learned(new, k) => Fate::Restarted { old: o },
            Some(&o) if judging(&old.kpis[o]) != judging(k) => Fate::Retuned { old: o },
            Some(&o) => Fate::Kept { old: o },
        })
        .collect();
    // A ratio is derived from its parts' buckets: a part that starts
    // afresh (new filter, new bucket) makes the ratio something else.
    for (i, k) in new.kpis.iter().enumerate() {
        if let Measure::Ratio {
            numerator,
            denominator,
        } = k.measure
        {
            let fresh = |f: Fate| f.keeps().is_none();
            if fresh(fates[numerator]) || fresh(fates[denominator]) {
                if let Some(old) = fates[i].keeps() {
                    fates[i] = Fate::Restarted { old };
                }
            }
        }
    }
    let kept: std::collections::HashSet<&str> = new.kpis.iter().map(|k| k.name.as_str()).collect();
    let removed = old
        .kpis
        .iter()
        .enumerate()
        .filter(|(_, k)| !kept.contains(k.name.as_str()))
        .map(|(i, _)| i)
        .collect();
    (fates, removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::validate;
    use crate::config::Source;

    const BASE: &str = r#"
[service]
listen = "127.0.0.1:0"
state_dir = "/tmp/kpiwatch-diff-test"
[kafka]
brokers = "localhost:9092"
group_id = "g"
[[topic]]
name = "shop"
time_format = "epoch_seconds"
[defaults]
bucket = "1m"
[[receiver]]
name = "team"
email = ["team@example.com"]
[[subscription]]
name = "all"
receivers = ["team"]
[[kpi]]
name = "checkouts"
where = { type = "checkout" }
aggregate = "count"
[[kpi]]
name = "carts"
where = { type = "cart" }
aggregate = "count"
[[kpi]]
name = "conversion"
aggregate = "ratio"
numerator = "checkouts"
denominator = "carts"
"#;

    fn config(text: &str) -> Config {
        let path = std::path::Path::new("test.toml");
        validate(&Source::new(path, text)).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    fn between(old: &str, new: &str) -> Diff {
        diff(&config(old), &config(new))
    }

    #[test]
    fn the_same_file_changes_nothing() {
        let d = between(BASE, BASE);
        assert!(d.restart.is_empty());
        assert_eq!(
            d.fates,
            vec![
                Fate::Kept { old: 0 },
                Fate::Kept { old: 1 },
                Fate::Kept { old: 2 }
            ]
        );
        assert!(d.removed.is_empty());
        assert!(!d.receivers.any_change() && !d.subscriptions.any_change());
        assert!(!d.delivery_changed && !d.tokens_changed && d.settings.is_empty());
    }

    #[test]
    fn kpis_are_matched_by_name_not_position_and_comments_change_nothing() {
        // A KPI added above the others, and a comment: the ratio's parts
        // move by one, which must not restart it.
        let new = BASE.replace(
            "[[kpi]]\nname = \"checkouts\"",
            "# new\n[[kpi]]\nname = \"logins\"\nwhere = { type = \"login\" }\naggregate = \"count\"\n[[kpi]]\nname = \"checkouts\"",
        );
        let d = between(BASE, &new);
        assert_eq!(
            d.fates,
            vec![
                Fate::Added,
                Fate::Kept { old: 0 },
                Fate::Kept { old: 1 },
                Fate::Kept { old: 2 }
            ]
        );
    }

    #[test]
    fn a_new_alert_level_retunes_but_a_new_filter_restarts() {
        let new = BASE
            .replace(
                "name = \"carts\"\nwhere = { type = \"cart\" }\naggregate = \"count\"",
                "name = \"carts\"\nwhere = { type = \"cart\" }\naggregate = \"count\"\ndirection = \"drop\"\n[kpi.alerting]\nfalse_alarms = \"1/week\"\nfire_after = 3",
            )
            .replace("where = { type = \"checkout\" }", "where = { type = \"purchase\" }");
        let d = between(BASE, &new);
        assert_eq!(d.fates[1], Fate::Retuned { old: 1 });
        assert_eq!(d.fates[0], Fate::Restarted { old: 0 });
        // Its numerator starts afresh, so the ratio does too.
        assert_eq!(d.fates[2], Fate::Restarted { old: 2 });
        let names = d.kpi_names(&config(BASE), &config(&new));
        assert_eq!(names.retuned, ["carts"]);
        assert_eq!(names.restarted, ["checkouts", "conversion"]);
    }

    #[test]
    fn a_calendar_named_or_changed_retunes_its_kpis() {
        let with = |dates: &str| {
            format!("{BASE}\n[[calendar]]\nname = \"holidays\"\ndates = [{dates}]\n").replacen(
                "name = \"carts\"\n",
                "name = \"carts\"\ncalendars = [\"holidays\"]\n",
                1,
            )
        };
        let named = with("\"2026-12-25\"");
        let d = between(BASE, &named);
        assert_eq!(d.fates[1], Fate::Retuned { old: 1 });
        assert_eq!(d.fates[0], Fate::Kept { old: 0 });
        let d = between(&named, &with("\"2026-12-25\", \"2026-12-26\""));
        assert_eq!(d.fates[1], Fate::Retuned { old: 1 });
        assert_eq!(d.fates[0], Fate::Kept { old: 0 });
    }

    #[test]
    fn learned_settings_restart_a_kpi() {
        for (from, to) in [
            (
                "aggregate = \"count\"\n[[kpi]]\nname = \"carts\"",
                "aggregate = \"count\"\nmax_series = 5\n[[kpi]]\nname = \"carts\"",
            ),
            (
                "aggregate = \"count\"\n[[kpi]]\nname = \"carts\"",
                "aggregate = \"count\"\nmin_volume = 5\n[[kpi]]\nname = \"carts\"",
            ),
            (
                "aggregate = \"count\"\n[[kpi]]\nname = \"carts\"",
                "aggregate = \"count\"\nevict_after = \"1d\"\n[[kpi]]\nname = \"carts\"",
            ),
        ] {
            assert!(BASE.contains(from));
            let d = between(BASE, &BASE.replacen(from, to, 1));
            assert_eq!(d.fates[0], Fate::Restarted { old: 0 }, "{to}");
            assert_eq!(d.fates[1], Fate::Kept { old: 1 }, "{to}");
        }
    }

    #[test]
    fn a_removed_kpi_is_listed_by_its_old_index() {
        let new = BASE.replace(
            "[[kpi]]\nname = \"conversion\"\naggregate = \"ratio\"\nnumerator = \"checkouts\"\ndenominator = \"carts\"\n",
            "",
        );
        let d = between(BASE, &new);
        assert_eq!(d.removed, vec![2]);
        assert_eq!(
            d.kpi_names(&config(BASE), &config(&new)).removed,
            ["conversion"]
        );
    }

    #[test]
    fn kafka_topics_state_and_listener_need_a_restart() {
        for (from, to, what) in [
            ("localhost:9092", "other:9092", "kafka.brokers"),
            ("group_id = \"g\"", "group_id = \"h\"", "kafka.group_id"),
            ("name = \"shop\"", "name = \"store\"", "the [[topic]] list"),
            (
                "time_format = \"epoch_seconds\"",
                "time_format = \"epoch_millis\"",
                "time_format",
            ),
            ("127.0.0.1:0", "127.0.0.1:9000", "service.listen"),
            (
                "/tmp/kpiwatch-diff-test",
                "/tmp/elsewhere",
                "service.state_dir",
            ),
            (
                "group_id = \"g\"",
                "group_id = \"g\"\nstart_from = \"earliest\"",
                "kafka.start_from",
            ),
            (
                "[[receiver]]",
                "[notify]\nexternal_url = \"https://k.example\"\nfeedback_key_env = \"KPIWATCH_FEEDBACK_KEY\"\n[[receiver]]",
                "notify.feedback_key_env",
            ),
        ] {
            let d = between(BASE, &BASE.replacen(from, to, 1));
            // (The outbox, under the state directory by default, moves too.)
            assert!(!d.restart.is_empty(), "{what}");
            assert!(d.restart[0].contains(what), "{what}: {:?}", d.restart);
        }
    }

    #[test]
    fn topic_timing_silence_limits_and_stall_time_change_live() {
        let new = BASE
            .replace(
                "time_format = \"epoch_seconds\"",
                "time_format = \"epoch_seconds\"\nidle_timeout = \"2m\"",
            )
            .replace(
                "state_dir = \"/tmp/kpiwatch-diff-test\"",
                "state_dir = \"/tmp/kpiwatch-diff-test\"\nsilence_max_ahead = \"7d\"",
            );
        let d = between(BASE, &new);
        assert!(d.restart.is_empty(), "{:?}", d.restart);
        assert_eq!(
            d.settings,
            [
                "[[topic]] \"shop\" idle_timeout",
                "service.silence_max_ahead"
            ]
        );
    }

    #[test]
    fn receivers_and_subscriptions_are_compared_by_name() {
        let new = BASE
            .replace("team@example.com", "pm@example.com")
            .replace(
                "[[subscription]]",
                "[[receiver]]\nname = \"hook\"\nwebhook = { url = \"http://127.0.0.1:1/x\" }\n[[subscription]]\nname = \"hooked\"\nreceivers = [\"hook\"]\n[[subscription]]",
            );
        let d = between(BASE, &new);
        assert_eq!(d.receivers.changed, ["team"]);
        assert_eq!(d.receivers.added, ["hook"]);
        assert_eq!(d.subscriptions.kept, ["all"]);
        assert_eq!(d.subscriptions.added, ["hooked"]);
        let back = between(&new, BASE);
        assert_eq!(back.receivers.removed, ["hook"]);
        assert_eq!(back.subscriptions.removed, ["hooked"]);
    }
}
