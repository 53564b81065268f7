//! A dependency-free progress bar for terminals (redrawn in place with `\r`).

use std::io::Write;

/// `[#########...........]  45/100  45%  <suffix>`
pub fn render(done: u64, total: u64, width: usize, suffix: &str) -> String {
    let total = total.max(1);
    let filled = ((done.min(total) as f64 / total as f64) * width as f64).round() as usize;
    format!(
        "[{}{}] {:>6}/{:<6} {:>3}%  {suffix}",
        "#".repeat(filled),
        ".".repeat(width - filled),
        done,
        total,
        done.min(total) * 100 / total
    )
}

/// Redraw the bar on stderr.
pub fn draw(done: u64, total: u64, suffix: &str) {
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "\r{}\x1b[K", render(done, total, 30, suffix));
    let _ = err.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_fills_in_proportion() {
        assert_eq!(render(5, 10, 10, "x"), "[#####.....]      5/10      50%  x");
        assert!(render(20, 10, 10, "").starts_with("[##########]"));
        assert!(render(0, 0, 4, "").starts_with("[....]"));
    }
}
