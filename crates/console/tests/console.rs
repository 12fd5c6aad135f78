//! The console over the real router and a real store (SQLite, or PostgreSQL with
//! `STACKBILL_TEST_POSTGRES`): sign-in with a token into an `HttpOnly`, `SameSite=Strict`
//! cookie, CSRF on every form, the same authorization as the API (another partner's invoice
//! is missing), and pages whose numbers are the API's.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::{Value, json};
use sha2::Digest as _;
use stackbill_core::Period;
use stackbill_test_support::fixtures::{self, CLOUD, METERS};
use stackbill_test_support::{ADMIN_TOKEN, TestApp, admin_state};

/// An answer as the browser sees it.
struct Page {
    status: StatusCode,
    cookies: Vec<String>,
    location: Option<String>,
    body: String,
}

async fn send(
    router: &Router,
    method: Method,
    path: &str,
    cookie: &str,
    form: Option<&str>,
) -> Page {
    let mut request = Request::builder().method(method).uri(path);
    if !cookie.is_empty() {
        request = request.header(header::COOKIE, cookie);
    }
    let request = match form {
        Some(form) => request
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(form.to_owned())),
        None => request.body(Body::empty()),
    }
    .unwrap();
    let response = tower::ServiceExt::oneshot(router.clone(), request)
        .await
        .unwrap();
    let status = response.status();
    let cookies = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let location = response
        .headers()
        .get(header::LOCATION)
        .map(|v| v.to_str().unwrap().to_owned());
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    Page {
        status,
        cookies,
        location,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// The value of a form's hidden `csrf` field.
fn csrf(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").unwrap() + "name=\"csrf\" value=\"".len();
    html[at..].split('"').next().unwrap().to_owned()
}

/// `name=value` of a `Set-Cookie` header.
fn pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_owned()
}

fn form_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Signs in with `token`; the session cookie.
async fn sign_in(router: &Router, token: &str) -> String {
    let form = send(router, Method::GET, "/login", "", None).await;
    assert_eq!(form.status, StatusCode::OK);
    let login_cookie = pair(&form.cookies[0]);
    let body = format!("token={}&csrf={}", form_encode(token), csrf(&form.body));
    let signed = send(router, Method::POST, "/login", &login_cookie, Some(&body)).await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.body);
    let session = signed
        .cookies
        .iter()
        .find(|c| c.starts_with("stackbill_session="))
        .unwrap();
    pair(session)
}

/// An app with the console, partner p1's customers billed for May 2025, and partner p2.
async fn app() -> (TestApp, Router) {
    let app = TestApp::new();
    let store = &app.db.store;
    fixtures::csp(store, &["10"]).await;
    fixtures::register(store, "hub", CLOUD.parse().unwrap()).await;
    let may: Period = "2025-05".parse().unwrap();
    fixtures::map_tenants(store, "hub", &[1], may.start()).await;
    store
        .ingest(fixtures::month_of_usage(
            "may",
            CLOUD.parse().unwrap(),
            may,
            &[1, 3],
            &METERS,
            "1.5",
        ))
        .await
        .unwrap();
    app.put(
        "/v1/ratecards/default",
        json!({"currency": "USD", "meters": [{"meterId": METERS[0], "rates": {"0": "0.01"}}]}),
    )
    .await;
    app.put("/v1/partners/p2", json!({"name": "Other CSP"}))
        .await;
    let router = stackbill_api::router_with(admin_state(&app.db), stackbill_console::pages());
    (app, router)
}

