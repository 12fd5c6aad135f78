//! The reconciliation export over HTTP: Partner Center's columns, rows that add up to the
//! invoices exactly, gzip, and each partner's own rows only.

use std::collections::BTreeMap;

use axum::http::Method;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use stackbill_test_support::{ADMIN_TOKEN, TestApp};

use crate::billing::{METER, post_usage, priced};
use crate::*;

/// The export's bytes and content type, as `token` gets them.
async fn export(app: &TestApp, query: &str, token: &str) -> (u16, String, Vec<u8>) {
    let request = axum::http::Request::builder()
        .uri(format!("/v1/reconciliation?{query}"))
        .header("authorization", format!("Bearer {token}"))
        .body(axum::body::Body::empty())
        .unwrap();
    let response = tower::ServiceExt::oneshot(app.router.clone(), request)
        .await
        .unwrap();
    let status = response.status().as_u16();
    let kind = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, kind, body.to_vec())
}

fn parse_rows(csv: &[u8]) -> (Vec<String>, Vec<BTreeMap<String, String>>) {
    let mut reader = csv::Reader::from_reader(csv);
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    let rows = reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            header
                .iter()
                .cloned()
                .zip(r.iter().map(str::to_owned))
                .collect()
        })
        .collect();
    (header, rows)
}

/// A record of tenant `tenant` on `resource`, with Azure's instance data.
fn resource_record(id: &str, tenant: &str, start: &str, quantity: &str, resource: &str) -> String {
    let start: jiff::Timestamp = start.parse().unwrap();
    let end = start + jiff::SignedDuration::from_hours(1);
    let uri = format!(
        "/subscriptions/50000000-0000-0000-0000-000000000001/resourcegroups/rg1/providers/Microsoft.Storage/storageAccounts/{resource}"
    );
    let instance = json!({"Microsoft.Resources": {"resourceUri": uri, "location": "local", "tags": "{\"cost\":\"42\"}", "additionalInfo": ""}});
    format!(
        "{}\n",
        json!({"id": id, "cloudId": CLOUD_1, "tenantId": tenant, "subscriptionId": "50000000-0000-0000-0000-000000000001",
               "meterId": METER, "quantity": quantity, "usageStartTime": start.to_string(), "usageEndTime": end.to_string(),
               "instanceData": instance.to_string()})
    )
}

fn sum_by_subscription(rows: &[BTreeMap<String, String>]) -> BTreeMap<String, Decimal> {
    let mut sums: BTreeMap<String, Decimal> = BTreeMap::new();
    for row in rows {
        *sums.entry(row["SubscriptionId"].clone()).or_default() +=
            row["BillingPreTaxTotal"].parse::<Decimal>().unwrap();
    }
    sums
}

