//! Metrics in the Prometheus text format, served at `GET /metrics`. Label values are bounded:
//! route templates (never raw paths), methods, status codes and error codes, never record\n//! or tenant ids; collector series carry the registration name (one per configured stack).

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Requests, by route template, method and status.
pub const HTTP_REQUESTS: &str = "stackbill_http_requests_total";
/// Request latency, by route template and method.
pub const HTTP_SECONDS: &str = "stackbill_http_request_duration_seconds";
/// Usage records, by outcome (`accepted`, `duplicate`, `conflict`, `rejected`) and error code.
pub const USAGE_RECORDS: &str = "stackbill_usage_records_total";
/// Time to parse, validate and durably store one usage request.
pub const USAGE_BATCH_SECONDS: &str = "stackbill_usage_batch_duration_seconds";
/// Records per second of the last usage request.
pub const USAGE_RECORDS_PER_SECOND: &str = "stackbill_usage_import_records_per_second";

/// Closed reported hours a stack's collector has not collected yet, by registration.
pub const COLLECTOR_LAG_HOURS: &str = "stackbill_collector_lag_hours";
/// When a stack's collection last succeeded (Unix seconds), by registration.
pub const COLLECTOR_LAST_SUCCESS: &str = "stackbill_collector_last_success_timestamp_seconds";
/// 1 while a stack's last collection failed, by registration.
pub const COLLECTOR_FAILING: &str = "stackbill_collector_failing";
/// Rows held for user subscriptions the stack has not listed, by registration.
pub const COLLECTOR_HELD_ROWS: &str = "stackbill_collector_held_rows";

const LATENCY_BUCKETS_SECONDS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The process-wide recorder, installed on first use.
pub fn metrics_handle() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets(LATENCY_BUCKETS_SECONDS)
                .ok()?;
            match builder.install_recorder() {
                Ok(handle) => Some(handle),
                Err(err) => {
                    tracing::warn!(error = %err, "metrics are not recorded");
                    None
                }
            }
        })
        .clone()
}

/// Counts and times every matched request by its route template.
pub(crate) async fn track(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().to_string();
    let started = Instant::now();
    let mut response = next.run(request).await;
    record_request(route.clone(), method, response.status().as_u16(), started);
    response.extensions_mut().insert(Route(route));
    response
}

/// The route template that answered, for the access log.
#[derive(Debug, Clone)]
pub(crate) struct Route(pub(crate) String);

/// Gives every answer a fresh `x-ms-request-id`, as ARM's do, to quote in support requests,
/// and writes one access-log line per request with it: method, route (the matched template,
/// else the path), status and latency.
pub(crate) async fn access_log(request: Request, next: Next) -> Response {
    let id = uuid::Uuid::new_v4().hyphenated().to_string();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let started = Instant::now();
    let mut response = next.run(request).await;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let route = response
        .extensions()
        .get::<Route>()
        .map_or(path, |route| route.0.clone());
    tracing::info!(
        target: "stackbill::access",
        request_id = %id,
        %method,
        route = %route,
        status = response.status().as_u16(),
        latency_ms = format_args!("{latency_ms:.1}"),
        "request"
    );
    if let Ok(value) = axum::http::HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-ms-request-id", value);
    }
    response
}

/// Records one answered request.
pub(crate) fn record_request(route: String, method: String, status: u16, started: Instant) {
    metrics::counter!(HTTP_REQUESTS, "route" => route.clone(), "method" => method.clone(), "status" => status.to_string())
        .increment(1);
    metrics::histogram!(HTTP_SECONDS, "route" => route, "method" => method)
        .record(started.elapsed().as_secs_f64());
}
