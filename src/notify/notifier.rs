//! The notifier stage: alert transitions in, outbox entries out.
//!
//! [`Notifier`] is synchronous and owned by the service loop, which calls
//! [`Notifier::alerts`] with each batch of transitions right after the
//! pipeline produced them, and [`Notifier::tick`] when
//! [`Notifier::next_due_ms`] comes (group waits, intervals, repeats). Each
//! call routes through the [`Dispatcher`], writes the dispatcher's state
//! (`notify-state.json` in the state directory) and every due notification
//! to the [`Outbox`] before returning — so by the time the pipeline
//! snapshot that covers a transition is written, and the Kafka offsets
//! behind it are committed, the alert is safe on disk. Delivery happens in
//! the per-receiver [`Worker`] tasks this module starts.
//!
//! A transition seen twice (a replay after a restart) changes nothing in
//! the dispatcher, and a notification recreated with the same id is
//! refused by the outbox ledger: nothing is sent twice.
//!
//! A write that fails (a full disk) returns its error, and loses nothing:
//! the notifications not yet in the outbox wait in order, the dispatcher's
//! state is not written ahead of them (a state saying "notified" with no
//! outbox entry would lose the notification in a crash), and the next call
//! — [`Notifier::next_due_ms`] asks for one within [`WRITE_RETRY_MS`] —
//! writes them first. Until then [`Notifier::is_durable`] is false: the
//! service commits nothing, so a crash meanwhile replays the transitions
//! and recreates the same notifications.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::deliver::{Backlog, Transports, Worker};
use super::group::{Cause, Dispatcher, DispatcherState};
use super::outbox::{Outbox, OutboxError, Pending};
use super::settings::NotifySettings;
use super::silence::SilenceStore;
use super::Notification;
use crate::alert::Transition;
use crate::clock::Clock;
use crate::durable::{Disk, Storage};
use crate::telemetry::Metrics;

/// File of the dispatcher's state inside the state directory.
pub const STATE_FILE: &str = "notify-state.json";
/// Directory of the silences inside the state directory, one file per
/// silence (older versions kept them all in `silences.json` beside it,
/// which is still read).
pub const SILENCES_DIR: &str = "silences";

/// How soon a failed write is tried again, in milliseconds.
pub const WRITE_RETRY_MS: i64 = 1000;

