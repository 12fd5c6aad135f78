//! The router: every route, its middleware, and the ARM-shaped fallbacks.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::State;
use axum::http::Uri;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tower_http::catch_panic::CatchPanicLayer;

use crate::auth::authenticate;
use crate::error::{ApiError, ErrorCode};
use crate::extract::MAX_DIRECTORY_BODY_BYTES;
use crate::state::AppState;
use crate::{
    billing, collectors, diff, margin, profiles, ratecards, reconciliation, registrations, routes,
    tokens, usage, webhooks,
};

/// Builds the whole application.
pub fn router(state: AppState) -> Router {
    router_with(state, Router::new())
}

/// The API's router with `pages` (the console's) merged in, behind the same limits, metrics
/// and access log.
pub fn router_with(state: AppState, pages: Router<AppState>) -> Router {
    let v1 = Router::new()
        .route("/partners", get(routes::list_partners))
        .route(
            "/partners/{partner_id}",
            get(routes::get_partner).put(routes::put_partner),
        )
        .route(
            "/partners/{partner_id}/profile",
            get(profiles::get_partner_profile).put(profiles::put_partner_profile),
        )
        .route("/subscriptions", get(routes::list_subscriptions))
        .route(
            "/subscriptions/{subscription_id}/profile",
            get(profiles::get_subscription_profile).put(profiles::put_subscription_profile),
        )
        .route(
            "/subscriptions/{subscription_id}",
            get(routes::get_subscription).put(routes::put_subscription),
        )
        .route("/registrations", get(registrations::list_registrations))
        .route(
            "/registrations/{name}",
            get(registrations::get_registration)
                .put(registrations::put_registration)
                .delete(registrations::delete_registration),
        )
        .route(
            "/registrations/{name}/collector",
            get(collectors::get_collector)
                .put(collectors::put_collector)
                .delete(collectors::delete_collector),
        )
        .route(
            "/registrations/{name}/history",
            get(registrations::registration_history),
        )
        .route(
            "/registrations/{name}/customerSubscriptions",
            get(registrations::list_customer_subscriptions),
        )
        .route(
            "/registrations/{name}/customerSubscriptions/{subscription_id}",
            get(registrations::get_customer_subscription)
                .put(registrations::put_customer_subscription)
                .delete(registrations::delete_customer_subscription),
        )
        .route(
            "/usage",
            post(usage::post_usage)
                .layer(DefaultBodyLimit::max(usage::MAX_USAGE_BODY_BYTES))
                .layer(axum::middleware::from_fn(usage::usage_body_budget)),
        )
        .route("/usage/aggregates", get(usage::get_aggregates))
        .route(
            "/ratecards/{name}",
            get(ratecards::get_rate_card).put(ratecards::put_rate_card),
        )
        .route("/invoices", get(billing::list_invoices))
        .route(
            "/invoices/{subscription_id}/{period}",
            get(billing::get_invoice),
        )
        .route(
            "/invoices/{subscription_id}/{period}/records",
            get(billing::invoice_records),
        )
        .route(
            "/invoices/{subscription_id}/{period}/diff",
            get(diff::invoice_diff),
        )
        .route("/periods/{period}/finalize", post(billing::finalize))
        .route("/reconciliation", get(reconciliation::get_reconciliation))
        .route("/reports/margin", get(margin::get_margin))
        .route(
            "/partners/{partner_id}/costRateCard",
            get(margin::get_partner_cost).put(margin::put_partner_cost),
        )
        .route(
            "/registrations/{name}/costRateCard",
            get(margin::get_registration_cost).put(margin::put_registration_cost),
        )
        .route(
            "/tokens",
            get(tokens::list_tokens).post(tokens::create_token),
        )
        .route("/tokens/{id}", axum::routing::delete(tokens::revoke_token))
        .route(
            "/webhooks",
            get(webhooks::list_webhooks).post(webhooks::create_webhook),
        )
        .route(
            "/webhooks/{id}",
            get(webhooks::get_webhook)
                .put(webhooks::put_webhook)
                .delete(webhooks::delete_webhook),
        )
        .route("/webhooks/{id}/deliveries", get(webhooks::list_deliveries))
        .route(
            "/webhooks/{id}/deliveries/{event_id}/replay",
            post(webhooks::replay_delivery),
        )
        .route("/meters", get(routes::list_meters))
        .route(
            "/meters/{meter_id}",
            get(routes::get_meter).put(routes::put_meter),
        )
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authenticate,
        ))
        .layer(DefaultBodyLimit::max(MAX_DIRECTORY_BODY_BYTES));
    Router::new()
        .route("/healthz", get(routes::healthz))
        .route("/metrics", get(metrics))
        .route(
            "/openapi.json",
            get(|| async { axum::Json(crate::openapi::document()) }),
        )
        .nest("/v1", v1)
        .merge(pages)
        .route_layer(axum::middleware::from_fn(crate::telemetry::track))
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(CatchPanicLayer::custom(
            |_panic: Box<dyn std::any::Any + Send>| {
                tracing::error!("request handler panicked");
                axum::response::IntoResponse::into_response(ApiError::new(
                    ErrorCode::InternalServerError,
                    "an internal error occurred; see the server log",
                ))
            },
        ))
        .layer(axum::middleware::from_fn(request_limits))
        .layer(axum::middleware::from_fn(crate::telemetry::access_log))
}

/// The longest request URI read, in bytes.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// The most header bytes (names and values) a request may carry.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// Refuses an over-long URI (414) or over-large headers (431) in the ARM envelope, before any
/// route sees the request. (Beyond the HTTP server's own buffer, far larger, it answers.)
async fn request_limits(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let uri = request.uri().to_string().len();
    if uri > MAX_URI_BYTES {
        return ApiError::new(
            ErrorCode::RequestUriTooLong,
            format!("the request URI has {uri} bytes; at most {MAX_URI_BYTES} are read"),
        )
        .into_response();
    }
    let headers: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if headers > MAX_HEADER_BYTES {
        return ApiError::new(
            ErrorCode::RequestHeadersTooLarge,
            format!(
                "the request headers have {headers} bytes; at most {MAX_HEADER_BYTES} are read"
            ),
        )
        .into_response();
    }
    next.run(request).await
}

/// `GET /metrics`: Prometheus text format, no token needed (bind it to a private address).
async fn metrics(State(state): State<AppState>) -> axum::response::Response {
    crate::collector_health::record_gauges(&state.store).await;
    let body = crate::telemetry::metrics_handle()
        .map(|h| h.render())
        .unwrap_or_default();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// Unknown paths: the Azure-compatible API (matched case-insensitively), or a 404.
async fn route_not_found(
    state: State<AppState>,
    request: axum::extract::Request,
) -> axum::response::Response {
    if crate::azure::is_azure_path(request.uri().path()) {
        let (method, started) = (request.method().to_string(), std::time::Instant::now());
        let response = crate::azure::dispatch(state, request).await;
        crate::telemetry::record_request(
            "azure".to_owned(),
            method,
            response.status().as_u16(),
            started,
        );
        return response;
    }
    axum::response::IntoResponse::into_response(ApiError::new(
        ErrorCode::RouteNotFound,
        format!("no route matches '{}'", request.uri().path()),
    ))
}

async fn method_not_allowed(uri: Uri) -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("'{}' does not accept this method", uri.path()),
    )
}
