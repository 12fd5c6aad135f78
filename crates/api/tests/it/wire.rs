//! The exact JSON of the answers clients parse, as snapshots (`snapshots/`): the native
//! ingestion answer and invoice, an ARM error, and the Azure-compatible Commerce answers
//! the azure-mgmt-commerce SDK reads. A change of shape shows up as a snapshot diff.

use serde_json::json;

use crate::billing::{METER, post_usage, priced, record};
use crate::*;

const COMMERCE: &str = "api-version=2015-06-01-preview";

/// A body as clients read it: numbers with their exact digits, keys sorted.
fn text(body: &serde_json::Value) -> String {
    serde_json::to_string_pretty(body).unwrap()
}

#[tokio::test]
async fn the_ingestion_answer_counts_and_lists_by_position() {
    let app = priced().await;
    // A duplicate, a conflict, a rejection by the parser and one by the store, an accepted.
    let unparsable = json!({"id": "x", "cloudId": CLOUD_1, "tenantId": TENANT_1, "meterId": METER,
        "quantity": "-1", "usageStartTime": "2025-05-03T11:00:00Z", "usageEndTime": "2025-05-03T12:00:00Z"});
    let unknown_stack = record("y", TENANT_1, METER, "2025-05-03T11:00:00Z", "1")
        .replace(CLOUD_1, "ca000000-0000-0000-0000-0000000000ff");
    let body = [
        record("a", TENANT_1, METER, "2025-05-03T10:00:00Z", "5"),
        record("b", TENANT_1, METER, "2025-05-03T11:00:00Z", "6"),
        format!("{unparsable}\n"),
        unknown_stack,
        record("z", TENANT_1, METER, "2025-05-04T11:00:00Z", "1.25"),
    ]
    .concat();
    let answer = post_usage(&app, body).await;
    insta::assert_snapshot!(text(&answer.body));
}

#[tokio::test]
async fn an_invoice_and_an_arm_error() {
    let app = priced().await;
    let invoice = app.get(&format!("/v1/invoices/{CUSTOMER_1}/2025-05")).await;
    assert_eq!(invoice.status, 200);
    insta::assert_snapshot!(text(&invoice.body));
    let missing = app.get(&format!("/v1/invoices/{CUSTOMER_1}/2025-04")).await;
    assert_eq!(missing.status, 404);
    insta::assert_snapshot!(text(&missing.body));
}

#[tokio::test]
async fn commerce_usage_aggregates_and_rate_card() {
    let app = priced().await;
    let detailed = json!({"id": "vm", "cloudId": CLOUD_1, "tenantId": TENANT_2, "subscriptionId": "50000000-0000-0000-0000-000000000001", "meterId": METER, "quantity": "0.5", "usageStartTime": "2025-05-21T07:00:00Z", "usageEndTime": "2025-05-21T08:00:00Z",
        "instanceData": {"resourceUri": "/subscriptions/50000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1", "location": "local", "tags": {"team": "a"}}});
    let posted = post_usage(&app, detailed.to_string()).await;
    assert_eq!(posted.body["accepted"], 1, "{posted:?}");
    app.db.clock.set("2025-06-17T00:00:00Z");
    let daily = app
        .get(&format!(
            "/subscriptions/{CUSTOMER_1}/providers/Microsoft.Commerce/UsageAggregates?\
             reportedStartTime=2025-06-15T00:00:00Z&reportedEndTime=2025-06-16T00:00:00Z&{COMMERCE}"
        ))
        .await;
    assert_eq!(daily.status, 200, "{daily:?}");
    insta::assert_snapshot!("usage_aggregates_daily", text(&daily.body));
    let hourly = app
        .get(&format!(
            "/subscriptions/{CSPSS_DEFAULT}/providers/Microsoft.Commerce/UsageAggregates?\
             reportedStartTime=2025-06-15T00:00:00Z&reportedEndTime=2025-06-16T00:00:00Z\
             &aggregationGranularity=Hourly&showDetails=true&{COMMERCE}"
        ))
        .await;
    assert_eq!(hourly.status, 200, "{hourly:?}");
    insta::assert_snapshot!("usage_aggregates_hourly_details", text(&hourly.body));
    let card = app
        .get(&format!(
            "/subscriptions/{CUSTOMER_1}/providers/Microsoft.Commerce/RateCard?\
             $filter=OfferDurableId%20eq%20%27MS-AZR-0145P%27%20and%20Currency%20eq%20%27USD%27\
             %20and%20Locale%20eq%20%27en-US%27%20and%20RegionInfo%20eq%20%27US%27&{COMMERCE}"
        ))
        .await;
    assert_eq!(card.status, 200, "{card:?}");
    insta::assert_snapshot!("rate_card", text(&card.body));
}
