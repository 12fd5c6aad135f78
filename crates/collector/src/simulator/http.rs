//! The simulated stack's HTTP side: ARM's error envelope, the metadata, token,
//! subscriptions and usage handlers, and how rows are written as the stack writes them.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError};

use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use base64::Engine;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use stackbill_core::SubscriptionId;
use stackbill_core::period::{hour_number, hour_start};

use super::{Identity, Kind, Row, SimStack};

pub(super) fn arm_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

fn base_url(sim: &SimStack, headers: &HeaderMap) -> String {
    let host = (headers.get(header::HOST))
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let scheme = if sim.options.https { "https" } else { "http" };
    format!("{scheme}://{host}")
}

pub(super) async fn metadata(State(sim): State<Arc<SimStack>>, headers: HeaderMap) -> Response {
    let base = base_url(&sim, &headers);
    let login = match sim.options.identity {
        Identity::Entra { .. } => format!("{base}/login/"),
        Identity::Adfs => format!("{base}/adfs/"),
    };
    Json(json!({
        "galleryEndpoint": format!("{base}/gallery/"),
        "graphEndpoint": format!("{base}/graph/"),
        "portalEndpoint": format!("{base}/portal/"),
        "authentication": {"loginEndpoint": login, "audiences": [sim.audience]}
    }))
    .into_response()
}

fn token_answer(sim: &SimStack, form: &HashMap<String, String>) -> Response {
    let field = |name: &str| form.get(name).map_or("", String::as_str);
    if field("grant_type") != "client_credentials" {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "unsupported_grant_type", "error_description": "AADSTS70003: grant_type must be client_credentials"})),
        )
            .into_response();
    }
    let proven = match form.get("client_assertion") {
        Some(assertion) => {
            field("client_assertion_type")
                == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
                && sim.assertion_holds(assertion)
        }
        None => field("client_secret") == sim.options.client_secret,
    };
    if field("client_id") != sim.options.client_id || !proven {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."})),
        )
            .into_response();
    }
    if field("resource") != sim.audience {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_resource", "error_description": "AADSTS500011: The resource principal was not found."})),
        )
            .into_response();
    }
    let (token, lifetime) = sim.issue_token();
    let now = Timestamp::now().as_second();
    Json(json!({
        "token_type": "Bearer",
        "expires_in": lifetime.to_string(),
        "expires_on": (now + i64::try_from(lifetime).unwrap_or(0)).to_string(),
        "not_before": now.to_string(),
        "resource": sim.audience,
        "access_token": token,
    }))
    .into_response()
}

pub(super) async fn entra_token(
    State(sim): State<Arc<SimStack>>,
    Path(directory): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    match &sim.options.identity {
        Identity::Entra { directory: home } if home.eq_ignore_ascii_case(&directory) => {
            token_answer(&sim, &form)
        }
        _ => (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_request", "error_description": format!("AADSTS90002: Tenant '{directory}' not found.")})),
        )
            .into_response(),
    }
}

pub(super) async fn adfs_token(
    State(sim): State<Arc<SimStack>>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    match sim.options.identity {
        Identity::Adfs => token_answer(&sim, &form),
        Identity::Entra { .. } => StatusCode::NOT_FOUND.into_response(),
    }
}

fn refuse_provider(sim: &SimStack, provider: &str) -> Option<Response> {
    if provider.parse::<SubscriptionId>().ok() == Some(sim.options.provider_subscription) {
        None
    } else {
        Some(arm_error(
            StatusCode::NOT_FOUND,
            "SubscriptionNotFound",
            &format!("The subscription '{provider}' could not be found."),
        ))
    }
}