fn totals(invoices: &Value) -> BTreeMap<String, Decimal> {
    invoices["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["subscriptionId"].as_str().unwrap().to_owned(),
                i["total"].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn rows_per_day_and_resource_add_up_to_each_invoice_exactly() {
    let app = priced().await;
    // Thirds of cents to spread: three resources over two days.
    let body = [
        resource_record("r1", TENANT_1, "2025-05-04T01:00:00Z", "1", "a"),
        resource_record("r2", TENANT_1, "2025-05-04T02:00:00Z", "1", "b"),
        resource_record("r3", TENANT_1, "2025-05-05T01:00:00Z", "1", "c"),
        resource_record("r4", TENANT_2, "2025-05-05T01:00:00Z", "2.5", "d"),
    ]
    .concat();
    post_usage(&app, body).await;
    let invoices = app.get("/v1/invoices?period=2025-05").await.body;
    let (status, kind, csv) = export(&app, "period=2025-05", ADMIN_TOKEN).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&csv));
    assert_eq!(kind, "text/csv; charset=utf-8");
    let (header, rows) = parse_rows(&csv);
    assert_eq!(header.len(), 55);
    assert_eq!(header[0], "PartnerId");
    assert_eq!(header[47], "EntitlementId");
    assert_eq!(sum_by_subscription(&rows), totals(&invoices));
    let mine: Vec<&BTreeMap<String, String>> = rows
        .iter()
        .filter(|r| r["SubscriptionId"] == CUSTOMER_1 && r["ResourceURI"].ends_with("/a"))
        .collect();
    assert_eq!(mine.len(), 1);
    let row = mine[0];
    assert_eq!(row["UsageDate"], "2025-05-04");
    assert_eq!(row["ResourceGroup"], "rg1");
    assert_eq!(row["ConsumedService"], "Microsoft.Storage");
    assert_eq!(row["Tags"], r#"{"cost":"42"}"#);
    assert_eq!(row["CustomerId"], TENANT_1);
    assert_eq!(row["ChargeStartDate"], "2025-05-01");
    assert_eq!(row["ChargeEndDate"], "2025-05-31");
    assert_eq!(row["UnitPrice"], "0.5");
    assert_eq!(row["EffectiveUnitPrice"], "0.55", "10 % markup");
    assert_eq!(row["ChargeType"], "Usage");
    // Each line's quantities are the invoice's too.
    let line_quantity: Decimal = rows
        .iter()
        .filter(|r| r["SubscriptionId"] == CUSTOMER_1 && r["MeterId"] == METER)
        .map(|r| r["Quantity"].parse::<Decimal>().unwrap())
        .sum();
    let invoice = app
        .get(&format!("/v1/invoices/{CUSTOMER_1}/2025-05"))
        .await
        .body;
    assert_eq!(
        line_quantity,
        invoice["lines"][0]["quantity"]
            .as_str()
            .unwrap()
            .parse::<Decimal>()
            .unwrap()
    );

    // Final invoices with their numbers, and a late record as June's adjustment.
    app.call(Method::POST, "/v1/periods/2025-05/finalize", None)
        .await;
    app.db.clock.set("2025-07-02T00:00:00Z");
    post_usage(
        &app,
        resource_record("late", TENANT_1, "2025-05-06T01:00:00Z", "3", "a"),
    )
    .await;
    app.call(Method::POST, "/v1/periods/2025-06/finalize", None)
        .await;
    let (_, _, may) = export(&app, "period=2025-05", ADMIN_TOKEN).await;
    let (_, may_rows) = parse_rows(&may);
    assert!(may_rows.iter().all(|r| !r["InvoiceNumber"].is_empty()));
    assert_eq!(
        sum_by_subscription(&may_rows),
        sum_by_subscription(&rows),
        "final May is as it was"
    );
    let (_, _, june) = export(&app, "period=2025-06", ADMIN_TOKEN).await;
    let (_, june_rows) = parse_rows(&june);
    let june_invoices = app.get("/v1/invoices?period=2025-06").await.body;
    assert_eq!(sum_by_subscription(&june_rows), totals(&june_invoices));
    let adjustment = june_rows
        .iter()
        .find(|r| r["ChargeType"] == "Adjustment")
        .unwrap();
    assert_eq!(adjustment["Quantity"], "3");
    assert!(adjustment["AdditionalInfo"].contains("\"adjustedPeriod\":\"2025-05\""));

    // Gzip: the same file, compressed.
    let (status, kind, gz) = export(&app, "period=2025-05&compression=gzip", ADMIN_TOKEN).await;
    assert_eq!((status, kind.as_str()), (200, "application/gzip"));
    let mut plain = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut plain).unwrap();
    assert!(plain == may, "gzip holds the same bytes");
    let (status, _, bad) = export(&app, "period=2025-05&compression=zip", ADMIN_TOKEN).await;
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&bad));
}

#[tokio::test]
async fn a_partner_exports_its_own_rows_only() {
    let app = priced().await;
    let other = [crate::billing::record(
        "x",
        TENANT_2,
        METER,
        "2025-05-04T01:00:00Z",
        "1",
    )]
    .concat()
    .replace(CLOUD_1, CLOUD_3);
    app.put(
        "/v1/registrations/ea-stack",
        json!({"cloudId": CLOUD_3, "subscriptionId": EA_DEFAULT, "billingModel": "PayAsYouUse"}),
    )
    .await;
    post_usage(&app, other).await;
    let partner = app
        .token(json!({"role": "partner", "partnerId": "p1"}))
        .await;
    let (status, _, csv) = export(&app, "period=2025-05", &partner).await;
    assert_eq!(status, 200);
    let (_, rows) = parse_rows(&csv);
    assert!(!rows.is_empty());
    assert!(
        rows.iter().all(|r| r["PartnerId"] == "p1"),
        "only p1's rows"
    );
    let (status, _, _) = export(&app, "period=2025-05&partnerId=p2", &partner).await;
    assert_eq!(status, 403);
    let customer = app
        .token(json!({"role": "customer", "partnerId": "p1", "tenantId": TENANT_1}))
        .await;
    let (status, _, _) = export(&app, "period=2025-05", &customer).await;
    assert_eq!(status, 403);
    let (status, _, body) = export(&app, "", ADMIN_TOKEN).await;
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
}
