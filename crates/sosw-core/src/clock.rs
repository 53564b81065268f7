//! Injectable time: the one clock of sosw. Greenfields, expiry, retry delays, meta rows, EMF
//! timestamps, the scheduler's dates and the time left before a Lambda deadline all derive from a
//! [`Clock`], so tests control it. The essentials build one [`SystemClock`] per process (in
//! `sosw-lambda`'s runtime) and hand it to every manager.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A source of the current time, in seconds since the Unix epoch (like Python's `time.time()`).
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Seconds since the epoch, with sub-second precision.
    fn now(&self) -> f64;
    /// Whole seconds since the epoch (like Python's `int(time.time())`).
    fn now_secs(&self) -> i64 {
        self.now().floor() as i64
    }
    /// Whole milliseconds since the epoch (EMF timestamps, Lambda deadlines).
    fn now_ms(&self) -> i64 {
        (self.now() * 1000.0).floor() as i64
    }
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> f64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0)
    }
}

/// A clock that stands still until moved; clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock set to `secs` since the epoch.
    pub fn at(secs: f64) -> Self {
        Self(Arc::new(AtomicU64::new(secs.to_bits())))
    }
    /// Set the time.
    pub fn set(&self, secs: f64) {
        self.0.store(secs.to_bits(), Ordering::SeqCst);
    }
    /// Move the time forward by `secs`.
    pub fn advance(&self, secs: f64) {
        self.set(self.now() + secs);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_is_shared_between_clones_and_advances() {
        let clock = ManualClock::at(100.5);
        let other = clock.clone();
        clock.advance(10.0);
        assert_eq!(other.now(), 110.5);
        assert_eq!(other.now_secs(), 110);
        assert_eq!(other.now_ms(), 110_500);
    }

    #[test]
    fn system_clock_is_after_2020() {
        assert!(SystemClock.now_secs() > 1_577_836_800);
    }
}
