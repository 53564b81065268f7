//! Capturing what an essential logs during a test, to assert that a failure is visible.

use std::sync::{Arc, Mutex};

/// Every log line written while the guard of [`Logs::capture`] lives, as plain text (no ANSI).
///
/// It becomes this thread's default subscriber: on tokio's current-thread runtime (the default of
/// `#[tokio::test]`) everything the code under test logs lands here.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    /// Start capturing; the capture ends when the returned guard is dropped.
    pub fn capture() -> (Self, tracing::subscriber::DefaultGuard) {
        let logs = Self::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    /// What was logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log buffer")).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_logged_while_the_guard_lives_are_captured_and_later_ones_are_not() {
        let (logs, guard) = Logs::capture();
        tracing::warn!(table = "sosw_tasks", "a visible failure");
        drop(guard);
        tracing::warn!("after the capture");
        let text = logs.text();
        assert!(
            text.contains("WARN")
                && text.contains("a visible failure")
                && text.contains("table=\"sosw_tasks\""),
            "{text}"
        );
        assert!(!text.contains("after the capture"), "{text}");
    }
}
