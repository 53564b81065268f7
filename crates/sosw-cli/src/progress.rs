//! Progress of a long command (`sosw submit --wait`) on stderr: an indicatif bar redrawn in place
//! on a terminal; elsewhere (a pipe, a CI log) one plain line each time the count changes, with no
//! escape codes. Also compiled into `sosw-demo` (`#[path]`), so it stands alone.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{IsTerminal as _, Write};

/// A progress report towards `total`.
pub enum Progress {
    /// On a terminal.
    Bar(ProgressBar),
    /// Anywhere else: a line per change.
    Plain {
        /// Where lines go (stderr).
        out: Box<dyn Write + Send>,
        /// The total.
        total: u64,
        /// The last count printed.
        last: Option<u64>,
    },
}

impl Progress {
    /// A bar when stderr is a terminal, plain lines otherwise.
    pub fn on_stderr(total: u64) -> Self {
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("[{bar:30}] {pos:>6}/{len:<6} {percent:>3}%  {msg}  {elapsed}")
                    .expect("a valid template")
                    .progress_chars("#>."),
            );
            Self::Bar(bar)
        } else {
            Self::plain(Box::new(std::io::stderr()), total)
        }
    }

    /// Plain lines to `out`.
    pub fn plain(out: Box<dyn Write + Send>, total: u64) -> Self {
        Self::Plain {
            out,
            total,
            last: None,
        }
    }

    /// `done` of the total are done; `message` says more (e.g. completed and dead).
    pub fn set(&mut self, done: u64, message: &str) {
        match self {
            Self::Bar(bar) => {
                bar.set_position(done);
                bar.set_message(message.to_string());
            }
            Self::Plain { out, total, last } => {
                if *last != Some(done) {
                    *last = Some(done);
                    let _ = writeln!(out, "{done}/{total} {message}");
                    let _ = out.flush();
                }
            }
        }
    }

    /// Stop redrawing (the bar stays on screen).
    pub fn finish(&mut self) {
        if let Self::Bar(bar) = self {
            bar.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().write(buf)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn plain_progress_prints_a_line_per_change_and_no_escape_codes() {
        let sink = Shared::default();
        let mut p = Progress::plain(Box::new(sink.clone()), 4);
        p.set(0, "completed 0  dead 0");
        p.set(0, "completed 0  dead 0");
        p.set(3, "completed 2  dead 1");
        p.set(4, "completed 3  dead 1");
        p.finish();
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            text,
            "0/4 completed 0  dead 0\n3/4 completed 2  dead 1\n4/4 completed 3  dead 1\n"
        );
        assert!(!text.contains('\x1b') && !text.contains('\r'));
    }
}
