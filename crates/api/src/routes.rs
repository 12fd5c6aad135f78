//! Handlers of the native directory routes (partners, subscriptions, meters) and the
//! helpers every native handler shares: parse, call the store, shape the answer.

use axum::Extension;
use axum::Json;
use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use stackbill_core::{
    Meter, MeterId, Partner, PartnerId, RateCardName, Subscription, SubscriptionId, TenantId,
};
use stackbill_store::Written;

use crate::access::{
    Caller, check_subscription, forbidden, subscription_not_found, subscription_partner,
};
use crate::dto::{
    ListDto, MeterBody, MeterDto, PartnerBody, PartnerDto, SubscriptionBody, SubscriptionDto,
};
use crate::error::{ApiError, ErrorCode};
use crate::extract::{JsonBody, QueryParams, decimal, field, param};
use crate::page::page;
use crate::state::AppState;

pub(crate) type ApiResult<T = Response> = Result<T, ApiError>;

/// The tenant of a customer token: it sees that tenant's mappings and nothing else.
pub(crate) fn customer_tenant(caller: &Caller) -> Option<TenantId> {
    match caller {
        Caller::Customer(_, tenant) => Some(*tenant),
        _ => None,
    }
}

/// Checks that an identifier repeated in the body matches the path.
pub(crate) fn same_as_path<T: PartialEq + std::fmt::Display + std::str::FromStr>(
    body: Option<&str>,
    path: &T,
    name: &str,
) -> ApiResult<()>
where
    T::Err: std::fmt::Display,
{
    match body {
        Some(value) if field::<T>(value, name)? != *path => Err(ApiError::new(
            ErrorCode::InvalidRequestContent,
            format!("{name} in the body ('{value}') differs from the path ('{path}')"),
        )
        .with_target(name)),
        _ => Ok(()),
    }
}

pub(crate) fn written<T: Serialize>(written: Written, body: T) -> Response {
    let status = match written {
        Written::Created => StatusCode::CREATED,
        Written::Updated => StatusCode::OK,
    };
    (status, Json(body)).into_response()
}

pub(crate) async fn healthz(State(state): State<AppState>) -> Response {
    let backend = state.store.backend_name();
    match state.store.health().await {
        Ok(()) => {
            let lagging = crate::collector_health::lagging(&state.store).await;
            Json(serde_json::json!({
                "status": "ok",
                "database": "ok",
                "backend": backend,
                "laggingCollectors": lagging,
            }))
            .into_response()
        }
        Err(err) => {
            tracing::warn!(error = %err, "health check failed");
            let database = err.storage_fault().map_or("unavailable", |f| f.as_str());
            let mut response = (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({
                    "status": "unavailable",
                    "database": database,
                    "backend": backend,
                })),
            )
                .into_response();
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("5"),
            );
            response
        }
    }
}

/// Create or rename a partner (admin)
#[utoipa::path(
    put,
    path = "/v1/partners/{partnerId}",
    tag = "directory",
    params(("partnerId" = String, Path, description = "the partner")),
    request_body = crate::dto::PartnerBody,
    responses(
        (status = 200, body = crate::dto::PartnerDto),
        (status = 201, description = "created", body = crate::dto::PartnerDto),
        crate::error::ArmError,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn put_partner(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(partner_id): Path<String>,
    JsonBody(body): JsonBody<PartnerBody>,
) -> ApiResult {
    let id: PartnerId = param(&partner_id, "partnerId")?;
    same_as_path(body.partner_id.as_deref(), &id, "partnerId")?;
    caller.admin()?;
    let partner = Partner {
        id,
        name: body.name,
    };
    let outcome = state.store.put_partner(partner.clone()).await?;
    Ok(written(outcome, PartnerDto::from(partner)))
}

/// One partner
#[utoipa::path(
    get,
    path = "/v1/partners/{partnerId}",
    tag = "directory",
    params(("partnerId" = String, Path, description = "the partner")),
    responses((status = 200, body = crate::dto::PartnerDto), crate::error::ArmError),
    security(("bearer" = []))
)]
pub(crate) async fn get_partner(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(partner_id): Path<String>,
) -> ApiResult<Json<PartnerDto>> {
    let id: PartnerId = param(&partner_id, "partnerId")?;
    let visible = caller.partner_scope()?.is_none_or(|own| *own == id);
    let partner = state
        .store
        .partner(id.clone())
        .await?
        .filter(|_| visible)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::PartnerNotFound,
                format!("partner '{id}' does not exist"),
            )
            .with_target("partnerId")
        })?;
    Ok(Json(partner.into()))
}

