//! The dispatcher: from alert transitions to notifications, with
//! Alertmanager's timing. Pure: time comes in as `now_ms` parameters, so
//! tests move it without sleeping and the service sleeps until
//! [`Dispatcher::next_due`].
//!
//! - [`Dispatcher::alert`] routes a transition (as
//!   [`routes`](super::route::routes) does) into the
//!   group of each subscription it reaches. A group is (subscription,
//!   values of its `group_by` labels).
//! - [`Dispatcher::flush`] evaluates every group that is due and emits one
//!   [`Notification`] per receiver:
//!   - a new group's first message waits `group_wait` ([`Reason::New`]);
//!   - later changes (an alert joins, escalates or resolves) go out batched
//!     at `last_sent + group_interval` ([`Reason::Update`]), or at once
//!     when that is already past;
//!   - a group still firing with nothing new is re-sent at `last_sent +
//!     repeat_interval` ([`Reason::Repeat`]), never earlier;
//!   - with `send_resolved`, an alert that was notified firing is sent once
//!     as resolved; the group is dropped once all its alerts are resolved
//!     and sent ([`Reason::Resolved`]). An alert that resolves before it
//!     was ever notified is never sent.
//!   - silenced alerts are left out and returned as [`Suppressed`] (once
//!     per alert and silence); a message whose alerts are all silenced is
//!     not sent, and the group is looked at again when the silence ends.
//!     An alert that recovers while silenced is over without a message;
//!   - outside `active_during`, or inside `mute_during`, due messages are
//!     held (recorded once per mute) and go out when the window opens.
//! - An escalation (a firing transition of an alert, at a higher
//!   severity) reaches the subscriptions whose `min_severity` it meets: one
//!   that holds the alert already replaces the alert's latest transition
//!   with it and, if a message listed the alert, sends it as a change
//!   ([`Reason::Update`], after `group_interval`); one that does not (its
//!   `min_severity` was above the old severity) gets a new alert. Either
//!   way the alert is held once per group, so its resolution (which
//!   carries the worst severity, and so matches every subscription an
//!   escalation reached) is sent to each subscription that was told of
//!   it, and to no other.
//! - Transitions are idempotent per (alert id, status, severity): a replay
//!   after a restart re-delivers transitions, and neither a second
//!   "firing", nor a second escalation, nor a second "resolved" makes a
//!   second message; a firing transition below the severity a group holds
//!   (the first one, replayed after its escalation) changes nothing.
//!   Alerts whose story is over are remembered for [`DONE_RETENTION_MS`]
//!   for that purpose.
//! - [`Dispatcher::export`] / [`Dispatcher::import`] carry the groups
//!   across restarts; notification ids are deterministic, so a replay that
//!   recreates a notification recreates its id and the outbox refuses it.
//!
//! Bounds: at most [`MAX_GROUPS`] groups and [`MAX_ALERTS_PER_GROUP`]
//! alerts per group. Alerts past either cap are not held, only counted
//! ([`Dispatcher::dropped_alerts`]) and logged once per group: a flood
//! becomes one full message, not an unbounded one, and that message says
//! how many alerts it leaves out ([`Notification::omitted`]).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::route::Subscription;
use super::settings::NotifySettings;
use super::silence::SilenceStore;
use super::timewindow::TimeWindow;
use super::{Notification, Reason};
use crate::alert::{Severity, Status, Transition};

/// Most groups held at once; alerts that would open another are counted
/// and dropped.
pub const MAX_GROUPS: usize = 10_000;

/// Most alerts one group holds (and one message lists); later alerts of a
/// full group are counted and dropped.
pub const MAX_ALERTS_PER_GROUP: usize = 100;

/// How long an alert whose story is over (resolved and sent, or dropped)
/// is remembered, so a replayed transition does not revive it: 24 h, far
/// beyond the replay window of a restart (the snapshot interval).
pub const DONE_RETENTION_MS: i64 = 24 * 3600 * 1000;

/// A group: the subscription and its `group_by` values.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
struct GroupKey {
    subscription: String,
    labels: BTreeMap<String, String>,
}

/// One alert in a group.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    /// The latest transition: firing (perhaps an escalation), or resolved.
    latest: Transition,
    /// Whether a message listed it as firing (only such alerts are sent
    /// as resolved).
    notified_firing: bool,
    /// The severity the last message that listed it as firing showed; an
    /// escalation past it is news for the next message. None in states
    /// written before escalations existed: their messages showed the
    /// latest severity.
    #[serde(default)]
    notified_severity: Option<Severity>,
    /// The silence last recorded for it, so each silence is recorded once.
    silenced_by: Option<String>,
}

impl Entry {
    /// Whether a message would tell something new about this firing
    /// alert: it was never listed, or it escalated since.
    fn news(&self) -> bool {
        !self.notified_firing
            || self
                .notified_severity
                .is_some_and(|told| told < self.latest.severity)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Group {
    key: GroupKey,
    /// By alert id.
    alerts: BTreeMap<String, Entry>,
    created_ms: i64,
    last_sent_ms: Option<i64>,
    /// Messages sent so far; part of the notification id.
    seq: u64,
    /// When the group is next evaluated.
    due_ms: i64,
    /// A mute was recorded and has not ended.
    muted: bool,
    /// Alerts refused because the group was full.
    overflow: u64,
}

/// Why an alert or a group's message was not sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// A silence matched the alerts.
    Silenced {
        /// The silence.
        silence_id: String,
    },
    /// The subscription's `mute_during` window is open.
    Muted {
        /// The window's name.
        window: String,
    },
    /// Outside every window of the subscription's `active_during`.
    Inactive {
        /// The windows' names.
        windows: Vec<String>,
    },
}

/// A record of alerts not sent, for the log and metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suppressed {
    /// The subscription.
    pub subscription: String,
    /// The group's labels.
    pub group: BTreeMap<String, String>,
    /// The alerts held back.
    pub alert_ids: Vec<String>,
    /// Why.
    pub cause: Cause,
}

