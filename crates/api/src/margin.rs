//! The margin report (`GET /v1/reports/margin`) and the cost rate cards it reads
//! (`/v1/partners/{id}/costRateCard`, `/v1/registrations/{name}/costRateCard`).

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use stackbill_core::margin::NoMargin;
use stackbill_core::sum::exact_add;
use stackbill_core::{PartnerId, Period, RateCardName, RegistrationName};
use stackbill_store::{CostOwner, MarginRow};

use crate::access::{Caller, check_registration, partner_param, period_param};
use crate::error::{ApiError, ErrorCode};
use crate::extract::{JsonBody, QueryParams, param};
use crate::names::InvoiceNames;
use crate::state::AppState;

/// One line of the report.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MarginRowDto {
    /// Who is billed.
    pub partner_id: Option<String>,
    /// The billed subscription.
    pub subscription_id: String,
    /// Its display name.
    pub customer_name: String,
    /// The meter.
    pub meter_id: String,
    /// Its name.
    pub meter_name: String,
    /// Its unit.
    pub unit: String,
    /// The month's quantity.
    pub quantity: String,
    /// What it cost the CSP, in `costCurrency`.
    pub cost: String,
    /// The cost rate cards' currency (absent when no part was priced).
    pub cost_currency: Option<String>,
    /// What was billed for it.
    pub revenue: String,
    /// The invoice's currency.
    pub currency: String,
    /// Usage billed to a stack's default subscription: the CSP's own, cost without revenue.
    pub own_use: bool,
    /// Revenue minus cost (absent when it cannot be computed; `note` says why).
    pub margin: Option<String>,
    /// The margin in percent of the revenue, 2 decimals.
    pub margin_percent: Option<String>,
    /// Why there is no margin.
    pub note: Option<&'static str>,
}

/// The totals of one partner in one currency.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MarginTotalDto {
    /// The partner.
    pub partner_id: Option<String>,
    /// The currency of every amount here.
    pub currency: String,
    /// The cost of the lines that have a margin.
    pub cost: String,
    /// Their revenue.
    pub revenue: String,
    /// Their margin.
    pub margin: String,
    /// Lines left out: no known cost, or cost in another currency.
    pub lines_without_margin: usize,
}

/// The report.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MarginReportDto {
    /// The month.
    pub period: String,
    /// Per partner, subscription and meter.
    pub rows: Vec<MarginRowDto>,
    /// Per partner and currency: amounts of different currencies are never added.
    pub totals: Vec<MarginTotalDto>,
}

/// The report as answered, with names from `names`; an error when a total overflows.
pub fn margin_dto(
    period: Period,
    rows: Vec<MarginRow>,
    names: &InvoiceNames,
) -> Result<MarginReportDto, ApiError> {
    let mut overflow = false;
    // Per (partner, currency): cost, revenue, margin, and the lines without a margin.
    type Sums = (Decimal, Decimal, Decimal, usize);
    let mut totals: BTreeMap<(Option<String>, String), Sums> = BTreeMap::new();
    let rows: Vec<MarginRowDto> = rows
        .into_iter()
        .map(|row| {
            let line = row.line;
            let partner = row.partner_id.as_ref().map(ToString::to_string);
            let total = totals
                .entry((partner.clone(), line.currency.code().to_owned()))
                .or_default();
            match &line.margin {
                Ok(margin) => {
                    match (
                        exact_add(total.0, line.cost),
                        exact_add(total.1, line.revenue),
                        exact_add(total.2, *margin),
                    ) {
                        (Some(cost), Some(revenue), Some(margin)) => {
                            *total = (cost, revenue, margin, total.3);
                        }
                        _ => overflow = true,
                    }
                }
                Err(_) => total.3 += 1,
            }
            let meter = names.meters.get(&line.meter_id);
            MarginRowDto {
                partner_id: partner,
                subscription_id: row.subscription_id.to_string(),
                customer_name: (names.subscriptions.get(&row.subscription_id))
                    .cloned()
                    .unwrap_or_default(),
                meter_id: line.meter_id.to_string(),
                meter_name: meter.map(|m| m.name.clone()).unwrap_or_default(),
                unit: meter.map(|m| m.unit.clone()).unwrap_or_default(),
                quantity: line.quantity.to_string(),
                cost: line.cost.to_string(),
                cost_currency: line.cost_currency.map(|c| c.code().to_owned()),
                revenue: line.revenue.to_string(),
                currency: line.currency.code().to_owned(),
                own_use: line.own_use,
                margin: line.margin.as_ref().ok().map(ToString::to_string),
                margin_percent: line.margin_percent.map(|p| p.to_string()),
                note: match line.margin {
                    Ok(_) => None,
                    Err(NoMargin::CostUnknown) => Some("no cost price for some of its usage"),
                    Err(NoMargin::Currencies) => Some("cost and revenue in different currencies"),
                },
            }
        })
        .collect();
    if overflow {
        return Err(ApiError::new(
            ErrorCode::AmountOverflow,
            "a margin total does not fit in 28 significant digits",
        ));
    }
    Ok(MarginReportDto {
        period: period.to_string(),
        rows,
        totals: totals
            .into_iter()
            .map(
                |((partner_id, currency), (cost, revenue, margin, without))| MarginTotalDto {
                    partner_id,
                    currency,
                    cost: cost.to_string(),
                    revenue: revenue.to_string(),
                    margin: margin.to_string(),
                    lines_without_margin: without,
                },
            )
            .collect(),
    })
}

