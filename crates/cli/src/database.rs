//! `stackbill database copy`: the embedded database's data into PostgreSQL; `stackbill
//! database check`: its integrity.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;
use stackbill_store::{Store, SystemClock};

use crate::cli::DatabaseCommand;
use crate::output;
use crate::output::outln;

pub(crate) async fn run(command: DatabaseCommand) -> Result<()> {
    match command {
        DatabaseCommand::Copy { db, to, output } => copy(&db, &to, output.json).await,
        DatabaseCommand::Check { db, output } => check(&db, output.json).await,
        DatabaseCommand::Init { db, output } => init(&db, output.json).await,
    }
}

async fn init(db: &crate::cli::DbArgs, json: bool) -> Result<()> {
    let existed = db.database_url.is_some() || db.db.exists();
    let store = crate::admin::open_or_create(db)?;
    store.health().await?;
    if json {
        output::json(&json!({ "database": store.location(), "created": !existed }))
    } else {
        if existed {
            outln!("{}: up to date", store.location())?;
        }
        Ok(())
    }
}

async fn check(db: &crate::cli::DbArgs, json: bool) -> Result<()> {
    let store = crate::admin::open(db)?;
    let problems = store.check().await?;
    if json {
        output::json(&json!({
            "database": store.location(),
            "ok": problems.is_empty(),
            "problems": problems,
        }))?;
    } else if problems.is_empty() {
        outln!("{}: ok", store.location())?;
    } else {
        for problem in &problems {
            outln!("{problem}")?;
        }
    }
    if !problems.is_empty() {
        bail!("{} problems found in {}", problems.len(), store.location());
    }
    Ok(())
}

async fn copy(file: &Path, url: &str, json: bool) -> Result<()> {
    // Opening a missing file would create an empty database, and copy nothing.
    if !file.is_file() {
        bail!("no database file at {}", file.display());
    }
    let source = Store::open(file, Arc::new(SystemClock))?;
    let target = Store::open_postgres(url, Arc::new(SystemClock))?;
    let bar = progress_bar(json);
    let shown = bar.clone();
    let started = Instant::now();
    let copied = source
        .copy_into(
            &target,
            Box::new(move |done, total| {
                shown.set_length(total);
                shown.set_position(done);
            }),
        )
        .await;
    bar.finish_and_clear();
    let tables = copied?;
    let seconds = started.elapsed().as_secs_f64();
    let rows: u64 = tables.iter().map(|t| t.rows).sum();
    if json {
        let per_table: serde_json::Map<String, serde_json::Value> = tables
            .iter()
            .map(|t| (t.table.clone(), t.rows.into()))
            .collect();
        return output::json(&json!({
            "from": file.display().to_string(),
            "to": target.location(),
            "rows": rows,
            "tables": per_table,
            "seconds": (seconds * 1000.0).round() / 1000.0,
        }));
    }
    let lines: Vec<Vec<String>> = tables
        .iter()
        .map(|t| vec![t.table.clone(), t.rows.to_string()])
        .collect();
    output::table(&["TABLE", "ROWS"], &lines)?;
    outln!(
        "copied {rows} rows from {} to {} in {seconds:.1} s",
        file.display(),
        target.location()
    )?;
    Ok(())
}

/// Rows copied, with rate and ETA, on a terminal; nothing when piped or with `--json`.
fn progress_bar(json: bool) -> ProgressBar {
    if json || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(4));
    let template =
        "{spinner} {elapsed_precise} [{wide_bar}] {human_pos}/{human_len} rows {per_sec} ETA {eta}";
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(Duration::from_millis(250));
    bar
}
