//! The invoice pages: a month's invoices, one invoice (as of an instant), its CSV, the raw
//! records behind a line, and finalizing a month after a confirmation; and the list rows and
//! per-currency totals the overview shows too.
#![allow(clippy::result_large_err)] // a page's steps fail with the answer to give

use std::collections::BTreeMap;

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rust_decimal::Decimal;
use serde::Deserialize;
use stackbill_api::AppState;
use stackbill_api::billing::{InvoiceNames, pdf_file_name};
use stackbill_api::documents::{self, DocumentFacts};
use stackbill_core::sum::exact_add;
use stackbill_core::{PartnerId, Period, SubscriptionId};
use stackbill_store::{Invoice, InvoiceStatus};

use crate::frame::{
    Layout, PeriodQuery, csrf_refused, error_page, partner_text, period_of, refusal, render, scope,
    signed_in, store_failure,
};
use crate::session::{Session, same};

/// One row of an invoice list.
pub(crate) struct InvoiceRow {
    pub(crate) customer: String,
    pub(crate) subscription: String,
    pub(crate) partner: String,
    pub(crate) status: &'static str,
    pub(crate) lines: usize,
    pub(crate) adjustments: usize,
    pub(crate) total: String,
    pub(crate) currency: String,
}

fn status_text(status: InvoiceStatus) -> &'static str {
    match status {
        InvoiceStatus::Draft => "draft",
        InvoiceStatus::Final => "final",
    }
}

pub(crate) fn rows(invoices: &[Invoice], names: &InvoiceNames) -> Vec<InvoiceRow> {
    invoices
        .iter()
        .map(|i| InvoiceRow {
            customer: names
                .subscriptions
                .get(&i.subscription_id)
                .cloned()
                .unwrap_or_default(),
            subscription: i.subscription_id.to_string(),
            partner: partner_text(names, i.partner_id.as_ref()),
            status: status_text(i.status),
            lines: i.lines.len(),
            adjustments: i.adjustments.len(),
            total: i.total.to_string(),
            currency: i.currency.to_string(),
        })
        .collect()
}

/// A total per partner and currency: amounts of different currencies are never added.
pub(crate) struct Total {
    pub(crate) partner: String,
    pub(crate) currency: String,
    pub(crate) amount: String,
    pub(crate) invoices: usize,
}

pub(crate) fn totals<'a>(
    invoices: impl Iterator<Item = &'a Invoice>,
    names: &InvoiceNames,
) -> Vec<Total> {
    let mut sums: BTreeMap<(String, String), (Decimal, usize, bool)> = BTreeMap::new();
    for i in invoices {
        let entry = sums
            .entry((
                partner_text(names, i.partner_id.as_ref()),
                i.currency.to_string(),
            ))
            .or_insert((Decimal::ZERO, 0, false));
        match exact_add(entry.0, i.total) {
            Some(sum) => entry.0 = sum,
            None => entry.2 = true,
        }
        entry.1 += 1;
    }
    sums.into_iter()
        .map(
            |((partner, currency), (amount, invoices, overflow))| Total {
                partner,
                currency,
                amount: if overflow {
                    "too large to add up".to_owned()
                } else {
                    amount.to_string()
                },
                invoices,
            },
        )
        .collect()
}

#[derive(Template)]
#[template(path = "invoices.html")]
struct InvoicesPage {
    layout: Layout,
    period: Period,
    rows: Vec<InvoiceRow>,
    drafts: usize,
    can_finalize: bool,
}

/// A month's invoices as the session may see them, with the names they show.
struct Month {
    period: Period,
    scope: Option<PartnerId>,
    names: InvoiceNames,
    invoices: Vec<Invoice>,
}

