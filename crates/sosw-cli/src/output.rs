//! How `sosw` prints for people and for scripts: `--json` (stable field names, docs/cli.md), tables
//! (comfy-table, no borders, no colours), and whether a stream is a terminal (escape codes, redraws
//! and progress bars only there).

use comfy_table::{presets, Cell, CellAlignment, ContentArrangement, Table};
use serde::Serialize;
use std::io::IsTerminal as _;

/// Is standard output a terminal (not a pipe or a file)?
pub fn stdout_is_terminal() -> bool {
    std::io::stdout().is_terminal()
}

/// Print `value` as pretty JSON on stdout (one document).
pub fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// A table for people: one header line, then the rows; the first column left-aligned, the others
/// (counts) right-aligned; columns two spaces apart, no borders, no trailing spaces, no escape codes.
pub fn table<R: IntoIterator<Item = String>>(header: &[&str], rows: impl IntoIterator<Item = R>) -> String {
    render(header, rows, true)
}

/// A table of text: as [`table`], every column left-aligned.
pub fn text_table<R: IntoIterator<Item = String>>(
    header: &[&str],
    rows: impl IntoIterator<Item = R>,
) -> String {
    render(header, rows, false)
}

fn render<R: IntoIterator<Item = String>>(
    header: &[&str],
    rows: impl IntoIterator<Item = R>,
    counts: bool,
) -> String {
    let mut t = Table::new();
    t.load_style(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.iter().map(Cell::new));
    for row in rows {
        t.add_row(row);
    }
    for (i, column) in t.column_iter_mut().enumerate() {
        if i == 0 {
            column.set_padding((0, 0));
        } else {
            column.set_padding((2, 0));
            if counts {
                column.set_cell_alignment(CellAlignment::Right);
            }
        }
    }
    t.lines().map(|l| format!("{}\n", l.trim_end())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_counts_right_with_no_borders_or_trailing_spaces() {
        let t = table(
            &["LABOURER", "QUEUED"],
            [
                vec!["worker".to_string(), "3".to_string()],
                vec!["a_longer_name".to_string(), "1200".to_string()],
            ],
        );
        assert_eq!(
            t,
            "LABOURER       QUEUED\nworker              3\na_longer_name    1200\n"
        );
    }
}