/// The dispatcher's state, for persistence across restarts (serde).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DispatcherState {
    groups: Vec<Group>,
    /// (subscription, alert id) → when its story ended.
    done: Vec<(String, String, i64)>,
    dropped_alerts: u64,
}

/// Groups alerts per subscription and decides when each message is due.
#[derive(Debug)]
pub struct Dispatcher {
    subscriptions: Vec<Subscription>,
    by_name: HashMap<String, usize>,
    windows: Vec<TimeWindow>,
    groups: BTreeMap<GroupKey, Group>,
    done: HashMap<(String, String), i64>,
    dropped_alerts: u64,
}

impl Dispatcher {
    /// A dispatcher for the subscriptions and windows of `settings`.
    pub fn new(settings: &NotifySettings) -> Self {
        Self {
            subscriptions: settings.subscriptions.clone(),
            by_name: settings
                .subscriptions
                .iter()
                .enumerate()
                .map(|(i, s)| (s.name.clone(), i))
                .collect(),
            windows: settings.time_windows.clone(),
            groups: BTreeMap::new(),
            done: HashMap::new(),
            dropped_alerts: 0,
        }
    }

    /// Alerts dropped because a cap was reached, since start.
    pub fn dropped_alerts(&self) -> u64 {
        self.dropped_alerts
    }

    /// Groups held now.
    pub fn groups(&self) -> usize {
        self.groups.len()
    }

    /// Routes one alert transition into its subscriptions' groups.
    pub fn alert(&mut self, t: &Transition, now_ms: i64) {
        // The same filter as `route::routes`, by index into our copy.
        let matched: Vec<usize> = (0..self.subscriptions.len())
            .filter(|&i| self.subscriptions[i].matches(&t.kpi, &t.labels, t.severity, t.direction))
            .collect();
        for i in matched {
            let sub = &self.subscriptions[i];
            let key = GroupKey {
                subscription: sub.name.clone(),
                labels: sub.group_by.key(&t.kpi, &t.labels),
            };
            if self
                .done
                .contains_key(&(sub.name.clone(), t.alert_id.clone()))
            {
                continue;
            }
            let change_due = |g: &Group| match g.last_sent_ms {
                Some(last) => g.due_ms.min((last + ms(sub.group_interval)).max(now_ms)),
                None => g.due_ms,
            };
            match t.status {
                Status::Firing => {
                    if let Some(g) = self.groups.get_mut(&key) {
                        if let Some(e) = g.alerts.get_mut(&t.alert_id) {
                            // An escalation of a firing alert replaces its
                            // latest transition, and is a change once a
                            // message listed the alert. A repeated firing
                            // or escalation, an older one, or a stale one
                            // after the resolution: nothing new.
                            if e.latest.status == Status::Firing && t.severity > e.latest.severity {
                                e.latest = t.clone();
                                if e.notified_firing {
                                    g.due_ms = change_due(g);
                                }
                            }
                            continue;
                        }
                        if g.alerts.len() >= MAX_ALERTS_PER_GROUP {
                            if g.overflow == 0 {
                                tracing::warn!(
                                    subscription = %sub.name,
                                    group = ?g.key.labels,
                                    "group is full ({MAX_ALERTS_PER_GROUP} alerts); further alerts are counted, not sent"
                                );
                            }
                            g.overflow += 1;
                            self.dropped_alerts += 1;
                            continue;
                        }
                        g.alerts.insert(t.alert_id.clone(), entry(t));
                        g.due_ms = change_due(g);
                    } else {
                        if self.groups.len() >= MAX_GROUPS {
                            if self.dropped_alerts == 0 {
                                tracing::warn!(
                                    "{MAX_GROUPS} notification groups are open; new groups are counted, not sent"
                                );
                            }
                            self.dropped_alerts += 1;
                            continue;
                        }
                        let group = Group {
                            key: key.clone(),
                            alerts: BTreeMap::from([(t.alert_id.clone(), entry(t))]),
                            created_ms: now_ms,
                            last_sent_ms: None,
                            seq: 0,
                            due_ms: now_ms + ms(sub.group_wait),
                            muted: false,
                            overflow: 0,
                        };
                        self.groups.insert(key, group);
                    }
                }
                Status::Resolved => {
                    let Some(g) = self.groups.get_mut(&key) else {
                        continue;
                    };
                    let Some(e) = g.alerts.get_mut(&t.alert_id) else {
                        continue;
                    };
                    if e.latest.status == Status::Resolved {
                        continue;
                    }
                    e.latest = t.clone();
                    if e.notified_firing && sub.send_resolved {
                        g.due_ms = change_due(g);
                    }
                }
            }
        }
    }

    /// Emits the notifications due at `now_ms` (one per receiver of each
    /// due group) into `out`, and returns what was held back.
    pub fn flush(
        &mut self,
        now_ms: i64,
        silences: &SilenceStore,
        out: &mut Vec<Notification>,
    ) -> Vec<Suppressed> {
        self.done.retain(|_, t| *t + DONE_RETENTION_MS > now_ms);
        let due: Vec<GroupKey> = self
            .groups
            .values()
            .filter(|g| g.due_ms <= now_ms)
            .map(|g| g.key.clone())
            .collect();
        let mut suppressed = Vec::new();
        for key in due {
            let Some(mut group) = self.groups.remove(&key) else {
                continue;
            };
            let Some(&i) = self.by_name.get(&key.subscription) else {
                continue;
            };
            let keep = self.evaluate(i, &mut group, now_ms, silences, out, &mut suppressed);
            if keep {
                self.groups.insert(key, group);
            }
        }
        suppressed
    }

