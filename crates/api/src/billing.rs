//! Invoices and finalization: `/v1/invoices`, `/v1/periods`.

use std::collections::HashMap;

use axum::extract::{OriginalUri, Path, State};
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Serialize;
use stackbill_core::{Meter, MeterId, PartnerId, Period, SubscriptionId};
use stackbill_store::{Invoice, InvoiceStatus, StoreError};

use crate::access::{Caller, check_subscription, forbidden};
use crate::dto::ListDto;
use crate::error::{ApiError, ErrorCode};
use crate::extract::{QueryParams, param};
use crate::state::AppState;

/// An invoice as answered.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceDto {
    subscription_id: String,
    partner_id: Option<String>,
    period: String,
    currency: String,
    status: &'static str,
    lines: Vec<LineDto>,
    adjustments: Vec<AdjustmentDto>,
    total: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    finalized_at: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct LineDto {
    meter_id: String,
    meter_name: String,
    unit: String,
    quantity: String,
    amount: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    unpriced: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct AdjustmentDto {
    period: String,
    meter_id: String,
    quantity: String,
    amount: String,
    reason: &'static str,
}

/// The wire shape of an invoice, with meter names and units from the catalog.
pub fn invoice_dto(invoice: Invoice, meters: &HashMap<MeterId, Meter>) -> InvoiceDto {
    let meter = |id: MeterId| {
        meters.get(&id).map_or((String::new(), String::new()), |m| {
            (m.name.clone(), m.unit.clone())
        })
    };
    InvoiceDto {
        subscription_id: invoice.subscription_id.to_string(),
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
                    amount: l.amount.to_string(),
                    unpriced: l.unpriced,
                }
            })
            .collect(),
        adjustments: invoice
            .adjustments
            .into_iter()
            .map(|a| AdjustmentDto {
                period: a.period.to_string(),
                meter_id: a.meter_id.to_string(),
                quantity: a.quantity.to_string(),
                amount: a.amount.to_string(),
                reason: a.reason.as_str(),
            })
            .collect(),
        total: invoice.total.to_string(),
        finalized_at: invoice.finalized_at.map(|t| t.to_string()),
    }
}

async fn meter_names(state: &AppState) -> Result<HashMap<MeterId, Meter>, ApiError> {
    Ok(state.store.meters_by_id().await?)
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
    let meters = meter_names(&state).await?;
    let dtos: Vec<InvoiceDto> = invoices
        .into_iter()
        .map(|i| invoice_dto(i, &meters))
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

fn csv_escape(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}

/// An invoice as CSV: one row per line and per adjustment.
pub fn invoice_csv(invoice: &InvoiceDto) -> String {
    let mut out = String::from(
        "subscriptionId,period,currency,status,kind,adjustedPeriod,meterId,meterName,unit,quantity,amount,unpriced,reason\n",
    );
    let head = [
        &invoice.subscription_id,
        &invoice.period,
        &invoice.currency,
        invoice.status,
    ];
    let head: Vec<String> = head.iter().map(|f| csv_escape(f)).collect();
    for line in &invoice.lines {
        out.push_str(&format!(
            "{},line,,{},{},{},{},{},{},\n",
            head.join(","),
            line.meter_id,
            csv_escape(&line.meter_name),
            csv_escape(&line.unit),
            line.quantity,
            line.amount,
            line.unpriced
        ));
    }
    for a in &invoice.adjustments {
        out.push_str(&format!(
            "{},adjustment,{},{},,,{},{},,{}\n",
            head.join(","),
            a.period,
            a.meter_id,
            a.quantity,
            a.amount,
            a.reason
        ));
    }
    out.push_str(&format!(
        "{},total,,,,,,{},,\n",
        head.join(","),
        invoice.total
    ));
    out
}

/// One invoice (CSV with Accept: text/csv)
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
    let dto = invoice_dto(invoice, &meter_names(&state).await?);
    let wants_csv = headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.split(',').any(|m| m.trim().starts_with("text/csv")));
    if wants_csv {
        let mut response = invoice_csv(&dto).into_response();
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/csv; charset=utf-8"),
        );
        return Ok(response);
    }
    Ok(Json(dto).into_response())
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
    let mut partner = query.parsed::<PartnerId>("partnerId")?;
    if let Some(own) = caller.partner_scope()? {
        if partner.as_ref().is_some_and(|p| p != own) {
            return Err(forbidden("a partner token finalizes its own invoices only")
                .with_target("partnerId"));
        }
        partner = Some(own.clone());
    }
    let (invoices, failed) = state
        .store
        .finalize_period_reporting(period, partner)
        .await?;
    let meters = meter_names(&state).await?;
    let page = ListDto {
        value: invoices
            .into_iter()
            .map(|i| invoice_dto(i, &meters))
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