/// Errors of the notifier. A failed write (outbox, state) keeps what was
/// not written for the next call (see the module docs); `kpiwatch replay
/// --notify` stops on it, the service goes on and commits nothing until
/// the writes succeed.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The outbox could not be written.
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    /// The dispatcher state could not be read or written.
    #[error("notifier state {path}: {reason}")]
    State {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A sender could not be built (e.g. a bad SMTP host).
    #[error("email transport: {0}")]
    Email(#[from] super::email::EmailError),
}

/// The notifier: dispatcher, silences, outbox, and the delivery workers'
/// inboxes.
pub struct Notifier {
    dispatcher: Dispatcher,
    silences: Arc<Mutex<SilenceStore>>,
    outbox: Outbox,
    inboxes: HashMap<String, mpsc::UnboundedSender<Pending>>,
    state_path: PathBuf,
    /// Times the dispatcher (group waits, intervals, repeats).
    clock: Arc<dyn Clock>,
    /// The workers' clock when it is not `clock` (routing in event time).
    wall: Option<Arc<dyn Clock>>,
    metrics: Metrics,
    backlog: Arc<Backlog>,
    /// One delivery worker per receiver, by receiver name.
    workers: HashMap<String, WorkerHandle>,
    /// The senders the workers share, and the settings they were built
    /// from (a reload that changes these starts every worker again).
    transports: Arc<Transports>,
    settings: NotifySettings,
    /// Notifications the dispatcher has released that are not in the
    /// outbox yet, in order: empty after every call unless a write failed.
    due: Vec<Notification>,
    /// Where the state file is written (the outbox has it too).
    storage: Arc<dyn Storage>,
    /// The state file is behind the dispatcher (its write failed, or was
    /// held back behind unwritten notifications).
    state_behind: bool,
    /// When a failed write is tried again (epoch ms), while one is failing.
    retry_at_ms: Option<i64>,
    /// The dispatcher state as last written to `state_path`: an unchanged
    /// state is not written (and fsynced) again. Alerts no subscription
    /// matches change nothing, and rewriting the file for each batch of
    /// them cost the service loop half a millisecond per close.
    saved: Option<Vec<u8>>,
}

impl Notifier {
    /// Opens the outbox and state in `state_dir`, restores the dispatcher
    /// and starts one delivery worker per receiver (which first send what
    /// a previous run left in the outbox). Must run inside a tokio runtime.
    pub fn start(
        settings: &NotifySettings,
        state_dir: &Path,
        silences: Arc<Mutex<SilenceStore>>,
        clock: Arc<dyn Clock>,
        metrics: Metrics,
    ) -> Result<Self, NotifyError> {
        Self::start_on(
            Arc::new(Disk),
            settings,
            state_dir,
            silences,
            clock,
            metrics,
        )
    }

    /// [`start`](Self::start), writing the outbox and the state through
    /// `storage`.
    pub fn start_on(
        storage: Arc<dyn Storage>,
        settings: &NotifySettings,
        state_dir: &Path,
        silences: Arc<Mutex<SilenceStore>>,
        clock: Arc<dyn Clock>,
        metrics: Metrics,
    ) -> Result<Self, NotifyError> {
        Self::open(storage, settings, state_dir, silences, clock, None, metrics)
    }

    /// [`start`](Self::start) for routing in event time (a replay):
    /// `event_clock` times group waits, intervals and repeats, and
    /// jumps as the events do, while the workers deliver on `wall`. A
    /// notification's age against `retry.give_up_after` then counts from
    /// when this run queued it — an alert from last week is not stale to
    /// a replay that was asked to send it, and a receiver checking the
    /// webhook signature's timestamp sees the time it was sent.
    pub fn start_in_event_time(
        settings: &NotifySettings,
        state_dir: &Path,
        silences: Arc<Mutex<SilenceStore>>,
        event_clock: Arc<dyn Clock>,
        wall: Arc<dyn Clock>,
        metrics: Metrics,
    ) -> Result<Self, NotifyError> {
        Self::open(
            Arc::new(Disk),
            settings,
            state_dir,
            silences,
            event_clock,
            Some(wall),
            metrics,
        )
    }

    fn open(
        storage: Arc<dyn Storage>,
        settings: &NotifySettings,
        state_dir: &Path,
        silences: Arc<Mutex<SilenceStore>>,
        clock: Arc<dyn Clock>,
        wall: Option<Arc<dyn Clock>>,
        metrics: Metrics,
    ) -> Result<Self, NotifyError> {
        let now_ms = clock.now_ms();
        let (outbox, left) = Outbox::open_on(storage.clone(), &settings.outbox_dir, now_ms)?;
        let mut dispatcher = Dispatcher::new(settings);
        let state_path = state_dir.join(STATE_FILE);
        if let Some(state) = load_state(&state_path)? {
            dispatcher.import(state);
        }
        let mut notifier = Self {
            dispatcher,
            silences,
            outbox,
            inboxes: HashMap::new(),
            state_path,
            clock,
            wall,
            metrics,
            backlog: Arc::new(Backlog::default()),
            workers: HashMap::new(),
            transports: Arc::new(Transports::new(settings)?),
            settings: settings.clone(),
            due: Vec::new(),
            storage,
            state_behind: false,
            retry_at_ms: None,
            saved: None,
        };
        let mut left = notifier.queued(left);
        for receiver in &settings.receivers {
            let queue = left.remove(&receiver.name).unwrap_or_default();
            if !queue.is_empty() {
                tracing::info!(receiver = %receiver.name, pending = queue.len(), "resuming outbox");
            }
            notifier.start_worker(receiver, queue);
        }
        for (receiver, entries) in left {
            if !entries.is_empty() {
                tracing::warn!(%receiver, pending = entries.len(), "outbox entries for a receiver no longer configured are kept, not sent");
            }
        }
        Ok(notifier)
    }

    /// The clock the workers deliver on.
    fn delivery_clock(&self) -> &Arc<dyn Clock> {
        self.wall.as_ref().unwrap_or(&self.clock)
    }

    /// `entries` from the outbox, their ages counted as this notifier
    /// counts them.
    fn queued(
        &self,
        mut entries: BTreeMap<String, Vec<Pending>>,
    ) -> BTreeMap<String, Vec<Pending>> {
        for p in entries.values_mut().flatten() {
            self.queue(p);
        }
        entries
    }

    /// Stamps `entry` as queued now, in event time (see
    /// [`start_in_event_time`](Self::start_in_event_time)).
    fn queue(&self, entry: &mut Pending) {
        if let Some(wall) = &self.wall {
            entry.queued_at_ms = wall.now_ms();
        }
    }

    /// Starts `receiver`'s worker with `queue`, its outbox entries in
    /// order.
    fn start_worker(&mut self, receiver: &super::settings::Receiver, queue: Vec<Pending>) {
        let (inbox, worker) = WorkerHandle::start(
            receiver,
            queue,
            &self.transports,
            self.settings.retry,
            self.delivery_clock(),
            &self.metrics,
            &self.backlog,
        );
        self.inboxes.insert(receiver.name.clone(), inbox);
        self.workers.insert(receiver.name.clone(), worker);
    }

    /// Notifications waiting for delivery.
    pub fn backlog(&self) -> Arc<Backlog> {
        self.backlog.clone()
    }

    /// Takes a batch of alert transitions: routes them, sends what is due
    /// now (a `group_wait` of 0 sends at once), and returns once the
    /// dispatcher state and the due notifications are on disk.
    pub fn alerts(&mut self, transitions: &[Transition]) -> Result<(), NotifyError> {
        if transitions.is_empty() {
            return Ok(());
        }
        let now_ms = self.clock.now_ms();
        for t in transitions {
            self.dispatcher.alert(t, now_ms);
        }
        self.flush(now_ms)
    }

    /// When [`Notifier::tick`] next has work, epoch milliseconds: a
    /// group's wait, interval or repeat, or trying a failed write again.
    pub fn next_due_ms(&self) -> Option<i64> {
        match (self.dispatcher.next_due(), self.retry_at_ms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether everything the notifier was given is on disk: every
    /// notification released is in the outbox, and the dispatcher's state
    /// is written. Until it is, no offset may be committed.
    pub fn is_durable(&self) -> bool {
        self.due.is_empty() && !self.state_behind
    }

    /// Sends what is due now.
    pub fn tick(&mut self) -> Result<(), NotifyError> {
        let now_ms = self.clock.now_ms();
        self.flush(now_ms)
    }

    fn flush(&mut self, now_ms: i64) -> Result<(), NotifyError> {
        let flushed = self.write_due(now_ms);
        self.retry_at_ms = flushed.is_err().then_some(now_ms + WRITE_RETRY_MS);
        flushed
    }

    fn write_due(&mut self, now_ms: i64) -> Result<(), NotifyError> {
        let suppressed = {
            let silences = self.silences.lock().unwrap_or_else(|e| e.into_inner());
            self.dispatcher.flush(now_ms, &silences, &mut self.due)
        };
        for s in &suppressed {
            let reason = match &s.cause {
                Cause::Silenced { .. } => "silenced",
                Cause::Muted { .. } => "muted",
                Cause::Inactive { .. } => "inactive",
            };
            tracing::info!(subscription = %s.subscription, group = ?s.group, alerts = ?s.alert_ids, cause = ?s.cause, "notification suppressed");
            self.metrics
                .notifications_suppressed
                .with_label_values(&[s.subscription.as_str(), reason])
                .inc();
        }
        // In order; one that cannot be written keeps itself and those
        // after it for the next call.
        let mut written = 0;
        let mut failed = None;
        for n in &self.due {
            let put = match self.outbox.put(n) {
                Ok(put) => put,
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            };
            written += 1;
            match put {
                Some(mut pending) => match self.inboxes.get(&n.receiver) {
                    Some(inbox) => {
                        self.queue(&mut pending);
                        self.backlog.add(1);
                        if inbox.send(pending).is_err() {
                            // The worker ended (shutdown): the entry waits
                            // in the outbox for the next start.
                            self.backlog.add(-1);
                        }
                    }
                    None => {
                        tracing::error!(receiver = %n.receiver, "notification for an unknown receiver kept in the outbox")
                    }
                },
                None => {
                    tracing::debug!(id = %n.id, receiver = %n.receiver, "notification already accepted before; not sent again");
                    self.metrics
                        .notifications_deduplicated
                        .with_label_values(&[n.receiver.as_str()])
                        .inc();
                }
            }
        }
        self.due.drain(..written);
        self.state_behind = true;
        if let Some(e) = failed {
            return Err(e.into());
        }
        let bytes =
            serde_json::to_vec(&self.dispatcher.export()).expect("dispatcher state serialises");
        if self.saved.as_ref() != Some(&bytes) {
            save_state(&*self.storage, &self.state_path, &bytes)?;
            self.saved = Some(bytes);
        }
        self.state_behind = false;
        Ok(())
    }

    /// Stops the delivery workers (between sends) and waits for them.
    /// Undelivered notifications stay in the outbox.
    pub async fn stop(self) {
        for w in self.workers.values() {
            let _ = w.stop.send(true);
        }
        drop(self.inboxes);
        for (_, w) in self.workers {
            let _ = w.join.await;
        }
    }

    /// Takes new notification settings (a reload; the outbox directory is
    /// the same). Subscriptions and time windows apply to the next
    /// transition and the next flush; open groups of subscriptions still
    /// configured go on, those of removed ones are dropped. A receiver
    /// that changed (or every one, when the SMTP relay, From, mail
    /// directory, external URL or retry policy changed) gets a new worker
    /// with the new settings: the old one is stopped between sends (one
    /// cut off mid-send is sent again, with the same idempotency key) and
    /// the new one takes the receiver's outbox entries, in order. A new
    /// receiver gets a worker; a removed receiver's worker stops and its
    /// entries stay in the outbox, not sent, until a receiver of that name
    /// is configured again (as at a start).
    ///
    /// Fails only if the new senders cannot be built (an SMTP relay's
    /// settings lettre refuses), and then changes nothing.
    pub async fn reconfigure(&mut self, settings: &NotifySettings) -> Result<(), NotifyError> {
        let delivery = self.settings.smtp != settings.smtp
            || self.settings.from != settings.from
            || self.settings.mail_dir != settings.mail_dir
            || self.settings.external_url != settings.external_url
            || self.settings.retry != settings.retry;
        // The one step that can fail, before anything changes.
        if delivery {
            self.transports = Arc::new(Transports::new(settings)?);
        }
        let mut dispatcher = Dispatcher::new(settings);
        dispatcher.import(self.dispatcher.export());
        self.dispatcher = dispatcher;
        let same = |name: &str| {
            !delivery
                && self.settings.receiver(name).is_some()
                && self.settings.receiver(name) == settings.receiver(name)
        };
        let ending: Vec<String> = self
            .workers
            .keys()
            .filter(|name| !same(name))
            .cloned()
            .collect();
        for name in &ending {
            if let Some(w) = self.workers.remove(name) {
                let _ = w.stop.send(true);
                self.inboxes.remove(name);
                let _ = w.join.await;
            }
        }
        let starting: Vec<&super::settings::Receiver> = settings
            .receivers
            .iter()
            .filter(|r| !self.workers.contains_key(&r.name))
            .collect();
        let pending = if starting.is_empty() {
            Default::default()
        } else {
            // Unreadable now: the new workers start empty, and the entries
            // wait in the outbox for the next start.
            self.outbox.pending().unwrap_or_else(|e| {
                tracing::error!(error = %e, "outbox not readable on reload: entries already queued wait for the next start");
                Default::default()
            })
        };
        for name in &ending {
            if settings.receiver(name).is_none() {
                tracing::warn!(receiver = %name, "receiver removed by a reload: its outbox entries are kept, not sent, until a receiver of that name is configured again");
            }
        }
        self.settings = settings.clone();
        let mut pending = self.queued(pending);
        for receiver in starting {
            let queue = pending.remove(&receiver.name).unwrap_or_default();
            self.start_worker(receiver, queue);
        }
        // The dispatcher's state is the same groups; written at the next
        // change as usual.
        Ok(())
    }
}

/// A receiver's delivery worker, as the notifier holds it.
struct WorkerHandle {
    /// Stops this worker alone (a reload) or with the others.
    stop: watch::Sender<bool>,
    join: JoinHandle<()>,
}

impl WorkerHandle {
    /// Starts `receiver`'s worker with `queue`, its outbox entries in
    /// order; returns the worker's inbox with it.
    fn start(
        receiver: &super::settings::Receiver,
        queue: Vec<Pending>,
        transports: &Arc<Transports>,
        retry: super::settings::Retry,
        clock: &Arc<dyn Clock>,
        metrics: &Metrics,
        backlog: &Arc<Backlog>,
    ) -> (mpsc::UnboundedSender<Pending>, Self) {
        backlog.add(queue.len() as i64);
        let (tx, rx) = mpsc::unbounded_channel();
        let (stop, stopped) = watch::channel(false);
        let worker = Worker {
            receiver: receiver.clone(),
            queue: queue.into(),
            incoming: rx,
            transports: transports.clone(),
            retry,
            clock: clock.clone(),
            metrics: metrics.clone(),
            backlog: backlog.clone(),
        };
        let join = tokio::spawn(worker.run(stopped));
        (tx, Self { stop, join })
    }
}

fn load_state(path: &Path) -> Result<Option<DispatcherState>, NotifyError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(NotifyError::State {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })
        }
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| NotifyError::State {
            path: path.to_path_buf(),
            reason: format!("{e}; move it away to start with no open notification groups"),
        })
}

fn save_state(storage: &dyn Storage, path: &Path, bytes: &[u8]) -> Result<(), NotifyError> {
    let err = |e: std::io::Error| NotifyError::State {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    storage.write_atomic(path, bytes).map_err(err)
}
