//! Every rule and error code of SPEC §2 through HTTP, and the directory routes.

use serde_json::json;

use crate::*;

fn mapping(registration: &str, subscription: &str) -> String {
    format!("/v1/registrations/{registration}/customerSubscriptions/{subscription}")
}

#[tokio::test]
async fn registration_put_rules_and_codes() {
    let app = seeded().await;
    let missing_default = app
        .put("/v1/registrations/new", json!({"cloudId": "ca000000-0000-0000-0000-0000000000aa", "subscriptionId": "d0000000-0000-0000-0000-0000000000ff"}))
        .await;
    assert_eq!(
        missing_default.error(),
        (400, "InvalidCustomerSubscriptionId")
    );
    assert_eq!(missing_default.target(), "subscriptionId");

    let taken = app
        .put(
            "/v1/registrations/new",
            json!({"cloudId": CLOUD_1, "subscriptionId": CSPSS_DEFAULT}),
        )
        .await;
    assert_eq!(taken.error(), (409, "CloudIdAlreadyRegistered"));

    let change = app
        .put(
            "/v1/registrations/stack1",
            json!({"cloudId": CLOUD_1, "subscriptionId": EA_DEFAULT}),
        )
        .await;
    assert_eq!(change.error(), (409, "DefaultSubscriptionChange"));

    let recloud = app
        .put("/v1/registrations/stack1", json!({"cloudId": "ca000000-0000-0000-0000-0000000000bb", "subscriptionId": CSPSS_DEFAULT}))
        .await;
    assert_eq!(recloud.error(), (409, "CloudIdChange"));

    // Same name and default: the billing model may change; GUIDs in any case.
    let dev = app
        .put("/v1/registrations/stack1", json!({"cloudId": CLOUD_1.to_uppercase(), "subscriptionId": CSPSS_DEFAULT, "billingModel": "development"}))
        .await;
    assert_eq!(dev.status, 200, "{dev:?}");
    assert_eq!(dev.body["billingModel"], "Development");
    assert_eq!(dev.body["cloudId"], CLOUD_1);

    let got = app.get("/v1/registrations/STACK1").await;
    assert_eq!(got.status, 200, "registration names are case-insensitive");
    assert_eq!(got.body["name"], "stack1");

    let list = app.get("/v1/registrations").await;
    let names: Vec<&str> = list.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["capacity", "ea-stack", "stack1"]);
}

#[tokio::test]
async fn deleting_a_registration_frees_its_cloud_and_default() {
    let app = seeded().await;
    assert_eq!(app.delete("/v1/registrations/capacity").await.status, 204);
    let gone = app.get("/v1/registrations/capacity").await;
    assert_eq!(gone.error(), (404, "RegistrationNotFound"));
    let again = app.delete("/v1/registrations/capacity").await;
    assert_eq!(again.error(), (404, "RegistrationNotFound"));
    // The stack can now be registered again, with another default.
    let reborn = app
        .put(
            "/v1/registrations/capacity2",
            json!({"cloudId": CLOUD_2, "subscriptionId": EA_DEFAULT}),
        )
        .await;
    assert_eq!(reborn.status, 201, "{reborn:?}");
}