async fn month(
    state: &AppState,
    session: &Session,
    query: &PeriodQuery,
) -> Result<Month, Response> {
    let period = period_of(state, session, query)?;
    let scope = scope(session)?;
    let failure = |error| store_failure(session, error);
    let names = InvoiceNames::load(&state.store).await.map_err(failure)?;
    let (invoices, _) = (state.store)
        .invoice_list(period, scope.clone(), None)
        .await
        .map_err(failure)?;
    Ok(Month {
        period,
        scope,
        names,
        invoices,
    })
}

/// `GET /invoices?period=`.
pub(crate) async fn invoices(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<PeriodQuery>,
) -> Response {
    let session = match signed_in(&state, &headers).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let page = async {
        let Month {
            period,
            names,
            invoices,
            ..
        } = month(&state, &session, &query).await?;
        Ok::<_, Response>(InvoicesPage {
            layout: Layout::new(Some(&session)),
            period,
            rows: rows(&invoices, &names),
            drafts: invoices
                .iter()
                .filter(|i| i.status == InvoiceStatus::Draft)
                .count(),
            can_finalize: period.end() <= state.store.now(),
        })
    };
    match page.await {
        Ok(page) => render(&page, StatusCode::OK),
        Err(response) => response,
    }
}

/// A line as the invoice page shows it.
pub(crate) struct LineRow {
    meter_id: String,
    meter: String,
    unit: String,
    quantity: String,
    unit_price: String,
    included: String,
    markup: String,
    amount: String,
}

/// An adjustment as the invoice page shows it.
pub(crate) struct AdjustmentRow {
    period: String,
    meter: String,
    unit: String,
    quantity: String,
    reason: &'static str,
    amount: String,
}

/// One invoice, for the page.
pub(crate) struct InvoiceView {
    subscription: String,
    customer: String,
    partner: Option<String>,
    period: String,
    status: &'static str,
    currency: String,
    lines: Vec<LineRow>,
    adjustments: Vec<AdjustmentRow>,
    total: String,
    /// The tax's rate and amount.
    tax: Option<(String, String)>,
    total_due: String,
    number: Option<String>,
}

#[derive(Template)]
#[template(path = "invoice.html")]
struct InvoicePage {
    layout: Layout,
    invoice: InvoiceView,
    as_of: String,
}

fn invoice_view(invoice: &Invoice, names: &InvoiceNames) -> InvoiceView {
    let meter = |id| {
        names.meters.get(&id).map_or_else(
            || (id.to_string(), String::new()),
            |m| (m.name.clone(), m.unit.clone()),
        )
    };
    let customer = names
        .subscriptions
        .get(&invoice.subscription_id)
        .filter(|name| !name.is_empty())
        .cloned()
        .unwrap_or_else(|| invoice.subscription_id.to_string());
    InvoiceView {
        subscription: invoice.subscription_id.to_string(),
        customer,
        partner: invoice
            .partner_id
            .as_ref()
            .map(|p| partner_text(names, Some(p))),
        period: invoice.period.to_string(),
        status: status_text(invoice.status),
        currency: invoice.currency.to_string(),
        lines: invoice
            .lines
            .iter()
            .map(|l| {
                let (meter, unit) = meter(l.meter_id);
                LineRow {
                    meter_id: l.meter_id.to_string(),
                    meter,
                    unit,
                    quantity: l.quantity.to_string(),
                    unit_price: match &l.price {
                        Some(p) if p.tiered => format!("{} (tiered)", p.unit_price.normalize()),
                        Some(p) => p.unit_price.normalize().to_string(),
                        None if l.unpriced => "no price".to_owned(),
                        None => "-".to_owned(),
                    },
                    included: l.price.as_ref().map_or_else(
                        || "-".to_owned(),
                        |p| p.included_quantity.normalize().to_string(),
                    ),
                    markup: l
                        .markup_percent
                        .map_or_else(|| "-".to_owned(), |m| format!("{} %", m.normalize())),
                    amount: l.amount.to_string(),
                }
            })
            .collect(),
        adjustments: invoice
            .adjustments
            .iter()
            .map(|a| {
                let (meter, unit) = meter(a.meter_id);
                AdjustmentRow {
                    period: a.period.to_string(),
                    meter,
                    unit,
                    quantity: a.quantity.to_string(),
                    reason: a.reason.as_str(),
                    amount: a.amount.to_string(),
                }
            })
            .collect(),
        total: invoice.total.to_string(),
        tax: invoice.tax.map(|tax| {
            (
                tax.rate_percent.normalize().to_string(),
                tax.amount.to_string(),
            )
        }),
        total_due: invoice.total_due().to_string(),
        number: invoice.number.clone(),
    }
}

