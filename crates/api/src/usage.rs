//! `POST /v1/usage` and `GET /v1/usage/aggregates`.

use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::HeaderMap;
use axum::http::header::CONTENT_TYPE;
use axum::{Extension, Json};
use jiff::Timestamp;
use serde::Serialize;
use stackbill_core::period::{hour_number, hour_start, is_whole_hour};
use stackbill_core::routing::check_stack_record;
use stackbill_core::{CloudId, IngestTally, Rejection, SubscriptionId, TenantId};
use stackbill_io::{Format, Item, ReadRecords, read_usage};
use stackbill_store::{UsageAggregate, UsageScope};

use crate::access::{Caller, check_subscription, forbidden, subscription_partner};
use crate::dto::ListDto;
use crate::error::{ApiError, ErrorCode};
use crate::extract::QueryParams;
use crate::state::AppState;

/// The largest usage body accepted: about 50,000 records.
pub const MAX_USAGE_BODY_BYTES: usize = 32 * 1024 * 1024;

/// Usage bodies held in memory at once, across every request: two of the largest. A request
/// waits for its share (its `Content-Length`, or the largest body when it does not say)
/// before its body is read, so concurrent uploads cannot take the server's memory.
pub const USAGE_BODY_BUDGET_BYTES: usize = 2 * MAX_USAGE_BODY_BYTES;

/// Shares of [`USAGE_BODY_BUDGET_BYTES`], in KiB.
pub(crate) struct BodyBudget {
    kib: tokio::sync::Semaphore,
    most_kib: u32,
}

impl BodyBudget {
    pub(crate) fn new(budget_bytes: usize, most_bytes: usize) -> Self {
        Self {
            kib: tokio::sync::Semaphore::new(budget_bytes / 1024),
            most_kib: u32::try_from(most_bytes.min(budget_bytes) / 1024).unwrap_or(u32::MAX),
        }
    }

    /// Waits until a body of `length` bytes (`None`: unknown, the largest) fits.
    pub(crate) async fn admit(
        &self,
        length: Option<u64>,
    ) -> Option<tokio::sync::SemaphorePermit<'_>> {
        let kib = length.map_or(self.most_kib, |bytes| {
            u32::try_from(bytes.div_ceil(1024))
                .map_or(self.most_kib, |kib| kib.clamp(1, self.most_kib))
        });
        self.kib.acquire_many(kib).await.ok()
    }
}

static USAGE_BODIES: std::sync::LazyLock<BodyBudget> =
    std::sync::LazyLock::new(|| BodyBudget::new(USAGE_BODY_BUDGET_BYTES, MAX_USAGE_BODY_BYTES));

/// Holds a request to `POST /v1/usage` until its body fits in the budget, and keeps its share
/// until the answer is made.
pub(crate) async fn usage_body_budget(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let length = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let Some(_share) = USAGE_BODIES.admit(length).await else {
        return axum::response::IntoResponse::into_response(ApiError::new(
            ErrorCode::ServiceUnavailable,
            "the server is shutting down; try again",
        ));
    };
    next.run(request).await
}

/// A conflicting record: same key, other content; the stored record stands.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConflictDto {
    index: u64,
    id: String,
}

/// A rejected record.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RejectionDto {
    index: u64,
    id: Option<String>,
    code: &'static str,
    target: String,
    message: String,
}

impl From<Rejection> for RejectionDto {
    fn from(rejection: Rejection) -> Self {
        Self {
            index: rejection.index,
            id: rejection.id,
            code: rejection.error.code.as_str(),
            target: rejection.error.target.into_owned(),
            message: rejection.error.message,
        }
    }
}

impl From<IngestTally> for IngestDto {
    fn from(tally: IngestTally) -> Self {
        Self {
            accepted: tally.accepted,
            duplicates: tally.duplicates,
            conflicts: (tally.conflicts.into_iter())
                .map(|conflict| ConflictDto {
                    index: conflict.index,
                    id: conflict.id.unwrap_or_default(),
                })
                .collect(),
            rejected: tally.rejected.into_iter().map(RejectionDto::from).collect(),
        }
    }
}

