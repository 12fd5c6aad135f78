//! Handlers of a registration's collector (SPEC §10): read by an admin or the partner that
//! owns the registration; configured and removed by an admin only, since the settings name
//! files on the server (the client secret, CAs).

use axum::Extension;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use stackbill_core::period::{hour_number, hour_start};
use stackbill_core::{RegistrationName, SubscriptionId, TenantId};
use stackbill_store::{CollectorConfig, Written};

use crate::access::{Caller, check_registration, forbidden, registration_not_found};
use crate::dto::{CollectorBody, CollectorDto};
use crate::error::{ApiError, ErrorCode};
use crate::extract::{JsonBody, field, instant, param};
use crate::routes::{ApiResult, written};
use crate::state::AppState;

fn admin_only(caller: &Caller) -> Result<(), ApiError> {
    match caller {
        Caller::Admin => Ok(()),
        _ => Err(forbidden(
            "only an admin may configure a collector: its settings name files on the server",
        )),
    }
}

fn no_collector(name: &RegistrationName) -> ApiError {
    ApiError::new(
        ErrorCode::CollectorNotFound,
        format!("registration '{name}' has no collector"),
    )
}

fn invalid(target: &str, message: String) -> ApiError {
    ApiError::new(ErrorCode::InvalidParameter, message).with_target(target)
}

/// A registration's collector: settings, last success and error, lag, held rows
#[utoipa::path(
    get,
    path = "/v1/registrations/{name}/collector",
    tag = "collectors",
    params(("name" = String, Path, description = "registration name")),
    responses((status = 200, body = crate::dto::CollectorDto), crate::error::ArmError),
    security(("bearer" = []))
)]
pub(crate) async fn get_collector(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> ApiResult<Json<CollectorDto>> {
    let name: RegistrationName = param(&name, "name")?;
    check_registration(&state.store, &caller, &name).await?;
    let collector = state
        .store
        .collector(name.clone())
        .await?
        .ok_or_else(|| no_collector(&name))?;
    Ok(Json(CollectorDto::new(collector, state.store.now())))
}

/// Configure how a registration's stack is collected (admin)
#[utoipa::path(
    put,
    path = "/v1/registrations/{name}/collector",
    tag = "collectors",
    params(("name" = String, Path, description = "registration name")),
    request_body = crate::dto::CollectorBody,
    responses(
        (status = 200, body = crate::dto::CollectorDto),
        (status = 201, description = "created", body = crate::dto::CollectorDto),
        crate::error::ArmError,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn put_collector(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<CollectorBody>,
) -> ApiResult {
    admin_only(&caller)?;
    let name: RegistrationName = param(&name, "name")?;
    if state.store.registration(name.clone()).await?.is_none() {
        return Err(registration_not_found(&name));
    }
    let endpoint = body.admin_endpoint.trim().trim_end_matches('/').to_owned();
    let scheme_ok = endpoint.starts_with("https://") || endpoint.starts_with("http://");
    if !scheme_ok || endpoint.contains('?') || endpoint.contains(char::is_whitespace) {
        return Err(invalid(
            "adminEndpoint",
            format!(
                "adminEndpoint '{}' is not an http(s) URL",
                body.admin_endpoint
            ),
        ));
    }
    let provider: SubscriptionId = field(&body.provider_subscription, "providerSubscription")?;
    let directory = body.directory.unwrap_or_default();
    if !directory.is_empty()
        && !directory.eq_ignore_ascii_case("adfs")
        && directory.parse::<TenantId>().is_err()
    {
        return Err(invalid(
            "directory",
            format!("directory '{directory}' is neither a directory (tenant) GUID nor adfs"),
        ));
    }
    match (&body.client_secret_file, &body.client_certificate_file) {
        (Some(_), None) | (None, Some(_)) => {}
        _ => {
            return Err(invalid(
                "clientSecretFile",
                "give one of clientSecretFile and clientCertificateFile".to_owned(),
            ));
        }
    }
    for (path, target) in [
        (body.client_secret_file.as_ref(), "clientSecretFile"),
        (
            body.client_certificate_file.as_ref(),
            "clientCertificateFile",
        ),
        (body.ca_file.as_ref(), "caFile"),
    ] {
        if let Some(path) = path
            && std::fs::metadata(path).is_err()
        {
            return Err(invalid(
                target,
                format!("{target} '{path}' is not a file this server can read"),
            ));
        }
    }
    let now = state.store.now();
    let start = match &body.start {
        Some(text) => instant(text, "start")?,
        None => now,
    };
    let existed = state.store.collector(name.clone()).await?.is_some();
    let stored = state
        .store
        .put_collector(CollectorConfig {
            registration: name,
            admin_endpoint: endpoint,
            provider_subscription: provider,
            client_id: body.client_id,
            directory: if directory.eq_ignore_ascii_case("adfs") {
                "adfs".to_owned()
            } else {
                directory
            },
            secret_file: body.client_secret_file,
            certificate_file: body.client_certificate_file,
            ca_file: body.ca_file,
            start: hour_start(hour_number(start)).unwrap_or(start),
        })
        .await?;
    let outcome = if existed {
        Written::Updated
    } else {
        Written::Created
    };
    Ok(written(outcome, CollectorDto::new(stored, now)))
}

/// Stop collecting a registration's stack; its usage stays (admin)
#[utoipa::path(
    delete,
    path = "/v1/registrations/{name}/collector",
    tag = "collectors",
    params(("name" = String, Path, description = "registration name")),
    responses((status = 204, description = "removed"), crate::error::ArmError),
    security(("bearer" = []))
)]
pub(crate) async fn delete_collector(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    admin_only(&caller)?;
    let name: RegistrationName = param(&name, "name")?;
    if !state.store.remove_collector(name.clone()).await? {
        return Err(no_collector(&name));
    }
    Ok(StatusCode::NO_CONTENT)
}