#[tokio::test]
async fn signing_in_keeps_the_token_in_a_strict_cookie_and_every_form_needs_its_csrf_token() {
    let (_app, router) = app().await;
    let away = send(&router, Method::GET, "/", "", None).await;
    assert_eq!(away.status, StatusCode::SEE_OTHER);
    assert_eq!(away.location.as_deref(), Some("/login"));

    let form = send(&router, Method::GET, "/login", "", None).await;
    assert!(form.cookies[0].contains("HttpOnly") && form.cookies[0].contains("SameSite=Strict"));
    let login_cookie = pair(&form.cookies[0]);
    let token = csrf(&form.body);
    let forged = format!("token={ADMIN_TOKEN}&csrf=forged");
    let refused = send(
        &router,
        Method::POST,
        "/login",
        &login_cookie,
        Some(&forged),
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let wrong = format!("token=not-a-token&csrf={token}");
    let refused = send(&router, Method::POST, "/login", &login_cookie, Some(&wrong)).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(
        refused.body.contains("This token is not valid"),
        "{}",
        refused.body
    );

    let session = sign_in(&router, ADMIN_TOKEN).await;
    let signed = send(
        &router,
        Method::POST,
        "/login",
        &login_cookie,
        Some(&format!("token={ADMIN_TOKEN}&csrf={token}")),
    )
    .await;
    let set = signed
        .cookies
        .iter()
        .find(|c| c.starts_with("stackbill_session="))
        .unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict") && !set.contains("Secure"),
        "{set}"
    );
    let home = send(&router, Method::GET, "/", &session, None).await;
    assert_eq!(home.status, StatusCode::OK, "{}", home.body);
    assert!(home.body.contains("<span>admin</span>"), "{}", home.body);

    // The stylesheet is served under the name and hash the page gives.
    let href_at = home.body.find("href=\"/assets/").unwrap() + "href=\"".len();
    let href = home.body[href_at..].split('"').next().unwrap().to_owned();
    let integrity_at = home.body.find("integrity=\"").unwrap() + "integrity=\"".len();
    let integrity = home.body[integrity_at..]
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let css = send(&router, Method::GET, &href, "", None).await;
    assert_eq!(css.status, StatusCode::OK);
    let digest = sha2::Sha256::digest(css.body.as_bytes());
    use base64::Engine as _;
    assert_eq!(
        integrity,
        format!(
            "sha256-{}",
            base64::engine::general_purpose::STANDARD.encode(digest)
        )
    );

    // Signing out needs the session's CSRF token.
    let no_csrf = send(&router, Method::POST, "/logout", &session, Some("csrf=")).await;
    assert_eq!(no_csrf.status, StatusCode::FORBIDDEN);
    let out = send(
        &router,
        Method::POST,
        "/logout",
        &session,
        Some(&format!("csrf={}", csrf(&home.body))),
    )
    .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(out.cookies[0].contains("Max-Age=0"), "{:?}", out.cookies);
}

