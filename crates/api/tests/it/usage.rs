//! Usage ingestion and aggregates over HTTP.

use axum::http::Method;
use serde_json::{Value, json};
use stackbill_test_support::ADMIN_TOKEN;

use crate::*;

const METER: &str = "b4438d5d-453b-4ee1-b42a-dc72e377f1e4";
const STACK_SUB: &str = "50000000-0000-0000-0000-000000000001";

fn record(id: &str, cloud: &str, tenant: &str, hour: &str, quantity: Value) -> Value {
    let start: jiff::Timestamp = format!("2025-06-01T{hour}:00:00Z").parse().unwrap();
    let end = start + jiff::SignedDuration::from_hours(1);
    let mut record = json!({
        "id": id, "cloudId": cloud, "tenantId": tenant, "subscriptionId": STACK_SUB, "meterId": METER,
        "usageStartTime": start.to_string(), "usageEndTime": end.to_string(),
        "instanceData": {"resourceUri": format!("/subscriptions/{STACK_SUB}/vm-{id}"), "location": "local"}
    });
    record["quantity"] = quantity;
    record
}

fn ndjson(records: &[Value]) -> String {
    records.iter().map(|r| format!("{r}\n")).collect()
}

async fn post(
    app: &stackbill_test_support::TestApp,
    body: String,
    content_type: &str,
) -> stackbill_test_support::Answer {
    app.raw(
        Method::POST,
        "/v1/usage",
        Some(ADMIN_TOKEN),
        Some(body),
        content_type,
    )
    .await
}

#[tokio::test]
async fn accepted_duplicates_conflicts_and_rejections_add_up() {
    let app = seeded().await;
    let good = record("a", CLOUD_1, TENANT_1, "08", json!("1.50"));
    let mut unknown_meter = record("m", CLOUD_1, TENANT_1, "08", json!(1));
    unknown_meter["meterId"] = json!("aaaaaaaa-0000-0000-0000-000000000001");
    let mut future = record("f", CLOUD_1, TENANT_1, "08", json!(1));
    future["usageStartTime"] = json!("2025-06-15T12:00:00Z");
    future["usageEndTime"] = json!("2025-06-15T13:00:00Z");
    let mut no_tenant = record("t", CLOUD_1, TENANT_1, "08", json!(1));
    no_tenant.as_object_mut().unwrap().remove("tenantId");
    let mut bad_window = record("w", CLOUD_1, TENANT_1, "08", json!(1));
    bad_window["usageEndTime"] = json!("2025-06-01T10:00:00Z");
    let body = format!(
        "{}{}not json\n{}{}{}{}{}",
        ndjson(&[
            good.clone(),
            record("b", CLOUD_1, TENANT_1, "09", json!(0.1))
        ]),
        ndjson(&[record("a", CLOUD_1, TENANT_1, "08", json!(1.5))]),
        ndjson(&[record(
            "u",
            "ca000000-0000-0000-0000-0000000000ff",
            TENANT_1,
            "08",
            json!(1)
        )]),
        ndjson(&[unknown_meter, future]),
        ndjson(&[record("q", CLOUD_1, TENANT_1, "08", json!("-1"))]),
        ndjson(&[no_tenant, bad_window]),
        ndjson(&[record("b", CLOUD_1, TENANT_1, "09", json!("0.2"))]),
    );
    let answer = post(&app, body.clone(), "application/x-ndjson").await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body["accepted"], 2);
    assert_eq!(
        answer.body["duplicates"], 1,
        "1.5 is the same content as \"1.50\""
    );
    assert_eq!(answer.body["conflicts"], json!([{"index": 10, "id": "b"}]));
    let rejected: Vec<(u64, &str, &str, &str)> = answer.body["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["index"].as_u64().unwrap(),
                r["id"].as_str().unwrap_or(""),
                r["code"].as_str().unwrap(),
                r["target"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rejected,
        [
            (3, "", "InvalidJson", ""),
            (4, "u", "UnknownStack", "cloudId"),
            (5, "m", "UnknownMeter", "meterId"),
            (6, "f", "UsageInFuture", "usageEndTime"),
            (7, "q", "InvalidQuantity", "quantity"),
            (8, "t", "MissingField", "tenantId"),
            (9, "w", "InvalidTimeWindow", "usageEndTime"),
        ]
    );
    // Re-sending everything changes nothing.
    let again = post(&app, body, "application/x-ndjson").await;
    assert_eq!(again.body["accepted"], 0);
    assert_eq!(again.body["duplicates"], 3);
    assert_eq!(again.body["conflicts"].as_array().unwrap().len(), 1);
    assert_eq!(again.body["rejected"].as_array().unwrap().len(), 7);

    let hourly = app
        .get(&format!("/v1/usage/aggregates?cloudId={CLOUD_1}&from=2025-06-01T00:00:00Z&to=2025-06-02T00:00:00Z&granularity=Hourly"))
        .await;
    assert_eq!(hourly.status, 200, "{hourly:?}");
    let items = hourly.body["value"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["quantity"], "1.5");
    assert_eq!(items[0]["usageStartTime"], "2025-06-01T08:00:00Z");
    assert_eq!(items[0]["usageEndTime"], "2025-06-01T09:00:00Z");
    assert_eq!(
        items[1]["quantity"], "0.1",
        "a JSON number stays exactly 0.1"
    );
    assert_eq!(items[1]["cloudId"], CLOUD_1);
}

