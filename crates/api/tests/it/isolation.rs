//! SPEC §7: partners never see each other's objects, nor learn that they exist.

use axum::http::Method;
use serde_json::json;
use stackbill_test_support::TestApp;

use crate::billing::METER;
use crate::*;

const P2_SUBSCRIPTION: &str = "c0000000-0000-0000-0000-0000000000b2";

async fn partner_token(app: &TestApp, partner: &str) -> String {
    app.token(json!({"role": "partner", "partnerId": partner}))
        .await
}

#[tokio::test]
async fn a_rate_card_belongs_to_its_partner() {
    let app = seeded().await;
    let a = partner_token(&app, "p1").await;
    let b = partner_token(&app, "p2").await;
    let prices = |price: &str| {
        json!({"currency": "USD", "meters": [
            {"meterId": METER, "rates": {"0": price}, "effectiveDate": "2025-01-01T00:00:00Z"}
        ]})
    };
    let made = app
        .call_as(&a, Method::PUT, "/v1/ratecards/cardA", Some(prices("0.5")))
        .await;
    assert_eq!(made.status, 201, "{made:?}");
    // B names A's card on its own subscription: it gets no price of A's.
    let sub = app.call_as(&b,
        Method::PUT,
        &format!("/v1/subscriptions/{P2_SUBSCRIPTION}"),
        Some(json!({"offerType": "CSP", "partnerId": "p2", "customerTenantId": TENANT_2, "rateCard": "cardA"})),
    )
    .await;
    assert_eq!(sub.status, 201, "{sub:?}");
    let read = app
        .call_as(&b, Method::GET, "/v1/ratecards/cardA", None)
        .await;
    assert_eq!(read.error(), (404, "RateCardNotFound"), "{read:?}");
    let commerce = app
        .call_as(
            &b,
            Method::GET,
            &format!(
                "/subscriptions/{P2_SUBSCRIPTION}/providers/Microsoft.Commerce/RateCard?\
             $filter=OfferDurableId%20eq%20%27MS-AZR-0145P%27%20and%20Currency%20eq%20%27USD%27\
             %20and%20Locale%20eq%20%27en-US%27%20and%20RegionInfo%20eq%20%27US%27\
             &api-version=2015-06-01-preview"
            ),
            None,
        )
        .await;
    assert_eq!(commerce.status, 200, "{commerce:?}");
    assert_eq!(commerce.body["Meters"], json!([]), "none of A's prices");
    // B may make a card of the same name: its own, beside A's.
    let own = app
        .call_as(&b, Method::PUT, "/v1/ratecards/cardA", Some(prices("9")))
        .await;
    assert_eq!(own.status, 201, "{own:?}");
    let a_reads = app
        .call_as(&a, Method::GET, "/v1/ratecards/cardA", None)
        .await;
    assert_eq!(a_reads.status, 200, "{a_reads:?}");
    assert_eq!(a_reads.body["meters"][0]["rates"]["0"], "0.5");
    let b_reads = app
        .call_as(&b, Method::GET, "/v1/ratecards/cardA", None)
        .await;
    assert_eq!(b_reads.body["meters"][0]["rates"]["0"], "9");
}

#[tokio::test]
async fn a_customer_token_is_scoped_to_its_partner() {
    let app = seeded().await;
    let mapped = app
        .put(
            &format!("/v1/registrations/stack1/customerSubscriptions/{CUSTOMER_1}"),
            json!({"tenantId": TENANT_1}),
        )
        .await;
    assert_eq!(mapped.status, 200, "{mapped:?}");
    let a = partner_token(&app, "p1").await;
    let b = partner_token(&app, "p2").await;
    // B makes a subscription for A's customer's tenant and mints a customer token for it.
    let sub = app
        .call_as(
            &b,
            Method::PUT,
            &format!("/v1/subscriptions/{P2_SUBSCRIPTION}"),
            Some(json!({"offerType": "CSP", "partnerId": "p2", "customerTenantId": TENANT_1})),
        )
        .await;
    assert_eq!(sub.status, 201, "{sub:?}");
    let mint = |token: String| {
        let app = &app;
        async move {
            app.call_as(
                &token,
                Method::POST,
                "/v1/tokens",
                Some(json!({"role": "customer", "tenantId": TENANT_1})),
            )
            .await
        }
    };
    let b_customer = mint(b.clone()).await;
    assert_eq!(b_customer.status, 201, "{b_customer:?}");
    let b_customer = b_customer.body["token"].as_str().unwrap().to_owned();
    let path = "/v1/registrations/stack1/customerSubscriptions";
    let seen = app.call_as(&b_customer, Method::GET, path, None).await;
    assert_eq!(seen.error(), (404, "RegistrationNotFound"), "{seen:?}");
    // A can still mint its customer's token, which sees A's mapping.
    let a_customer = mint(a.clone()).await;
    assert_eq!(a_customer.status, 201, "{a_customer:?}");
    let a_customer = a_customer.body["token"].as_str().unwrap().to_owned();
    let seen = app.call_as(&a_customer, Method::GET, path, None).await;
    assert_eq!(seen.status, 200, "{seen:?}");
    assert_eq!(seen.body["value"][0]["subscriptionId"], CUSTOMER_1);
    // An admin names the partner when the tenant is a customer of several.
    let ambiguous = app
        .call(
            Method::POST,
            "/v1/tokens",
            Some(json!({"role": "customer", "tenantId": TENANT_1})),
        )
        .await;
    assert_eq!(
        ambiguous.error_at(),
        (400, "InvalidRequestContent", "partnerId")
    );
}

#[tokio::test]
async fn names_follow_arm_resource_name_rules_and_refusals_name_no_one() {
    let app = seeded().await;
    for bad in ["%2e%2e", "%2e", "stack.", "-stack"] {
        let answer = app
            .put(
                &format!("/v1/registrations/{bad}"),
                json!({"cloudId": "ca000000-0000-0000-0000-0000000000c1", "subscriptionId": CSPSS_DEFAULT}),
            )
            .await;
        assert_eq!(
            answer.error_at(),
            (400, "InvalidParameter", "name"),
            "{bad}: {answer:?}"
        );
    }
    // Another partner's stack: refused without naming the registration that holds it.
    let b = partner_token(&app, "p2").await;
    let sub = app
        .put(
            "/v1/subscriptions/d0000000-0000-0000-0000-000000000003",
            json!({"offerType": "CSPSS", "partnerId": "p2"}),
        )
        .await;
    assert_eq!(sub.status, 201);
    let taken = app.call_as(&b,
        Method::PUT,
        "/v1/registrations/mine",
        Some(json!({"cloudId": CLOUD_1, "subscriptionId": "d0000000-0000-0000-0000-000000000003"})),
    )
    .await;
    assert_eq!(
        taken.error(),
        (409, "CloudIdAlreadyRegistered"),
        "{taken:?}"
    );
    assert!(
        !taken.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("stack1")
    );
}
