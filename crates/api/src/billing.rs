//! Rate cards, invoices and finalization: `/v1/ratecards`, `/v1/invoices`, `/v1/periods`.

use std::collections::HashMap;

use axum::extract::{OriginalUri, Path, State};
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use stackbill_core::rating::{CardOwner, MeterRate, Tier};
use stackbill_core::{Meter, MeterId, PartnerId, Period, RateCard, RateCardName, SubscriptionId};
use stackbill_store::{Invoice, InvoiceStatus, Written};

use crate::access::{Caller, check_subscription, forbidden};
use crate::dto::ListDto;
use crate::error::{ApiError, ErrorCode};
use crate::extract::{JsonBody, QueryParams, decimal, instant, param};
use crate::state::AppState;

/// Body of `PUT /v1/ratecards/{name}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateCardBody {
    /// ISO 4217 code.
    pub currency: String,
    /// The entries; several per meter with different dates are a price history.
    pub meters: Vec<MeterRateBody>,
}

/// One entry of a rate card.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MeterRateBody {
    /// The meter.
    pub meter_id: String,
    /// Threshold (decimal string) → unit price (decimal), graduated; the first at "0".
    #[schema(value_type = Object)]
    pub rates: serde_json::Map<String, serde_json::Value>,
    /// Free quantity per period (default 0).
    #[schema(value_type = Option<String>)]
    pub included_quantity: Option<serde_json::Value>,
    /// From when (default: the beginning of time).
    pub effective_date: Option<String>,
}

/// A rate card as answered.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateCardDto {
    name: String,
    currency: String,
    meters: Vec<MeterRateDto>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct MeterRateDto {
    meter_id: String,
    #[schema(value_type = Object)]
    rates: serde_json::Map<String, serde_json::Value>,
    included_quantity: String,
    effective_date: String,
}

impl From<RateCard> for RateCardDto {
    fn from(card: RateCard) -> Self {
        let mut meters: Vec<MeterRateDto> = card
            .rates
            .iter()
            .map(|rate| MeterRateDto {
                meter_id: rate.meter_id.to_string(),
                rates: rate
                    .tiers()
                    .iter()
                    .map(|t| {
                        (
                            t.from_quantity.normalize().to_string(),
                            serde_json::Value::String(t.unit_price.normalize().to_string()),
                        )
                    })
                    .collect(),
                included_quantity: rate.included_quantity.normalize().to_string(),
                effective_date: rate.effective_date.to_string(),
            })
            .collect();
        meters.sort_by(|a, b| {
            (&a.meter_id, &a.effective_date).cmp(&(&b.meter_id, &b.effective_date))
        });
        Self {
            name: card.name.to_string(),
            currency: card.currency.to_string(),
            meters,
        }
    }
}

/// A partner manages a rate card that only its own subscriptions use; to it, a card used by
/// another partner's subscriptions does not exist.
/// Whose card a request is about (SPEC §7): a partner's own; an admin's is shared, or the
/// one of the partner given as `?partnerId=`.
fn card_owner(caller: &Caller, query: &QueryParams) -> Result<CardOwner, ApiError> {
    match caller.partner_scope()? {
        Some(own) => Ok(CardOwner::Partner(own.clone())),
        None => Ok(CardOwner::of(query.parsed::<PartnerId>("partnerId")?)),
    }
}

fn rate_card_not_found(name: &RateCardName) -> ApiError {
    ApiError::new(
        ErrorCode::RateCardNotFound,
        format!("rate card '{name}' does not exist"),
    )
    .with_target("name")
}

fn invalid(target: String, message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidRateCard, message).with_target(target)
}

fn rate_card(name: RateCardName, body: RateCardBody) -> Result<RateCard, ApiError> {
    let currency =
        body.currency
            .parse()
            .map_err(|err: stackbill_core::rating::UnknownCurrency| {
                invalid("currency".into(), err.to_string())
            })?;
    let mut rates = Vec::new();
    for (index, entry) in body.meters.into_iter().enumerate() {
        let at = |field: &str| format!("meters[{index}].{field}");
        let meter_id: MeterId = entry
            .meter_id
            .parse()
            .map_err(|err: stackbill_core::IdError| invalid(at("meterId"), err.to_string()))?;
        let mut tiers = Vec::new();
        for (threshold, price) in &entry.rates {
            let from_quantity =
                decimal(&serde_json::Value::String(threshold.clone()), &at("rates"))
                    .map_err(|err| invalid(at("rates"), err.message))?;
            let unit_price =
                decimal(price, &at("rates")).map_err(|err| invalid(at("rates"), err.message))?;
            tiers.push(Tier {
                from_quantity,
                unit_price,
            });
        }
        let included_quantity = match &entry.included_quantity {
            Some(value) => decimal(value, &at("includedQuantity"))
                .map_err(|err| invalid(at("includedQuantity"), err.message))?,
            None => rust_decimal::Decimal::ZERO,
        };
        let effective_date = match entry.effective_date.as_deref() {
            Some(text) => instant(text, &at("effectiveDate"))
                .map_err(|err| invalid(at("effectiveDate"), err.message))?,
            None => jiff::Timestamp::UNIX_EPOCH,
        };
        let rate =
            MeterRate::new(meter_id, tiers, included_quantity, effective_date).map_err(|err| {
                let target = match &err {
                    stackbill_core::rating::RatingError::InvalidRate { target, .. } => at(target),
                    _ => at("rates"),
                };
                invalid(target, err.to_string())
            })?;
        if rates
            .iter()
            .any(|r: &MeterRate| r.meter_id == meter_id && r.effective_date == effective_date)
        {
            return Err(invalid(
                at("effectiveDate"),
                format!("meter {meter_id} has two entries effective {effective_date}"),
            ));
        }
        rates.push(rate);
    }
    Ok(RateCard {
        name,
        currency,
        rates,
    })
}