    /// When [`flush`](Self::flush) next has something to do.
    pub fn next_due(&self) -> Option<i64> {
        self.groups.values().map(|g| g.due_ms).min()
    }

    /// State for persistence across restarts.
    pub fn export(&self) -> DispatcherState {
        let mut done: Vec<(String, String, i64)> = self
            .done
            .iter()
            .map(|((s, a), t)| (s.clone(), a.clone(), *t))
            .collect();
        done.sort();
        DispatcherState {
            groups: self.groups.values().cloned().collect(),
            done,
            dropped_alerts: self.dropped_alerts,
        }
    }

    /// Restores exported state. Groups of subscriptions no longer in the
    /// configuration are dropped.
    pub fn import(&mut self, s: DispatcherState) {
        self.groups = s
            .groups
            .into_iter()
            .filter(|g| self.by_name.contains_key(&g.key.subscription))
            .map(|g| (g.key.clone(), g))
            .collect();
        self.done = s.done.into_iter().map(|(s, a, t)| ((s, a), t)).collect();
        self.dropped_alerts = s.dropped_alerts;
    }

    /// Decides what a due group sends; false when the group is over.
    fn evaluate(
        &mut self,
        i: usize,
        g: &mut Group,
        now_ms: i64,
        silences: &SilenceStore,
        out: &mut Vec<Notification>,
        suppressed: &mut Vec<Suppressed>,
    ) -> bool {
        let sub = &self.subscriptions[i];
        let finish = |done: &mut HashMap<(String, String), i64>, id: &str| {
            done.insert((sub.name.clone(), id.to_string()), now_ms);
        };

        // Resolved alerts that no one heard of as firing, or whose
        // recovery is not wanted, are over without a message.
        let over: Vec<String> = g
            .alerts
            .iter()
            .filter(|(_, e)| {
                e.latest.status == Status::Resolved && !(e.notified_firing && sub.send_resolved)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in &over {
            g.alerts.remove(id);
            finish(&mut self.done, id);
        }

        // Silences.
        let now_s = now_ms.div_euclid(1000);
        let mut withheld_until: Option<i64> = None;
        let mut firing = Vec::new();
        let mut resolved = Vec::new();
        let mut silenced: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut silenced_resolved = Vec::new();
        for (id, e) in &mut g.alerts {
            match silences.silenced_by(&e.latest, now_s) {
                Some(s) => {
                    if e.silenced_by.as_deref() != Some(&s.id) {
                        silenced.entry(s.id.clone()).or_default().push(id.clone());
                        e.silenced_by = Some(s.id.clone());
                    }
                    if e.latest.status == Status::Resolved {
                        // Recovered while silenced: nobody is waiting for
                        // this news.
                        silenced_resolved.push(id.clone());
                    } else {
                        let end = s.ends_at.saturating_mul(1000);
                        withheld_until = Some(withheld_until.map_or(end, |w| w.min(end)));
                    }
                }
                None => {
                    e.silenced_by = None;
                    match e.latest.status {
                        Status::Firing => firing.push(id.clone()),
                        Status::Resolved => resolved.push(id.clone()),
                    }
                }
            }
        }
        for (silence_id, alert_ids) in silenced {
            suppressed.push(Suppressed {
                subscription: sub.name.clone(),
                group: g.key.labels.clone(),
                alert_ids,
                cause: Cause::Silenced { silence_id },
            });
        }
        for id in &silenced_resolved {
            g.alerts.remove(id);
            finish(&mut self.done, id);
        }
        if g.alerts.is_empty() {
            return false;
        }

        // What would be sent, and whether it may go now.
        let changed = !resolved.is_empty() || firing.iter().any(|id| g.alerts[id].news());
        let earliest = match g.last_sent_ms {
            None => g.created_ms + ms(sub.group_wait),
            Some(last) if changed => last + ms(sub.group_interval),
            Some(last) => last + ms(sub.repeat_interval),
        };
        let wanted = if g.last_sent_ms.is_none() {
            !firing.is_empty()
        } else {
            changed || !firing.is_empty()
        };
        let recheck = withheld_until.map(|w| w.min(now_ms + ms(sub.group_interval)));
        if !wanted || now_ms < earliest {
            let mut next = recheck.unwrap_or(i64::MAX);
            if wanted {
                next = next.min(earliest);
            }
            if next == i64::MAX {
                // Nothing visible and nothing withheld cannot happen with
                // alerts left; look again later rather than never.
                next = now_ms + ms(sub.group_interval);
            }
            g.due_ms = next.max(now_ms + 1);
            return true;
        }

        // Time windows.
        if let Some(cause) = self.closed(sub, now_s) {
            if !g.muted {
                g.muted = true;
                suppressed.push(Suppressed {
                    subscription: sub.name.clone(),
                    group: g.key.labels.clone(),
                    alert_ids: firing.iter().chain(&resolved).cloned().collect(),
                    cause,
                });
            }
            // Windows change on minute boundaries: look again at the next.
            g.due_ms = (now_ms.div_euclid(60_000) + 1) * 60_000;
            return true;
        }
        g.muted = false;

        // Send.
        let reason = if g.last_sent_ms.is_none() {
            Reason::New
        } else if firing.is_empty() {
            Reason::Resolved
        } else if changed {
            Reason::Update
        } else {
            Reason::Repeat
        };
        let alerts: Vec<Transition> = firing
            .iter()
            .chain(&resolved)
            .map(|id| g.alerts[id].latest.clone())
            .collect();
        let status = if firing.is_empty() {
            Status::Resolved
        } else {
            Status::Firing
        };
        for receiver in &sub.receivers {
            out.push(Notification {
                id: notification_id(receiver, &g.key, &alerts, g.seq),
                receiver: receiver.clone(),
                subscription: sub.name.clone(),
                group: g.key.labels.clone(),
                status,
                reason,
                alerts: alerts.clone(),
                omitted: g.overflow,
                created_at_ms: now_ms,
            });
        }
        g.seq += 1;
        g.last_sent_ms = Some(now_ms);
        for id in &firing {
            if let Some(e) = g.alerts.get_mut(id) {
                e.notified_firing = true;
                e.notified_severity = Some(e.latest.severity);
            }
        }
        for id in &resolved {
            g.alerts.remove(id);
            finish(&mut self.done, id);
        }
        if g.alerts.is_empty() {
            return false;
        }
        let mut next = now_ms + ms(sub.repeat_interval);
        if let Some(r) = recheck {
            next = next.min(r);
        }
        g.due_ms = next.max(now_ms + 1);
        true
    }

    /// Why the subscription may not send at `now_s`, if it may not.
    fn closed(&self, sub: &Subscription, now_s: i64) -> Option<Cause> {
        let window = |i: &usize| self.windows.get(*i);
        if let Some(w) = sub
            .mute_during
            .iter()
            .filter_map(window)
            .find(|w| w.contains(now_s))
        {
            return Some(Cause::Muted {
                window: w.name.clone(),
            });
        }
        let active: Vec<&TimeWindow> = sub.active_during.iter().filter_map(window).collect();
        if !active.is_empty() && !active.iter().any(|w| w.contains(now_s)) {
            return Some(Cause::Inactive {
                windows: active.iter().map(|w| w.name.clone()).collect(),
            });
        }
        None
    }
}

fn entry(t: &Transition) -> Entry {
    Entry {
        latest: t.clone(),
        notified_firing: false,
        notified_severity: None,
        silenced_by: None,
    }
}

fn ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

/// Hex SHA-256 over the receiver, the group, the (alert id, status) pairs
/// in order and the group's message number.
fn notification_id(receiver: &str, key: &GroupKey, alerts: &[Transition], seq: u64) -> String {
    let mut h = Sha256::new();
    h.update(receiver.as_bytes());
    h.update([0]);
    h.update(key.subscription.as_bytes());
    for (k, v) in &key.labels {
        h.update([0]);
        h.update(k.as_bytes());
        h.update([b'=']);
        h.update(v.as_bytes());
    }
    let mut pairs: Vec<(&str, Status)> = alerts
        .iter()
        .map(|a| (a.alert_id.as_str(), a.status))
        .collect();
    pairs.sort_by(|a, b| (a.0, a.1 == Status::Resolved).cmp(&(b.0, b.1 == Status::Resolved)));
    for (id, status) in pairs {
        h.update([1]);
        h.update(id.as_bytes());
        h.update(match status {
            Status::Firing => b"/firing".as_slice(),
            Status::Resolved => b"/resolved".as_slice(),
        });
    }
    h.update([2]);
    h.update(seq.to_be_bytes());
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::alert::testing::transition;
    use crate::notify::route::{GroupBy, MatchTest, Matcher};
    use crate::notify::silence::NewSilence;
    use crate::notify::timewindow::{parse_time_range, parse_weekdays};

    /// Wednesday 2024-01-10 12:00:00 UTC, in milliseconds.
    const T0: i64 = 1_704_888_000_000;
    const S: i64 = 1000;
    const M: i64 = 60 * S;
    const H: i64 = 60 * M;

    /// One subscription "shop" to receiver "team", grouped by KPI,
    /// group_wait 30s, group_interval 5m, repeat_interval 4h.
    fn settings() -> NotifySettings {
        let mut s = NotifySettings::none(std::path::Path::new("/tmp"));
        s.subscriptions = vec![Subscription::new("shop", &["team"])];
        s
    }

    fn with(edit: impl FnOnce(&mut NotifySettings)) -> Dispatcher {
        let mut s = settings();
        edit(&mut s);
        Dispatcher::new(&s)
    }

    fn firing(id: &str, country: &str) -> Transition {
        transition(Status::Firing, id, "checkouts", &[("country", country)])
    }

    fn resolved(id: &str, country: &str) -> Transition {
        transition(Status::Resolved, id, "checkouts", &[("country", country)])
    }

    fn flush(d: &mut Dispatcher, now: i64) -> Vec<Notification> {
        flush_with(d, now, &SilenceStore::in_memory()).0
    }

    fn flush_with(
        d: &mut Dispatcher,
        now: i64,
        silences: &SilenceStore,
    ) -> (Vec<Notification>, Vec<Suppressed>) {
        let mut out = Vec::new();
        let suppressed = d.flush(now, silences, &mut out);
        (out, suppressed)
    }

    fn ids(n: &Notification) -> Vec<(String, Status)> {
        n.alerts
            .iter()
            .map(|a| (a.alert_id.clone(), a.status))
            .collect()
    }

    fn pairs(list: &[(&str, Status)]) -> Vec<(String, Status)> {
        list.iter().map(|(i, s)| (i.to_string(), *s)).collect()
    }

    #[test]
    fn two_alerts_of_one_group_share_one_message() {
        let mut d = Dispatcher::new(&settings());
        d.alert(&firing("a", "FI"), T0);
        d.alert(&firing("b", "SE"), T0 + 5 * S);
        let sent = flush(&mut d, T0 + 30 * S);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].reason, Reason::New);
        assert_eq!(sent[0].status, Status::Firing);
        assert_eq!(
            sent[0].group,
            BTreeMap::from([("kpi".into(), "checkouts".into())])
        );
        assert_eq!(
            ids(&sent[0]),
            pairs(&[("a", Status::Firing), ("b", Status::Firing)])
        );
        assert_eq!(sent[0].created_at_ms, T0 + 30 * S);
    }

