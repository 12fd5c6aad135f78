//! SPEC §4: registrations of a stack follow one another in time, and deleting or re-creating
//! one never moves a cent of earlier usage.

use serde_json::{Value, json};
use stackbill_test_support::{Answer, TestApp};

use crate::billing::{METER, finalized_may, post_usage, record};
use crate::*;

fn adjustments(list: &Answer) -> Vec<(String, Value, Value)> {
    list.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|invoice| {
            let subscription = invoice["subscriptionId"].as_str().unwrap().to_owned();
            invoice["adjustments"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |a| {
                    (
                        subscription.clone(),
                        a["reason"].clone(),
                        a["amount"].clone(),
                    )
                })
        })
        .collect()
}

#[tokio::test]
async fn deleting_and_recreating_a_registration_never_rebills_history() {
    let app = finalized_may().await;
    let may = app.get(&format!("/v1/invoices/{CUSTOMER_1}/2025-05")).await;
    assert_eq!(may.body["status"], "final");

    let deleted = app.delete("/v1/registrations/stack1").await;
    assert_eq!(deleted.status, 204, "{deleted:?}");
    let june = app.get("/v1/invoices?period=2025-06").await;
    assert_eq!(adjustments(&june), [], "a deletion moves no money");

    // A late May record for the deleted registration's hours is accepted and billed by its
    // history: to CUSTOMER_1, where tenant 1 was mapped.
    let late = post_usage(
        &app,
        record("late", TENANT_1, METER, "2025-05-31T10:00:00Z", "2"),
    )
    .await;
    assert_eq!(late.body["accepted"], 1, "{late:?}");
    let june = app.get("/v1/invoices?period=2025-06").await;
    assert_eq!(
        adjustments(&june),
        [(CUSTOMER_1.to_owned(), json!("LateUsage"), json!("0.55"))]
    );

    // Usage after the deletion (at 2025-06-15T12:00) has no registration until the stack is
    // registered again.
    app.db.clock.set("2025-06-20T00:00:00Z");
    let orphan = post_usage(
        &app,
        record("orphan", TENANT_1, METER, "2025-06-16T10:00:00Z", "1"),
    )
    .await;
    assert_eq!(
        orphan.body["rejected"][0]["code"], "UnknownStack",
        "{orphan:?}"
    );

    let again = app
        .put(
            "/v1/registrations/stack1",
            json!({"cloudId": CLOUD_1, "subscriptionId": CSPSS_DEFAULT}),
        )
        .await;
    assert_eq!(again.status, 201, "{again:?}");
    let june = app.get("/v1/invoices?period=2025-06").await;
    assert_eq!(
        adjustments(&june),
        [(CUSTOMER_1.to_owned(), json!("LateUsage"), json!("0.55"))],
        "re-creating moves no money either"
    );
    // The new registration covers the usage from the deletion on; tenant 1 is not mapped in
    // it, so its usage goes to the default subscription.
    let new = post_usage(
        &app,
        record("new", TENANT_1, METER, "2025-06-16T10:00:00Z", "1"),
    )
    .await;
    assert_eq!(new.body["accepted"], 1, "{new:?}");
    let default = app
        .get(&format!("/v1/invoices/{CSPSS_DEFAULT}/2025-06"))
        .await;
    assert_eq!(default.body["lines"][0]["quantity"], "1", "{default:?}");
    let may_again = app.get(&format!("/v1/invoices/{CUSTOMER_1}/2025-05")).await;
    assert_eq!(may_again.body, may.body, "a final invoice never changes");
}

const P2_DEFAULT: &str = "d0000000-0000-0000-0000-000000000003";

async fn post_as(app: &TestApp, token: &str, body: String) -> Answer {
    app.raw(
        axum::http::Method::POST,
        "/v1/usage",
        Some(token),
        Some(body),
        "application/x-ndjson",
    )
    .await
}

