//! What invoices carry to be sent: billing profiles with history, invoice numbers, tax, and
//! currencies with their own minor units.

use axum::http::Method;
use serde_json::json;

use crate::billing::{METER, post_usage, priced, record};
use crate::*;

#[tokio::test]
async fn profiles_are_checked_field_by_field_and_kept_as_versions() {
    let app = seeded().await;
    let bad = [
        (json!({"country": "Germany"}), "country"),
        (json!({"invoicePrefix": "inv-"}), "invoicePrefix"),
        (json!({"taxRatePercent": "19"}), "taxRatePercent"),
        (
            json!({"address": ["1", "2", "3", "4", "5", "6", "7"]}),
            "address",
        ),
        (json!({"legalName": "A\nB"}), "legalName"),
    ];
    for (body, field) in bad {
        let answer = app.put("/v1/partners/p1/profile", body).await;
        assert_eq!(
            answer.error_at(),
            (400, "InvalidBillingProfile", field),
            "{answer:?}"
        );
    }
    let unknown = app
        .put("/v1/partners/p1/profile", json!({"vat": "x"}))
        .await;
    assert_eq!(unknown.error().0, 400, "{unknown:?}");
    let missing = app.put("/v1/partners/p9/profile", json!({})).await;
    assert_eq!(missing.error_at(), (404, "PartnerNotFound", "partnerId"));

    let first = json!({"legalName": "Contoso CSP Ltd", "address": ["1 Main St", "Leeds"], "country": "GB", "taxId": "GB123456789", "invoicePrefix": "CT"});
    assert_eq!(
        app.put("/v1/partners/p1/profile", first.clone())
            .await
            .status,
        200
    );
    app.db.clock.set("2025-06-16T00:00:00Z");
    let second = json!({"legalName": "Contoso CSP plc", "invoicePrefix": "CTP"});
    assert_eq!(
        app.put("/v1/partners/p1/profile", second.clone())
            .await
            .status,
        200
    );
    assert_eq!(app.get("/v1/partners/p1/profile").await.body, second);
    let then = app
        .get("/v1/partners/p1/profile?asOf=2025-06-15T23:00:00Z")
        .await;
    assert_eq!(then.body, first, "the version recorded by then");
    let sub = app
        .put(
            &format!("/v1/subscriptions/{CUSTOMER_1}/profile"),
            json!({"taxRatePercent": 19.5, "invoicePrefix": "X"}),
        )
        .await;
    assert_eq!(
        sub.error_at(),
        (400, "InvalidBillingProfile", "invoicePrefix")
    );
}

#[tokio::test]
async fn tax_is_one_line_on_the_total_and_numbers_run_without_gaps_per_partner() {
    let app = priced().await;
    let profile = json!({"legalName": "Contoso Customer GmbH", "taxRatePercent": "19"});
    let put = app
        .put(&format!("/v1/subscriptions/{CUSTOMER_1}/profile"), profile)
        .await;
    assert_eq!(put.status, 200, "{put:?}");
    assert_eq!(
        app.put("/v1/partners/p1/profile", json!({"invoicePrefix": "CT"}))
            .await
            .status,
        200
    );
    // Tenant 2's usage goes to the default subscription: p1 has two invoices in May.
    let draft = app.get(&format!("/v1/invoices/{CUSTOMER_1}/2025-05")).await;
    // 6.60 × 19 % = 1.254 → 1.25.
    assert_eq!(draft.body["total"], "6.60", "{draft:?}");
    assert_eq!(
        draft.body["tax"],
        json!({"ratePercent": "19", "amount": "1.25"})
    );
    assert_eq!(draft.body["totalDue"], "7.85");
    assert!(
        draft.body.get("invoiceNumber").is_none(),
        "drafts have no number"
    );

    let finalized = app
        .call(Method::POST, "/v1/periods/2025-05/finalize", None)
        .await;
    assert_eq!(finalized.status, 200, "{finalized:?}");
    let mut numbers: Vec<(String, String)> = finalized.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["partnerId"].as_str().unwrap_or("").to_owned(),
                i["invoiceNumber"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    numbers.sort();
    assert_eq!(
        numbers,
        [
            ("p1".to_owned(), "CT-2025-000001".to_owned()),
            ("p1".to_owned(), "CT-2025-000002".to_owned()),
        ]
    );
    let by_subscription = |sub: &str| {
        let sub = sub.to_owned();
        let app = &app;
        async move {
            app.get(&format!("/v1/invoices/{sub}/2025-05")).await.body["invoiceNumber"].clone()
        }
    };
    assert_eq!(
        by_subscription(CUSTOMER_1).await,
        "CT-2025-000001",
        "numbered in subscription order"
    );
    assert_eq!(by_subscription(CSPSS_DEFAULT).await, "CT-2025-000002");

    // A later tax rate changes drafts, never a final invoice's tax.
    let later = json!({"taxRatePercent": "25"});
    app.put(&format!("/v1/subscriptions/{CUSTOMER_1}/profile"), later)
        .await;
    let frozen = app.get(&format!("/v1/invoices/{CUSTOMER_1}/2025-05")).await;
    assert_eq!(frozen.body["tax"]["amount"], "1.25");
    assert_eq!(frozen.body["totalDue"], "7.85");

    // June: p1's numbers go on; a partner-less subscription gets the default prefix.
    app.db.clock.set("2025-07-02T00:00:00Z");
    let june = [
        record("j1", TENANT_1, METER, "2025-06-03T10:00:00Z", "2"),
        record("j2", TENANT_2, METER, "2025-06-03T10:00:00Z", "1"),
    ]
    .concat();
    post_usage(&app, june).await;
    let ea = app
        .put(
            "/v1/registrations/ea-stack",
            json!({"cloudId": CLOUD_3, "subscriptionId": EA_DEFAULT, "billingModel": "PayAsYouUse"}),
        )
        .await;
    assert!(ea.status.is_success(), "{ea:?}");
    let ea_usage =
        record("j3", TENANT_2, METER, "2025-06-04T10:00:00Z", "1").replace(CLOUD_1, CLOUD_3);
    post_usage(&app, ea_usage).await;
    let june = app
        .call(Method::POST, "/v1/periods/2025-06/finalize", None)
        .await;
    assert_eq!(june.status, 200, "{june:?}");
    let mut numbers: Vec<String> = june.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["invoiceNumber"].as_str().unwrap().to_owned())
        .collect();
    numbers.sort();
    assert_eq!(
        numbers,
        ["CT-2025-000003", "CT-2025-000004", "INV-2025-000001"]
    );
    let june_tax = app.get(&format!("/v1/invoices/{CUSTOMER_1}/2025-06")).await;
    assert_eq!(june_tax.body["tax"]["ratePercent"], "25");
}

