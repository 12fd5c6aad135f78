//! `stackbill invoice`: list, show, finalize, diff and export, straight on the database.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use jiff::Timestamp;
use rust_decimal::Decimal;
use serde::Serialize;
use stackbill_api::billing::{InvoiceDto, InvoiceNames, invoice_csv, invoice_dto, pdf_file_name};
use stackbill_api::diff::invoice_diff_dto;
use stackbill_api::documents::{DocumentFacts, invoice_pdf};
use stackbill_core::sum::exact_add;
use stackbill_core::{ErrorCode, MeterId, Period, SubscriptionId};
use stackbill_store::{Invoice, InvoiceStatus, Store, StoreError};

use crate::admin::open;
use crate::cli::{ExportFormat, InvoiceCommand};
use crate::output;
use crate::output::{out, outln};
use crate::refusal::refused;

async fn names(store: &Store) -> Result<InvoiceNames> {
    Ok(InvoiceNames::load(store).await?)
}

/// Invoices as a JSON array of the API's invoice shape.
async fn print_json(store: &Store, invoices: Vec<Invoice>) -> Result<()> {
    let names = names(store).await?;
    let dtos: Vec<InvoiceDto> = invoices
        .into_iter()
        .map(|i| invoice_dto(i, &names))
        .collect();
    output::json(&dtos)
}

/// "Name (id)", or the id alone when it has no name.
fn named(name: Option<&String>, id: &str) -> String {
    match name {
        Some(name) if !name.is_empty() => format!("{name} ({id})"),
        _ => id.to_owned(),
    }
}

fn status(invoice: &Invoice) -> &'static str {
    match invoice.status {
        InvoiceStatus::Draft => "draft",
        InvoiceStatus::Final => "final",
    }
}

/// One subscription's invoice that cannot be computed never hides the others: they are
/// listed, each failure is said on standard error, and the exit code is 1.
fn report_failed(period: Period, failed: Vec<(SubscriptionId, StoreError)>) -> Result<()> {
    let count = failed.len();
    for (_, error) in failed {
        eprintln!("{}", crate::refusal::describe(&anyhow::Error::from(error)));
    }
    if count > 0 {
        anyhow::bail!("{count} invoices of {period} cannot be computed");
    }
    Ok(())
}

/// One invoice, or the refusal naming what is missing.
async fn one(
    store: &Store,
    subscription: SubscriptionId,
    period: Period,
    as_of: Option<Timestamp>,
) -> Result<Invoice> {
    store
        .invoice(subscription, period, as_of)
        .await?
        .ok_or_else(|| not_found(subscription, period))
}

fn not_found(subscription: SubscriptionId, period: Period) -> anyhow::Error {
    refused(
        ErrorCode::InvoiceNotFound,
        format!("subscription {subscription} has no usage or adjustment in {period}"),
    )
}

