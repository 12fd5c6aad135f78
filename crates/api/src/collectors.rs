//! Handlers of a registration's collector (SPEC §10): read, configured and removed by an
//! admin or the partner that owns the registration. A partner gives the client secret or
//! certificate (and CAs) as values, stored sealed with the server's key; files on the server
//! may be named by an admin only, since a partner could otherwise have any file the server
//! can read sent to an endpoint of its choice.

use axum::Extension;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use stackbill_core::period::{hour_number, hour_start};
use stackbill_core::{RegistrationName, SubscriptionId};
use stackbill_store::{CaSource, ClientCredential, CollectorConfig, Written};

use crate::access::{Caller, check_registration, forbidden, registration_not_found};
use crate::dto::{CollectorBody, CollectorDto};
use crate::error::{ApiError, ErrorCode};
use crate::extract::{JsonBody, field, instant, param};
use crate::routes::{ApiResult, written};
use crate::state::AppState;

fn no_collector(name: &RegistrationName) -> ApiError {
    ApiError::new(
        ErrorCode::CollectorNotFound,
        format!("registration '{name}' has no collector"),
    )
}

fn invalid(target: &str, message: String) -> ApiError {
    ApiError::new(ErrorCode::InvalidParameter, message).with_target(target)
}

/// The one credential of a body, sealed when given as a value.
fn credential(
    state: &AppState,
    caller: &Caller,
    name: &RegistrationName,
    body: &CollectorBody,
) -> Result<ClientCredential, ApiError> {
    let given: Vec<(&str, &String)> = [
        ("clientSecret", body.client_secret.as_ref()),
        ("clientCertificate", body.client_certificate.as_ref()),
        ("clientSecretFile", body.client_secret_file.as_ref()),
        (
            "clientCertificateFile",
            body.client_certificate_file.as_ref(),
        ),
    ]
    .into_iter()
    .filter_map(|(field, value)| value.map(|v| (field, v)))
    .collect();
    let [(kind, value)] = given[..] else {
        return Err(invalid(
            "clientSecret",
            "give exactly one of clientSecret, clientCertificate, clientSecretFile and \
             clientCertificateFile"
                .to_owned(),
        ));
    };
    if value.trim().is_empty() {
        return Err(invalid(kind, format!("{kind} is empty")));
    }
    let seal = |plaintext: &str| {
        let context = ClientCredential::context(name, kind);
        state
            .secrets
            .seal(plaintext.as_bytes(), &context)
            .map_err(|err| {
                tracing::error!(%err, "cannot seal a collector's secret");
                ApiError::new(
                    ErrorCode::InternalServerError,
                    "the server cannot seal the secret: see its log".to_owned(),
                )
            })
    };
    match kind {
        "clientSecret" => Ok(ClientCredential::SealedSecret(seal(value)?)),
        "clientCertificate" => {
            if !(value.contains("-----BEGIN CERTIFICATE-----")
                && value.contains("PRIVATE KEY-----"))
            {
                return Err(invalid(
                    kind,
                    "clientCertificate must be PEM text holding the certificate and its \
                     PKCS#8 RSA private key"
                        .to_owned(),
                ));
            }
            Ok(ClientCredential::SealedCertificate(seal(value)?))
        }
        _ => {
            server_file(caller, kind, value)?;
            Ok(if kind == "clientSecretFile" {
                ClientCredential::SecretFile(value.clone())
            } else {
                ClientCredential::CertificateFile(value.clone())
            })
        }
    }
}

/// A file on the server: named by an admin only, and readable.
fn server_file(caller: &Caller, target: &str, path: &str) -> Result<(), ApiError> {
    if !matches!(caller, Caller::Admin) {
        return Err(forbidden(format!(
            "only an admin may name a file on the server ({target}); give the value itself"
        ))
        .with_target(target));
    }
    if std::fs::metadata(path).is_err() {
        return Err(invalid(
            target,
            format!("{target} '{path}' is not a file this server can read"),
        ));
    }
    Ok(())
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

/// Configure how a registration's stack is collected (admin or the owning partner)
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
    let name: RegistrationName = param(&name, "name")?;
    check_registration(&state.store, &caller, &name).await?;
    let Some(registration) = state.store.registration(name.clone()).await? else {
        return Err(registration_not_found(&name));
    };
    let endpoint = CollectorConfig::admin_endpoint_of(&body.admin_endpoint)
        .map_err(|why| invalid("adminEndpoint", format!("adminEndpoint: {why}")))?;
    let provider: SubscriptionId = field(&body.provider_subscription, "providerSubscription")?;
    let directory = CollectorConfig::directory_of(body.directory.as_deref())
        .map_err(|why| invalid("directory", format!("directory: {why}")))?;
    if body.client_id.trim().is_empty() {
        return Err(invalid("clientId", "clientId is empty".to_owned()));
    }
    let ca = match (&body.ca_file, &body.ca_certificates) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "caFile",
                "give caFile or caCertificates, not both".to_owned(),
            ));
        }
        (Some(path), None) => {
            server_file(&caller, "caFile", path)?;
            Some(CaSource::File(path.clone()))
        }
        (None, Some(pem)) if !pem.contains("-----BEGIN CERTIFICATE-----") => {
            return Err(invalid(
                "caCertificates",
                "caCertificates must be PEM text of one or more certificates".to_owned(),
            ));
        }
        (None, Some(pem)) => Some(CaSource::Pem(pem.clone())),
        (None, None) => None,
    };
    let credential = credential(&state, &caller, &registration.name, &body)?;
    let now = state.store.now();
    let start = match &body.start {
        Some(text) => instant(text, "start")?,
        None => now,
    };
    let existed = state.store.collector(name.clone()).await?.is_some();
    let stored = state
        .store
        .put_collector(CollectorConfig {
            registration: registration.name,
            admin_endpoint: endpoint,
            provider_subscription: provider,
            client_id: body.client_id,
            directory,
            credential,
            ca,
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

/// Stop collecting a registration's stack; its usage stays (admin or the owning partner)
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
    let name: RegistrationName = param(&name, "name")?;
    check_registration(&state.store, &caller, &name).await?;
    if !state.store.remove_collector(name.clone()).await? {
        return Err(no_collector(&name));
    }
    Ok(StatusCode::NO_CONTENT)
}
