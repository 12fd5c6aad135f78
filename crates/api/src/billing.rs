//! Invoices and finalization: `/v1/invoices`, `/v1/periods`.

use axum::extract::{OriginalUri, Path, State};
use axum::http::header::{ACCEPT, CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Serialize;
use stackbill_core::{MeterId, PartnerId, Period, SubscriptionId};
use stackbill_store::{Invoice, InvoiceStatus, StoreError};

use crate::access::{Caller, check_subscription};
use crate::documents::{DocumentFacts, invoice_pdf};
use crate::dto::ListDto;
use crate::error::{ApiError, ErrorCode};
use crate::extract::{QueryParams, param};
pub use crate::names::InvoiceNames;
use crate::state::AppState;

/// An invoice as answered.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceDto {
    subscription_id: String,
    /// The subscription's display name: the customer, for a customer subscription.
    customer_name: String,
    partner_id: Option<String>,
    /// The partner's name.
    partner_name: Option<String>,
    period: String,
    currency: String,
    status: &'static str,
    lines: Vec<LineDto>,
    adjustments: Vec<AdjustmentDto>,
    /// Lines plus adjustments, before tax.
    total: String,
    /// The tax on the total, when the subscription has a tax rate.
    #[serde(skip_serializing_if = "Option::is_none")]
    tax: Option<TaxDto>,
    /// The total with its tax.
    total_due: String,
    /// Given at finalization: `{prefix}-{YYYY}-{NNNNNN}`, gapless per partner and year.
    #[serde(skip_serializing_if = "Option::is_none")]
    invoice_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    finalized_at: Option<String>,
}

