//! Delivery: one worker task per receiver, sending its outbox entries in
//! order.
//!
//! A worker owns its receiver's queue (loaded from the outbox at start,
//! then fed by the notifier over a channel). It sends the head entry; on
//! success (HTTP 2xx, SMTP 250) it deletes the entry's file and moves on. A
//! transient failure waits — exponential backoff from `retry.initial`,
//! doubling to `retry.max`, with full jitter in the upper half so a fleet
//! of kpiwatch instances does not retry in step — and tries the same entry
//! again: a receiver down for an hour gets its messages when it comes back,
//! in order. A permanent refusal, or an entry older than
//! `retry.give_up_after`, is given up and counted. Each receiver has its
//! own task, so a slow or dead receiver never holds up another one, and
//! the pipeline only ever writes to the outbox.
//!
//! [`Transports`] holds the real senders (SMTP pool or file transport,
//! one HTTP client) shared by all workers.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::{mpsc, watch, Notify};

use super::email::EmailSender;
use super::outbox::Pending;
use super::settings::{NotifySettings, Receiver, ReceiverKind, Retry};
use super::webhook::WebhookSender;
use super::{DeliveryError, Notification};
use crate::clock::Clock;
use crate::telemetry::{
    DropReason, Metrics, NotificationDropped, NotificationFailed, NotificationSent,
};

/// The senders every worker shares.
pub struct Transports {
    email: Option<EmailSender>,
    webhook: WebhookSender,
    external_url: Option<String>,
}

impl Transports {
    /// Builds the senders the configured receivers need.
    pub fn new(settings: &NotifySettings) -> Result<Self, super::email::EmailError> {
        let needs_email = settings
            .receivers
            .iter()
            .any(|r| matches!(r.kind, ReceiverKind::Email { .. }));
        Ok(Self {
            email: if needs_email {
                Some(EmailSender::new(settings)?)
            } else {
                None
            },
            webhook: WebhookSender::new(),
            external_url: settings.external_url.clone(),
        })
    }

    /// Sends `n` to `receiver` once.
    pub async fn deliver(
        &self,
        receiver: &Receiver,
        n: &Notification,
        now_secs: i64,
    ) -> Result<(), DeliveryError> {
        let external = self.external_url.as_deref();
        match &receiver.kind {
            ReceiverKind::Email { to } => match &self.email {
                Some(email) => email.send(n, to, external).await,
                None => Err(DeliveryError::Permanent(
                    "no email transport configured".to_string(),
                )),
            },
            ReceiverKind::Webhook(hook) => self.webhook.send(hook, n, external, now_secs).await,
        }
    }
}

/// How many notifications wait in the outbox across all receivers, with a
/// way to wait until they are all delivered or given up (the demo and
/// tests; shutdown does not wait).
#[derive(Debug, Default)]
pub struct Backlog {
    count: AtomicI64,
    changed: Notify,
}

impl Backlog {
    /// Notifications waiting now.
    pub fn len(&self) -> i64 {
        self.count.load(Ordering::SeqCst)
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn add(&self, n: i64) {
        self.count.fetch_add(n, Ordering::SeqCst);
        self.changed.notify_waiters();
    }

    /// Resolves once nothing waits.
    pub async fn drained(&self) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.is_empty() {
                return;
            }
            changed.await;
        }
    }
}

/// The wait before attempt `attempt + 1` (attempt counts failures so far,
/// from 1): `initial · 2^(attempt-1)` capped at `max`, then a uniformly
/// random point in its upper half.
pub fn backoff(retry: &Retry, attempt: u32, rng: &mut impl Rng) -> Duration {
    let exp = attempt.saturating_sub(1).min(30);
    let base = retry
        .initial
        .saturating_mul(1u32 << exp.min(20))
        .min(retry.max);
    let half = base / 2;
    half + base.saturating_sub(half).mul_f64(rng.gen::<f64>())
}

/// One receiver's delivery loop.
pub struct Worker {
    /// The receiver.
    pub receiver: Receiver,
    /// Entries already in the outbox at start, in order.
    pub queue: VecDeque<Pending>,
    /// New entries from the notifier.
    pub incoming: mpsc::UnboundedReceiver<Pending>,
    /// The senders.
    pub transports: Arc<Transports>,
    /// Retry policy.
    pub retry: Retry,
    /// Wall clock (entry ages, latency, webhook signatures).
    pub clock: Arc<dyn Clock>,
    /// Where to count.
    pub metrics: Metrics,
    /// Shared outbox backlog.
    pub backlog: Arc<Backlog>,
}

impl Worker {
    /// Runs until `stop` turns true or the notifier goes away with nothing
    /// left to send. Entries not yet delivered stay in the outbox for the
    /// next start.
    pub async fn run(mut self, stop: watch::Receiver<bool>) {
        self.deliver(stop).await;
        // What this worker still held leaves the backlog with it: the
        // entries stay in the outbox, for the worker a reload starts in
        // its place (which counts them again) or the next start.
        let mut left = self.queue.len() as i64;
        while self.incoming.try_recv().is_ok() {
            left += 1;
        }
        self.backlog.add(-left);
    }