/// A cloud id that changes partners keeps its past with the partner that had it.
#[tokio::test]
async fn a_cloud_id_that_changes_hands_does_not_take_its_past_along() {
    let app = finalized_may().await;
    let old_stack = app
        .token(json!({"role": "stack", "cloudId": CLOUD_1}))
        .await;
    let a = app
        .token(json!({"role": "partner", "partnerId": "p1"}))
        .await;
    let b = app
        .token(json!({"role": "partner", "partnerId": "p2"}))
        .await;
    let sub = app
        .put(
            &format!("/v1/subscriptions/{P2_DEFAULT}"),
            json!({"offerType": "CSPSS", "partnerId": "p2"}),
        )
        .await;
    assert_eq!(sub.status, 201);
    assert_eq!(app.delete("/v1/registrations/stack1").await.status, 204);
    app.db.clock.set("2025-06-20T00:00:00Z");
    let taken = app
        .raw(
            axum::http::Method::PUT,
            "/v1/registrations/b-stack",
            Some(&b),
            Some(json!({"cloudId": CLOUD_1, "subscriptionId": P2_DEFAULT}).to_string()),
            "application/json",
        )
        .await;
    assert_eq!(taken.status, 201, "{taken:?}");

    // The old stack token died with its registration.
    let old = post_as(
        &app,
        &old_stack,
        record("old", TENANT_1, METER, "2025-06-19T10:00:00Z", "1"),
    )
    .await;
    assert_eq!(old.status, 401, "{old:?}");
    // B's stack token forwards B's hours only.
    let new_stack = app
        .token(json!({"role": "stack", "cloudId": CLOUD_1}))
        .await;
    let body = [
        record("mine", TENANT_1, METER, "2025-06-19T10:00:00Z", "1"),
        record("theirs", TENANT_1, METER, "2025-06-01T10:00:00Z", "1"),
    ]
    .concat();
    let posted = post_as(&app, &new_stack, body).await;
    assert_eq!(posted.body["accepted"], 1, "{posted:?}");
    assert_eq!(posted.body["rejected"][0]["code"], "ForbiddenStack");
    assert_eq!(posted.body["rejected"][0]["target"], "usageStartTime");

    // B's drafts bill nothing of A's months, and B's view of the stack starts with B.
    let june = (app.call_as(
        &b,
        axum::http::Method::GET,
        "/v1/invoices?period=2025-06",
        None,
    ))
    .await;
    let june: Vec<&Value> = june.body["value"].as_array().unwrap().iter().collect();
    assert_eq!(june.len(), 1, "{june:?}");
    assert_eq!(june[0]["subscriptionId"], P2_DEFAULT);
    assert_eq!(june[0]["adjustments"], json!([]));
    assert_eq!(june[0]["lines"][0]["quantity"], "1");
    let aggregates = |token: String| {
        let app = &app;
        async move {
            app.call_as(
                &token,
                axum::http::Method::GET,
                &format!(
                    "/v1/usage/aggregates?cloudId={CLOUD_1}&from=2025-05-01T00:00:00Z\
                     &to=2025-07-01T00:00:00Z&granularity=Daily"
                ),
                None,
            )
            .await
        }
    };
    let seen_by_b = aggregates(b.clone()).await;
    let days: Vec<&str> = seen_by_b.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["usageStartTime"].as_str().unwrap())
        .collect();
    assert_eq!(days, ["2025-06-19T00:00:00Z"], "{seen_by_b:?}");
    // A still sees its own past on the stack, and not B's usage.
    let seen_by_a = aggregates(a.clone()).await;
    let days: Vec<&str> = seen_by_a.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["usageStartTime"].as_str().unwrap())
        .collect();
    assert!(
        days.iter().all(|d| d.starts_with("2025-05")),
        "{seen_by_a:?}"
    );
    assert!(!days.is_empty());
    let drill = app
        .call_as(
            &b,
            axum::http::Method::GET,
            &format!("/v1/invoices/{P2_DEFAULT}/2025-05/records"),
            None,
        )
        .await;
    assert_eq!(
        drill.body["value"],
        json!([]),
        "none of A's records: {drill:?}"
    );
}
