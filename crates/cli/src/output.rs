//! Printing results: aligned tables for people, the API's JSON shapes with `--json`.
//! Everything on standard output goes through [`outln!`] and [`out!`], which hand back a
//! write error (a reader that went away, as in `stackbill invoice list | head`) instead of
//! panicking as `println!` does; `main` ends quietly on a broken pipe.

use serde::Serialize;

/// `println!` onto standard output, returning the write's `io::Result`.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

/// `print!` onto standard output, returning the write's `io::Result`.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout().lock(), $($arg)*)
    }};
}

pub(crate) use {out, outln};

/// Writes `bytes` to standard output as they are.
pub(crate) fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(bytes)?;
    stdout.flush()?;
    Ok(())
}

/// Prints `value` as pretty JSON.
pub(crate) fn json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(value)?)?;
    Ok(())
}

/// Prints rows under headers, columns padded to their widest cell.
pub(crate) fn table(headers: &[&str], rows: &[Vec<String>]) -> std::io::Result<()> {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        outln!("{}", padded.join("  ").trim_end())
    };
    line(headers.to_vec())?;
    for row in rows {
        line(row.iter().map(String::as_str).collect())?;
    }
    if rows.is_empty() {
        outln!("(none)")?;
    }
    Ok(())
}

/// Prints one object or a list: with `json`, in the API's shape `D` (the object alone when
/// `single`); otherwise as a table with one row per item.
pub(crate) fn show<T, D>(
    items: Vec<T>,
    json: bool,
    single: bool,
    headers: &[&str],
    row: impl Fn(&T) -> Vec<String>,
) -> anyhow::Result<()>
where
    D: Serialize + From<T>,
{
    if json {
        let dtos: Vec<D> = items.into_iter().map(D::from).collect();
        return match (single, dtos.first()) {
            (true, Some(first)) => self::json(first),
            _ => self::json(&dtos),
        };
    }
    let rows: Vec<Vec<String>> = items.iter().map(row).collect();
    table(headers, &rows)?;
    Ok(())
}

/// A bar of `len` items (`unit`: "invoices", "rows") with rate and ETA on a terminal; hidden
/// when standard error is not one, or with `quiet` (`--json`).
pub(crate) fn progress_bar(quiet: bool, len: u64, unit: &str) -> indicatif::ProgressBar {
    use std::io::IsTerminal as _;
    if quiet || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(len),
        indicatif::ProgressDrawTarget::stderr_with_hz(4),
    );
    let template = format!(
        "{{spinner}} {{elapsed_precise}} [{{wide_bar}}] {{pos}}/{{len}} {unit} {{per_sec}} ETA {{eta}}"
    );
    if let Ok(style) = indicatif::ProgressStyle::with_template(&template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(std::time::Duration::from_millis(250));
    bar
}