pub(super) async fn subscriptions(
    State(sim): State<Arc<SimStack>>,
    Path(provider): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(answer) = (sim.refuse_token(&headers)).or_else(|| refuse_provider(&sim, &provider))
    {
        return answer;
    }
    if let Some(fault) = sim.fault() {
        return fault;
    }
    let hidden = sim
        .hidden
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let value: Vec<Value> = (sim.tenants.iter().enumerate())
        .filter(|(n, _)| !hidden.contains(n))
        .map(|(n, t)| {
            json!({
                "id": format!("/subscriptions/{provider}/providers/Microsoft.Subscriptions.Admin/subscriptions/{}", t.subscription),
                "subscriptionId": t.subscription,
                "delegatedProviderSubscriptionId": provider,
                "displayName": format!("Tenant {n}"),
                "owner": format!("owner{n}@tenant{n}.example"),
                "tenantId": t.tenant,
                "routingResourceManagerType": "Default",
                "offerId": format!("/subscriptions/{provider}/resourceGroups/plans/providers/Microsoft.Subscriptions.Admin/offers/standard"),
                "state": "Enabled",
            })
        })
        .collect();
    Json(json!({ "value": value })).into_response()
}

fn bad_time(text: &str) -> Response {
    arm_error(
        StatusCode::BAD_REQUEST,
        "BadRequest",
        &format!(
            "The reported date time '{text}' is not in ISO 8601 format(YYYY-MM-DDTHH:mm:ss.sssZ)."
        ),
    )
}

pub(super) async fn usage(
    State(sim): State<Arc<SimStack>>,
    Path(provider): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    if let Some(answer) = (sim.refuse_token(&headers)).or_else(|| refuse_provider(&sim, &provider))
    {
        return answer;
    }
    if let Some(fault) = sim.fault() {
        return fault;
    }
    let param = |name: &str| query.get(name).map(String::as_str);
    if param("api-version") != Some("2015-06-01-preview") {
        return arm_error(
            StatusCode::BAD_REQUEST,
            "NoApiVersion",
            "The api-version query parameter (?api-version=) is required for all requests.",
        );
    }
    if param("aggregationGranularity").is_some_and(|g| !g.eq_ignore_ascii_case("hourly")) {
        return arm_error(
            StatusCode::BAD_REQUEST,
            "InvalidAggregationGranularity",
            "The simulated stack serves Hourly granularity only.",
        );
    }
    let mut window = [0i64; 2];
    for (slot, name) in window
        .iter_mut()
        .zip(["reportedStartTime", "reportedEndTime"])
    {
        let Some(text) = param(name) else {
            return arm_error(
                StatusCode::BAD_REQUEST,
                "InvalidProperty",
                &format!("{name} is required."),
            );
        };
        let Ok(at) = text.parse::<Timestamp>() else {
            return bad_time(text);
        };
        if at.as_second().rem_euclid(3600) != 0 || at.subsec_nanosecond() != 0 {
            return arm_error(
                StatusCode::BAD_REQUEST,
                "InvalidProperty",
                &format!("{name} must be at the beginning of an hour."),
            );
        }
        *slot = hour_number(at);
    }
    let [start, end] = window;
    if end <= start {
        return arm_error(
            StatusCode::BAD_REQUEST,
            "InvalidProperty",
            "reportedEndTime must be after reportedStartTime.",
        );
    }
    if hour_start(end).is_ok_and(|end| end > Timestamp::now()) {
        return arm_error(
            StatusCode::BAD_REQUEST,
            "RequestEndTimeIsInFuture",
            "reportedEndTime is in the future.",
        );
    }
    let mut tenants: Vec<usize> = match param("subscriberId") {
        Some(subscriber) => (sim
            .tenants
            .iter()
            .position(|t| t.subscription.eq_ignore_ascii_case(subscriber)))
        .into_iter()
        .collect(),
        None => (0..sim.tenants.len()).collect(),
    };
    if sim.options.stray_hidden && tenants == [0] {
        let hidden = sim
            .hidden
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        tenants.extend(hidden);
    }
    // The continuation token must come back byte for byte, percent-encoding included.
    let skip = match param("continuationToken") {
        None => 0,
        Some(token) => {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(token)
                .ok()
                .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
                .and_then(|value| value["skip"].as_u64());
            let raw_token = (raw.as_deref().unwrap_or(""))
                .split('&')
                .find_map(|pair| pair.strip_prefix("continuationToken="));
            match (decoded, raw_token) {
                (Some(skip), Some(raw_token)) if raw_token == encode_token(skip) => {
                    usize::try_from(skip).unwrap_or(usize::MAX)
                }
                _ => {
                    return arm_error(
                        StatusCode::BAD_REQUEST,
                        "InvalidContinuationToken",
                        "The continuation token is not valid.",
                    );
                }
            }
        }
    };
    let mut rows = Vec::new();
    for hour in start..end {
        for &tenant in &tenants {
            rows.extend(sim.rows(tenant, hour));
        }
    }
    let page: Vec<Value> = rows
        .iter()
        .skip(skip)
        .take(sim.options.page_size)
        .map(|row| row_json(&sim, &provider, row))
        .collect();
    let mut body = json!({ "value": page });
    let next = skip + sim.options.page_size;
    if next < rows.len() {
        let mut pairs: Vec<&str> = (raw.as_deref().unwrap_or(""))
            .split('&')
            .filter(|pair| !pair.starts_with("continuationToken="))
            .collect();
        let token = format!("continuationToken={}", encode_token(next as u64));
        pairs.push(&token);
        let host = base_url(&sim, &headers);
        body["nextLink"] = json!(format!(
            "{host}/subscriptions/{provider}/providers/Microsoft.Commerce.Admin/subscriberUsageAggregates?{}",
            pairs.join("&")
        ));
    }
    Json(body).into_response()
}

