//! Set-up shared by the Scheduler's tests.
#![allow(dead_code)]

use sosw_scheduler::TimeLeft;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Plenty of time for `n` checks of the clock, then none (forces a hand-over to a sibling).
pub struct Budget(AtomicUsize);

impl Budget {
    /// Time for `n` batches.
    pub fn batches(n: usize) -> Self {
        Self(AtomicUsize::new(n))
    }

    /// Time for every batch.
    pub fn unlimited() -> Self {
        Self(AtomicUsize::new(usize::MAX))
    }
}

impl TimeLeft for Budget {
    fn remaining(&self) -> Duration {
        match self
            .0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        {
            Ok(_) => Duration::from_secs(900),
            Err(_) => Duration::from_secs(1),
        }
    }
}
