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

/// The invoice's PDF as the API answers it (with `Accept: application/pdf`).
pub(crate) async fn pdf(app: &stackbill_test_support::TestApp, path: &str) -> Vec<u8> {
    let request = axum::http::Request::builder()
        .uri(path)
        .header(
            "authorization",
            format!("Bearer {}", stackbill_test_support::ADMIN_TOKEN),
        )
        .header("accept", "application/pdf")
        .body(axum::body::Body::empty())
        .unwrap();
    let response = tower::ServiceExt::oneshot(app.router.clone(), request)
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/pdf");
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    assert!(body.starts_with(b"%PDF-"), "a PDF");
    body.to_vec()
}

/// The text of a PDF as Debian's `pdftotext` (poppler) extracts it, page by page.
pub(crate) fn pdf_pages(pdf: &[u8]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("invoice.pdf");
    std::fs::write(&file, pdf).unwrap();
    let out = std::process::Command::new("pdftotext")
        .args(["-layout", "-enc", "UTF-8"])
        .arg(&file)
        .arg("-")
        .output()
        .expect("pdftotext (Debian package poppler-utils) runs");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let mut pages: Vec<String> = text.split('\u{c}').map(str::to_owned).collect();
    if pages.last().is_some_and(|p| p.trim().is_empty()) {
        pages.pop();
    }
    pages
}

/// The words of a page with the layout's runs of spaces made single.
fn words(page: &str) -> String {
    page.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[tokio::test]
async fn an_invoice_pdf_prints_its_numbers_parties_and_tax_and_a_final_one_never_changes() {
    let app = priced().await;
    app.put(
        "/v1/partners/p1/profile",
        json!({"legalName": "Contoso CSP Ltd", "address": ["1 Main Street", "Leeds LS1 4AP"], "country": "GB", "taxId": "GB123456789", "invoicePrefix": "CT"}),
    )
    .await;
    app.put(
        &format!("/v1/subscriptions/{CUSTOMER_1}/profile"),
        json!({"legalName": "Northwind Traders GmbH", "address": ["Hauptstraße 5", "10115 Berlin"], "country": "DE", "taxId": "DE811111111", "taxRatePercent": "19"}),
    )
    .await;
    let path = format!("/v1/invoices/{CUSTOMER_1}/2025-05");
    let invoice = app.get(&path).await.body;
    let draft = pdf_pages(&pdf(&app, &path).await);
    assert_eq!(draft.len(), 1);
    let text = words(&draft[0]);
    for expected in [
        "DRAFT",
        "Contoso CSP Ltd",
        "1 Main Street",
        "Tax id: GB123456789",
        "Northwind Traders GmbH",
        "Hauptstraße 5",
        "Tax id: DE811111111",
        "May 2025",
        "USD (United States dollar)",
        "Subscription c0000000-0000-0000-0000-000000000001",
        "TableCapacity · tiered · 1 included · +10 % 15 GB*hours 0.5 6.60",
        "Static IP Address Usage · +10 % · no price 2 IP addresses – 0.00",
        "Subtotal 6.60",
        "Tax (19 %) 1.25",
        "Total due (USD) 7.85",
    ] {
        assert!(text.contains(expected), "{expected:?} not in {text}");
    }
    assert_eq!(invoice["totalDue"], "7.85");

    let finalized = app
        .call(Method::POST, "/v1/periods/2025-05/finalize", None)
        .await;
    assert_eq!(finalized.status, 200);
    let first = pdf(&app, &path).await;
    // Profiles changed after the finalization print on later invoices only.
    app.db.clock.set("2025-06-20T00:00:00Z");
    app.put(
        "/v1/partners/p1/profile",
        json!({"legalName": "Contoso Holdings", "invoicePrefix": "CH"}),
    )
    .await;
    app.put(
        &format!("/v1/subscriptions/{CUSTOMER_1}/profile"),
        json!({"legalName": "Northwind AG", "taxRatePercent": "7"}),
    )
    .await;
    let second = pdf(&app, &path).await;
    assert!(
        first == second,
        "a final invoice's PDF is the same bytes every time"
    );
    let text = words(&pdf_pages(&first)[0]);
    for expected in [
        "CT-2025-000001",
        "Final",
        "Contoso CSP Ltd",
        "Northwind Traders GmbH",
        "Tax (19 %) 1.25",
        "Total due (USD) 7.85",
    ] {
        assert!(text.contains(expected), "{expected:?} not in {text}");
    }
    assert!(
        !text.contains("DRAFT") && !text.contains("Holdings"),
        "{text}"
    );
}

#[tokio::test]
async fn a_long_invoice_runs_over_pages_each_with_a_continuation_header() {
    let app = seeded().await;
    // Every meter of the catalog, one record each: a line per meter.
    let meters: Vec<(String, String)> = app.get("/v1/meters?$top=1000").await.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let id = m["meterId"].as_str().unwrap().to_owned();
            (id, m["name"].as_str().unwrap().to_owned())
        })
        .collect();
    assert!(meters.len() > 80, "{}", meters.len());
    let body: String = meters
        .iter()
        .enumerate()
        .map(|(n, (meter, _))| {
            record(
                &format!("r{n}"),
                TENANT_2,
                meter,
                "2025-05-03T10:00:00Z",
                "1",
            )
        })
        .collect();
    post_usage(&app, body).await;
    let pages = pdf_pages(&pdf(&app, &format!("/v1/invoices/{CSPSS_DEFAULT}/2025-05")).await);
    assert_eq!(pages.len(), 3, "about 40 lines a page");
    for (n, page) in pages.iter().enumerate() {
        let text = words(page);
        assert!(text.contains("DRAFT"), "page {n} says DRAFT");
        assert!(text.contains(&format!("page {} of 3", n + 1)), "{text}");
        let rows = page
            .lines()
            .filter(|l| l.trim_end().ends_with("0.00"))
            .count();
        assert!(
            (25..=45).contains(&rows) || n == 2,
            "page {n}: {rows} lines"
        );
        if n > 0 {
            assert!(text.contains("(continued)"), "page {n}: {text}");
            assert!(text.contains("Description Quantity Unit Unit price Amount"));
        }
    }
    let all = words(&pages.concat());
    for (_, name) in &meters {
        let start: String = name.chars().take(24).collect();
        assert!(all.contains(start.trim_end()), "{name} printed");
    }
}