/// The columns of [`margin_csv`].
pub const MARGIN_CSV_COLUMNS: [&str; 15] = [
    "partnerId",
    "subscriptionId",
    "customerName",
    "meterId",
    "meterName",
    "unit",
    "quantity",
    "cost",
    "costCurrency",
    "revenue",
    "currency",
    "ownUse",
    "margin",
    "marginPercent",
    "note",
];

/// The report's rows as CSV.
pub fn margin_csv(report: &MarginReportDto) -> String {
    let mut csv = csv::Writer::from_writer(Vec::new());
    let _ = csv.write_record(MARGIN_CSV_COLUMNS);
    for r in &report.rows {
        let _ = csv.write_record([
            r.partner_id.as_deref().unwrap_or(""),
            &r.subscription_id,
            &r.customer_name,
            &r.meter_id,
            &r.meter_name,
            &r.unit,
            &r.quantity,
            &r.cost,
            r.cost_currency.as_deref().unwrap_or(""),
            &r.revenue,
            &r.currency,
            if r.own_use { "true" } else { "false" },
            r.margin.as_deref().unwrap_or(""),
            r.margin_percent.as_deref().unwrap_or(""),
            r.note.unwrap_or(""),
        ]);
    }
    String::from_utf8(csv.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// A month's margins
#[utoipa::path(
    get,
    path = "/v1/reports/margin",
    tag = "billing",
    params(
        ("period" = String, Query, description = "YYYY-MM"),
        ("partnerId" = String, Query, description = "only this partner's"),
    ),
    responses((status = 200, body = MarginReportDto), crate::error::ArmError),
    security(("bearer" = []))
)]
pub(crate) async fn get_margin(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    query: QueryParams,
) -> Result<Response, ApiError> {
    let period = period_param(&query)?;
    let partner = partner_param(
        &caller,
        &query,
        "a partner token reads its own margins only",
    )?;
    let rows = state.store.margin_report(period, partner).await?;
    let names = InvoiceNames::load(&state.store).await?;
    let report = margin_dto(period, rows, &names)?;
    let wants_csv = (headers.get(ACCEPT))
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/csv"));
    if wants_csv {
        let mut response = margin_csv(&report).into_response();
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/csv; charset=utf-8"),
        );
        return Ok(response);
    }
    Ok(Json(report).into_response())
}

/// A cost rate card setting.
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CostCardDto {
    /// The rate card with what the CSP pays (null: none).
    pub rate_card: Option<String>,
}

async fn answer(state: &AppState, owner: CostOwner) -> Result<Json<CostCardDto>, ApiError> {
    let card = state.store.cost_card(owner).await?;
    Ok(Json(CostCardDto {
        rate_card: card.map(|c| c.to_string()),
    }))
}

