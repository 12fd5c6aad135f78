//! The authorization matrix: every route, every role, own and another partner's objects.

use axum::http::Method;
use serde_json::{Value, json};
use stackbill_test_support::{ADMIN_TOKEN, Answer, TestApp};

use crate::*;

const P2_DEFAULT: &str = "d0000000-0000-0000-0000-000000000003";
const CLOUD_4: &str = "ca000000-0000-0000-0000-000000000004";
const METER: &str = "b4438d5d-453b-4ee1-b42a-dc72e377f1e4";

struct Tokens {
    partner: String,
    stack: String,
    customer: String,
}

async fn token(app: &TestApp, as_token: &str, body: Value) -> Answer {
    app.raw(
        Method::POST,
        "/v1/tokens",
        Some(as_token),
        Some(body.to_string()),
        "application/json",
    )
    .await
}

fn usage(id: &str, cloud: &str) -> String {
    format!(
        "{}\n",
        json!({"id": id, "cloudId": cloud, "tenantId": TENANT_1, "subscriptionId": "50000000-0000-0000-0000-000000000001",
               "meterId": METER, "quantity": "1", "usageStartTime": "2025-05-03T10:00:00Z", "usageEndTime": "2025-05-03T11:00:00Z"})
    )
}

/// The seeded directory plus a registration of partner p2 with its customer mapped, tenant 1
/// mapped on stack1, a rate card, and one token of each role.
async fn world() -> (TestApp, Tokens) {
    let app = seeded().await;
    assert_eq!(
        app.put(
            &format!("/v1/subscriptions/{P2_DEFAULT}"),
            json!({"offerType": "CSPSS", "partnerId": "p2"})
        )
        .await
        .status,
        201
    );
    assert_eq!(
        app.put(
            "/v1/registrations/p2stack",
            json!({"cloudId": CLOUD_4, "subscriptionId": P2_DEFAULT})
        )
        .await
        .status,
        201
    );
    let foreign = app
        .put(
            &format!("/v1/registrations/p2stack/customerSubscriptions/{FOREIGN_CUSTOMER}"),
            json!({"tenantId": TENANT_2}),
        )
        .await;
    assert_eq!(foreign.status, 200, "{foreign:?}");
    assert_eq!(
        app.put(
            &format!("/v1/registrations/stack1/customerSubscriptions/{CUSTOMER_1}"),
            json!({"tenantId": TENANT_1})
        )
        .await
        .status,
        200
    );
    assert_eq!(
        app.put(
            "/v1/ratecards/default",
            json!({"currency": "USD", "meters": [{"meterId": METER, "rates": {"0": "1"}}]})
        )
        .await
        .status,
        201
    );
    let p2card = app
        .put(
            "/v1/ratecards/p2card?partnerId=p2",
            json!({"currency": "USD", "meters": [{"meterId": METER, "rates": {"0": "2"}}]}),
        )
        .await;
    assert_eq!(p2card.status, 201, "{p2card:?}");
    let secret = |a: Answer| {
        assert_eq!(a.status, 201, "{a:?}");
        a.body["token"].as_str().unwrap().to_owned()
    };
    let partner = secret(
        token(
            &app,
            ADMIN_TOKEN,
            json!({"role": "partner", "partnerId": "p1", "name": "p1 ops"}),
        )
        .await,
    );
    let stack = secret(token(&app, &partner, json!({"role": "stack", "cloudId": CLOUD_1})).await);
    let customer = secret(
        token(
            &app,
            &partner,
            json!({"role": "customer", "tenantId": TENANT_1}),
        )
        .await,
    );
    (
        app,
        Tokens {
            partner,
            stack,
            customer,
        },
    )
}

