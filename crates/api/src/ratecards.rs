//! `PUT|GET /v1/ratecards/{name}`: rate cards, each a partner's own or shared by an admin
//! (SPEC §7), stored as versions.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use stackbill_core::rating::{CardOwner, MeterRate, Tier};
use stackbill_core::{MeterId, PartnerId, RateCard, RateCardName};
use stackbill_store::Written;

use crate::access::Caller;
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
