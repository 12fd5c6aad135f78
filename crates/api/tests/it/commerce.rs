//! The Azure-compatible Commerce usage listing, page after page.

use jiff::{SignedDuration, Timestamp};
use serde_json::json;

use crate::billing::{METER, post_usage, record};
use crate::*;

const LISTING: &str = "/providers/Microsoft.Commerce/UsageAggregates?\
    reportedStartTime=2025-06-15T00:00:00Z&reportedEndTime=2025-06-16T00:00:00Z\
    &aggregationGranularity=Hourly&api-version=2015-06-01-preview";

fn names(page: &serde_json::Value) -> Vec<String> {
    (page["value"].as_array().unwrap().iter())
        .map(|line| format!("{}", line["properties"]["usageStartTime"]))
        .collect()
}

/// The pages of one listing are cut from one result set: usage that arrives while a client
/// pages through shifts no row from one page to the next (none twice, none skipped).
#[tokio::test]
async fn the_pages_of_a_listing_come_from_one_result_set() {
    let app = seeded().await;
    app.db.clock.set("2025-06-15T10:00:00Z");
    let start: Timestamp = "2025-04-01T00:00:00Z".parse().unwrap();
    let body: String = (0..1200)
        .map(|hour| {
            let at = start + SignedDuration::from_hours(hour);
            record(&format!("h{hour}"), TENANT_2, METER, &at.to_string(), "1")
        })
        .collect();
    assert_eq!(post_usage(&app, body).await.body["accepted"], 1200);
    app.db.clock.set("2025-06-17T00:00:00Z");
    let first = app
        .get(&format!("/subscriptions/{CSPSS_DEFAULT}{LISTING}"))
        .await;
    assert_eq!(first.status, 200, "{first:?}");
    let mut seen = names(&first.body);
    assert_eq!(seen.len(), 1000);
    // A record of an earlier hour, reported inside the window, arrives between the pages.
    let early = json!({"id": "early", "cloudId": CLOUD_1, "tenantId": TENANT_2,
        "subscriptionId": "50000000-0000-0000-0000-000000000001",
        "meterId": METER, "quantity": "1", "usageStartTime": "2025-03-31T23:00:00Z",
        "usageEndTime": "2025-04-01T00:00:00Z", "reportedTime": "2025-06-15T12:00:00Z"});
    let posted = post_usage(&app, early.to_string()).await;
    assert_eq!(posted.body["accepted"], 1, "{posted:?}");
    let next = first.body["nextLink"].as_str().unwrap();
    let path = &next[next.find("/subscriptions/").unwrap()..];
    let second = app.get(path).await;
    assert_eq!(second.status, 200, "{second:?}");
    assert!(second.body.get("nextLink").is_none(), "{second:?}");
    seen.extend(names(&second.body));
    let distinct: std::collections::BTreeSet<&String> = seen.iter().collect();
    assert_eq!((seen.len(), distinct.len()), (1200, 1200));
    // A new listing sees the new hour.
    let again = app
        .get(&format!("/subscriptions/{CSPSS_DEFAULT}{LISTING}"))
        .await;
    assert_eq!(
        names(&again.body)[0],
        "\"2025-03-31T23:00:00Z\"",
        "{again:?}"
    );
    // A token this server never issued is refused.
    let forged = app
        .get(&format!(
            "/subscriptions/{CSPSS_DEFAULT}{LISTING}&continuationToken=zz-1"
        ))
        .await;
    assert_eq!(
        forged.error_at(),
        (400, "InvalidProperty", "continuationToken")
    );
}