#[tokio::test]
async fn json_arrays_and_value_wrappers_are_accepted() {
    let app = seeded().await;
    let array = json!([
        record("a", CLOUD_1, TENANT_1, "08", json!(1)),
        record("b", CLOUD_1, TENANT_1, "08", json!(2))
    ]);
    let answer = post(&app, array.to_string(), "application/json").await;
    assert_eq!(answer.body["accepted"], 2, "{answer:?}");
    let wrapped = json!({"value": [record("c", CLOUD_1, TENANT_1, "08", json!(3))]});
    let answer = post(&app, wrapped.to_string(), "application/json; charset=utf-8").await;
    assert_eq!(answer.body["accepted"], 1, "{answer:?}");
    let answer = post(&app, "a,b".into(), "text/csv").await;
    assert_eq!(answer.error(), (415, "UnsupportedMediaType"));
    let empty = post(&app, String::new(), "application/x-ndjson").await;
    assert_eq!(
        empty.body,
        json!({"accepted": 0, "duplicates": 0, "conflicts": [], "rejected": []})
    );
}

#[tokio::test]
async fn usage_is_billed_by_the_mapping_in_force_at_its_hour() {
    let app = seeded().await;
    // Tenant 1 maps to its own subscription from 10:00; tenant 2 never does.
    let mapped = app
        .put(
            &format!("/v1/registrations/stack1/customerSubscriptions/{CUSTOMER_1}"),
            json!({"tenantId": TENANT_1, "effectiveFrom": "2025-06-01T10:00:00Z"}),
        )
        .await;
    assert_eq!(mapped.status, 200);
    let mut records = Vec::new();
    for (n, hour) in ["08", "09", "10", "11"].iter().enumerate() {
        records.push(record(
            &format!("t1-{n}"),
            CLOUD_1,
            TENANT_1,
            hour,
            json!(n + 1),
        ));
        records.push(record(
            &format!("t2-{n}"),
            CLOUD_1,
            TENANT_2,
            hour,
            json!("0.5"),
        ));
    }
    let answer = post(&app, ndjson(&records), "application/x-ndjson").await;
    assert_eq!(answer.body["accepted"], 8);
    let daily = |key: &str, id: &str| {
        format!("/v1/usage/aggregates?{key}={id}&from=2025-06-01T00:00:00Z&to=2025-06-02T00:00:00Z")
    };
    let quantity = |answer: &stackbill_test_support::Answer| {
        answer.body["value"][0]["quantity"]
            .as_str()
            .unwrap()
            .to_owned()
    };

    assert_eq!(
        quantity(&app.get(&daily("subscriptionId", CUSTOMER_1)).await),
        "7"
    );
    assert_eq!(
        quantity(&app.get(&daily("subscriptionId", CSPSS_DEFAULT)).await),
        "5"
    );
    assert_eq!(quantity(&app.get(&daily("tenantId", TENANT_1)).await), "10");
    assert_eq!(quantity(&app.get(&daily("tenantId", TENANT_2)).await), "2");

    // A backdated change re-routes usage already received.
    let backdated = app
        .put(
            &format!("/v1/registrations/stack1/customerSubscriptions/{CUSTOMER_1}"),
            json!({"tenantId": TENANT_1, "effectiveFrom": "2025-06-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(backdated.status, 200);
    assert_eq!(
        quantity(&app.get(&daily("subscriptionId", CUSTOMER_1)).await),
        "10"
    );
    assert_eq!(
        quantity(&app.get(&daily("subscriptionId", CSPSS_DEFAULT)).await),
        "2"
    );
    let day = app.get(&daily("subscriptionId", CUSTOMER_1)).await;
    assert_eq!(
        day.body["value"][0]["usageStartTime"],
        "2025-06-01T00:00:00Z"
    );
    assert_eq!(day.body["value"][0]["usageEndTime"], "2025-06-02T00:00:00Z");
    assert_eq!(day.body["value"][0]["subscriptionId"], CUSTOMER_1);
}

#[tokio::test]
async fn aggregate_parameters_are_checked() {
    let app = seeded().await;
    let cases = [
        (
            "/v1/usage/aggregates?from=2025-06-01T00:00:00Z&to=2025-06-02T00:00:00Z",
            "",
        ),
        (
            &*format!(
                "/v1/usage/aggregates?cloudId={CLOUD_1}&tenantId={TENANT_1}&from=2025-06-01T00:00:00Z&to=2025-06-02T00:00:00Z"
            ),
            "",
        ),
        (
            &*format!("/v1/usage/aggregates?cloudId={CLOUD_1}&to=2025-06-02T00:00:00Z"),
            "from",
        ),
        (
            &*format!(
                "/v1/usage/aggregates?cloudId={CLOUD_1}&from=2025-06-01T00:30:00Z&to=2025-06-02T00:00:00Z"
            ),
            "from",
        ),
        (
            &*format!(
                "/v1/usage/aggregates?cloudId={CLOUD_1}&from=2025-06-02T00:00:00Z&to=2025-06-01T00:00:00Z"
            ),
            "to",
        ),
        (
            &*format!(
                "/v1/usage/aggregates?cloudId={CLOUD_1}&from=2025-06-01T00:00:00Z&to=2025-06-02T00:00:00Z&granularity=Monthly"
            ),
            "granularity",
        ),
    ];
    for (path, target) in cases {
        let answer = app.get(path).await;
        assert_eq!(
            answer.error_at(),
            (400, "InvalidParameter", target),
            "{path}"
        );
    }
}

#[tokio::test]
async fn usage_bodies_have_their_own_limit() {
    let app = seeded().await;
    let line = format!("{}\n", record("a", CLOUD_1, TENANT_1, "08", json!(1)));
    let fits = line.repeat(40_000);
    assert!(fits.len() > stackbill_api::extract::MAX_DIRECTORY_BODY_BYTES);
    let answer = post(&app, fits, "application/x-ndjson").await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body["accepted"], 1);
    assert_eq!(answer.body["duplicates"], 39_999);
    let too_big = "x".repeat(stackbill_api::usage::MAX_USAGE_BODY_BYTES + 1);
    let answer = post(&app, too_big, "application/x-ndjson").await;
    assert_eq!(answer.error(), (413, "RequestTooLarge"));
}

#[tokio::test]
async fn metrics_count_requests_and_usage_outcomes_with_bounded_labels() {
    let app = seeded().await;
    let body = ndjson(&[
        record("m1", CLOUD_1, TENANT_1, "08", json!(1)),
        record(
            "m2",
            "ca000000-0000-0000-0000-0000000000ee",
            TENANT_1,
            "08",
            json!(1),
        ),
    ]);
    assert_eq!(post(&app, body, "application/x-ndjson").await.status, 200);
    let request = axum::http::Request::builder()
        .uri("/metrics")
        .body(axum::body::Body::empty())
        .unwrap();
    let response = tower::ServiceExt::oneshot(app.router.clone(), request)
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "no token needed");
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    assert!(
        text.contains(r#"stackbill_usage_records_total{outcome="rejected",code="UnknownStack"}"#),
        "{text}"
    );
    assert!(
        text.contains(r#"stackbill_usage_records_total{outcome="accepted"}"#),
        "{text}"
    );
    assert!(text.contains(r#"route="/v1/usage""#), "{text}");
    assert!(
        text.contains("stackbill_http_request_duration_seconds_bucket"),
        "{text}"
    );
    assert!(
        !text.contains(TENANT_1) && !text.contains("m1"),
        "ids never become labels"
    );
}

/// Sums of quantities stay exact beyond a 96-bit decimal's 28 digits (SPEC §3).
#[tokio::test]
async fn a_sum_beyond_28_digits_stays_exact() {
    let app = crate::billing::priced().await;
    let record = |id: &str, quantity: &str| {
        crate::billing::record(
            id,
            TENANT_2,
            crate::billing::METER,
            "2025-05-05T10:00:00Z",
            quantity,
        )
    };
    let big = crate::billing::post_usage(&app, record("big", "9999999999999999999999999999")).await;
    assert_eq!(big.body["accepted"], 1, "{big:?}");
    let fine =
        crate::billing::post_usage(&app, record("fine", "0.0000000000000000000000000001")).await;
    assert_eq!(fine.body["accepted"], 1, "{fine:?}");
    let sums = app
        .get(&format!(
            "/v1/usage/aggregates?tenantId={TENANT_2}&from=2025-05-05T00:00:00Z\
             &to=2025-05-06T00:00:00Z&granularity=Daily"
        ))
        .await;
    assert_eq!(sums.status, 200, "{sums:?}");
    assert_eq!(
        sums.body["value"][0]["quantity"],
        "9999999999999999999999999999.0000000000000000000000000001"
    );
}