/// A continuation token as the nextLink carries it: base64 JSON, percent-encoded.
fn encode_token(skip: u64) -> String {
    let token = base64::engine::general_purpose::STANDARD
        .encode(json!({"skip": skip, "pad": "x"}).to_string());
    token
        .replace('%', "%25")
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D")
}

fn row_json(sim: &SimStack, provider: &str, row: &Row) -> Value {
    let tenant = &sim.tenants[row.tenant];
    let resource = &tenant.resources[row.resource];
    let start = hour_start(row.usage_hour).unwrap_or(Timestamp::UNIX_EPOCH);
    let end = start + SignedDuration::from_hours(1);
    let offset = |t: Timestamp| t.strftime("%Y-%m-%dT%H:%M:%S+00:00").to_string();
    let additional = if resource.meters[0].kind == Kind::Hours {
        json!({"ServiceType": "Standard_F2s", "ImageType": null, "Publisher": "MicrosoftWindowsServer", "Offer": "WindowsServer", "Sku": "2019-Datacenter"}).to_string()
    } else {
        String::new()
    };
    let tags = match row.resource % 3 {
        0 => String::new(),
        1 => "null".to_owned(),
        _ => json!({"RG": format!("rg-{}", row.tenant), "team": "sim"}).to_string(),
    };
    let instance = json!({"Microsoft.Resources": {
        "resourceUri": resource.uri,
        "location": "local",
        "tags": tags,
        "additionalInfo": additional,
    }})
    .to_string();
    let name = format!("{}-{}", tenant.subscription, row.meter);
    // The quantity is a JSON number with the stack's exact digits.
    let quantity: Value = serde_json::from_str(&row.quantity).unwrap_or(Value::Null);
    json!({
        "id": format!("/subscriptions/{provider}/providers/Microsoft.Commerce/UsageAggregate/{name}"),
        "name": name,
        "type": "Microsoft.Commerce/UsageAggregate",
        "properties": {
            "subscriptionId": tenant.subscription,
            "usageStartTime": offset(start),
            "usageEndTime": offset(end),
            "instanceData": instance,
            "quantity": quantity,
            "meterId": row.meter,
            "name": name,
        }
    })
}