/// An invoice's tax: the rate applied once to the total, rounded once to the currency's
/// minor unit, half away from zero.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaxDto {
    rate_percent: String,
    amount: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct LineDto {
    meter_id: String,
    meter_name: String,
    unit: String,
    quantity: String,
    /// The unit price from quantity 0, before markup (absent when unpriced, and on lines
    /// finalized before it was kept).
    #[serde(skip_serializing_if = "Option::is_none")]
    unit_price: Option<String>,
    /// Further tiers price the quantity past their thresholds differently.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    tiered: bool,
    /// Quantity free of charge in the month.
    #[serde(skip_serializing_if = "Option::is_none")]
    included_quantity: Option<String>,
    /// The subscription's markup the line was rated with, in percent.
    #[serde(skip_serializing_if = "Option::is_none")]
    markup_percent: Option<String>,
    amount: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    unpriced: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct AdjustmentDto {
    period: String,
    meter_id: String,
    meter_name: String,
    unit: String,
    quantity: String,
    amount: String,
    reason: &'static str,
}

/// The wire shape of an invoice, with meter names and units from the catalog and the
/// customer's and partner's names.
pub fn invoice_dto(invoice: Invoice, names: &InvoiceNames) -> InvoiceDto {
    let total_due = invoice.total_due();
    let meter = |id: MeterId| {
        names
            .meters
            .get(&id)
            .map_or((String::new(), String::new()), |m| {
                (m.name.clone(), m.unit.clone())
            })
    };
    InvoiceDto {
        subscription_id: invoice.subscription_id.to_string(),
        customer_name: (names.subscriptions.get(&invoice.subscription_id))
            .cloned()
            .unwrap_or_default(),
        partner_name: (invoice.partner_id.as_ref())
            .and_then(|p| names.partners.get(p))
            .cloned(),
        partner_id: invoice.partner_id.map(|p| p.to_string()),
        period: invoice.period.to_string(),
        currency: invoice.currency.to_string(),
        status: match invoice.status {
            InvoiceStatus::Draft => "draft",
            InvoiceStatus::Final => "final",
        },
        lines: invoice
            .lines
            .into_iter()
            .map(|l| {
                let (meter_name, unit) = meter(l.meter_id);
                LineDto {
                    meter_id: l.meter_id.to_string(),
                    meter_name,
                    unit,
                    quantity: l.quantity.to_string(),
                    unit_price: l
                        .price
                        .as_ref()
                        .map(|p| p.unit_price.normalize().to_string()),
                    tiered: l.price.as_ref().is_some_and(|p| p.tiered),
                    included_quantity: (l.price.as_ref())
                        .map(|p| p.included_quantity.normalize().to_string()),
                    markup_percent: l.markup_percent.map(|m| m.normalize().to_string()),
                    amount: l.amount.to_string(),
                    unpriced: l.unpriced,
                }
            })
            .collect(),
        adjustments: invoice
            .adjustments
            .into_iter()
            .map(|a| {
                let (meter_name, unit) = meter(a.meter_id);
                AdjustmentDto {
                    period: a.period.to_string(),
                    meter_id: a.meter_id.to_string(),
                    meter_name,
                    unit,
                    quantity: a.quantity.to_string(),
                    amount: a.amount.to_string(),
                    reason: a.reason.as_str(),
                }
            })
            .collect(),
        total: invoice.total.to_string(),
        total_due: total_due.to_string(),
        tax: invoice.tax.map(|tax| TaxDto {
            rate_percent: tax.rate_percent.normalize().to_string(),
            amount: tax.amount.to_string(),
        }),
        invoice_number: invoice.number,
        finalized_at: invoice.finalized_at.map(|t| t.to_string()),
    }
}

async fn names(state: &AppState) -> Result<InvoiceNames, ApiError> {
    Ok(InvoiceNames::load(&state.store).await?)
}

/// Every invoice of a month
#[utoipa::path(
    get,
    path = "/v1/invoices",
    tag = "billing",
    params(
        ("period" = String, Query, description = "YYYY-MM"),
        ("partnerId" = String, Query, description = "only this partner's"),
        ("asOf" = String, Query, description = "RFC 3339 instant"),
        ("$top" = String, Query, description = "at most 1,000"),
        ("$skipToken" = String, Query, description = "from a nextLink"),
    ),
    responses((status = 200, body = InvoicePageDto), crate::error::ArmError),
    security(("bearer" = []))
)]
pub(crate) async fn list_invoices(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    query: QueryParams,
    uri: OriginalUri,
) -> Result<Json<InvoicePageDto>, ApiError> {
    let period: Period = query.parsed("period")?.ok_or_else(|| {
        ApiError::new(ErrorCode::InvalidParameter, "period is required (YYYY-MM)")
            .with_target("period")
    })?;
    let mut partner = query.parsed::<PartnerId>("partnerId")?;
    if let Some(own) = caller.partner_scope()? {
        if partner.as_ref().is_some_and(|p| p != own) {
            let Json(page) = crate::page::page(Vec::<InvoiceDto>::new(), &query, &uri)?;
            return Ok(Json(InvoicePageDto::new(page, Vec::new())));
        }
        partner = Some(own.clone());
    }
    let (invoices, failed) = state
        .store
        .invoice_list(period, partner, query.instant("asOf")?)
        .await?;
    let names = names(&state).await?;
    let dtos: Vec<InvoiceDto> = invoices
        .into_iter()
        .map(|i| invoice_dto(i, &names))
        .collect();
    let Json(page) = crate::page::page(dtos, &query, &uri)?;
    Ok(Json(InvoicePageDto::new(page, failed_dtos(failed))))
}

/// A page of a month's invoices, and the subscriptions whose invoice cannot be computed
/// (an amount beyond what an invoice holds): one subscription never hides the others.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InvoicePageDto {
    value: Vec<InvoiceDto>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_link: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    failed: Vec<FailedInvoiceDto>,
}

impl InvoicePageDto {
    fn new(page: ListDto<InvoiceDto>, failed: Vec<FailedInvoiceDto>) -> Self {
        Self {
            value: page.value,
            next_link: page.next_link,
            failed,
        }
    }
}

/// A subscription whose invoice cannot be computed, and why.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailedInvoiceDto {
    subscription_id: String,
    code: &'static str,
    message: String,
}

/// The columns of [`invoice_csv`].
pub const INVOICE_CSV_COLUMNS: [&str; 19] = [
    "subscriptionId",
    "customerName",
    "partnerId",
    "partnerName",
    "period",
    "currency",
    "status",
    "kind",
    "adjustedPeriod",
    "meterId",
    "meterName",
    "unit",
    "quantity",
    "unitPrice",
    "includedQuantity",
    "markupPercent",
    "amount",
    "unpriced",
    "reason",
];