/// Partners
#[utoipa::path(
    get,
    path = "/v1/partners",
    tag = "directory",
    params(
        ("$top" = String, Query, description = "at most 1,000"),
        ("$skipToken" = String, Query, description = "from a nextLink"),
    ),
    responses(
        (status = 200, body = crate::dto::ListDto<crate::dto::PartnerDto>),
        crate::error::ArmError,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn list_partners(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    query: QueryParams,
    uri: OriginalUri,
) -> ApiResult<Json<ListDto<PartnerDto>>> {
    let scope = caller.partner_scope()?;
    let mut partners = state.store.partners().await?;
    partners.retain(|p| scope.is_none_or(|own| *own == p.id));
    page(partners, &query, &uri)
}

/// Create or replace a billing subscription
#[utoipa::path(
    put,
    path = "/v1/subscriptions/{subscriptionId}",
    tag = "directory",
    params(("subscriptionId" = String, Path, description = "GUID")),
    request_body = crate::dto::SubscriptionBody,
    responses(
        (status = 200, body = crate::dto::SubscriptionDto),
        (status = 201, description = "created", body = crate::dto::SubscriptionDto),
        crate::error::ArmError,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn put_subscription(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(subscription_id): Path<String>,
    JsonBody(body): JsonBody<SubscriptionBody>,
) -> ApiResult {
    let id: SubscriptionId = param(&subscription_id, "subscriptionId")?;
    same_as_path(body.subscription_id.as_deref(), &id, "subscriptionId")?;
    if let Some(own) = caller.partner_scope()? {
        // A partner manages its own subscriptions, and only under its own name.
        let existing = subscription_partner(&state.store, id).await?;
        let exists = state.store.subscription(id).await?.is_some();
        if exists && existing.as_ref() != Some(own) {
            return Err(subscription_not_found(id));
        }
        if body.partner_id.as_deref() != Some(own.as_str()) {
            return Err(forbidden(format!(
                "a partner token manages only subscriptions with partnerId '{own}'"
            ))
            .with_target("partnerId"));
        }
    }
    let subscription = Subscription {
        id,
        offer_type: field(&body.offer_type, "offerType")?,
        partner_id: body
            .partner_id
            .as_deref()
            .map(|p| field(p, "partnerId"))
            .transpose()?,
        customer_tenant_id: body
            .customer_tenant_id
            .as_deref()
            .map(|t| field(t, "customerTenantId"))
            .transpose()?,
        display_name: body.display_name.unwrap_or_default(),
        rate_card: match body.rate_card.as_deref() {
            Some(name) => field(name, "rateCard")?,
            None => RateCardName::default_card(),
        },
        markup_percent: match &body.markup_percent {
            Some(value) => decimal(value, "markupPercent")?,
            None => rust_decimal::Decimal::ZERO,
        },
    };
    let pricing_from = body
        .pricing_from
        .as_deref()
        .map(|p| field(p, "pricingFrom"))
        .transpose()?;
    let outcome = (state.store)
        .put_subscription_from(subscription.clone(), pricing_from)
        .await?;
    Ok(written(outcome, SubscriptionDto::from(subscription)))
}

/// One billing subscription
#[utoipa::path(
    get,
    path = "/v1/subscriptions/{subscriptionId}",
    tag = "directory",
    params(("subscriptionId" = String, Path, description = "GUID")),
    responses((status = 200, body = crate::dto::SubscriptionDto), crate::error::ArmError),
    security(("bearer" = []))
)]
pub(crate) async fn get_subscription(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(subscription_id): Path<String>,
) -> ApiResult<Json<SubscriptionDto>> {
    let id: SubscriptionId = param(&subscription_id, "subscriptionId")?;
    check_subscription(&state.store, &caller, id).await?;
    let subscription = state.store.subscription(id).await?.ok_or_else(|| {
        ApiError::new(
            ErrorCode::SubscriptionNotFound,
            format!("subscription {id} does not exist"),
        )
        .with_target("subscriptionId")
    })?;
    Ok(Json(subscription.into()))
}