#[tokio::test]
async fn every_route_answers_each_role_as_spec_section_7_says() {
    let (app, tokens) = world().await;
    let month = "from=2025-05-01T00:00:00Z&to=2025-06-01T00:00:00Z";
    let own_rp = format!(
        "/subscriptions/{CSPSS_DEFAULT}/resourceGroups/azurestack/providers/Microsoft.AzureStack/registrations"
    );
    let other_rp = format!(
        "/subscriptions/{P2_DEFAULT}/resourceGroups/azurestack/providers/Microsoft.AzureStack/registrations"
    );
    // (method, path, body, [customer, stack, partner p1, admin]) — run in that order, so that
    // the refused calls come before the admin's, which may change things.
    let rows: Vec<(Method, String, Option<String>, [u16; 4])> = vec![
        (Method::GET, "/v1/partners/p1".into(), None, [403, 403, 200, 200]),
        (Method::GET, "/v1/partners/p2".into(), None, [403, 403, 404, 200]),
        (Method::GET, "/v1/partners".into(), None, [403, 403, 200, 200]),
        (Method::PUT, "/v1/partners/p3".into(), Some(json!({"name": "x"}).to_string()), [403, 403, 403, 201]),
        (Method::GET, "/v1/partners/p1/profile".into(), None, [403, 403, 200, 200]),
        (Method::GET, "/v1/partners/p2/profile".into(), None, [403, 403, 404, 200]),
        (Method::PUT, "/v1/partners/p1/profile".into(), Some(json!({"legalName": "P1 Ltd"}).to_string()), [403, 403, 200, 200]),
        (Method::PUT, "/v1/partners/p2/profile".into(), Some(json!({"invoicePrefix": "PTWO"}).to_string()), [403, 403, 404, 200]),
        (Method::GET, format!("/v1/subscriptions/{CUSTOMER_1}/profile"), None, [403, 403, 200, 200]),
        (Method::PUT, format!("/v1/subscriptions/{FOREIGN_CUSTOMER}/profile"), Some(json!({"taxRatePercent": "20"}).to_string()), [403, 403, 404, 200]),
        (Method::PUT, format!("/v1/subscriptions/{CUSTOMER_1}/profile"), Some(json!({"taxId": "GB123"}).to_string()), [403, 403, 200, 200]),
        (Method::GET, format!("/v1/subscriptions/{CUSTOMER_1}"), None, [403, 403, 200, 200]),
        (Method::GET, format!("/v1/subscriptions/{FOREIGN_CUSTOMER}"), None, [403, 403, 404, 200]),
        (Method::PUT, format!("/v1/subscriptions/{FOREIGN_CUSTOMER}"), Some(json!({"offerType": "CSP", "partnerId": "p2", "customerTenantId": TENANT_2}).to_string()), [403, 403, 404, 200]),
        (Method::PUT, format!("/v1/subscriptions/{CUSTOMER_1}"), Some(json!({"offerType": "CSP", "partnerId": "p1", "customerTenantId": TENANT_1, "markupPercent": "5"}).to_string()), [403, 403, 200, 200]),
        (Method::GET, "/v1/registrations/stack1".into(), None, [403, 403, 200, 200]),
        (Method::GET, "/v1/registrations/p2stack".into(), None, [403, 403, 404, 200]),
        (Method::GET, "/v1/registrations/stack1/history".into(), None, [403, 403, 200, 200]),
        (Method::GET, "/v1/registrations/p2stack/history".into(), None, [403, 403, 404, 200]),
        (Method::GET, "/v1/registrations/stack1/customerSubscriptions".into(), None, [200, 403, 200, 200]),
        (Method::GET, format!("/v1/registrations/stack1/customerSubscriptions/{CUSTOMER_1}"), None, [200, 403, 200, 200]),
        (Method::GET, format!("/v1/registrations/p2stack/customerSubscriptions/{FOREIGN_CUSTOMER}"), None, [404, 403, 404, 200]),
        (Method::PUT, format!("/v1/registrations/p2stack/customerSubscriptions/{FOREIGN_CUSTOMER}"), Some(json!({"tenantId": TENANT_2}).to_string()), [403, 403, 404, 200]),
        (Method::PUT, format!("/v1/registrations/stack1/customerSubscriptions/{CUSTOMER_1B}"), Some(json!({"tenantId": TENANT_1}).to_string()), [403, 403, 200, 200]),
        (Method::GET, "/v1/meters?$top=1".into(), None, [200, 200, 200, 200]),
        (Method::PUT, "/v1/meters/aaaaaaaa-0000-0000-0000-000000000001".into(), Some(json!({"name": "n", "unit": "u", "category": "c"}).to_string()), [403, 403, 403, 201]),
        (Method::POST, "/v1/usage".into(), Some(usage("u1", CLOUD_1)), [403, 200, 403, 200]),
        (Method::GET, format!("/v1/usage/aggregates?subscriptionId={CUSTOMER_1B}&{month}"), None, [403, 403, 200, 200]),
        (Method::GET, format!("/v1/usage/aggregates?subscriptionId={FOREIGN_CUSTOMER}&{month}"), None, [403, 403, 404, 200]),
        (Method::GET, format!("/v1/usage/aggregates?cloudId={CLOUD_4}&{month}"), None, [403, 403, 404, 200]),
        (Method::GET, "/v1/ratecards/default".into(), None, [403, 403, 200, 200]),
        (Method::GET, "/v1/ratecards/p2card?partnerId=p2".into(), None, [403, 403, 404, 200]),
        (Method::PUT, "/v1/ratecards/p2card".into(), Some(json!({"currency": "EUR", "meters": []}).to_string()), [403, 403, 201, 201]),
        (Method::GET, "/v1/invoices?period=2025-05".into(), None, [403, 403, 200, 200]),
        (Method::GET, format!("/v1/invoices/{CSPSS_DEFAULT}/2025-05"), None, [403, 403, 200, 200]),
        (Method::GET, format!("/v1/invoices/{FOREIGN_CUSTOMER}/2025-05"), None, [403, 403, 404, 404]),
        (Method::GET, format!("/v1/invoices/{CSPSS_DEFAULT}/2025-05/records"), None, [403, 403, 200, 200]),
        (Method::GET, "/v1/reconciliation?period=2025-05".into(), None, [403, 403, 200, 200]),
        (Method::GET, "/v1/reconciliation?period=2025-05&partnerId=p2".into(), None, [403, 403, 403, 200]),
        (Method::GET, "/v1/webhooks".into(), None, [403, 403, 200, 200]),
        (Method::POST, "/v1/webhooks".into(), Some(json!({"partnerId": "p2", "url": "https://x.example/", "eventTypes": ["*"]}).to_string()), [403, 403, 403, 201]),
        (Method::GET, "/v1/tokens".into(), None, [403, 403, 200, 200]),
        (Method::POST, "/v1/periods/2025-05/finalize?partnerId=p2".into(), None, [403, 403, 403, 200]),
        (Method::GET, format!("{own_rp}/stack1?api-version=2017-06-01"), None, [403, 403, 200, 200]),
        (Method::GET, format!("{other_rp}/p2stack?api-version=2017-06-01"), None, [403, 403, 404, 200]),
        (Method::GET, format!("{own_rp}/no-such-stack?api-version=2017-06-01"), None, [403, 403, 404, 404]),
        (Method::GET, "/v1/registrations/p2stack/customerSubscriptions".into(), None, [404, 403, 404, 200]),
        (Method::GET, "/v1/registrations/no-such-stack/customerSubscriptions".into(), None, [404, 403, 404, 404]),
        (Method::GET, format!("{own_rp}?api-version=2022-06-01"), None, [403, 403, 200, 200]),
        (Method::GET, format!("{own_rp}/stack1/customerSubscriptions/{CUSTOMER_1B}?api-version=2017-06-01"), None, [403, 403, 200, 200]),
        (Method::PUT, format!("{other_rp}/p2stack/customerSubscriptions/{FOREIGN_CUSTOMER}?api-version=2017-06-01"), Some(json!({"properties": {"tenantId": TENANT_2}}).to_string()), [403, 403, 404, 200]),
        (Method::GET, format!("/subscriptions/{CSPSS_DEFAULT}/providers/Microsoft.Commerce/UsageAggregates?reportedStartTime=2025-05-01&reportedEndTime=2025-05-02&api-version=2015-06-01-preview"), None, [403, 403, 200, 200]),
        (Method::GET, format!("/subscriptions/{FOREIGN_CUSTOMER}/providers/Microsoft.Commerce/UsageAggregates?reportedStartTime=2025-05-01&reportedEndTime=2025-05-02&api-version=2015-06-01-preview"), None, [403, 403, 404, 200]),
        (Method::GET, format!("/subscriptions/{CUSTOMER_1}/providers/Microsoft.Commerce/RateCard?$filter=OfferDurableId%20eq%20%27MS-AZR-0145P%27%20and%20Currency%20eq%20%27USD%27%20and%20Locale%20eq%20%27en-US%27%20and%20RegionInfo%20eq%20%27US%27&api-version=2015-06-01-preview"), None, [403, 403, 200, 200]),
        (Method::DELETE, "/v1/registrations/p2stack".into(), None, [403, 403, 404, 204]),
    ];
    let callers = [
        tokens.customer.as_str(),
        tokens.stack.as_str(),
        tokens.partner.as_str(),
        ADMIN_TOKEN,
    ];
    let mut failures = Vec::new();
    for (method, path, body, expected) in &rows {
        for (caller, want) in callers.iter().zip(expected) {
            let content_type = if path == "/v1/usage" {
                "application/x-ndjson"
            } else {
                "application/json"
            };
            let answer = app
                .raw(
                    method.clone(),
                    path,
                    Some(caller),
                    body.clone(),
                    content_type,
                )
                .await;
            if answer.status.as_u16() != *want {
                failures.push(format!(
                    "{method} {path} as {}: {} (wanted {want}) {}",
                    role(&tokens, caller),
                    answer.status,
                    answer.body
                ));
            }
            if answer.status.as_u16() >= 400 {
                assert!(
                    answer.body["error"]["code"].is_string(),
                    "{method} {path}: ARM envelope"
                );
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn role<'a>(tokens: &Tokens, secret: &str) -> &'a str {
    if secret == tokens.partner {
        "partner"
    } else if secret == tokens.stack {
        "stack"
    } else if secret == tokens.customer {
        "customer"
    } else {
        "admin"
    }
}

#[tokio::test]
async fn customers_see_only_their_tenant_and_never_usage() {
    let (app, tokens) = world().await;
    let list = app
        .raw(
            Method::GET,
            "/v1/registrations/stack1/customerSubscriptions",
            Some(&tokens.customer),
            None,
            "",
        )
        .await;
    let tenants: Vec<&str> = list.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["tenantId"].as_str().unwrap())
        .collect();
    assert_eq!(tenants, [TENANT_1]);
    let usage = app
        .raw(
            Method::GET,
            &format!("/v1/invoices/{CUSTOMER_1}/2025-05"),
            Some(&tokens.customer),
            None,
            "",
        )
        .await;
    assert_eq!(usage.error(), (403, "UsageNotVisible"));
}

#[tokio::test]
async fn a_stack_token_sends_only_its_own_stack_usage() {
    let (app, tokens) = world().await;
    let body = format!("{}{}", usage("mine", CLOUD_1), usage("theirs", CLOUD_4));
    let answer = app
        .raw(
            Method::POST,
            "/v1/usage",
            Some(&tokens.stack),
            Some(body),
            "application/x-ndjson",
        )
        .await;
    assert_eq!(answer.body["accepted"], 1, "{answer:?}");
    let rejected = &answer.body["rejected"][0];
    assert_eq!(
        (
            rejected["index"].as_u64(),
            rejected["code"].as_str(),
            rejected["target"].as_str()
        ),
        (Some(1), Some("ForbiddenStack"), Some("cloudId"))
    );
}

#[tokio::test]
async fn partners_manage_only_their_own_tokens() {
    let (app, tokens) = world().await;
    let other_stack = token(
        &app,
        &tokens.partner,
        json!({"role": "stack", "cloudId": CLOUD_4}),
    )
    .await;
    assert_eq!(other_stack.error(), (404, "RegistrationNotFound"));
    let other_tenant = token(
        &app,
        &tokens.partner,
        json!({"role": "customer", "tenantId": TENANT_2}),
    )
    .await;
    assert_eq!(other_tenant.status, 404);
    let escalate = token(&app, &tokens.partner, json!({"role": "admin"})).await;
    assert_eq!(escalate.error(), (403, "AuthorizationFailed"));
    let p2 = token(
        &app,
        ADMIN_TOKEN,
        json!({"role": "stack", "cloudId": CLOUD_4}),
    )
    .await;
    let p2_id = p2.body["id"].as_str().unwrap().to_owned();
    assert!(
        p2.body.get("token").is_some(),
        "the secret is shown once, at creation"
    );

    let mine = app
        .raw(Method::GET, "/v1/tokens", Some(&tokens.partner), None, "")
        .await;
    let roles: Vec<&str> = mine.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["partner", "stack", "customer"]);
    assert!(
        mine.body["value"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t.get("token").is_none()),
        "secrets are never listed"
    );
    let theirs = app
        .raw(
            Method::DELETE,
            &format!("/v1/tokens/{p2_id}"),
            Some(&tokens.partner),
            None,
            "",
        )
        .await;
    assert_eq!(theirs.error(), (404, "TokenNotFound"));

    let all = app.get("/v1/tokens").await;
    let stack_id = all.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["cloudId"] == CLOUD_1)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        app.raw(
            Method::DELETE,
            &format!("/v1/tokens/{stack_id}"),
            Some(&tokens.partner),
            None,
            ""
        )
        .await
        .status,
        204
    );
    let revoked = app
        .raw(Method::GET, "/v1/meters", Some(&tokens.stack), None, "")
        .await;
    assert_eq!(revoked.error(), (401, "InvalidAuthenticationToken"));
}

