//! `stackbill invoice export --format partner-center`: a month's reconciliation file in Partner
//! Center's daily-rated usage shape, written invoice by invoice (the API's
//! `GET /v1/reconciliation` writes the same bytes).

use std::io::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;
use stackbill_api::reconciliation::{ExportWriter, MonthExport};
use stackbill_core::{PartnerId, Period};
use stackbill_store::Store;

use crate::output;

/// What was written, for `--json`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Written {
    file: String,
    invoices: usize,
    bytes: u64,
}

/// Writes `reconciliation-PERIOD[-PARTNER].csv[.gz]` into `out`.
pub(crate) async fn export(
    store: &Store,
    period: Period,
    out: &Path,
    partner: Option<PartnerId>,
    gzip: bool,
    json: bool,
) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let name = format!(
        "reconciliation-{period}{}.csv{}",
        partner
            .as_ref()
            .map_or_else(String::new, |p| format!("-{p}")),
        if gzip { ".gz" } else { "" }
    );
    let export = MonthExport::load(store, period, partner).await?;
    let path = out.join(&name);
    // Written beside, then renamed: a file under the final name is always whole.
    let partial = out.join(format!(".{name}.partial"));
    let mut file = std::io::BufWriter::new(
        std::fs::File::create(&partial)
            .with_context(|| format!("cannot write {}", partial.display()))?,
    );
    let mut writer = ExportWriter::new(gzip);
    let bar = output::progress_bar(json, export.invoices.len() as u64, "invoices");
    file.write_all(&writer.write(MonthExport::header())?)?;
    for index in 0..export.invoices.len() {
        let rows = export.invoice_csv(store, index).await?;
        file.write_all(&writer.write(rows)?)?;
        bar.inc(1);
    }
    file.write_all(&writer.finish()?)?;
    file.into_inner()
        .map_err(|err| err.into_error())?
        .sync_all()?;
    std::fs::rename(&partial, &path).with_context(|| format!("cannot write {}", path.display()))?;
    bar.finish_and_clear();
    let written = Written {
        file: path.display().to_string(),
        invoices: export.invoices.len(),
        bytes: std::fs::metadata(&path)?.len(),
    };
    if json {
        return output::json(&written);
    }
    eprintln!(
        "wrote {} ({} invoices of {period}, {} bytes)",
        written.file, written.invoices, written.bytes
    );
    Ok(())
}