/// The answer to `POST /v1/usage`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IngestDto {
    accepted: u64,
    duplicates: u64,
    conflicts: Vec<ConflictDto>,
    rejected: Vec<RejectionDto>,
}

fn body_format(headers: &HeaderMap) -> Result<Format, ApiError> {
    let mime = headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(|mime| mime.trim().to_ascii_lowercase());
    match mime.as_deref() {
        None | Some("application/x-ndjson" | "application/ndjson" | "application/jsonl") => {
            Ok(Format::Ndjson)
        }
        Some("application/json" | "text/json") => Ok(Format::Json),
        Some(other) => Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!("usage is sent as application/x-ndjson or application/json, not {other}"),
        )),
    }
}

fn parse_body(body: &[u8], format: Format, now: Timestamp) -> ReadRecords {
    let mut read = ReadRecords::default();
    let mut sink = |item: Item| {
        read.push(item, now);
        Ok::<(), std::convert::Infallible>(())
    };
    // Reading from memory cannot fail, and the sink never stops it.
    let _ = read_usage(body, format, &mut sink);
    read
}

/// Send usage records
#[utoipa::path(
    post,
    path = "/v1/usage",
    tag = "usage",
    request_body(
        content = String,
        content_type = "application/x-ndjson",
        description = "NDJSON, or JSON (an array or {\"value\":[...]})"
    ),
    responses((status = 200, body = IngestDto), crate::error::ArmError),
    security(("bearer" = []))
)]
pub(crate) async fn post_usage(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<IngestDto>, ApiError> {
    let only_cloud = match caller {
        Caller::Admin => None,
        Caller::Stack(cloud) => Some(cloud),
        Caller::Partner(_) | Caller::Customer(..) => {
            return Err(forbidden(
                "usage is sent with a stack token (or an admin token)",
            ));
        }
    };
    let started = std::time::Instant::now();
    let format = body_format(&headers)?;
    let body = body.map_err(|rejection| {
        if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                ErrorCode::RequestTooLarge,
                format!(
                    "a usage request carries at most {MAX_USAGE_BODY_BYTES} bytes; \
                     split it into several"
                ),
            )
        } else {
            ApiError::new(
                ErrorCode::InvalidRequestContent,
                format!("the request body could not be read: {rejection}"),
            )
        }
    })?;
    let now = state.store.now();
    let parsed = tokio::task::spawn_blocking(move || parse_body(&body, format, now))
        .await
        .map_err(|err| {
            ApiError::new(
                ErrorCode::InternalServerError,
                format!("parsing failed: {err}"),
            )
        })?;
    let mut read = parsed;
    if let Some(cloud) = only_cloud {
        // A stack forwards its own registration's usage only: other stacks' records, and
        // hours its predecessors covered, are refused one by one.
        let history = state.store.cloud_history(cloud).await?;
        let live = (history.last())
            .map(|(_, span)| *span)
            .filter(|span| span.until.is_none());
        read.refuse(|record| check_stack_record(record, cloud, live).err());
    }
    let ReadRecords {
        positions,
        records,
        rejected,
    } = read;
    let (records, dispositions) = state.store.ingest_returning(records).await?;
    let mut tally = IngestTally {
        rejected,
        ..IngestTally::default()
    };
    tally.record_batch(&positions, records.iter().map(|r| &r.id), dispositions);
    tally.rejected.sort_by_key(|rejection| rejection.index);
    record_usage(&tally, started);
    // The batch is stored; a failure to count its refusals is logged, not answered. A stack's
    // refusals count for its partner (its usage.rejected digest); an admin's for nobody's.
    let partner = match only_cloud {
        Some(cloud) => crate::access::cloud_partner(&state.store, cloud)
            .await
            .unwrap_or_default(),
        None => None,
    };
    let counts = tally.refused_by_code();
    if let Err(error) = state.store.count_rejections(partner, counts).await {
        tracing::warn!(%error, "cannot count the refused records");
    }
    Ok(Json(tally.into()))
}

