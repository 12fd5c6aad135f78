//! SPEC §4: registrations of a stack follow one another in time, and deleting or re-creating
//! one never moves a cent of earlier usage.

use serde_json::{Value, json};
use stackbill_test_support::Answer;

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