#[tokio::test]
async fn each_currency_rounds_to_its_own_minor_unit() {
    let app = seeded().await;
    for (card, currency, price) in [("yen", "JPY", "123.4567"), ("dinar", "BHD", "0.12345")] {
        let answer = app
            .put(
                &format!("/v1/ratecards/{card}"),
                json!({"currency": currency, "meters": [
                    {"meterId": METER, "rates": {"0": price}, "effectiveDate": "2025-01-01T00:00:00Z"}
                ]}),
            )
            .await;
        assert_eq!(answer.status, 201, "{answer:?}");
    }
    let gold = app
        .put(
            "/v1/ratecards/gold",
            json!({"currency": "XAU", "meters": []}),
        )
        .await;
    assert_eq!(gold.error_at(), (400, "InvalidRateCard", "currency"));
    for (sub, card) in [(CUSTOMER_1, "yen"), (CSPSS_DEFAULT, "dinar")] {
        let offer = if sub == CUSTOMER_1 { "CSP" } else { "CSPSS" };
        let mut body = json!({"offerType": offer, "partnerId": "p1", "rateCard": card, "pricingFrom": "2025-01"});
        if sub == CUSTOMER_1 {
            body["customerTenantId"] = json!(TENANT_1);
        }
        let answer = app.put(&format!("/v1/subscriptions/{sub}"), body).await;
        assert_eq!(answer.status, 200, "{answer:?}");
    }
    app.put(
        &format!("/v1/registrations/stack1/customerSubscriptions/{CUSTOMER_1}"),
        json!({"tenantId": TENANT_1, "effectiveFrom": "2025-05-01T00:00:00Z"}),
    )
    .await;
    app.put(
        &format!("/v1/subscriptions/{CUSTOMER_1}/profile"),
        json!({"taxRatePercent": "10"}),
    )
    .await;
    let body = [
        record("y", TENANT_1, METER, "2025-05-03T10:00:00Z", "3"),
        record("b", TENANT_2, METER, "2025-05-03T10:00:00Z", "3"),
    ]
    .concat();
    post_usage(&app, body).await;
    let list = app.get("/v1/invoices?period=2025-05").await;
    let mut seen: Vec<(String, String, String)> = list.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["currency"].as_str().unwrap().to_owned(),
                i["total"].as_str().unwrap().to_owned(),
                i["totalDue"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    seen.sort();
    // 3 × 123.4567 = 370.3701 → 370 yen, tax 37.037 → 37; 3 × 0.12345 = 0.37035 → 0.370 BHD.
    assert_eq!(
        seen,
        [
            ("BHD".to_owned(), "0.370".to_owned(), "0.370".to_owned()),
            ("JPY".to_owned(), "370".to_owned(), "407".to_owned()),
        ]
    );
}
