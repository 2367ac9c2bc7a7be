//! Wall-clock time, injected. Event time drives buckets; the wall clock
//! only moves idle partitions and quiet topics forward. Tests use
//! [`ManualClock`] to move it without sleeping.

use std::sync::atomic::{AtomicI64, Ordering};

/// A source of "now", in epoch seconds.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> i64;

    /// The current time in epoch milliseconds (notification latency and
    /// ages); whole seconds unless the clock knows better.
    fn now_ms(&self) -> i64 {
        self.now() * 1000
    }
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        chrono::Utc::now().timestamp()
    }

    fn now_ms(&self) -> i64 {
        chrono::Utc::now().timestamp_millis()
    }
}

/// A clock that moves only when told to.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock showing `t`.
    pub fn at(t: i64) -> Self {
        Self(AtomicI64::new(t))
    }

    /// Sets the time.
    pub fn set(&self, t: i64) {
        self.0.store(t, Ordering::SeqCst);
    }

    /// Moves the time forward by `secs`.
    pub fn advance(&self, secs: i64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}