pub(crate) async fn run(command: InvoiceCommand) -> Result<()> {
    match command {
        InvoiceCommand::List {
            period,
            partner,
            as_of,
            db,
            output,
        } => {
            let store = open(&db)?;
            let (invoices, failed) = store.invoice_list(period, partner, as_of).await?;
            if output.json {
                print_json(&store, invoices).await?;
                return report_failed(period, failed);
            }
            let names = names(&store).await?;
            let rows: Vec<Vec<String>> = invoices
                .iter()
                .map(|i| {
                    vec![
                        i.subscription_id.to_string(),
                        names
                            .subscriptions
                            .get(&i.subscription_id)
                            .cloned()
                            .unwrap_or_default(),
                        i.partner_id.as_ref().map_or_else(
                            || "-".to_owned(),
                            |p| named(names.partners.get(p), p.as_str()),
                        ),
                        status(i).to_owned(),
                        i.number.clone().unwrap_or_else(|| "-".to_owned()),
                        i.lines.len().to_string(),
                        i.adjustments.len().to_string(),
                        format!("{} {}", i.total, i.currency),
                        format!("{} {}", i.total_due(), i.currency),
                    ]
                })
                .collect();
            output::table(
                &[
                    "SUBSCRIPTION",
                    "CUSTOMER",
                    "PARTNER",
                    "STATUS",
                    "NUMBER",
                    "LINES",
                    "ADJUSTMENTS",
                    "TOTAL",
                    "TOTAL DUE",
                ],
                &rows,
            )?;
            // Sums per currency: amounts of different currencies are never added.
            let mut sums: BTreeMap<String, (usize, Decimal, Decimal)> = BTreeMap::new();
            for invoice in &invoices {
                let sum = sums.entry(invoice.currency.to_string()).or_default();
                let (Some(total), Some(due)) = (
                    exact_add(sum.1, invoice.total),
                    exact_add(sum.2, invoice.total_due()),
                ) else {
                    anyhow::bail!("the month's total in {} overflows", invoice.currency);
                };
                *sum = (sum.0 + 1, total, due);
            }
            for (currency, (count, total, due)) in sums {
                outln!("{currency}: {count} invoices, {total} before tax, {due} due")?;
            }
            report_failed(period, failed)
        }
        InvoiceCommand::Show {
            subscription,
            period,
            as_of,
            csv,
            db,
            output,
        } => {
            let store = open(&db)?;
            let invoice = one(&store, subscription, period, as_of).await?;
            let names = names(&store).await?;
            let dto = invoice_dto(invoice.clone(), &names);
            if csv {
                out!("{}", invoice_csv(&dto))?;
                return Ok(());
            }
            if output.json {
                return output::json(&dto);
            }
            show(&invoice, &names)
        }
        InvoiceCommand::Pdf {
            subscription,
            period,
            as_of,
            out,
            db,
        } => {
            let store = open(&db)?;
            let invoice = one(&store, subscription, period, as_of).await?;
            let names = names(&store).await?;
            let facts = DocumentFacts::load(&store, &invoice, as_of).await?;
            let pdf = invoice_pdf(&invoice, &names, &facts)?;
            let path = out.unwrap_or_else(|| PathBuf::from(pdf_file_name(&invoice)));
            if path.as_os_str() == "-" {
                return output::write_stdout(&pdf);
            }
            std::fs::write(&path, &pdf)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("wrote {}", path.display());
            Ok(())
        }
        InvoiceCommand::Finalize {
            period,
            partner,
            db,
            output,
        } => {
            let store = open(&db)?;
            let (invoices, failed) = store
                .finalize_period_reporting(period, partner.clone())
                .await?;
            if output.json {
                print_json(&store, invoices).await?;
                return report_failed(period, failed);
            }
            let mut totals: BTreeMap<String, Decimal> = BTreeMap::new();
            for invoice in &invoices {
                let sum = totals.entry(invoice.currency.to_string()).or_default();
                *sum = exact_add(*sum, invoice.total)
                    .with_context(|| format!("the total of {period} overflows"))?;
            }
            let totals: Vec<String> = totals.iter().map(|(c, t)| format!("{t} {c}")).collect();
            outln!(
                "{period}{} is final: {} invoices, {}",
                partner.map(|p| format!(" for {p}")).unwrap_or_default(),
                invoices.len(),
                if totals.is_empty() {
                    "nothing billed".to_owned()
                } else {
                    totals.join(", ")
                }
            )?;
            report_failed(period, failed)
        }
        InvoiceCommand::Diff {
            subscription,
            period,
            from,
            to,
            db,
            output,
        } => {
            let store = open(&db)?;
            let to = to.unwrap_or_else(|| store.now());
            diff(&store, subscription, period, from, to, output.json).await
        }
        InvoiceCommand::Export {
            period,
            format,
            out,
            partner,
            gzip,
            db,
            output,
        } => {
            let store = open(&db)?;
            let files = match format {
                ExportFormat::PartnerCenter => {
                    let json = output.json;
                    return crate::reconciliation::export(
                        &store, period, &out, partner, gzip, json,
                    )
                    .await;
                }
                ExportFormat::Csv => Files::Csv,
                ExportFormat::Json => Files::Json,
                ExportFormat::Pdf => Files::Pdf,
            };
            export(&store, period, files, &out, partner).await
        }
    }
}

