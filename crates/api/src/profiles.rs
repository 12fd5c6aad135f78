//! Billing profiles: `/v1/partners/{partnerId}/profile` (the issuer of the partner's
//! invoices) and `/v1/subscriptions/{subscriptionId}/profile` (who an invoice is addressed to,
//! and its tax rate). Each PUT records a new version; final invoices print the version
//! recorded by their finalization.

use axum::extract::{Path, State};
use axum::response::Response;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use stackbill_core::profile::{BillingProfile, ProfileOwner};
use stackbill_core::{PartnerId, SubscriptionId};

use crate::access::{Caller, check_subscription};
use crate::error::{ApiError, ErrorCode};
use crate::extract::{JsonBody, QueryParams, decimal, param};
use crate::routes::ApiResult;
use crate::state::AppState;

/// A billing profile, as sent and answered. Every field is optional; a PUT replaces the
/// whole profile.
#[derive(Debug, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProfileDto {
    /// The legal name printed on invoices (the display name when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legal_name: Option<String>,
    /// The postal address, one entry per printed line (at most 6).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub address: Vec<String>,
    /// ISO 3166-1 alpha-2 country code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// Tax or VAT registration number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tax_id: Option<String>,
    /// A partner's invoice number prefix (default `INV`): numbers read
    /// `{prefix}-{YYYY}-{NNNNNN}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoice_prefix: Option<String>,
    /// A subscription's tax rate in percent, applied once to each invoice's total.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub tax_rate_percent: Option<serde_json::Value>,
}

impl ProfileDto {
    fn into_profile(self) -> Result<BillingProfile, ApiError> {
        Ok(BillingProfile {
            legal_name: self.legal_name,
            address: self.address,
            country: self.country,
            tax_id: self.tax_id,
            invoice_prefix: self.invoice_prefix,
            tax_rate_percent: (self.tax_rate_percent.as_ref())
                .map(|rate| decimal(rate, "taxRatePercent"))
                .transpose()?,
        })
    }
}

impl From<BillingProfile> for ProfileDto {
    fn from(profile: BillingProfile) -> Self {
        Self {
            legal_name: profile.legal_name,
            address: profile.address,
            country: profile.country,
            tax_id: profile.tax_id,
            invoice_prefix: profile.invoice_prefix,
            tax_rate_percent: profile
                .tax_rate_percent
                .map(|r| serde_json::Value::String(r.normalize().to_string())),
        }
    }
}

/// Admins and the partner itself; to another partner, and when missing, it does not exist.
async fn check_partner(state: &AppState, caller: &Caller, id: &PartnerId) -> Result<(), ApiError> {
    let visible = caller.partner_scope()?.is_none_or(|own| own == id);
    if !visible || state.store.partner(id.clone()).await?.is_none() {
        return Err(ApiError::new(
            ErrorCode::PartnerNotFound,
            format!("partner '{id}' does not exist"),
        )
        .with_target("partnerId"));
    }
    Ok(())
}

async fn answer(
    state: &AppState,
    owner: ProfileOwner,
    id: String,
    query: &QueryParams,
) -> ApiResult<Json<ProfileDto>> {
    let profile = (state.store)
        .profile(owner, id, query.instant("asOf")?)
        .await?;
    Ok(Json(profile.map(ProfileDto::from).unwrap_or_default()))
}

/// A partner's billing profile
#[utoipa::path(
    get,
    path = "/v1/partners/{partnerId}/profile",
    tag = "directory",
    params(
        ("partnerId" = String, Path, description = "the partner"),
        ("asOf" = String, Query, description = "RFC 3339 instant"),
    ),
    responses((status = 200, body = ProfileDto), crate::error::ArmError),
    security(("bearer" = []))
)]
pub(crate) async fn get_partner_profile(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(partner_id): Path<String>,
    query: QueryParams,
) -> ApiResult<Json<ProfileDto>> {
    let id: PartnerId = param(&partner_id, "partnerId")?;
    check_partner(&state, &caller, &id).await?;
    answer(&state, ProfileOwner::Partner, id.to_string(), &query).await
}

/// Set a partner's billing profile
#[utoipa::path(
    put,
    path = "/v1/partners/{partnerId}/profile",
    tag = "directory",
    params(("partnerId" = String, Path, description = "the partner")),
    request_body = ProfileDto,
    responses((status = 200, body = ProfileDto), crate::error::ArmError),
    security(("bearer" = []))
)]
pub(crate) async fn put_partner_profile(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(partner_id): Path<String>,
    JsonBody(body): JsonBody<ProfileDto>,
) -> ApiResult<Response> {
    let id: PartnerId = param(&partner_id, "partnerId")?;
    check_partner(&state, &caller, &id).await?;
    put(&state, ProfileOwner::Partner, id.to_string(), body).await
}

/// A subscription's billing profile
#[utoipa::path(
    get,
    path = "/v1/subscriptions/{subscriptionId}/profile",
    tag = "directory",
    params(
        ("subscriptionId" = String, Path, description = "GUID"),
        ("asOf" = String, Query, description = "RFC 3339 instant"),
    ),
    responses((status = 200, body = ProfileDto), crate::error::ArmError),
    security(("bearer" = []))
)]
pub(crate) async fn get_subscription_profile(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(subscription_id): Path<String>,
    query: QueryParams,
) -> ApiResult<Json<ProfileDto>> {
    let id: SubscriptionId = param(&subscription_id, "subscriptionId")?;
    check_subscription(&state.store, &caller, id).await?;
    if state.store.subscription(id).await?.is_none() {
        return Err(crate::access::subscription_not_found(id));
    }
    answer(&state, ProfileOwner::Subscription, id.to_string(), &query).await
}

/// Set a subscription's billing profile
#[utoipa::path(
    put,
    path = "/v1/subscriptions/{subscriptionId}/profile",
    tag = "directory",
    params(("subscriptionId" = String, Path, description = "GUID")),
    request_body = ProfileDto,
    responses((status = 200, body = ProfileDto), crate::error::ArmError),
    security(("bearer" = []))
)]
pub(crate) async fn put_subscription_profile(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(subscription_id): Path<String>,
    JsonBody(body): JsonBody<ProfileDto>,
) -> ApiResult<Response> {
    let id: SubscriptionId = param(&subscription_id, "subscriptionId")?;
    check_subscription(&state.store, &caller, id).await?;
    put(&state, ProfileOwner::Subscription, id.to_string(), body).await
}

async fn put(
    state: &AppState,
    owner: ProfileOwner,
    id: String,
    body: ProfileDto,
) -> ApiResult<Response> {
    let profile = body.into_profile()?;
    state.store.put_profile(owner, id, profile.clone()).await?;
    Ok(axum::response::IntoResponse::into_response(Json(
        ProfileDto::from(profile),
    )))
}
