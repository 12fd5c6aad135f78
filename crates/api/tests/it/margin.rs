//! The margin report: each line's revenue against its usage's cost, stack by stack.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::billing::{METER, post_usage, priced, record};
use crate::*;

const UNPRICED_METER: &str = "f271a8a3-88c4-4d93-956a-063e1d2fa80b";

#[tokio::test]
async fn margins_are_revenue_less_each_stack_s_cost_and_own_use_has_no_revenue() {
    let app = priced().await;
    for (card, price) in [("azs", "0.1"), ("azs-capacity", "0.2")] {
        let answer = app
            .put(
                &format!("/v1/ratecards/{card}"),
                json!({"currency": "USD", "meters": [{"meterId": METER, "rates": {"0": price}, "effectiveDate": "2025-01-01T00:00:00Z"}]}),
            )
            .await;
        assert_eq!(answer.status, 201, "{answer:?}");
    }
    let missing = app
        .put("/v1/partners/p1/costRateCard", json!({"rateCard": "nope"}))
        .await;
    assert_eq!(missing.error_at(), (404, "RateCardNotFound", "rateCard"));
    assert_eq!(
        app.put("/v1/partners/p1/costRateCard", json!({"rateCard": "azs"}))
            .await
            .status,
        200
    );
    let set = app
        .put(
            "/v1/registrations/capacity/costRateCard",
            json!({"rateCard": "azs-capacity"}),
        )
        .await;
    assert_eq!(set.body, json!({"rateCard": "azs-capacity"}));
    // The capacity stack bills everything to the default subscription: the CSP's own use.
    post_usage(
        &app,
        record("cap", TENANT_1, METER, "2025-05-07T10:00:00Z", "4").replace(CLOUD_1, CLOUD_2),
    )
    .await;

    let report = app.get("/v1/reports/margin?period=2025-05").await;
    assert_eq!(report.status, 200, "{report:?}");
    let rows: BTreeMap<(String, String), &Value> = report.body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                (
                    r["subscriptionId"].as_str().unwrap().to_owned(),
                    r["meterId"].as_str().unwrap().to_owned(),
                ),
                r,
            )
        })
        .collect();
    let invoice = app
        .get(&format!("/v1/invoices/{CUSTOMER_1}/2025-05"))
        .await
        .body;
    let revenue = invoice["lines"][0]["amount"].as_str().unwrap();
    // Computed here: 15 GB*hours on stack1 at 0.1 = 1.50; 6.60 − 1.50 = 5.10 = 77.27 %.
    let customer = rows[&(CUSTOMER_1.to_owned(), METER.to_owned())];
    assert_eq!(
        (
            customer["quantity"].as_str(),
            customer["cost"].as_str(),
            customer["revenue"].as_str(),
            customer["margin"].as_str(),
            customer["marginPercent"].as_str(),
            customer["ownUse"].as_bool(),
        ),
        (
            Some("15"),
            Some("1.50"),
            Some(revenue),
            Some("5.10"),
            Some("77.27"),
            Some(false)
        ),
        "{customer}"
    );
    // 0 on stack1 at 0.1, 4 on the capacity stack at 0.2: cost 0.80, no revenue.
    let own = rows[&(CSPSS_DEFAULT.to_owned(), METER.to_owned())];
    assert_eq!(
        (
            own["quantity"].as_str(),
            own["cost"].as_str(),
            own["revenue"].as_str(),
            own["margin"].as_str(),
            own["ownUse"].as_bool()
        ),
        (
            Some("4"),
            Some("0.80"),
            Some("0.00"),
            Some("-0.80"),
            Some(true)
        ),
        "{own}"
    );
    let unpriced = rows[&(CUSTOMER_1.to_owned(), UNPRICED_METER.to_owned())];
    assert!(
        unpriced["margin"].is_null() && unpriced["note"].is_string(),
        "{unpriced}"
    );
    assert_eq!(
        report.body["totals"],
        json!([{"partnerId": "p1", "currency": "USD", "cost": "2.30", "revenue": "6.60", "margin": "4.30", "linesWithoutMargin": 1}])
    );

    // A partner reads its own margins only; CSV on request.
    let p2 = app
        .token(json!({"role": "partner", "partnerId": "p2"}))
        .await;
    let theirs = app
        .call_as(
            &p2,
            axum::http::Method::GET,
            "/v1/reports/margin?period=2025-05",
            None,
        )
        .await;
    assert_eq!(theirs.body["rows"], json!([]));
    let refused = app
        .call_as(
            &p2,
            axum::http::Method::GET,
            "/v1/reports/margin?period=2025-05&partnerId=p1",
            None,
        )
        .await;
    assert_eq!(refused.error().0, 403);
    let foreign = app
        .call_as(
            &p2,
            axum::http::Method::PUT,
            "/v1/registrations/capacity/costRateCard",
            Some(json!({"rateCard": "azs"})),
        )
        .await;
    assert_eq!(foreign.error().0, 404);
}