/// Counts one usage request's outcomes and times it.
fn record_usage(tally: &IngestTally, started: std::time::Instant) {
    use crate::telemetry::{USAGE_BATCH_SECONDS, USAGE_RECORDS, USAGE_RECORDS_PER_SECOND};
    metrics::counter!(USAGE_RECORDS, "outcome" => "accepted").increment(tally.accepted);
    metrics::counter!(USAGE_RECORDS, "outcome" => "duplicate").increment(tally.duplicates);
    metrics::counter!(USAGE_RECORDS, "outcome" => "conflict")
        .increment(tally.conflicts.len() as u64);
    for rejection in &tally.rejected {
        let code = rejection.error.code.as_str();
        metrics::counter!(USAGE_RECORDS, "outcome" => "rejected", "code" => code).increment(1);
    }
    let seconds = started.elapsed().as_secs_f64();
    metrics::histogram!(USAGE_BATCH_SECONDS).record(seconds);
    if seconds > 0.0 {
        metrics::gauge!(USAGE_RECORDS_PER_SECOND).set(tally.records() as f64 / seconds);
    }
}

/// One meter's usage in one hour or day.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AggregateDto {
    #[serde(skip_serializing_if = "Option::is_none")]
    subscription_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cloud_id: Option<String>,
    meter_id: String,
    usage_start_time: String,
    usage_end_time: String,
    quantity: String,
}

fn whole_hour(query: &QueryParams, name: &str) -> Result<i64, ApiError> {
    let instant = query.instant(name)?.ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidParameter,
            format!("{name} is required (an RFC 3339 instant on a whole hour)"),
        )
        .with_target(name)
    })?;
    if !is_whole_hour(instant) {
        return Err(ApiError::new(
            ErrorCode::InvalidParameter,
            format!("{name} must be on a whole UTC hour"),
        )
        .with_target(name));
    }
    Ok(hour_number(instant))
}

fn hour_text(hour: i64) -> String {
    hour_start(hour).map(|t| t.to_string()).unwrap_or_default()
}

/// Usage per meter and hour or day
/// The usage of stack `cloud` that `caller` may see: all of it for an admin; for a partner,
/// what its own registrations of the stack covered, not that of another partner's
/// registration before or after them.
pub async fn cloud_scope(
    store: &stackbill_store::Store,
    caller: &Caller,
    cloud: CloudId,
) -> Result<UsageScope, ApiError> {
    let Some(own) = caller.partner_scope()? else {
        return Ok(UsageScope::Cloud(cloud));
    };
    let mut own_spans = Vec::new();
    for (registration, span) in store.cloud_history(cloud).await? {
        let partner = subscription_partner(store, registration.default_subscription).await?;
        if partner.as_ref() == Some(own) {
            own_spans.push(span);
        }
    }
    if own_spans.is_empty() {
        return Err(ApiError::new(
            ErrorCode::RegistrationNotFound,
            format!("no registration of cloud {cloud} was found"),
        )
        .with_target("cloudId"));
    }
    Ok(UsageScope::CloudWithin(cloud, own_spans))
}