/// `GET /invoices/{subscription}/{period}[?asOf=]`: another partner's invoice is missing
/// here too.
pub(crate) async fn invoice(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((subscription, period)): Path<(String, String)>,
    Query(query): Query<AsOfQuery>,
) -> Response {
    let as_of = query
        .as_of
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let (session, invoice) =
        match visible_invoice(&state, &headers, &subscription, &period, as_of).await {
            Ok(found) => found,
            Err(response) => return response,
        };
    let names = match InvoiceNames::load(&state.store).await {
        Ok(names) => names,
        Err(error) => return store_failure(&session, error),
    };
    let page = InvoicePage {
        layout: Layout::new(Some(&session)),
        invoice: invoice_view(&invoice, &names),
        as_of: as_of.unwrap_or_default().to_owned(),
    };
    render(&page, StatusCode::OK)
}

#[derive(Deserialize)]
pub(crate) struct AsOfQuery {
    #[serde(rename = "asOf")]
    as_of: Option<String>,
}

/// The session and the invoice named by the path, when the session may see it.
async fn visible_invoice(
    state: &AppState,
    headers: &HeaderMap,
    subscription: &str,
    period: &str,
    as_of: Option<&str>,
) -> Result<(Session, Invoice), Response> {
    let session = signed_in(state, headers).await?;
    let as_of = match as_of {
        None => None,
        Some(text) => Some(text.parse::<jiff::Timestamp>().map_err(|_| {
            error_page(
                Some(&session),
                StatusCode::BAD_REQUEST,
                "Cannot show this page",
                format!("'{text}' is not an instant: give e.g. 2025-06-01T00:00:00Z"),
            )
        })?),
    };
    let missing = |session: &Session, what: String| {
        error_page(Some(session), StatusCode::NOT_FOUND, "Not found", what)
    };
    let (Ok(id), Ok(month)) = (
        subscription.parse::<SubscriptionId>(),
        period.parse::<Period>(),
    ) else {
        return Err(missing(
            &session,
            format!("There is no invoice {subscription} {period}."),
        ));
    };
    if let Err(error) =
        stackbill_api::access::check_subscription(&state.store, &session.caller, id).await
    {
        return Err(refusal(&session, error));
    }
    match state.store.invoice(id, month, as_of).await {
        Ok(Some(invoice)) => Ok((session, invoice)),
        Ok(None) => Err(missing(
            &session,
            format!("Subscription {id} has no usage or adjustment in {month}."),
        )),
        Err(error) => Err(store_failure(&session, error)),
    }
}

/// `GET /invoices/{subscription}/{period}/csv`: the invoice as the API's CSV, to download.
pub(crate) async fn invoice_csv(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((subscription, period)): Path<(String, String)>,
) -> Response {
    let (session, invoice) =
        match visible_invoice(&state, &headers, &subscription, &period, None).await {
            Ok(found) => found,
            Err(response) => return response,
        };
    let names = match InvoiceNames::load(&state.store).await {
        Ok(names) => names,
        Err(error) => return store_failure(&session, error),
    };
    let file = format!(
        "attachment; filename=\"{}-{}.csv\"",
        invoice.subscription_id, invoice.period
    );
    let csv =
        stackbill_api::billing::invoice_csv(&stackbill_api::billing::invoice_dto(invoice, &names));
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, file),
        ],
        csv,
    )
        .into_response()
}