/// Sets `owner`'s cost card, which must be a card `partner` can use.
async fn set(
    state: &AppState,
    owner: CostOwner,
    partner: Option<PartnerId>,
    body: CostCardDto,
) -> Result<Json<CostCardDto>, ApiError> {
    let card = (body.rate_card.as_deref())
        .map(|name| param::<RateCardName>(name, "rateCard"))
        .transpose()?;
    state
        .store
        .put_cost_card(owner, partner, card.clone())
        .await?;
    Ok(Json(CostCardDto {
        rate_card: card.map(|c| c.to_string()),
    }))
}

fn partner_in_scope(caller: &Caller, id: &PartnerId) -> Result<(), ApiError> {
    if caller.partner_scope()?.is_some_and(|own| own != id) {
        return Err(ApiError::new(
            ErrorCode::PartnerNotFound,
            format!("partner '{id}' does not exist"),
        )
        .with_target("partnerId"));
    }
    Ok(())
}

/// A partner's cost rate card
#[utoipa::path(
    get,
    path = "/v1/partners/{partnerId}/costRateCard",
    tag = "billing",
    params(("partnerId" = String, Path, description = "the partner")),
    responses((status = 200, body = CostCardDto), crate::error::ArmError),
    security(("bearer" = []))
)]
pub(crate) async fn get_partner_cost(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(partner): Path<String>,
) -> Result<Json<CostCardDto>, ApiError> {
    let id: PartnerId = param(&partner, "partnerId")?;
    partner_in_scope(&caller, &id)?;
    answer(&state, CostOwner::Partner(id)).await
}

/// Set a partner's cost rate card (what it pays for its stacks' usage)
#[utoipa::path(
    put,
    path = "/v1/partners/{partnerId}/costRateCard",
    tag = "billing",
    params(("partnerId" = String, Path, description = "the partner")),
    request_body = CostCardDto,
    responses((status = 200, body = CostCardDto), crate::error::ArmError),
    security(("bearer" = []))
)]
pub(crate) async fn put_partner_cost(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(partner): Path<String>,
    JsonBody(body): JsonBody<CostCardDto>,
) -> Result<Json<CostCardDto>, ApiError> {
    let id: PartnerId = param(&partner, "partnerId")?;
    partner_in_scope(&caller, &id)?;
    if state.store.partner(id.clone()).await?.is_none() {
        return Err(stackbill_store::StoreError::UnknownPartner(id).into());
    }
    set(&state, CostOwner::Partner(id.clone()), Some(id), body).await
}

/// A registration's cost rate card
#[utoipa::path(
    get,
    path = "/v1/registrations/{name}/costRateCard",
    tag = "billing",
    params(("name" = String, Path, description = "the registration")),
    responses((status = 200, body = CostCardDto), crate::error::ArmError),
    security(("bearer" = []))
)]
pub(crate) async fn get_registration_cost(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<CostCardDto>, ApiError> {
    let name: RegistrationName = param(&name, "name")?;
    check_registration(&state.store, &caller, &name).await?;
    if state.store.registration(name.clone()).await?.is_none() {
        return Err(crate::access::registration_not_found(&name));
    }
    answer(&state, CostOwner::Registration(name)).await
}

/// Set a registration's cost rate card (its stack costs differently from the partner's)
#[utoipa::path(
    put,
    path = "/v1/registrations/{name}/costRateCard",
    tag = "billing",
    params(("name" = String, Path, description = "the registration")),
    request_body = CostCardDto,
    responses((status = 200, body = CostCardDto), crate::error::ArmError),
    security(("bearer" = []))
)]
pub(crate) async fn put_registration_cost(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<CostCardDto>,
) -> Result<Json<CostCardDto>, ApiError> {
    let name: RegistrationName = param(&name, "name")?;
    check_registration(&state.store, &caller, &name).await?;
    if state.store.registration(name.clone()).await?.is_none() {
        return Err(crate::access::registration_not_found(&name));
    }
    let partner = crate::access::registration_partner(&state.store, &name).await?;
    set(&state, CostOwner::Registration(name), partner, body).await
}