#[utoipa::path(
    get,
    path = "/v1/usage/aggregates",
    tag = "usage",
    params(
        ("subscriptionId" = String, Query, description = "billed subscription"),
        ("tenantId" = String, Query, description = "tenant"),
        ("cloudId" = String, Query, description = "stack"),
        ("from" = String, Query, description = "RFC 3339, whole hour"),
        ("to" = String, Query, description = "RFC 3339, whole hour"),
        ("granularity" = String, Query, description = "Hourly or Daily"),
        ("$top" = String, Query, description = "at most 1,000"),
        ("$skipToken" = String, Query, description = "from a nextLink"),
    ),
    responses((status = 200, body = crate::dto::ListDto<AggregateDto>), crate::error::ArmError),
    security(("bearer" = []))
)]
pub(crate) async fn get_aggregates(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    query: QueryParams,
    uri: OriginalUri,
) -> Result<Json<ListDto<AggregateDto>>, ApiError> {
    let subscription = query.parsed::<SubscriptionId>("subscriptionId")?;
    let tenant = query.parsed::<TenantId>("tenantId")?;
    let cloud = query.parsed::<CloudId>("cloudId")?;
    let mut scope = match (subscription, tenant, cloud) {
        (Some(s), None, None) => UsageScope::Subscription(s),
        (None, Some(t), None) => UsageScope::Tenant(t),
        (None, None, Some(c)) => UsageScope::Cloud(c),
        _ => {
            return Err(ApiError::new(
                ErrorCode::InvalidParameter,
                "give exactly one of subscriptionId, tenantId or cloudId",
            ));
        }
    };
    if caller.partner_scope()?.is_some() {
        match scope.clone() {
            UsageScope::Subscription(id) => check_subscription(&state.store, &caller, id).await?,
            UsageScope::Cloud(cloud) => scope = cloud_scope(&state.store, &caller, cloud).await?,
            UsageScope::CloudWithin(..) => {}
            UsageScope::Tenant(_) => {
                return Err(forbidden(
                    "a partner token asks for usage by subscriptionId or cloudId",
                ));
            }
        }
    }
    let from = whole_hour(&query, "from")?;
    let to = whole_hour(&query, "to")?;
    if to <= from {
        return Err(
            ApiError::new(ErrorCode::InvalidParameter, "to must be after from").with_target("to"),
        );
    }
    let hours_per_bucket = match query
        .0
        .get("granularity")
        .map(|g| g.to_ascii_lowercase())
        .as_deref()
    {
        None | Some("daily") => 24,
        Some("hourly") => 1,
        Some(other) => {
            return Err(ApiError::new(
                ErrorCode::InvalidParameter,
                format!("granularity '{other}' is not Hourly or Daily"),
            )
            .with_target("granularity"));
        }
    };
    let rows = state
        .store
        .usage_aggregates(scope, from, to, hours_per_bucket)
        .await?;
    let items: Vec<AggregateDto> = rows
        .into_iter()
        .map(
            |UsageAggregate {
                 meter_id,
                 start_hour,
                 quantity,
             }| AggregateDto {
                subscription_id: subscription.map(|s| s.to_string()),
                tenant_id: tenant.map(|t| t.to_string()),
                cloud_id: cloud.map(|c| c.to_string()),
                meter_id: meter_id.to_string(),
                usage_start_time: hour_text(start_hour),
                usage_end_time: hour_text(start_hour + hours_per_bucket),
                quantity: quantity.to_string(),
            },
        )
        .collect();
    crate::page::page(items, &query, &uri)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn bodies_wait_for_their_share_of_the_budget() {
        let budget = BodyBudget::new(64 * 1024, 48 * 1024);
        let first = budget.admit(Some(40 * 1024)).await.unwrap();
        // 40 KiB are out: another 40 KiB body waits, a small one goes ahead.
        let waiting =
            tokio::time::timeout(Duration::from_millis(50), budget.admit(Some(40 * 1024)));
        assert!(waiting.await.is_err(), "the second body waits");
        let small = budget.admit(Some(10)).await.unwrap();
        drop((first, small));
        let second = tokio::time::timeout(Duration::from_millis(50), budget.admit(Some(40 * 1024)));
        assert!(second.await.is_ok(), "and goes once the first is done");
        // A body that does not say its size takes the largest share.
        let unknown = budget.admit(None).await.unwrap();
        assert_eq!(unknown.num_permits(), 48);
    }
}