/// `GET /invoices/{subscription}/{period}/pdf[?asOf=]`: the invoice's PDF document, to
/// download.
pub(crate) async fn invoice_pdf(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((subscription, period)): Path<(String, String)>,
    Query(query): Query<AsOfQuery>,
) -> Response {
    let (session, invoice) = match visible_invoice(
        &state,
        &headers,
        &subscription,
        &period,
        query.as_of.as_deref(),
    )
    .await
    {
        Ok(found) => found,
        Err(response) => return response,
    };
    let as_of = query.as_of.as_deref().and_then(|t| t.parse().ok());
    let rendered = async {
        let names = InvoiceNames::load(&state.store).await?;
        let facts = DocumentFacts::load(&state.store, &invoice, as_of).await?;
        Ok::<_, stackbill_store::StoreError>(documents::invoice_pdf(&invoice, &names, &facts))
    };
    let pdf = match rendered.await {
        Ok(Ok(pdf)) => pdf,
        Ok(Err(error)) => {
            tracing::error!(%error, "rendering an invoice PDF failed");
            return error_page(
                Some(&session),
                StatusCode::INTERNAL_SERVER_ERROR,
                "Cannot render this invoice",
                "The PDF could not be rendered; the server log says why.".to_owned(),
            );
        }
        Err(error) => return store_failure(&session, error),
    };
    let file = format!("attachment; filename=\"{}\"", pdf_file_name(&invoice));
    (
        [
            (header::CONTENT_TYPE, "application/pdf".to_owned()),
            (header::CONTENT_DISPOSITION, file),
        ],
        pdf,
    )
        .into_response()
}

/// Records a drill-down page shows.
const RECORDS_PER_PAGE: usize = 100;

#[derive(Deserialize)]
pub(crate) struct RecordsQuery {
    meter: Option<String>,
    page: Option<usize>,
}

/// One raw record.
pub(crate) struct RecordRow {
    id: String,
    cloud: String,
    tenant: String,
    start: String,
    quantity: String,
}

#[derive(Template)]
#[template(path = "records.html")]
struct RecordsPage {
    layout: Layout,
    subscription: String,
    period: String,
    meter_id: String,
    meter: String,
    unit: String,
    count: usize,
    quantity: String,
    rows: Vec<RecordRow>,
    page: usize,
    pages: usize,
    previous: Option<usize>,
    next: Option<usize>,
}

/// `GET /invoices/{subscription}/{period}/records?meter=&page=`: the raw records behind a
/// line, a page at a time.
pub(crate) async fn records(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((subscription, period)): Path<(String, String)>,
    Query(query): Query<RecordsQuery>,
) -> Response {
    let (session, invoice) =
        match visible_invoice(&state, &headers, &subscription, &period, None).await {
            Ok(found) => found,
            Err(response) => return response,
        };
    let Some(meter) = query
        .meter
        .as_deref()
        .and_then(|m| m.parse::<stackbill_core::MeterId>().ok())
    else {
        return error_page(
            Some(&session),
            StatusCode::BAD_REQUEST,
            "Cannot show this page",
            "Choose a line of the invoice: its meter is missing or not a GUID.".to_owned(),
        );
    };
    let page = async {
        let failure = |error| store_failure(&session, error);
        let records = (state.store)
            .invoice_records(
                invoice.subscription_id,
                invoice.period,
                Some(meter),
                None,
                None,
            )
            .await
            .map_err(failure)?;
        let names = InvoiceNames::load(&state.store).await.map_err(failure)?;
        let total = records
            .iter()
            .try_fold(stackbill_core::total::Total::ZERO, |sum, r| {
                sum.checked_add(stackbill_core::total::Total::from_decimal(
                    r.quantity.value(),
                ))
            })
            .map_or_else(|| "too large to add up".to_owned(), |t| t.to_string());
        let pages = records.len().div_ceil(RECORDS_PER_PAGE).max(1);
        let page = query.page.unwrap_or(1).clamp(1, pages);
        let (name, unit) = names.meters.get(&meter).map_or_else(
            || (meter.to_string(), String::new()),
            |m| (m.name.clone(), m.unit.clone()),
        );
        Ok::<_, Response>(RecordsPage {
            layout: Layout::new(Some(&session)),
            subscription: invoice.subscription_id.to_string(),
            period: invoice.period.to_string(),
            meter_id: meter.to_string(),
            meter: name,
            unit,
            count: records.len(),
            quantity: total,
            rows: records
                .iter()
                .skip((page - 1) * RECORDS_PER_PAGE)
                .take(RECORDS_PER_PAGE)
                .map(|r| RecordRow {
                    id: r.id.as_str().to_owned(),
                    cloud: r.cloud_id.to_string(),
                    tenant: r.tenant_id.to_string(),
                    start: r.usage_start.to_string(),
                    quantity: r.quantity.to_string(),
                })
                .collect(),
            page,
            pages,
            previous: (page > 1).then(|| page - 1),
            next: (page < pages).then(|| page + 1),
        })
    };
    match page.await {
        Ok(page) => render(&page, StatusCode::OK),
        Err(response) => response,
    }
}

