//! Integration tests of the HTTP API: the real router over a real SQLite file.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod access;
mod azure;
mod billing;
mod collectors;
mod commerce;
mod documents;
mod envelope;
mod history;
mod isolation;
mod margin;
mod openapi;
mod reconciliation;
mod registry;
mod socket;
mod usage;
mod webhooks;
mod wire;

use serde_json::json;
use stackbill_test_support::TestApp;

pub(crate) const CSPSS_DEFAULT: &str = "d0000000-0000-0000-0000-000000000001";
pub(crate) const EA_DEFAULT: &str = "d0000000-0000-0000-0000-000000000002";
pub(crate) const CUSTOMER_1: &str = "c0000000-0000-0000-0000-000000000001";
pub(crate) const CUSTOMER_1B: &str = "c0000000-0000-0000-0000-00000000001b";
pub(crate) const FOREIGN_CUSTOMER: &str = "c0000000-0000-0000-0000-000000000002";
pub(crate) const EA_SUB: &str = "e0000000-0000-0000-0000-000000000001";
pub(crate) const TENANT_1: &str = "70000000-0000-0000-0000-000000000001";
pub(crate) const TENANT_2: &str = "70000000-0000-0000-0000-000000000002";
pub(crate) const CLOUD_1: &str = "ca000000-0000-0000-0000-000000000001";
pub(crate) const CLOUD_2: &str = "ca000000-0000-0000-0000-000000000002";
pub(crate) const CLOUD_3: &str = "ca000000-0000-0000-0000-000000000003";

/// Two partners, their subscriptions, and three registrations: `stack1` (PayAsYouUse,
/// CSPSS default), `capacity` (Capacity) and `ea-stack` (EA default).
pub(crate) async fn seeded() -> TestApp {
    let app = TestApp::new();
    for (id, name) in [("p1", "Contoso CSP"), ("p2", "Fabrikam CSP")] {
        let answer = app
            .put(&format!("/v1/partners/{id}"), json!({"name": name}))
            .await;
        assert_eq!(answer.status, 201, "{answer:?}");
    }
    let subscriptions = [
        (
            CSPSS_DEFAULT,
            json!({"offerType": "CSPSS", "partnerId": "p1", "displayName": "Contoso shared"}),
        ),
        (EA_DEFAULT, json!({"offerType": "EA"})),
        (
            CUSTOMER_1,
            json!({"offerType": "CSP", "partnerId": "p1", "customerTenantId": TENANT_1}),
        ),
        (
            CUSTOMER_1B,
            json!({"offerType": "CSP", "partnerId": "p1", "customerTenantId": TENANT_1}),
        ),
        (
            FOREIGN_CUSTOMER,
            json!({"offerType": "CSP", "partnerId": "p2", "customerTenantId": TENANT_2}),
        ),
        (EA_SUB, json!({"offerType": "EA"})),
    ];
    for (id, body) in subscriptions {
        let answer = app.put(&format!("/v1/subscriptions/{id}"), body).await;
        assert_eq!(answer.status, 201, "{answer:?}");
    }
    let registrations = [
        ("stack1", CLOUD_1, CSPSS_DEFAULT, "PayAsYouUse"),
        ("capacity", CLOUD_2, CSPSS_DEFAULT, "Capacity"),
        ("ea-stack", CLOUD_3, EA_DEFAULT, "PayAsYouUse"),
    ];
    for (name, cloud, default, model) in registrations {
        let answer = app
            .put(
                &format!("/v1/registrations/{name}"),
                json!({"cloudId": cloud, "subscriptionId": default, "billingModel": model}),
            )
            .await;
        assert_eq!(answer.status, 201, "{answer:?}");
    }
    app
}