/// Billing subscriptions
#[utoipa::path(
    get,
    path = "/v1/subscriptions",
    tag = "directory",
    params(
        ("partnerId" = String, Query, description = "only this partner's"),
        ("$top" = String, Query, description = "at most 1,000"),
        ("$skipToken" = String, Query, description = "from a nextLink"),
    ),
    responses(
        (status = 200, body = crate::dto::ListDto<crate::dto::SubscriptionDto>),
        crate::error::ArmError,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn list_subscriptions(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    query: QueryParams,
    uri: OriginalUri,
) -> ApiResult<Json<ListDto<SubscriptionDto>>> {
    let mut partner = query.parsed::<PartnerId>("partnerId")?;
    if let Some(own) = caller.partner_scope()? {
        if partner.as_ref().is_some_and(|p| p != own) {
            return page(Vec::<Subscription>::new(), &query, &uri);
        }
        partner = Some(own.clone());
    }
    page(state.store.subscriptions(partner).await?, &query, &uri)
}

/// Add or override a meter (admin)
#[utoipa::path(
    put,
    path = "/v1/meters/{meterId}",
    tag = "meters",
    params(("meterId" = String, Path, description = "GUID")),
    request_body = crate::dto::MeterBody,
    responses(
        (status = 200, body = crate::dto::MeterDto),
        (status = 201, description = "created", body = crate::dto::MeterDto),
        crate::error::ArmError,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn put_meter(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(meter_id): Path<String>,
    JsonBody(body): JsonBody<MeterBody>,
) -> ApiResult {
    let id: MeterId = param(&meter_id, "meterId")?;
    same_as_path(body.meter_id.as_deref(), &id, "meterId")?;
    caller.admin()?;
    let meter = Meter {
        id,
        name: body.name,
        unit: body.unit,
        category: body.category,
    };
    let outcome = state.store.put_meter(meter.clone()).await?;
    Ok(written(outcome, MeterDto::from(meter)))
}

/// One meter
#[utoipa::path(
    get,
    path = "/v1/meters/{meterId}",
    tag = "meters",
    params(("meterId" = String, Path, description = "GUID")),
    responses((status = 200, body = crate::dto::MeterDto), crate::error::ArmError),
    security(("bearer" = []))
)]
pub(crate) async fn get_meter(
    State(state): State<AppState>,
    Path(meter_id): Path<String>,
) -> ApiResult<Json<MeterDto>> {
    let id: MeterId = param(&meter_id, "meterId")?;
    let meter = state.store.meter(id).await?.ok_or_else(|| {
        ApiError::new(
            ErrorCode::MeterNotFound,
            format!("meter {id} is not in the catalog"),
        )
        .with_target("meterId")
    })?;
    Ok(Json(meter.into()))
}

/// The meter catalog
#[utoipa::path(
    get,
    path = "/v1/meters",
    tag = "meters",
    params(
        ("$top" = String, Query, description = "at most 1,000"),
        ("$skipToken" = String, Query, description = "from a nextLink"),
    ),
    responses(
        (status = 200, body = crate::dto::ListDto<crate::dto::MeterDto>),
        crate::error::ArmError,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn list_meters(
    State(state): State<AppState>,
    query: QueryParams,
    uri: OriginalUri,
) -> ApiResult<Json<ListDto<MeterDto>>> {
    page(state.store.meters().await?, &query, &uri)
}