#[tokio::test]
async fn pages_show_the_apis_numbers_and_another_partners_invoice_is_missing() {
    let (app, router) = app().await;
    let admin = sign_in(&router, ADMIN_TOKEN).await;
    let listed = app.get("/v1/invoices?period=2025-05").await;
    let invoices = listed.body["value"].as_array().unwrap().clone();
    assert!(!invoices.is_empty());
    let page = send(
        &router,
        Method::GET,
        "/invoices?period=2025-05",
        &admin,
        None,
    )
    .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    for invoice in &invoices {
        let total = format!(
            "{} {}",
            invoice["total"].as_str().unwrap(),
            invoice["currency"].as_str().unwrap()
        );
        assert!(page.body.contains(&total), "{total} in {}", page.body);
    }
    let overview = send(&router, Method::GET, "/?period=2025-05", &admin, None).await;
    assert_eq!(overview.status, StatusCode::OK, "{}", overview.body);
    let sum: rust_decimal::Decimal = invoices
        .iter()
        .map(|i| {
            i["total"]
                .as_str()
                .unwrap()
                .parse::<rust_decimal::Decimal>()
                .unwrap()
        })
        .sum();
    assert!(
        overview.body.contains(&format!("{sum} USD")),
        "{sum} in {}",
        overview.body
    );

    // The usage chart's data: each charted meter's daily sums, exact: two tenants, 24 hours
    // of 1.5 a day each.
    let at = overview.body.find("id=\"usage-data\">").unwrap() + "id=\"usage-data\">".len();
    let json: Value =
        serde_json::from_str(overview.body[at..].split("</script>").next().unwrap()).unwrap();
    assert_eq!(json["days"].as_array().unwrap().len(), 31);
    assert_eq!(json["meters"].as_array().unwrap().len(), 2, "{json}");
    for meter in json["meters"].as_array().unwrap() {
        for value in meter["values"].as_array().unwrap() {
            let value: rust_decimal::Decimal = value.as_str().unwrap().parse().unwrap();
            assert_eq!(value, rust_decimal::Decimal::from(72), "{meter}");
        }
    }

    let sub = invoices[0]["subscriptionId"].as_str().unwrap().to_owned();
    let path = format!("/invoices/{sub}/2025-05");
    let detail = send(&router, Method::GET, &path, &admin, None).await;
    assert_eq!(detail.status, StatusCode::OK, "{}", detail.body);
    let api: Value = app.get(&format!("/v1/invoices/{sub}/2025-05")).await.body;
    assert!(detail.body.contains(&format!(
        "<span id=\"total\">{}</span>",
        api["total"].as_str().unwrap()
    )));
    assert!(detail.body.contains("TableCapacity"), "{}", detail.body);

    let other = app
        .token(json!({"role": "partner", "partnerId": "p2"}))
        .await;
    let p2 = sign_in(&router, &other).await;
    let hidden = send(&router, Method::GET, &path, &p2, None).await;
    assert_eq!(hidden.status, StatusCode::NOT_FOUND, "{}", hidden.body);
    assert!(!hidden.body.contains("id=\"total\""), "{}", hidden.body);
    let hidden_pdf = send(&router, Method::GET, &format!("{path}/pdf"), &p2, None).await;
    assert_eq!(hidden_pdf.status, StatusCode::NOT_FOUND);
    assert!(!hidden_pdf.body.starts_with("%PDF"));
    let theirs = send(&router, Method::GET, "/invoices?period=2025-05", &p2, None).await;
    assert!(!theirs.body.contains(&sub), "{}", theirs.body);

    // A revoked token signs out at once.
    let tokens = app.get("/v1/tokens?partnerId=p2").await;
    let id = tokens.body["value"][0]["id"].as_str().unwrap().to_owned();
    app.call(Method::DELETE, &format!("/v1/tokens/{id}"), None)
        .await;
    let gone = send(&router, Method::GET, "/", &p2, None).await;
    assert_eq!(gone.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_line_drills_down_to_its_records_and_a_month_is_finalized_after_confirmation() {
    let (app, router) = app().await;
    let admin = sign_in(&router, ADMIN_TOKEN).await;
    let sub = fixtures::customer(1).to_string();
    let path = format!("/invoices/{sub}/2025-05");
    let api: Value = app.get(&format!("/v1/invoices/{sub}/2025-05")).await.body;
    let line = &api["lines"][0];

    // The records behind a line add up to its quantity, 100 to a page.
    let records = send(
        &router,
        Method::GET,
        &format!("{path}/records?meter={}", line["meterId"].as_str().unwrap()),
        &admin,
        None,
    )
    .await;
    assert_eq!(records.status, StatusCode::OK, "{}", records.body);
    assert!(
        records.body.contains(&format!(
            "{} {}",
            line["quantity"].as_str().unwrap(),
            line["unit"].as_str().unwrap()
        )),
        "{}",
        records.body
    );
    assert_eq!(records.body.matches("<tr><td>").count(), 100);
    assert!(records.body.contains("rel=\"next\""));

    // The CSV download is the API's CSV.
    let csv = send(&router, Method::GET, &format!("{path}/csv"), &admin, None).await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(
        csv.body.starts_with("subscriptionId,customerName,"),
        "{}",
        csv.body
    );

    // The PDF download is the API's document.
    let page = send(&router, Method::GET, &path, &admin, None).await;
    assert!(
        page.body.contains(&format!("href=\"{path}/pdf\"")),
        "{}",
        page.body
    );
    let pdf = send(&router, Method::GET, &format!("{path}/pdf"), &admin, None).await;
    assert_eq!(pdf.status, StatusCode::OK);
    assert!(pdf.body.starts_with("%PDF-"));

    // As of an instant before any usage, the invoice did not exist.
    let before = send(
        &router,
        Method::GET,
        &format!("{path}?asOf=2025-01-01T00:00:00Z"),
        &admin,
        None,
    )
    .await;
    assert_eq!(before.status, StatusCode::NOT_FOUND, "{}", before.body);

    // Finalizing asks first, needs the CSRF token, then freezes the month.
    let list = send(
        &router,
        Method::GET,
        "/invoices?period=2025-05",
        &admin,
        None,
    )
    .await;
    assert!(
        list.body.contains("href=\"/finalize?period=2025-05\""),
        "{}",
        list.body
    );
    let confirm = send(
        &router,
        Method::GET,
        "/finalize?period=2025-05",
        &admin,
        None,
    )
    .await;
    assert_eq!(confirm.status, StatusCode::OK);
    assert!(
        confirm.body.contains("cannot be undone"),
        "{}",
        confirm.body
    );
    let token = csrf(&confirm.body);
    let forged = send(
        &router,
        Method::POST,
        "/finalize",
        &admin,
        Some("csrf=forged&period=2025-05"),
    )
    .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(
        app.get(&format!("/v1/invoices/{sub}/2025-05")).await.body["status"],
        "draft"
    );
    let done = send(
        &router,
        Method::POST,
        "/finalize",
        &admin,
        Some(&format!("csrf={token}&period=2025-05")),
    )
    .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert!(done.body.contains("2025-05 is final"), "{}", done.body);
    assert_eq!(
        app.get(&format!("/v1/invoices/{sub}/2025-05")).await.body["status"],
        "final"
    );

    // A month that has not ended is refused with the API's reason.
    let open = send(
        &router,
        Method::POST,
        "/finalize",
        &admin,
        Some(&format!("csrf={token}&period=2025-06")),
    )
    .await;
    assert_eq!(open.status, StatusCode::CONFLICT, "{}", open.body);
    assert!(open.body.contains("2025-06"), "{}", open.body);
}

#[tokio::test]
async fn an_unmapped_tenant_is_mapped_from_the_console_under_the_apis_rules() {
    let (app, router) = app().await;
    let admin = sign_in(&router, ADMIN_TOKEN).await;
    let tenant = fixtures::tenant(3).to_string();
    let sub = fixtures::customer(3).to_string();
    app.put(
        &format!("/v1/subscriptions/{sub}"),
        json!({"offerType": "CSP", "partnerId": "p1", "customerTenantId": tenant}),
    )
    .await;

    // Tenant 3's May usage went to the default subscription: the overview offers to map it.
    let overview = send(&router, Method::GET, "/?period=2025-05", &admin, None).await;
    let link = format!("/stacks/hub?tenant={tenant}");
    assert!(overview.body.contains(&link), "{}", overview.body);
    let stack = send(&router, Method::GET, &link, &admin, None).await;
    assert_eq!(stack.status, StatusCode::OK, "{}", stack.body);
    assert!(
        stack.body.contains(&format!("value=\"{tenant}\"")),
        "the tenant is filled in"
    );
    let token = csrf(&stack.body);

    // Without the CSRF token nothing changes.
    let forged = format!("csrf=forged&tenant={tenant}&subscription={sub}");
    let refused = send(
        &router,
        Method::POST,
        "/stacks/hub/map",
        &admin,
        Some(&forged),
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let mapped = app.get("/v1/registrations/hub/customerSubscriptions").await;
    assert_eq!(mapped.body["value"].as_array().unwrap().len(), 1);

    // Another partner's customer is refused with the API's code.
    app.put(
        "/v1/subscriptions/c0000000-0000-0000-0000-000000000099",
        json!({"offerType": "CSP", "partnerId": "p2", "customerTenantId": tenant}),
    )
    .await;
    let foreign =
        format!("csrf={token}&tenant={tenant}&subscription=c0000000-0000-0000-0000-000000000099");
    let refused = send(
        &router,
        Method::POST,
        "/stacks/hub/map",
        &admin,
        Some(&foreign),
    )
    .await;
    assert!(refused.status.is_client_error(), "{}", refused.status);
    assert!(
        refused.body.contains("BadCustomerSubscriptionId"),
        "{}",
        refused.body
    );

    // Mapped from May on (backdated): the API sees it, the timeline marks it.
    let form = format!(
        "csrf={token}&tenant={tenant}&subscription={sub}&effective_from=2025-05-01T00%3A00%3A00Z"
    );
    let done = send(
        &router,
        Method::POST,
        "/stacks/hub/map",
        &admin,
        Some(&form),
    )
    .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert!(done.body.contains("backdated"), "{}", done.body);
    let mapping = app
        .get(&format!(
            "/v1/registrations/hub/customerSubscriptions/{sub}"
        ))
        .await;
    assert_eq!(mapping.status, 200, "{mapping:?}");
    assert_eq!(mapping.body["tenantId"], tenant.as_str());
    let overview = send(&router, Method::GET, "/?period=2025-05", &admin, None).await;
    assert!(
        !overview.body.contains(&link),
        "tenant 3 is no longer unmapped"
    );

    // Ending the mapping sends its usage to the default subscription again.
    let end = format!("csrf={token}&subscription={sub}");
    let ended = send(&router, Method::POST, "/stacks/hub/end", &admin, Some(&end)).await;
    assert_eq!(ended.status, StatusCode::OK, "{}", ended.body);
    assert!(
        ended.body.contains("billed to the default subscription"),
        "{}",
        ended.body
    );
    let gone = app
        .get(&format!(
            "/v1/registrations/hub/customerSubscriptions/{sub}"
        ))
        .await;
    assert_eq!(gone.status, 404, "{gone:?}");

    // Another partner does not see the stack.
    let other = app
        .token(json!({"role": "partner", "partnerId": "p2"}))
        .await;
    let p2 = sign_in(&router, &other).await;
    let hidden = send(&router, Method::GET, "/stacks/hub", &p2, None).await;
    assert_eq!(hidden.status, StatusCode::NOT_FOUND);
    let list = send(&router, Method::GET, "/stacks", &p2, None).await;
    assert!(!list.body.contains("/stacks/hub"), "{}", list.body);
}

/// A multipart upload of `csv` as the form's `file`, with its CSRF token.
async fn upload(router: &Router, path: &str, cookie: &str, token: &str, csv: &str) -> Page {
    let body = format!(
        "--XyZ\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{token}\r\n\
         --XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"prices.csv\"\r\n\
         Content-Type: text/csv\r\n\r\n{csv}\r\n--XyZ--\r\n"
    );
    let request = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(header::COOKIE, cookie)
        .header(header::CONTENT_TYPE, "multipart/form-data; boundary=XyZ")
        .body(Body::from(body))
        .unwrap();
    let response = tower::ServiceExt::oneshot(router.clone(), request)
        .await
        .unwrap();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    Page {
        status,
        cookies: Vec::new(),
        location: None,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

#[tokio::test]
async fn rate_cards_are_read_and_changed_as_new_versions_by_those_who_may() {
    let (app, router) = app().await;
    let admin = sign_in(&router, ADMIN_TOKEN).await;
    let list = send(&router, Method::GET, "/ratecards", &admin, None).await;
    assert!(
        list.body.contains("href=\"/ratecards/shared/default\""),
        "{}",
        list.body
    );
    let card = send(
        &router,
        Method::GET,
        "/ratecards/shared/default",
        &admin,
        None,
    )
    .await;
    assert_eq!(card.status, StatusCode::OK, "{}", card.body);
    assert!(
        card.body.contains("TableCapacity") && card.body.contains("0.01"),
        "{}",
        card.body
    );
    let token = csrf(&card.body);

    let price = format!(
        "meter={}&price=0.02&tiers=100%3D0.015&included=5",
        METERS[1]
    );
    let forged = send(
        &router,
        Method::POST,
        "/ratecards/shared/default/price",
        &admin,
        Some(&format!("csrf=forged&{price}")),
    )
    .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let set = send(
        &router,
        Method::POST,
        "/ratecards/shared/default/price",
        &admin,
        Some(&format!("csrf={token}&{price}")),
    )
    .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    let api = app.get("/v1/ratecards/default").await;
    let entry = api.body["meters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["meterId"] == METERS[1])
        .unwrap()
        .clone();
    assert_eq!(entry["rates"], json!({"0": "0.02", "100": "0.015"}));
    assert_eq!(entry["includedQuantity"], "5");
    let bad = send(
        &router,
        Method::POST,
        "/ratecards/shared/default/price",
        &admin,
        Some(&format!("csrf={token}&meter={}&price=cheap", METERS[0])),
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(
        bad.body
            .contains("Unit price: &#x27;cheap&#x27; is not a decimal number")
            || bad.body.contains("is not a decimal number"),
        "{}",
        bad.body
    );

    // A price list replaces every price; a bad cell is named and changes nothing.
    let csv = send(
        &router,
        Method::GET,
        "/ratecards/shared/default/csv",
        &admin,
        None,
    )
    .await;
    assert!(
        csv.body.starts_with("meterId,meterName,unit,"),
        "{}",
        csv.body
    );
    let broken = csv.body.replace("0.015", "lots");
    let refused = upload(
        &router,
        "/ratecards/shared/default/upload",
        &admin,
        &token,
        &broken,
    )
    .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert!(
        refused.body.contains("column unitPrice"),
        "{}",
        refused.body
    );
    assert_eq!(app.get("/v1/ratecards/default").await.body, api.body);
    let only_first = format!("meterId,fromQuantity,unitPrice\n{},0,0.03\n", METERS[0]);
    let loaded = upload(
        &router,
        "/ratecards/shared/default/upload",
        &admin,
        &token,
        &only_first,
    )
    .await;
    assert_eq!(loaded.status, StatusCode::OK, "{}", loaded.body);
    let replaced = app.get("/v1/ratecards/default").await;
    assert_eq!(
        replaced.body["meters"].as_array().unwrap().len(),
        1,
        "{:?}",
        replaced.body
    );

    // A partner reads the shared card but does not change it, and never sees another's.
    let other = app
        .token(json!({"role": "partner", "partnerId": "p2"}))
        .await;
    let p2 = sign_in(&router, &other).await;
    let shared = send(&router, Method::GET, "/ratecards/shared/default", &p2, None).await;
    assert_eq!(shared.status, StatusCode::OK);
    assert!(
        !shared.body.contains("/price\""),
        "no form for a card it may not change"
    );
    let p2_token = csrf(&shared.body);
    let refused = send(
        &router,
        Method::POST,
        "/ratecards/shared/default/price",
        &p2,
        Some(&format!("csrf={p2_token}&{price}")),
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    app.put(
        "/v1/ratecards/own?partnerId=p1",
        json!({"currency": "EUR", "meters": []}),
    )
    .await;
    let hidden = send(&router, Method::GET, "/ratecards/p1/own", &p2, None).await;
    assert_eq!(hidden.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn customers_are_found_by_tenant_subscription_or_name_and_shown_with_their_invoices() {
    let (app, router) = app().await;
    app.put(
        &format!("/v1/subscriptions/{}", fixtures::customer(1)),
        json!({"offerType": "CSP", "partnerId": "p1", "customerTenantId": fixtures::tenant(1).to_string(), "displayName": "Northwind Traders", "markupPercent": "10"}),
    )
    .await;
    let admin = sign_in(&router, ADMIN_TOKEN).await;
    let sub = fixtures::customer(1).to_string();
    for query in [
        fixtures::tenant(1).to_string(),
        sub.clone(),
        "northwind".to_owned(),
    ] {
        let found = send(
            &router,
            Method::GET,
            &format!("/customers?q={query}"),
            &admin,
            None,
        )
        .await;
        assert_eq!(found.status, StatusCode::OK);
        assert!(
            found.body.contains(&format!("href=\"/customers/{sub}\"")),
            "{query}: {}",
            found.body
        );
    }
    let none = send(
        &router,
        Method::GET,
        "/customers?q=nobody-at-all",
        &admin,
        None,
    )
    .await;
    assert!(none.body.contains("Nothing matches"), "{}", none.body);

    let page = send(
        &router,
        Method::GET,
        &format!("/customers/{sub}"),
        &admin,
        None,
    )
    .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body.contains("Northwind Traders") && page.body.contains("href=\"/stacks/hub\""),
        "{}",
        page.body
    );
    let may = app.get(&format!("/v1/invoices/{sub}/2025-05")).await;
    assert!(
        page.body.contains(&format!(
            "{} {}",
            may.body["total"].as_str().unwrap(),
            may.body["currency"].as_str().unwrap()
        )),
        "{}",
        page.body
    );
    assert!(page.body.contains("id=\"usage-data\""));

    let other = app
        .token(json!({"role": "partner", "partnerId": "p2"}))
        .await;
    let p2 = sign_in(&router, &other).await;
    let hidden = send(
        &router,
        Method::GET,
        &format!("/customers/{sub}"),
        &p2,
        None,
    )
    .await;
    assert_eq!(hidden.status, StatusCode::NOT_FOUND);
    let search = send(&router, Method::GET, "/customers?q=northwind", &p2, None).await;
    assert!(!search.body.contains(&sub), "{}", search.body);
}

#[tokio::test]
async fn an_invoices_changes_are_explained_and_a_customer_sees_only_its_registration_status() {
    let (app, router) = app().await;
    let admin = sign_in(&router, ADMIN_TOKEN).await;
    let sub = fixtures::customer(1).to_string();
    // Every record was accepted at the store's instant (2025-06-15T12:00Z), after this one.
    let diff = send(
        &router,
        Method::GET,
        &format!("/invoices/{sub}/2025-05/diff?from=2025-06-01T00:00:00Z&to=2025-07-01T00:00:00Z"),
        &admin,
        None,
    )
    .await;
    assert_eq!(diff.status, StatusCode::OK, "{}", diff.body);
    assert!(diff.body.contains("744 new records"), "{}", diff.body);
    assert!(
        !diff.body.contains("late records"),
        "an open month has no late records"
    );
    let api = app.get(&format!("/v1/invoices/{sub}/2025-05")).await;
    assert!(
        diff.body.contains(&format!(
            "<strong>{}</strong>",
            api.body["total"].as_str().unwrap()
        )),
        "{}",
        diff.body
    );
    let bad = send(
        &router,
        Method::GET,
        &format!("/invoices/{sub}/2025-05/diff?from=yesterday"),
        &admin,
        None,
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    let customer = app
        .token(json!({"role": "customer", "partnerId": "p1", "tenantId": fixtures::tenant(1).to_string()}))
        .await;
    let session = sign_in(&router, &customer).await;
    let home = send(&router, Method::GET, "/", &session, None).await;
    assert_eq!(home.status, StatusCode::OK, "{}", home.body);
    assert!(
        home.body.contains("Your registration with p1"),
        "{}",
        home.body
    );
    assert!(
        home.body.contains(&format!("your subscription {sub}")),
        "{}",
        home.body
    );
    assert!(
        !home.body.contains(api.body["total"].as_str().unwrap()),
        "no amounts for a customer"
    );
    let invoice = send(
        &router,
        Method::GET,
        &format!("/invoices/{sub}/2025-05"),
        &session,
        None,
    )
    .await;
    assert_eq!(invoice.status, StatusCode::FORBIDDEN, "{}", invoice.body);
}

#[tokio::test]
async fn refused_records_are_counted_by_code_for_admins() {
    let (app, router) = app().await;
    let record = |id: &str, meter: &str| {
        format!(
            "{}\n",
            json!({"id": id, "cloudId": CLOUD, "tenantId": fixtures::tenant(1).to_string(),
                   "subscriptionId": fixtures::STACK_SUBSCRIPTION, "meterId": meter, "quantity": "1",
                   "usageStartTime": "2025-06-01T10:00:00Z", "usageEndTime": "2025-06-01T11:00:00Z"})
        )
    };
    let body = format!(
        "{}{}{}",
        record("ok", METERS[0]),
        record("bad-1", "00000000-0000-0000-0000-0000000000aa"),
        record("bad-2", "00000000-0000-0000-0000-0000000000ab")
    );
    let answer = app
        .raw(
            Method::POST,
            "/v1/usage",
            Some(ADMIN_TOKEN),
            Some(body),
            "application/x-ndjson",
        )
        .await;
    assert_eq!(answer.body["accepted"], 1, "{answer:?}");
    let code = answer.body["rejected"][0]["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let admin = sign_in(&router, ADMIN_TOKEN).await;
    let overview = send(&router, Method::GET, "/", &admin, None).await;
    let at = overview.body.find("id=\"rejections\"").unwrap();
    let table = &overview.body[at..];
    assert!(
        table.contains(&format!(
            "<td class=\"bad\">{code}</td><td class=\"num\">2</td>"
        )),
        "{table}"
    );
    let other = app
        .token(json!({"role": "partner", "partnerId": "p2"}))
        .await;
    let p2 = sign_in(&router, &other).await;
    let theirs = send(&router, Method::GET, "/", &p2, None).await;
    assert!(
        !theirs.body.contains("id=\"rejections\""),
        "an admin's only"
    );
}

#[tokio::test]
async fn the_margin_page_charts_revenue_and_cost_and_webhooks_are_added_and_replayed_from_forms() {
    let (app, router) = app().await;
    app.put(
        "/v1/ratecards/azs",
        json!({"currency": "USD", "meters": [{"meterId": METERS[0], "rates": {"0": "0.004"}}]}),
    )
    .await;
    app.put("/v1/partners/p1/costRateCard", json!({"rateCard": "azs"}))
        .await;
    let admin = sign_in(&router, ADMIN_TOKEN).await;
    let page = send(
        &router,
        Method::GET,
        "/reports/margin?period=2025-05",
        &admin,
        None,
    )
    .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let api = app.get("/v1/reports/margin?period=2025-05").await.body;
    let total = &api["totals"][0];
    assert!(
        page.body.contains(&format!(
            "<div class=\"big\">{}</div>",
            total["margin"].as_str().unwrap()
        )),
        "{}",
        page.body
    );
    assert!(page.body.contains("<svg class=\"bars\""), "a chart");
    assert!(
        page.body.contains("own use"),
        "the default subscription's usage"
    );
    let csv = send(
        &router,
        Method::GET,
        "/reports/margin/csv?period=2025-05",
        &admin,
        None,
    )
    .await;
    assert!(csv.body.starts_with("partnerId,subscriptionId,"));

    // An endpoint added from the form shows its secret once; the API sees it.
    let page = send(&router, Method::GET, "/webhooks", &admin, None).await;
    let token = csrf(&page.body);
    let form = format!(
        "csrf={token}&partner=p1&url={}&description=ops&invoice.finalized=on",
        form_encode("https://hooks.example.com/stackbill")
    );
    let added = send(&router, Method::POST, "/webhooks", &admin, Some(&form)).await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.body);
    assert!(
        added.body.contains("<code id=\"secret\">whsec_"),
        "{}",
        added.body
    );
    let listed = app.get("/v1/webhooks").await.body;
    let id = listed["value"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        listed["value"][0]["eventTypes"],
        json!(["invoice.finalized"])
    );
    let bad = format!("csrf={token}&partner=p1&url=http%3A%2F%2Fexample.com%2F&all=on");
    let refused = send(&router, Method::POST, "/webhooks", &admin, Some(&bad)).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(refused.body.contains("InvalidWebhook"), "{}", refused.body);
    let forged = send(
        &router,
        Method::POST,
        "/webhooks",
        &admin,
        Some("csrf=forged&partner=p1&url=https%3A%2F%2Fx.example%2F&all=on"),
    )
    .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);

    // Finalizing May makes an event; its delivery shows on the endpoint's page.
    app.call(Method::POST, "/v1/periods/2025-05/finalize", None)
        .await;
    let detail = send(
        &router,
        Method::GET,
        &format!("/webhooks/{id}"),
        &admin,
        None,
    )
    .await;
    assert!(detail.body.contains("invoice.finalized"), "{}", detail.body);
    let off = format!("csrf={token}&enabled=false");
    let turned = send(
        &router,
        Method::POST,
        &format!("/webhooks/{id}/enabled"),
        &admin,
        Some(&off),
    )
    .await;
    assert_eq!(turned.status, StatusCode::SEE_OTHER);
    assert_eq!(
        app.get(&format!("/v1/webhooks/{id}")).await.body["enabled"],
        false
    );

    // Another partner's endpoint is missing to p2.
    let other = app
        .token(json!({"role": "partner", "partnerId": "p2"}))
        .await;
    let p2 = sign_in(&router, &other).await;
    let hidden = send(&router, Method::GET, &format!("/webhooks/{id}"), &p2, None).await;
    assert_eq!(hidden.status, StatusCode::NOT_FOUND);
    let theirs = send(&router, Method::GET, "/webhooks", &p2, None).await;
    assert!(!theirs.body.contains(&id));
}