async fn diff(
    store: &Store,
    subscription: SubscriptionId,
    period: Period,
    from: Timestamp,
    to: Timestamp,
    json: bool,
) -> Result<()> {
    let diff = store.invoice_diff(subscription, period, from, to).await?;
    let dto = invoice_diff_dto(diff, &store.meters_by_id().await?);
    if json {
        return output::json(&dto);
    }
    outln!(
        "invoice {subscription} {period}: total {} at {from}, {} at {to}",
        dto.total_from,
        dto.total_to
    )?;
    if dto.meters.is_empty() && dto.adjustments.is_empty() {
        outln!("nothing changed")?;
        return Ok(());
    }
    let rows: Vec<Vec<String>> = dto
        .meters
        .iter()
        .map(|d| {
            let mut why = d.reasons(dto.final_at_from);
            let unbilled = d.new_records + d.rerouted_in_records + d.rerouted_out_records > 0;
            if unbilled && dto.final_at_to {
                why.push("after finalization: billed as adjustments on a later invoice".to_owned());
            }
            vec![
                if d.meter_name.is_empty() {
                    d.meter_id.clone()
                } else {
                    d.meter_name.clone()
                },
                format!("{} -> {}", d.quantity_from, d.quantity_to),
                format!("{} -> {}", d.amount_from, d.amount_to),
                why.join("; "),
            ]
        })
        .collect();
    if !rows.is_empty() {
        output::table(&["METER", "QUANTITY", "AMOUNT", "WHY"], &rows)?;
    }
    if !dto.adjustments.is_empty() {
        if !rows.is_empty() {
            outln!()?;
        }
        let rows: Vec<Vec<String>> = dto
            .adjustments
            .iter()
            .map(|a| {
                vec![
                    a.period.clone(),
                    if a.meter_name.is_empty() {
                        a.meter_id.clone()
                    } else {
                        a.meter_name.clone()
                    },
                    a.reason.to_owned(),
                    format!("{} -> {}", a.quantity_from, a.quantity_to),
                    format!("{} -> {}", a.amount_from, a.amount_to),
                ]
            })
            .collect();
        output::table(&["ADJUSTS", "METER", "REASON", "QUANTITY", "AMOUNT"], &rows)?;
    }
    Ok(())
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SummaryRow {
    subscription_id: String,
    customer_name: String,
    partner_name: Option<String>,
    status: &'static str,
    currency: String,
    lines: usize,
    adjustments: usize,
    total: String,
    tax: Option<String>,
    total_due: String,
    invoice_number: Option<String>,
}

/// One invoice for a person: who, the lines with their prices, the adjustments, the total.
fn show(invoice: &Invoice, names: &InvoiceNames) -> Result<()> {
    let customer = names.subscriptions.get(&invoice.subscription_id);
    outln!(
        "invoice {} {} ({}), {}{}",
        named(customer, &invoice.subscription_id.to_string()),
        invoice.period,
        status(invoice),
        invoice.currency,
        invoice
            .partner_id
            .as_ref()
            .map(|p| format!(", billed to {}", named(names.partners.get(p), p.as_str())))
            .unwrap_or_default()
    )?;
    let meter = |id: MeterId| names.meters.get(&id);
    let name = |id: MeterId| meter(id).map_or_else(|| id.to_string(), |m| m.name.clone());
    let unit = |id: MeterId| meter(id).map(|m| m.unit.clone()).unwrap_or_default();
    let rows: Vec<Vec<String>> = invoice
        .lines
        .iter()
        .map(|l| {
            let price = match &l.price {
                Some(p) if p.tiered => format!("{} (tiered)", p.unit_price.normalize()),
                Some(p) => p.unit_price.normalize().to_string(),
                None if l.unpriced => "no price".to_owned(),
                None => "-".to_owned(),
            };
            vec![
                name(l.meter_id),
                l.quantity.to_string(),
                unit(l.meter_id),
                price,
                l.price.as_ref().map_or_else(
                    || "-".to_owned(),
                    |p| p.included_quantity.normalize().to_string(),
                ),
                l.markup_percent
                    .map_or_else(|| "-".to_owned(), |m| format!("{}%", m.normalize())),
                l.amount.to_string(),
            ]
        })
        .collect();
    output::table(
        &[
            "METER",
            "QUANTITY",
            "UNIT",
            "UNIT PRICE",
            "INCLUDED",
            "MARKUP",
            "AMOUNT",
        ],
        &rows,
    )?;
    if !invoice.adjustments.is_empty() {
        outln!("\nadjustments of earlier final periods:")?;
        let rows: Vec<Vec<String>> = invoice
            .adjustments
            .iter()
            .map(|a| {
                vec![
                    a.period.to_string(),
                    name(a.meter_id),
                    a.quantity.to_string(),
                    unit(a.meter_id),
                    a.amount.to_string(),
                    a.reason.as_str().to_owned(),
                ]
            })
            .collect();
        output::table(
            &["PERIOD", "METER", "QUANTITY", "UNIT", "AMOUNT", "REASON"],
            &rows,
        )?;
    }
    outln!("\ntotal {} {}", invoice.total, invoice.currency)?;
    if let Some(tax) = invoice.tax {
        outln!(
            "tax {} % {} {}",
            tax.rate_percent.normalize(),
            tax.amount,
            invoice.currency
        )?;
        outln!("total due {} {}", tax.total_due, invoice.currency)?;
    }
    if let Some(number) = &invoice.number {
        outln!("invoice number {number}")?;
    }
    Ok(())
}

/// The one-file-per-invoice formats of `invoice export`.
#[derive(Debug, Clone, Copy)]
enum Files {
    Csv,
    Json,
    Pdf,
}

async fn export(
    store: &Store,
    period: Period,
    format: Files,
    out: &Path,
    partner: Option<stackbill_core::PartnerId>,
) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let invoices = store.invoices(period, partner, None).await?;
    let names = names(store).await?;
    let mut summaries: BTreeMap<String, Vec<SummaryRow>> = BTreeMap::new();
    let mut written = 0;
    for invoice in invoices {
        let partner = invoice
            .partner_id
            .as_ref()
            .map_or_else(|| "no-partner".to_owned(), ToString::to_string);
        summaries.entry(partner).or_default().push(SummaryRow {
            subscription_id: invoice.subscription_id.to_string(),
            customer_name: (names.subscriptions.get(&invoice.subscription_id))
                .cloned()
                .unwrap_or_default(),
            partner_name: (invoice.partner_id.as_ref())
                .and_then(|p| names.partners.get(p))
                .cloned(),
            status: status(&invoice),
            currency: invoice.currency.to_string(),
            lines: invoice.lines.len(),
            adjustments: invoice.adjustments.len(),
            total: invoice.total.to_string(),
            tax: invoice.tax.map(|tax| tax.amount.to_string()),
            total_due: invoice.total_due().to_string(),
            invoice_number: invoice.number.clone(),
        });
        let name = format!("{}-{period}", invoice.subscription_id);
        let (path, bytes) = match format {
            Files::Csv => (
                out.join(format!("{name}.csv")),
                invoice_csv(&invoice_dto(invoice, &names)).into_bytes(),
            ),
            Files::Json => (
                out.join(format!("{name}.json")),
                serde_json::to_string_pretty(&invoice_dto(invoice, &names))?.into_bytes(),
            ),
            Files::Pdf => {
                let facts = DocumentFacts::load(store, &invoice, None).await?;
                (
                    out.join(pdf_file_name(&invoice)),
                    invoice_pdf(&invoice, &names, &facts)?,
                )
            }
        };
        let text = bytes;
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        written += 1;
    }
    for (partner, rows) in &summaries {
        let path = match format {
            Files::Csv | Files::Pdf => out.join(format!("summary-{partner}-{period}.csv")),
            Files::Json => out.join(format!("summary-{partner}-{period}.json")),
        };
        let text = match format {
            Files::Json => serde_json::to_string_pretty(rows)?,
            Files::Csv | Files::Pdf => {
                let mut csv = csv::Writer::from_writer(Vec::new());
                for r in rows {
                    csv.serialize(r)?;
                }
                String::from_utf8(csv.into_inner()?)?
            }
        };
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    eprintln!(
        "wrote {written} invoices and {} partner summaries to {}",
        summaries.len(),
        out.display()
    );
    Ok(())
}