#[tokio::test]
async fn registration_lists_show_a_partner_only_its_own_registrations() {
    let (app, tokens) = world().await;
    let list = |subscription: &str| {
        format!(
            "/subscriptions/{subscription}/resourceGroups/azurestack/providers/Microsoft.AzureStack/registrations?api-version=2017-06-01"
        )
    };
    let own = app
        .raw(
            Method::GET,
            &list(CSPSS_DEFAULT),
            Some(&tokens.partner),
            None,
            "",
        )
        .await;
    assert_eq!(own.body["value"].as_array().unwrap().len(), 2, "{own:?}");
    let other = app
        .raw(
            Method::GET,
            &list(P2_DEFAULT),
            Some(&tokens.partner),
            None,
            "",
        )
        .await;
    assert_eq!(other.body, json!({"value": []}));
    let admin = app
        .raw(Method::GET, &list(P2_DEFAULT), Some(ADMIN_TOKEN), None, "")
        .await;
    assert_eq!(admin.body["value"][0]["name"], "p2stack");
    let names = |answer: &Answer| -> Vec<String> {
        answer.body["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let native_own = app
        .raw(
            Method::GET,
            "/v1/registrations",
            Some(&tokens.partner),
            None,
            "",
        )
        .await;
    let mut azure_own = names(&own);
    azure_own.sort();
    assert_eq!(names(&native_own), azure_own);
    let native_all = app
        .raw(
            Method::GET,
            "/v1/registrations",
            Some(ADMIN_TOKEN),
            None,
            "",
        )
        .await;
    assert_eq!(
        names(&native_all),
        ["capacity", "ea-stack", "p2stack", "stack1"]
    );
}