/// Store a new version of a rate card
#[utoipa::path(
    put,
    path = "/v1/ratecards/{name}",
    tag = "billing",
    params(
        ("name" = String, Path, description = "rate card"),
        ("partnerId" = String, Query, description = "admin: the owning partner (default: shared)"),
    ),
    request_body = RateCardBody,
    responses(
        (status = 200, body = RateCardDto),
        (status = 201, description = "created", body = RateCardDto),
        crate::error::ArmError,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn put_rate_card(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    query: QueryParams,
    JsonBody(body): JsonBody<RateCardBody>,
) -> Result<Response, ApiError> {
    let name: RateCardName = param(&name, "name")?;
    let owner = card_owner(&caller, &query)?;
    if let CardOwner::Partner(partner) = &owner
        && state.store.partner(partner.clone()).await?.is_none()
    {
        return Err(ApiError::from(stackbill_store::StoreError::UnknownPartner(
            partner.clone(),
        )));
    }
    let card = rate_card(name, body)?;
    let written = state.store.put_rate_card(card.clone(), owner).await?;
    let status = if written == Written::Created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(RateCardDto::from(card))).into_response())
}

/// A rate card
#[utoipa::path(
    get,
    path = "/v1/ratecards/{name}",
    tag = "billing",
    params(
        ("name" = String, Path, description = "rate card"),
        ("partnerId" = String, Query, description = "admin: the owning partner (default: shared)"),
        ("asOf" = String, Query, description = "RFC 3339 instant"),
    ),
    responses((status = 200, body = RateCardDto), crate::error::ArmError),
    security(("bearer" = []))
)]
pub(crate) async fn get_rate_card(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    query: QueryParams,
) -> Result<Json<RateCardDto>, ApiError> {
    let name: RateCardName = param(&name, "name")?;
    let as_of = query.instant("asOf")?;
    let by_partner = caller.partner_scope()?.is_some();
    let card = match card_owner(&caller, &query)? {
        // A partner reads its own card of that name, else the shared one.
        CardOwner::Partner(partner) if by_partner => {
            (state.store)
                .rate_card_for(Some(partner), name.clone(), as_of)
                .await?
        }
        owner => state.store.rate_card(owner, name.clone(), as_of).await?,
    };
    let card = card.ok_or_else(|| rate_card_not_found(&name))?;
    Ok(Json(card.into()))
}

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
    responses((status = 200, body = crate::dto::ListDto<InvoiceDto>), crate::error::ArmError),
    security(("bearer" = []))
)]
pub(crate) async fn list_invoices(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    query: QueryParams,
    uri: OriginalUri,
) -> Result<Json<ListDto<InvoiceDto>>, ApiError> {
    let period: Period = query.parsed("period")?.ok_or_else(|| {
        ApiError::new(ErrorCode::InvalidParameter, "period is required (YYYY-MM)")
            .with_target("period")
    })?;
    let mut partner = query.parsed::<PartnerId>("partnerId")?;
    if let Some(own) = caller.partner_scope()? {
        if partner.as_ref().is_some_and(|p| p != own) {
            return crate::page::page(Vec::<InvoiceDto>::new(), &query, &uri);
        }
        partner = Some(own.clone());
    }
    let invoices = state
        .store
        .invoices(period, partner, query.instant("asOf")?)
        .await?;
    let meters = meter_names(&state).await?;
    let dtos: Vec<InvoiceDto> = invoices
        .into_iter()
        .map(|i| invoice_dto(i, &meters))
        .collect();
    crate::page::page(dtos, &query, &uri)
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
    responses((status = 200, body = crate::dto::ListDto<InvoiceDto>), crate::error::ArmError),
    security(("bearer" = []))
)]
pub(crate) async fn finalize(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(period): Path<String>,
    query: QueryParams,
) -> Result<Json<ListDto<InvoiceDto>>, ApiError> {
    let period: Period = param(&period, "period")?;
    let mut partner = query.parsed::<PartnerId>("partnerId")?;
    if let Some(own) = caller.partner_scope()? {
        if partner.as_ref().is_some_and(|p| p != own) {
            return Err(forbidden("a partner token finalizes its own invoices only")
                .with_target("partnerId"));
        }
        partner = Some(own.clone());
    }
    let invoices = state.store.finalize_period(period, partner).await?;
    let meters = meter_names(&state).await?;
    Ok(Json(ListDto {
        value: invoices
            .into_iter()
            .map(|i| invoice_dto(i, &meters))
            .collect(),
        next_link: None,
    }))
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