#[tokio::test]
async fn customer_subscription_errors_in_spec_order() {
    let app = seeded().await;
    let cases = [
        (
            "nope",
            CUSTOMER_1,
            TENANT_1,
            404,
            "RegistrationNotFound",
            "registration",
        ),
        (
            "capacity",
            CUSTOMER_1,
            TENANT_1,
            409,
            "CustomerSubscriptionsNotAllowed",
            "registration",
        ),
        (
            "ea-stack",
            CUSTOMER_1,
            TENANT_1,
            403,
            "UnauthorizedCspRegistration",
            "registration",
        ),
        (
            "stack1",
            "c0000000-0000-0000-0000-0000000000ff",
            TENANT_1,
            400,
            "InvalidCustomerSubscriptionId",
            "subscriptionId",
        ),
        (
            "stack1",
            EA_SUB,
            TENANT_1,
            400,
            "InvalidCSPSubscription",
            "subscriptionId",
        ),
        (
            "stack1",
            FOREIGN_CUSTOMER,
            TENANT_2,
            400,
            "BadCustomerSubscriptionId",
            "subscriptionId",
        ),
        (
            "stack1",
            CUSTOMER_1,
            TENANT_2,
            400,
            "TenantMismatch",
            "tenantId",
        ),
    ];
    for (registration, subscription, tenant, status, code, target) in cases {
        let answer = app
            .put(
                &mapping(registration, subscription),
                json!({"tenantId": tenant}),
            )
            .await;
        assert_eq!(answer.error_at(), (status, code, target), "{answer:?}");
        assert!(!answer.body["error"]["message"].as_str().unwrap().is_empty());
    }
    // Nothing was recorded by any refused change.
    let history = app.get("/v1/registrations/stack1/history").await;
    assert_eq!(history.body["value"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn add_replace_remove_and_history() {
    let app = seeded().await;
    app.db.clock.set("2025-06-15T13:00:00Z");
    let added = app
        .put(
            &mapping("stack1", &CUSTOMER_1.to_uppercase()),
            json!({"tenantId": TENANT_1, "effectiveFrom": "2025-05-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(added.status, 200, "{added:?}");
    assert_eq!(added.body["subscriptionId"], CUSTOMER_1);
    assert_eq!(added.body["effectiveFrom"], "2025-05-01T00:00:00Z");
    assert_eq!(added.body["recordedAt"], "2025-06-15T13:00:00Z");

    // Replace the tenant's mapping from June on (Azure's overwrite).
    app.db.clock.set("2025-06-16T00:00:00Z");
    let replaced = app
        .put(
            &mapping("stack1", CUSTOMER_1B),
            json!({"tenantId": TENANT_1, "effectiveFrom": "2025-06-01T00:00:00+02:00"}),
        )
        .await;
    assert_eq!(replaced.status, 200, "{replaced:?}");
    assert_eq!(replaced.body["effectiveFrom"], "2025-05-31T22:00:00Z");

    let now = app
        .get("/v1/registrations/stack1/customerSubscriptions")
        .await;
    let subs: Vec<&str> = now.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["subscriptionId"].as_str().unwrap())
        .collect();
    assert_eq!(subs, [CUSTOMER_1B]);
    let may = app
        .get("/v1/registrations/stack1/customerSubscriptions?asOf=2025-05-15T00:00:00Z")
        .await;
    assert_eq!(may.body["value"][0]["subscriptionId"], CUSTOMER_1);
    let april = app
        .get("/v1/registrations/stack1/customerSubscriptions?asOf=2025-04-15T00:00:00Z")
        .await;
    assert_eq!(april.body["value"].as_array().unwrap().len(), 0);

    let old = app.get(&mapping("stack1", CUSTOMER_1)).await;
    assert_eq!(old.error(), (404, "CustomerSubscriptionNotFound"));
    let old_then = app
        .get(&format!(
            "{}?asOf=2025-05-15T00:00:00Z",
            mapping("stack1", CUSTOMER_1)
        ))
        .await;
    assert_eq!(old_then.status, 200);
    assert_eq!(old_then.body["tenantId"], TENANT_1);

    // Deleting a subscription not in force at that instant is refused.
    let early = app
        .delete(&format!(
            "{}?effectiveFrom=2025-04-01T00:00:00Z",
            mapping("stack1", CUSTOMER_1B)
        ))
        .await;
    assert_eq!(early.error(), (404, "CustomerSubscriptionNotFound"));
    let removed = app
        .delete(&format!(
            "{}?effectiveFrom=2025-07-01T00:00:00Z",
            mapping("stack1", CUSTOMER_1B)
        ))
        .await;
    assert_eq!(removed.status, 204, "{removed:?}");
    let july = app
        .get("/v1/registrations/stack1/customerSubscriptions?asOf=2025-07-01T00:00:00Z")
        .await;
    assert_eq!(july.body["value"].as_array().unwrap().len(), 0);
    // A scheduled removal: still mapped now.
    assert_eq!(app.get(&mapping("stack1", CUSTOMER_1B)).await.status, 200);

    let history = app.get("/v1/registrations/stack1/history").await;
    let items = history.body["value"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(items[0]["subscriptionId"], CUSTOMER_1);
    assert_eq!(items[1]["subscriptionId"], CUSTOMER_1B);
    assert_eq!(items[2]["subscriptionId"], serde_json::Value::Null);
    assert_eq!(items[2]["effectiveFrom"], "2025-07-01T00:00:00Z");
    assert_eq!(items[2]["tenantId"], TENANT_1);
}

#[tokio::test]
async fn a_registration_with_tenants_cannot_become_capacity() {
    let app = seeded().await;
    assert_eq!(
        app.put(
            &mapping("stack1", CUSTOMER_1),
            json!({"tenantId": TENANT_1})
        )
        .await
        .status,
        200
    );
    let capacity = app
        .put("/v1/registrations/stack1", json!({"cloudId": CLOUD_1, "subscriptionId": CSPSS_DEFAULT, "billingModel": "Capacity"}))
        .await;
    assert_eq!(capacity.error(), (409, "CustomerSubscriptionsNotAllowed"));
}

#[tokio::test]
async fn partners_subscriptions_and_meters() {
    let app = seeded().await;
    let partner = app.get("/v1/partners/p1").await;
    assert_eq!(
        partner.body,
        json!({"partnerId": "p1", "name": "Contoso CSP"})
    );
    assert_eq!(
        app.put("/v1/partners/p1", json!({"name": "Contoso"}))
            .await
            .status,
        200
    );
    let missing = app.get("/v1/partners/p9").await;
    assert_eq!(missing.error(), (404, "PartnerNotFound"));

    let sub = app
        .get(&format!(
            "/v1/subscriptions/{}",
            CSPSS_DEFAULT.to_uppercase()
        ))
        .await;
    assert_eq!(
        sub.body,
        json!({"subscriptionId": CSPSS_DEFAULT, "offerType": "CSPSS", "partnerId": "p1", "customerTenantId": null,
               "displayName": "Contoso shared", "rateCard": "default", "markupPercent": "0"})
    );
    let priced = app
        .put(&format!("/v1/subscriptions/{CUSTOMER_1}"), json!({"offerType": "CSP", "partnerId": "p1", "customerTenantId": TENANT_1, "rateCard": "gold", "markupPercent": 12.50}))
        .await;
    assert_eq!(priced.status, 200, "{priced:?}");
    assert_eq!(priced.body["markupPercent"], "12.5");
    assert_eq!(priced.body["rateCard"], "gold");
    let p1 = app.get("/v1/subscriptions?partnerId=p1").await;
    assert_eq!(p1.body["value"].as_array().unwrap().len(), 3);

    let orphan = app
        .put(
            "/v1/subscriptions/c0000000-0000-0000-0000-0000000000aa",
            json!({"offerType": "CSP", "partnerId": "p9", "customerTenantId": TENANT_1}),
        )
        .await;
    assert_eq!(orphan.error_at(), (400, "UnknownPartner", "partnerId"));
    let no_tenant = app
        .put(
            "/v1/subscriptions/c0000000-0000-0000-0000-0000000000aa",
            json!({"offerType": "CSP", "partnerId": "p1"}),
        )
        .await;
    assert_eq!(
        (
            no_tenant.status.as_u16(),
            no_tenant.code(),
            no_tenant.target()
        ),
        (400, "InvalidSubscription", "customerTenantId")
    );
    let bad_offer = app
        .put(
            "/v1/subscriptions/c0000000-0000-0000-0000-0000000000aa",
            json!({"offerType": "Free"}),
        )
        .await;
    assert_eq!(
        (
            bad_offer.status.as_u16(),
            bad_offer.code(),
            bad_offer.target()
        ),
        (400, "InvalidRequestContent", "offerType")
    );
    assert_eq!(
        app.get("/v1/subscriptions/c0000000-0000-0000-0000-0000000000aa")
            .await
            .code(),
        "SubscriptionNotFound"
    );

    let meters = app.get("/v1/meters").await;
    assert_eq!(meters.body["value"].as_array().unwrap().len(), 84);
    let builtin = app.get("/v1/meters/B4438D5D453B4EE1B42ADC72E377F1E4").await;
    assert_eq!(builtin.body["name"], "TableCapacity");
    let custom = app
        .put(
            "/v1/meters/aaaaaaaa-0000-0000-0000-000000000001",
            json!({"name": "GPU hours", "unit": "GPU hours", "category": "Compute"}),
        )
        .await;
    assert_eq!(custom.status, 201);
    let renamed = app
        .put(
            "/v1/meters/b4438d5d-453b-4ee1-b42a-dc72e377f1e4",
            json!({"name": "Table capacity", "unit": "GB*hours", "category": "Storage"}),
        )
        .await;
    assert_eq!(renamed.status, 200);
    let meters = app.get("/v1/meters").await;
    assert_eq!(meters.body["value"].as_array().unwrap().len(), 85);
    assert_eq!(
        app.get("/v1/meters/b4438d5d-453b-4ee1-b42a-dc72e377f1e4")
            .await
            .body["name"],
        "Table capacity"
    );
    let unknown = app
        .get("/v1/meters/aaaaaaaa-0000-0000-0000-0000000000ff")
        .await;
    assert_eq!(unknown.error(), (404, "MeterNotFound"));
}

#[tokio::test]
async fn lists_page_with_next_links() {
    let app = seeded().await;
    let first = app.get("/v1/meters?$top=50").await;
    assert_eq!(first.body["value"].as_array().unwrap().len(), 50);
    let next = first.body["nextLink"].as_str().unwrap().to_owned();
    assert_eq!(next, "/v1/meters?$top=50&$skipToken=50");
    let second = app.get(&next).await;
    assert_eq!(second.body["value"].as_array().unwrap().len(), 34);
    assert!(second.body.get("nextLink").is_none());
    let too_big = app.get("/v1/meters?$top=1001").await;
    assert_eq!(too_big.error_at(), (400, "InvalidParameter", "$top"));
}