    async fn deliver(&mut self, mut stop: watch::Receiver<bool>) {
        let name = self.receiver.name.clone();
        // Seeded per worker; a thread-local RNG cannot be held across awaits.
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::from_entropy();
        let mut attempts = 0u32;
        loop {
            self.publish_depth();
            if *stop.borrow() {
                return;
            }
            let Some(head) = self.queue.front().cloned() else {
                tokio::select! {
                    biased;
                    _ = stop.changed() => return,
                    next = self.incoming.recv() => match next {
                        Some(p) => { self.queue.push_back(p); continue }
                        None => return,
                    },
                }
            };
            let n = &head.notification;
            let age_ms = self.clock.now_ms() - head.queued_at_ms;
            if age_ms > self.retry.give_up_after.as_millis() as i64 {
                self.give_up(&head, DropReason::Expired);
                attempts = 0;
                continue;
            }
            if attempts > 0 {
                self.metrics
                    .notifications_retried
                    .with_label_values(&[&name])
                    .inc();
            }
            // Shutdown does not wait for a hanging receiver: the entry stays
            // in the outbox and goes again (same idempotency key) next start.
            let result = tokio::select! {
                biased;
                _ = stop.changed() => return,
                r = self.transports.deliver(&self.receiver, n, self.clock.now()) => r,
            };
            attempts += 1;
            match result {
                Ok(()) => {
                    if let Err(e) = head.remove() {
                        // Sent, but the file stays: it will be sent again
                        // after a restart unless the receiver dedupes by
                        // the idempotency key. Say so loudly.
                        tracing::error!(error = %e, "delivered notification not removed from the outbox");
                    }
                    NotificationSent {
                        receiver: &name,
                        id: &n.id,
                        latency: (self.clock.now_ms() - n.created_at_ms).max(0) as f64 / 1000.0,
                        attempts,
                    }
                    .emit(&self.metrics);
                    self.pop();
                    attempts = 0;
                }
                Err(error) => {
                    NotificationFailed {
                        receiver: &name,
                        id: &n.id,
                        error: &error,
                        kind: error.label(),
                        attempts,
                    }
                    .emit(&self.metrics);
                    if matches!(error, DeliveryError::Permanent(_)) {
                        self.give_up(&head, DropReason::Rejected);
                        attempts = 0;
                        continue;
                    }
                    let wait = backoff(&self.retry, attempts, &mut rng);
                    let sleep = tokio::time::sleep(wait);
                    tokio::pin!(sleep);
                    // Keep taking new entries while waiting, so the queue
                    // (and its depth metric) stays true.
                    loop {
                        tokio::select! {
                            biased;
                            _ = stop.changed() => return,
                            () = &mut sleep => break,
                            next = self.incoming.recv(), if !self.incoming.is_closed() => {
                                if let Some(p) = next {
                                    self.queue.push_back(p);
                                    self.publish_depth();
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    fn pop(&mut self) {
        self.queue.pop_front();
        self.backlog.add(-1);
    }

    fn give_up(&mut self, head: &Pending, reason: DropReason) {
        if let Err(e) = head.remove() {
            tracing::error!(error = %e, "given-up notification not removed from the outbox");
        }
        NotificationDropped {
            receiver: &self.receiver.name,
            id: &head.notification.id,
            reason,
        }
        .emit(&self.metrics);
        self.pop();
    }

    fn publish_depth(&self) {
        let name = self.receiver.name.as_str();
        self.metrics
            .outbox_depth
            .with_label_values(&[name])
            .set(self.queue.len() as i64);
        let oldest = self
            .queue
            .front()
            .map(|p| (self.clock.now_ms() - p.queued_at_ms).max(0) as f64 / 1000.0)
            .unwrap_or(0.0);
        self.metrics
            .outbox_oldest_age
            .with_label_values(&[name])
            .set(oldest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng as _;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter_in_the_upper_half() {
        let retry = Retry {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            give_up_after: Duration::from_secs(3600),
        };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for (attempt, base) in [(1, 1.0), (2, 2.0), (3, 4.0), (7, 60.0), (40, 60.0)] {
            for _ in 0..50 {
                let w = backoff(&retry, attempt, &mut rng).as_secs_f64();
                assert!(w >= base / 2.0 && w <= base, "attempt {attempt}: {w}");
            }
        }
    }

    #[tokio::test]
    async fn backlog_drained_waits_for_the_last_delivery() {
        let b = Arc::new(Backlog::default());
        b.add(2);
        let waiter = tokio::spawn({
            let b = b.clone();
            async move { b.drained().await }
        });
        b.add(-1);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        b.add(-1);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("drained resolves")
            .unwrap();
    }
}