    #[test]
    fn group_by_splits_alerts_into_separate_messages() {
        let mut d = with(|s| {
            s.subscriptions[0].group_by = GroupBy::Labels(vec!["kpi".into(), "country".into()]);
        });
        d.alert(&firing("a", "FI"), T0);
        d.alert(&firing("b", "SE"), T0);
        let sent = flush(&mut d, T0 + 30 * S);
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[0].group["country"], "FI");
        assert_eq!(sent[1].group["country"], "SE");
    }

    #[test]
    fn the_first_message_waits_group_wait_and_not_a_moment_less() {
        let mut d = Dispatcher::new(&settings());
        d.alert(&firing("a", "FI"), T0);
        assert_eq!(d.next_due(), Some(T0 + 30 * S));
        assert!(flush(&mut d, T0 + 30 * S - 1).is_empty());
        assert_eq!(flush(&mut d, T0 + 30 * S).len(), 1);
    }

    #[test]
    fn group_wait_zero_sends_in_the_same_flush() {
        let mut d = with(|s| s.subscriptions[0].group_wait = Duration::ZERO);
        d.alert(&firing("a", "FI"), T0);
        assert_eq!(d.next_due(), Some(T0));
        let sent = flush(&mut d, T0);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].reason, Reason::New);
    }

    #[test]
    fn one_message_per_receiver() {
        let mut d = with(|s| s.subscriptions[0].receivers = vec!["team".into(), "oncall".into()]);
        d.alert(&firing("a", "FI"), T0);
        let sent = flush(&mut d, T0 + 30 * S);
        let receivers: Vec<&str> = sent.iter().map(|n| n.receiver.as_str()).collect();
        assert_eq!(receivers, ["team", "oncall"]);
        assert_ne!(sent[0].id, sent[1].id);
        assert_eq!(sent[0].alerts, sent[1].alerts);
    }

    #[test]
    fn a_change_to_a_notified_group_waits_for_group_interval() {
        let mut d = Dispatcher::new(&settings());
        d.alert(&firing("a", "FI"), T0);
        let first = T0 + 30 * S;
        assert_eq!(flush(&mut d, first).len(), 1);
        d.alert(&firing("b", "SE"), first + M);
        assert_eq!(d.next_due(), Some(first + 5 * M));
        assert!(flush(&mut d, first + 5 * M - 1).is_empty(), "not before");
        let sent = flush(&mut d, first + 5 * M);
        assert_eq!(sent.len(), 1, "exactly at");
        assert_eq!(sent[0].reason, Reason::Update);
        assert_eq!(
            ids(&sent[0]),
            pairs(&[("a", Status::Firing), ("b", Status::Firing)])
        );
    }

    #[test]
    fn a_change_long_after_the_last_message_goes_out_at_once() {
        let mut d = Dispatcher::new(&settings());
        d.alert(&firing("a", "FI"), T0);
        flush(&mut d, T0 + 30 * S);
        d.alert(&firing("b", "SE"), T0 + H);
        assert_eq!(d.next_due(), Some(T0 + H));
        assert_eq!(flush(&mut d, T0 + H)[0].reason, Reason::Update);
    }

    #[test]
    fn repeat_interval_is_respected_not_before_and_exactly_at() {
        let mut d = Dispatcher::new(&settings());
        d.alert(&firing("a", "FI"), T0);
        let first = T0 + 30 * S;
        flush(&mut d, first);
        // Flushing often in between sends nothing.
        for t in (first..first + 4 * H).step_by(7 * M as usize) {
            assert!(flush(&mut d, t).is_empty(), "at {t}");
        }
        assert!(flush(&mut d, first + 4 * H - 1).is_empty());
        let sent = flush(&mut d, first + 4 * H);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].reason, Reason::Repeat);
        assert_eq!(d.next_due(), Some(first + 8 * H));
    }

    #[test]
    fn resolved_is_sent_once_even_when_transitions_arrive_twice() {
        let mut d = Dispatcher::new(&settings());
        d.alert(&firing("a", "FI"), T0);
        d.alert(&firing("a", "FI"), T0 + S);
        let first = flush(&mut d, T0 + 30 * S);
        assert_eq!(
            ids(&first[0]),
            pairs(&[("a", Status::Firing)]),
            "firing twice, listed once"
        );
        d.alert(&resolved("a", "FI"), T0 + M);
        d.alert(&resolved("a", "FI"), T0 + 2 * M);
        let sent = flush(&mut d, T0 + 30 * S + 5 * M);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].reason, Reason::Resolved);
        assert_eq!(sent[0].status, Status::Resolved);
        assert_eq!(ids(&sent[0]), pairs(&[("a", Status::Resolved)]));
        assert_eq!(d.groups(), 0, "the group is over");
        assert_eq!(d.next_due(), None);
        // A replay re-delivers both transitions: nothing more is sent.
        d.alert(&firing("a", "FI"), T0 + H);
        d.alert(&resolved("a", "FI"), T0 + H);
        assert!(flush(&mut d, T0 + 10 * H).is_empty());
        assert_eq!(d.groups(), 0);
    }

    #[test]
    fn an_update_lists_firing_alerts_first_then_the_resolved() {
        let mut d = Dispatcher::new(&settings());
        d.alert(&firing("a", "FI"), T0);
        d.alert(&firing("b", "SE"), T0);
        flush(&mut d, T0 + 30 * S);
        d.alert(&resolved("a", "FI"), T0 + M);
        let sent = flush(&mut d, T0 + 30 * S + 5 * M);
        assert_eq!(sent[0].reason, Reason::Update);
        assert_eq!(sent[0].status, Status::Firing);
        assert_eq!(
            ids(&sent[0]),
            pairs(&[("b", Status::Firing), ("a", Status::Resolved)])
        );
        // The next reminder lists only what still fires.
        let repeat = flush(&mut d, T0 + 30 * S + 5 * M + 4 * H);
        assert_eq!(repeat[0].reason, Reason::Repeat);
        assert_eq!(ids(&repeat[0]), pairs(&[("b", Status::Firing)]));
    }

    #[test]
    fn an_alert_resolved_before_its_group_was_notified_is_never_sent() {
        let mut d = Dispatcher::new(&settings());
        d.alert(&firing("a", "FI"), T0);
        d.alert(&resolved("a", "FI"), T0 + 10 * S);
        assert!(flush(&mut d, T0 + 30 * S).is_empty());
        assert_eq!(d.groups(), 0);
        assert!(flush(&mut d, T0 + 10 * H).is_empty());
    }

    #[test]
    fn a_resolution_seen_without_its_firing_is_ignored() {
        let mut d = Dispatcher::new(&settings());
        d.alert(&resolved("a", "FI"), T0);
        assert_eq!(d.groups(), 0);
        assert!(flush(&mut d, T0 + H).is_empty());
    }

    #[test]
    fn without_send_resolved_recoveries_end_the_group_quietly() {
        let mut d = with(|s| s.subscriptions[0].send_resolved = false);
        d.alert(&firing("a", "FI"), T0);
        assert_eq!(flush(&mut d, T0 + 30 * S).len(), 1);
        d.alert(&resolved("a", "FI"), T0 + M);
        assert!(flush(&mut d, T0 + 5 * H).is_empty());
        assert_eq!(d.groups(), 0);
    }

    fn silence_fi(store: &mut SilenceStore, now_ms: i64, ends_ms: i64) -> String {
        store
            .add(
                NewSilence {
                    matchers: vec![Matcher {
                        name: "country".into(),
                        test: MatchTest::Equals("FI".into()),
                    }],
                    starts_at: None,
                    ends_at: ends_ms / 1000,
                    created_by: "ann".into(),
                    comment: String::new(),
                },
                now_ms / 1000,
            )
            .unwrap()
    }

    #[test]
    fn a_silenced_alert_is_recorded_not_sent() {
        let mut store = SilenceStore::in_memory();
        let silence = silence_fi(&mut store, T0, T0 + H);
        let mut d = Dispatcher::new(&settings());
        d.alert(&firing("a", "FI"), T0);
        d.alert(&firing("b", "SE"), T0);
        let (sent, suppressed) = flush_with(&mut d, T0 + 30 * S, &store);
        assert_eq!(ids(&sent[0]), pairs(&[("b", Status::Firing)]));
        assert_eq!(
            suppressed,
            [Suppressed {
                subscription: "shop".into(),
                group: BTreeMap::from([("kpi".into(), "checkouts".into())]),
                alert_ids: vec!["a".into()],
                cause: Cause::Silenced {
                    silence_id: silence
                },
            }]
        );
        // Recorded once, not on every evaluation.
        let (_, again) = flush_with(&mut d, T0 + 30 * S + 4 * H, &store);
        assert!(again.is_empty(), "{again:?}");
    }

    #[test]
    fn a_group_whose_alerts_are_all_silenced_sends_nothing_until_the_silence_ends() {
        let mut store = SilenceStore::in_memory();
        silence_fi(&mut store, T0, T0 + 2 * M);
        let mut d = Dispatcher::new(&settings());
        d.alert(&firing("a", "FI"), T0);
        let (sent, suppressed) = flush_with(&mut d, T0 + 30 * S, &store);
        assert!(sent.is_empty());
        assert_eq!(suppressed.len(), 1);
        assert_eq!(
            d.next_due(),
            Some(T0 + 2 * M),
            "looks again when the silence ends"
        );
        let (sent, _) = flush_with(&mut d, T0 + 2 * M, &store);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].reason, Reason::New);
    }

    #[test]
    fn a_mute_window_holds_messages_records_once_and_sends_when_it_ends() {
        let mut d = with(|s| {
            s.time_windows = vec![TimeWindow {
                times: vec![parse_time_range("12:00-13:00").unwrap()],
                ..TimeWindow::always("lunch")
            }];
            s.subscriptions[0].mute_during = vec![0];
        });
        d.alert(&firing("a", "FI"), T0);
        let (sent, suppressed) = flush_with(&mut d, T0 + 30 * S, &SilenceStore::in_memory());
        assert!(sent.is_empty());
        assert_eq!(suppressed.len(), 1);
        assert_eq!(
            suppressed[0].cause,
            Cause::Muted {
                window: "lunch".into()
            }
        );
        assert_eq!(suppressed[0].alert_ids, ["a"]);
        let mut records = 0;
        let mut t = T0 + M;
        while t < T0 + H {
            let (sent, suppressed) = flush_with(&mut d, t, &SilenceStore::in_memory());
            assert!(sent.is_empty(), "muted at {t}");
            records += suppressed.len();
            t = d.next_due().unwrap();
        }
        assert_eq!(records, 0, "the mute is recorded once");
        assert_eq!(t, T0 + H, "looked at again when the window closes");
        let sent = flush(&mut d, T0 + H);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].reason, Reason::New);
    }

    #[test]
    fn outside_the_active_window_nothing_is_sent() {
        let mut d = with(|s| {
            s.time_windows = vec![TimeWindow {
                weekdays: parse_weekdays("mon-fri").unwrap(),
                times: vec![parse_time_range("08:00-20:00").unwrap()],
                ..TimeWindow::always("business-hours")
            }];
            s.subscriptions[0].active_during = vec![0];
        });
        // Wednesday 21:00 UTC.
        let evening = T0 + 9 * H;
        d.alert(&firing("a", "FI"), evening);
        let (sent, suppressed) = flush_with(&mut d, evening + 30 * S, &SilenceStore::in_memory());
        assert!(sent.is_empty());
        assert_eq!(
            suppressed[0].cause,
            Cause::Inactive {
                windows: vec!["business-hours".into()]
            }
        );
        // Thursday 07:59 still closed; 08:00 opens.
        let morning = T0 + 20 * H;
        assert!(flush(&mut d, morning - M).is_empty());
        let sent = flush(&mut d, morning);
        assert_eq!(sent.len(), 1);
    }

    #[test]
    fn notification_ids_are_deterministic() {
        let run = || {
            let mut d =
                with(|s| s.subscriptions[0].receivers = vec!["team".into(), "oncall".into()]);
            d.alert(&firing("a", "FI"), T0);
            let mut sent = flush(&mut d, T0 + 30 * S);
            sent.extend(flush(&mut d, T0 + 30 * S + 4 * H));
            sent.iter().map(|n| n.id.clone()).collect::<Vec<_>>()
        };
        let ids = run();
        assert_eq!(ids, run(), "the same input gives the same ids");
        assert_eq!(ids.len(), 4);
        assert_eq!(ids[0].len(), 64, "hex of sha256");
        let unique: std::collections::BTreeSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), 4, "receivers and repeats differ: {ids:?}");
    }

    #[test]
    fn export_and_import_resume_without_repeating_or_forgetting() {
        let mut d = Dispatcher::new(&settings());
        d.alert(&firing("a", "FI"), T0);
        let first = flush(&mut d, T0 + 30 * S);
        let state = serde_json::to_string(&d.export()).unwrap();

        let mut restarted = Dispatcher::new(&settings());
        restarted.import(serde_json::from_str(&state).unwrap());
        assert_eq!(restarted.next_due(), d.next_due());
        // The replay re-delivers the firing transition: no second "new".
        restarted.alert(&firing("a", "FI"), T0 + M);
        assert!(flush(&mut restarted, T0 + M).is_empty());
        let repeat = flush(&mut restarted, T0 + 30 * S + 4 * H);
        assert_eq!(repeat[0].reason, Reason::Repeat);
        assert_ne!(repeat[0].id, first[0].id);
        // The same repeat from the dispatcher that never restarted.
        let original = flush(&mut d, T0 + 30 * S + 4 * H);
        assert_eq!(repeat, original);
    }

    #[test]
    fn import_drops_groups_of_removed_subscriptions() {
        let mut d = Dispatcher::new(&settings());
        d.alert(&firing("a", "FI"), T0);
        let state = d.export();
        let mut other = with(|s| s.subscriptions[0].name = "renamed".into());
        other.import(state);
        assert_eq!(other.groups(), 0);
    }

    #[test]
    fn a_full_group_counts_further_alerts_instead_of_listing_them() {
        let mut d = Dispatcher::new(&settings());
        for i in 0..MAX_ALERTS_PER_GROUP + 5 {
            d.alert(&firing(&format!("a{i:03}"), "FI"), T0);
        }
        let sent = flush(&mut d, T0 + 30 * S);
        assert_eq!(sent[0].alerts.len(), MAX_ALERTS_PER_GROUP);
        assert_eq!(sent[0].omitted, 5);
        assert_eq!(d.dropped_alerts(), 5);
    }

    /// Alert `id` firing at warning.
    fn warning(id: &str, country: &str) -> Transition {
        let mut t = firing(id, country);
        t.severity = Severity::Warning;
        t
    }

    /// Alert `id` escalated from warning to critical a bucket later.
    fn escalated(id: &str, country: &str) -> Transition {
        let mut t = firing(id, country);
        t.severity = Severity::Critical;
        t.escalated_from = Some(Severity::Warning);
        t.bucket_start += 300;
        t.bucket_end += 300;
        t
    }

    /// Subscription "shop" (warning and up, to "team") and "pager"
    /// (critical only, to "oncall"), both grouped by KPI, group_wait 30s,
    /// group_interval 5m.
    fn team_and_pager() -> Dispatcher {
        with(|s| {
            let mut pager = Subscription::new("pager", &["oncall"]);
            pager.min_severity = Severity::Critical;
            s.subscriptions.push(pager);
        })
    }

    fn of<'n>(sent: &'n [Notification], subscription: &str) -> Vec<&'n Notification> {
        sent.iter()
            .filter(|n| n.subscription == subscription)
            .collect()
    }

    #[test]
    fn a_critical_only_subscription_hears_of_an_alert_when_it_escalates_and_of_its_resolution() {
        let mut d = team_and_pager();
        d.alert(&warning("a", "FI"), T0);
        let first = flush(&mut d, T0 + 30 * S);
        assert_eq!(first.len(), 1, "only the warning subscription: {first:?}");
        assert_eq!(first[0].subscription, "shop");

        d.alert(&escalated("a", "FI"), T0 + 5 * M);
        let sent = flush(&mut d, T0 + 5 * M + 30 * S);
        let pager = of(&sent, "pager");
        assert_eq!(pager.len(), 1, "the pager pages: {sent:?}");
        assert_eq!(pager[0].reason, Reason::New);
        assert_eq!(pager[0].receiver, "oncall");
        assert_eq!(ids(pager[0]), pairs(&[("a", Status::Firing)]));
        assert_eq!(pager[0].alerts[0].severity, Severity::Critical);
        assert_eq!(pager[0].alerts[0].escalated_from, Some(Severity::Warning));

        let mut back = resolved("a", "FI");
        back.severity = Severity::Critical;
        d.alert(&back, T0 + H);
        let sent = flush(&mut d, T0 + H);
        let reached: Vec<(&str, Reason)> = sent
            .iter()
            .map(|n| (n.subscription.as_str(), n.reason))
            .collect();
        assert_eq!(
            reached,
            [("pager", Reason::Resolved), ("shop", Reason::Resolved)]
        );
        assert!(sent
            .iter()
            .all(|n| ids(n) == pairs(&[("a", Status::Resolved)])));
        assert_eq!(d.groups(), 0);
    }

    #[test]
    fn a_subscription_already_told_gets_an_escalation_as_an_update_not_a_second_alert() {
        let mut d = team_and_pager();
        d.alert(&warning("a", "FI"), T0);
        let first = T0 + 30 * S;
        assert_eq!(flush(&mut d, first).len(), 1);
        d.alert(&escalated("a", "FI"), first + M);
        // The pager's new group waits group_wait; the team's change waits
        // group_interval after its last message.
        let sent = flush(&mut d, first + M + 30 * S);
        assert!(of(&sent, "shop").is_empty(), "not before group_interval");
        assert_eq!(of(&sent, "pager").len(), 1);
        assert_eq!(d.next_due(), Some(first + 5 * M));
        let sent = flush(&mut d, first + 5 * M);
        let team = of(&sent, "shop");
        assert_eq!(team.len(), 1, "{sent:?}");
        assert_eq!(team[0].reason, Reason::Update);
        assert_eq!(ids(team[0]), pairs(&[("a", Status::Firing)]), "one alert");
        assert_eq!(team[0].alerts[0].severity, Severity::Critical);
        assert_eq!(team[0].alerts[0].escalated_from, Some(Severity::Warning));
        // The escalation again (a replay), or the first firing again:
        // nothing new, and the alert stays critical.
        d.alert(&escalated("a", "FI"), first + 6 * M);
        d.alert(&warning("a", "FI"), first + 6 * M);
        assert!(flush(&mut d, first + 2 * H).is_empty());
        let repeat = flush(&mut d, first + 5 * M + 4 * H);
        let team = of(&repeat, "shop");
        assert_eq!(team[0].reason, Reason::Repeat);
        assert_eq!(team[0].alerts[0].severity, Severity::Critical);
    }

    #[test]
    fn an_escalation_before_the_first_message_is_sent_once_at_the_new_severity() {
        let mut d = Dispatcher::new(&settings());
        d.alert(&warning("a", "FI"), T0);
        d.alert(&escalated("a", "FI"), T0 + 10 * S);
        assert_eq!(
            d.next_due(),
            Some(T0 + 30 * S),
            "group_wait is not restarted"
        );
        let sent = flush(&mut d, T0 + 30 * S);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].reason, Reason::New);
        assert_eq!(sent[0].alerts.len(), 1);
        assert_eq!(sent[0].alerts[0].severity, Severity::Critical);
        assert!(flush(&mut d, T0 + 2 * H).is_empty(), "no update follows");
    }

    #[test]
    fn a_resolution_reaches_no_subscription_that_never_heard_of_the_alert() {
        // A warning that never escalated resolves at warning; one whose
        // escalation the pager missed (say a restart's replay window)
        // resolves at critical, and finds no pager group either.
        for severity in [Severity::Warning, Severity::Critical] {
            let mut d = team_and_pager();
            d.alert(&warning("a", "FI"), T0);
            flush(&mut d, T0 + 30 * S);
            let mut back = resolved("a", "FI");
            back.severity = severity;
            d.alert(&back, T0 + H);
            let sent = flush(&mut d, T0 + H);
            assert_eq!(sent.len(), 1, "{severity:?}");
            assert_eq!(sent[0].subscription, "shop");
        }
    }

    #[test]
    fn an_escalation_told_before_a_restart_is_not_told_again_after_it() {
        let mut d = Dispatcher::new(&settings());
        d.alert(&warning("a", "FI"), T0);
        flush(&mut d, T0 + 30 * S);
        d.alert(&escalated("a", "FI"), T0 + H);
        assert_eq!(flush(&mut d, T0 + H)[0].reason, Reason::Update);
        let state = serde_json::to_string(&d.export()).unwrap();
        let mut restarted = Dispatcher::new(&settings());
        restarted.import(serde_json::from_str(&state).unwrap());
        restarted.alert(&warning("a", "FI"), T0 + H + M);
        restarted.alert(&escalated("a", "FI"), T0 + H + M);
        assert!(flush(&mut restarted, T0 + 2 * H).is_empty());
        assert_eq!(flush(&mut restarted, T0 + 5 * H)[0].reason, Reason::Repeat);
    }

    #[test]
    fn alerts_no_subscription_wants_open_no_group() {
        let mut d = with(|s| s.subscriptions[0].min_severity = crate::alert::Severity::Critical);
        let mut warning = firing("a", "FI");
        warning.severity = crate::alert::Severity::Warning;
        d.alert(&warning, T0);
        assert_eq!(d.groups(), 0);
        assert_eq!(d.next_due(), None);
    }
}