/// An invoice as CSV: one row per line, per adjustment, and its total.
pub fn invoice_csv(invoice: &InvoiceDto) -> String {
    let mut csv = csv::Writer::from_writer(Vec::new());
    let head = [
        invoice.subscription_id.as_str(),
        &invoice.customer_name,
        invoice.partner_id.as_deref().unwrap_or(""),
        invoice.partner_name.as_deref().unwrap_or(""),
        &invoice.period,
        &invoice.currency,
        invoice.status,
    ];
    let mut rows: Vec<Vec<&str>> = Vec::new();
    for line in &invoice.lines {
        rows.push(vec![
            "line",
            "",
            &line.meter_id,
            &line.meter_name,
            &line.unit,
            &line.quantity,
            line.unit_price.as_deref().unwrap_or(""),
            line.included_quantity.as_deref().unwrap_or(""),
            line.markup_percent.as_deref().unwrap_or(""),
            &line.amount,
            if line.unpriced { "true" } else { "false" },
            "",
        ]);
    }
    for a in &invoice.adjustments {
        rows.push(vec![
            "adjustment",
            &a.period,
            &a.meter_id,
            &a.meter_name,
            &a.unit,
            &a.quantity,
            "",
            "",
            "",
            &a.amount,
            "",
            a.reason,
        ]);
    }
    rows.push(vec![
        "total",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        &invoice.total,
        "",
        "",
    ]);
    // Writing into memory cannot fail; a record of the wrong width is a bug caught by tests.
    let _ = csv.write_record(INVOICE_CSV_COLUMNS);
    for row in rows {
        let _ = csv.write_record(head.iter().copied().chain(row));
    }
    String::from_utf8(csv.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// One invoice (CSV with Accept: text/csv, the PDF document with Accept: application/pdf)
#[utoipa::path(
    get,
    path = "/v1/invoices/{subscriptionId}/{period}",
    tag = "billing",
    params(
        ("subscriptionId" = String, Path, description = "GUID"),
        ("period" = String, Path, description = "YYYY-MM"),
        ("asOf" = String, Query, description = "RFC 3339 instant"),
    ),
    responses((status = 200, body = InvoiceDto), crate::error::ArmError),
    security(("bearer" = []))
)]
pub(crate) async fn get_invoice(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((subscription, period)): Path<(String, String)>,
    headers: HeaderMap,
    query: QueryParams,
) -> Result<Response, ApiError> {
    let subscription: SubscriptionId = param(&subscription, "subscriptionId")?;
    let period: Period = param(&period, "period")?;
    check_subscription(&state.store, &caller, subscription).await?;
    let invoice = state
        .store
        .invoice(subscription, period, query.instant("asOf")?)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvoiceNotFound,
                format!("subscription {subscription} has no usage or adjustment in {period}"),
            )
        })?;
    let names = names(&state).await?;
    if accepts(&headers, "application/pdf") {
        let facts = DocumentFacts::load(&state.store, &invoice, query.instant("asOf")?).await?;
        let pdf = invoice_pdf(&invoice, &names, &facts).map_err(|err| {
            tracing::error!(%err, "rendering an invoice PDF failed");
            ApiError::new(
                ErrorCode::InternalServerError,
                "the PDF could not be rendered",
            )
        })?;
        let mut response = pdf.into_response();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/pdf"));
        if let Ok(value) =
            HeaderValue::from_str(&format!("inline; filename=\"{}\"", pdf_file_name(&invoice)))
        {
            headers.insert(CONTENT_DISPOSITION, value);
        }
        return Ok(response);
    }
    let dto = invoice_dto(invoice, &names);
    if accepts(&headers, "text/csv") {
        let mut response = invoice_csv(&dto).into_response();
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/csv; charset=utf-8"),
        );
        return Ok(response);
    }
    Ok(Json(dto).into_response())
}

/// Whether the request's `Accept` header names `media_type`.
fn accepts(headers: &HeaderMap, media_type: &str) -> bool {
    headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.split(',').any(|m| m.trim().starts_with(media_type)))
}

/// The file name an invoice's PDF is offered under: its number, else the subscription and
/// month (`draft-` first for a draft).
pub fn pdf_file_name(invoice: &Invoice) -> String {
    match &invoice.number {
        Some(number) => format!("{number}.pdf"),
        None => format!(
            "{}{}-{}.pdf",
            if invoice.status == InvoiceStatus::Draft {
                "draft-"
            } else {
                ""
            },
            invoice.subscription_id,
            invoice.period
        ),
    }
}