#[derive(Template)]
#[template(path = "finalize.html")]
struct FinalizePage {
    layout: Layout,
    period: Period,
    partner: Option<String>,
    drafts: usize,
    totals: Vec<Total>,
    done: Option<String>,
}

/// `GET /finalize?period=`: what finalizing the month freezes, and the form that does it.
pub(crate) async fn finalize_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<PeriodQuery>,
) -> Response {
    let session = match signed_in(&state, &headers).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let page = async {
        let Month {
            period,
            scope,
            names,
            invoices,
        } = month(&state, &session, &query).await?;
        let drafts: Vec<&Invoice> = invoices
            .iter()
            .filter(|i| i.status == InvoiceStatus::Draft)
            .collect();
        Ok::<_, Response>(FinalizePage {
            layout: Layout::new(Some(&session)),
            period,
            partner: scope.as_ref().map(|p| partner_text(&names, Some(p))),
            drafts: drafts.len(),
            totals: totals(drafts.into_iter(), &names),
            done: None,
        })
    };
    match page.await {
        Ok(page) => render(&page, StatusCode::OK),
        Err(response) => response,
    }
}

#[derive(Deserialize)]
pub(crate) struct FinalizeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    period: String,
}

/// `POST /finalize`: freezes the month's drafts (an admin's: everybody's; a partner's: its
/// own), with the API's rules (a month that has not ended is refused).
pub(crate) async fn finalize(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<FinalizeForm>,
) -> Response {
    let session = match signed_in(&state, &headers).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    if !same(&form.csrf, &session.csrf) {
        return csrf_refused(&session);
    }
    let page = async {
        let query = PeriodQuery {
            period: Some(form.period.clone()),
        };
        let period = period_of(&state, &session, &query)?;
        let scope = scope(&session)?;
        let (finals, failed) = (state.store)
            .finalize_period_reporting(period, scope.clone())
            .await
            .map_err(|error| store_failure(&session, error))?;
        let mut done = format!("{period} is final: {} invoices frozen.", finals.len());
        if !failed.is_empty() {
            done.push_str(&format!(
                " {} could not be computed and stay drafts: {}.",
                failed.len(),
                failed
                    .iter()
                    .map(|(id, error)| format!("{id} ({error})"))
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
        }
        Ok::<_, Response>(FinalizePage {
            layout: Layout::new(Some(&session)),
            period,
            partner: None,
            drafts: 0,
            totals: Vec::new(),
            done: Some(done),
        })
    };
    match page.await {
        Ok(page) => render(&page, StatusCode::OK),
        Err(response) => response,
    }
}