/// Freeze a month's invoices
#[utoipa::path(
    post,
    path = "/v1/periods/{period}/finalize",
    tag = "billing",
    params(
        ("period" = String, Path, description = "YYYY-MM"),
        ("partnerId" = String, Query, description = "only this partner's"),
    ),
    responses((status = 200, body = InvoicePageDto), crate::error::ArmError),
    security(("bearer" = []))
)]
pub(crate) async fn finalize(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(period): Path<String>,
    query: QueryParams,
) -> Result<Json<InvoicePageDto>, ApiError> {
    let period: Period = param(&period, "period")?;
    let partner = crate::access::partner_param(
        &caller,
        &query,
        "a partner token finalizes its own invoices only",
    )?;
    let (invoices, failed) = state
        .store
        .finalize_period_reporting(period, partner)
        .await?;
    let names = names(&state).await?;
    let page = ListDto {
        value: invoices
            .into_iter()
            .map(|i| invoice_dto(i, &names))
            .collect(),
        next_link: None,
    };
    Ok(Json(InvoicePageDto::new(page, failed_dtos(failed))))
}

/// The subscriptions whose invoice cannot be computed, as answered.
fn failed_dtos(failed: Vec<(SubscriptionId, StoreError)>) -> Vec<FailedInvoiceDto> {
    failed
        .into_iter()
        .map(|(subscription, error)| {
            let answer = ApiError::from(error);
            FailedInvoiceDto {
                subscription_id: subscription.to_string(),
                code: answer.code.as_str(),
                message: answer.message,
            }
        })
        .collect()
}

/// A stored usage record, as the drill-down answers it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordDto {
    id: String,
    cloud_id: String,
    tenant_id: String,
    subscription_id: String,
    meter_id: String,
    quantity: String,
    usage_start_time: String,
    usage_end_time: String,
    reported_time: Option<String>,
    #[schema(value_type = Option<Object>)]
    instance_data: Option<Box<serde_json::value::RawValue>>,
}

impl From<stackbill_core::UsageRecord> for RecordDto {
    fn from(r: stackbill_core::UsageRecord) -> Self {
        Self {
            id: r.id.as_str().to_owned(),
            cloud_id: r.cloud_id.to_string(),
            tenant_id: r.tenant_id.to_string(),
            subscription_id: r.subscription_id.to_string(),
            meter_id: r.meter_id.to_string(),
            quantity: r.quantity.to_string(),
            usage_start_time: r.usage_start.to_string(),
            usage_end_time: (r.usage_start + stackbill_core::usage::USAGE_WINDOW).to_string(),
            reported_time: r.reported_time.map(|t| t.to_string()),
            instance_data: r
                .instance_data
                .and_then(|text| serde_json::value::RawValue::from_string(text).ok()),
        }
    }
}

/// The raw records behind an invoice
#[utoipa::path(
    get,
    path = "/v1/invoices/{subscriptionId}/{period}/records",
    tag = "billing",
    params(
        ("subscriptionId" = String, Path, description = "GUID"),
        ("period" = String, Path, description = "YYYY-MM"),
        ("meterId" = String, Query, description = "one line's"),
        ("asOf" = String, Query, description = "RFC 3339 instant"),
        ("$top" = String, Query, description = "at most 1,000"),
        ("$skipToken" = String, Query, description = "from a nextLink"),
    ),
    responses((status = 200, body = crate::dto::ListDto<RecordDto>), crate::error::ArmError),
    security(("bearer" = []))
)]
pub(crate) async fn invoice_records(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((subscription, period)): Path<(String, String)>,
    query: QueryParams,
    uri: OriginalUri,
) -> Result<Json<ListDto<RecordDto>>, ApiError> {
    let subscription: SubscriptionId = param(&subscription, "subscriptionId")?;
    let period: Period = param(&period, "period")?;
    let meter = query.parsed::<MeterId>("meterId")?;
    check_subscription(&state.store, &caller, subscription).await?;
    let mut as_of = query.instant("asOf")?;
    if as_of.is_none() {
        // A final invoice is explained by the data it was computed from.
        let invoice = state.store.invoice(subscription, period, None).await?;
        as_of = invoice.and_then(|i| i.finalized_at);
    }
    let records = state
        .store
        .invoice_records(subscription, period, meter, as_of, as_of)
        .await?;
    crate::page::page(records, &query, &uri)
}
