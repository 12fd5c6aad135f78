//! The Microsoft.AzureStack resource provider in ARM shapes, matched case-insensitively.

use axum::http::Method;
use serde_json::json;
use stackbill_core::{BillingModel, CloudId};

use crate::*;

const NEW_CLOUD: &str = "ca000000-0000-0000-0000-0000000000a1";

fn base(subscription: &str) -> String {
    format!(
        "/subscriptions/{subscription}/resourceGroups/azurestack/providers/Microsoft.AzureStack/registrations"
    )
}

fn token(cloud: &str, model: BillingModel) -> String {
    stackbill_api::azure::encode_token(
        cloud.parse::<CloudId>().unwrap(),
        model,
        Some("2dbdd5f4-daf3-442a-be35-b71c3debee5a"),
    )
}

#[tokio::test]
async fn registrations_round_trip_in_arm_shape() {
    let app = seeded().await;
    let url = format!("{}/hub-azure?api-version=2017-06-01", base(CSPSS_DEFAULT));
    let body = json!({"location": "global", "properties": {"registrationToken": token(NEW_CLOUD, BillingModel::PayAsYouUse)}, "tags": {"env": "prod"}});
    let created = app.call(Method::PUT, &url, Some(body.clone())).await;
    assert_eq!(created.status, 201, "{created:?}");
    assert_eq!(
        created.body,
        json!({
            "id": format!("/subscriptions/{CSPSS_DEFAULT}/resourceGroups/azurestack/providers/Microsoft.AzureStack/registrations/hub-azure"),
            "name": "hub-azure", "type": "Microsoft.AzureStack/registrations", "location": "global", "tags": {"env": "prod"},
            "properties": {"objectId": "2dbdd5f4-daf3-442a-be35-b71c3debee5a", "cloudId": NEW_CLOUD, "billingModel": "PayAsYouUse"}
        })
    );
    assert_eq!(
        app.call(Method::PUT, &url, Some(body)).await.status,
        200,
        "a re-put updates"
    );
    // Mixed case, as the SDK and PowerShell send it.
    let mixed = format!(
        "/subscriptions/{CSPSS_DEFAULT}/resourcegroups/AzureStack/providers/microsoft.azurestack/Registrations/hub-azure?api-version=2022-06-01"
    );
    assert_eq!(
        app.call(Method::GET, &mixed, None).await.body["properties"]["cloudId"],
        NEW_CLOUD
    );
    // The native API sees the same registration, its default from the resource id.
    let native = app.get("/v1/registrations/hub-azure").await;
    assert_eq!(native.body["subscriptionId"], CSPSS_DEFAULT);

    let list = app
        .call(
            Method::GET,
            &format!("{}?api-version=2020-06-01-preview", base(CSPSS_DEFAULT)),
            None,
        )
        .await;
    let names: Vec<&str> = list.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["capacity", "hub-azure", "stack1"]);
    let by_sub = app.call(Method::GET, &format!("/subscriptions/{CSPSS_DEFAULT}/providers/Microsoft.AzureStack/registrations?api-version=2022-06-01"), None).await;
    assert_eq!(by_sub.body["value"].as_array().unwrap().len(), 3);

    let key = app
        .call(
            Method::POST,
            &format!(
                "{}/hub-azure/getactivationkey?api-version=2017-06-01",
                base(CSPSS_DEFAULT)
            ),
            None,
        )
        .await;
    assert!(
        key.body["activationKey"]
            .as_str()
            .is_some_and(|k| !k.is_empty()),
        "{key:?}"
    );
    let remote = app
        .call(
            Method::POST,
            &format!("{}/hub-azure/enableRemoteManagement", base(CSPSS_DEFAULT)),
            None,
        )
        .await;
    assert_eq!(remote.status, 200, "no api-version needed: {remote:?}");

    assert_eq!(app.call(Method::DELETE, &url, None).await.status, 204);
    let gone = app.call(Method::GET, &url, None).await;
    assert_eq!(gone.error(), (404, "RegistrationNotFound"));
}

#[tokio::test]
async fn customer_subscriptions_answer_200_with_the_resource_and_the_spec_errors() {
    let app = seeded().await;
    let url = |reg: &str, sub: &str| {
        format!(
            "{}/{reg}/customerSubscriptions/{sub}?api-version=2017-06-01",
            base(CSPSS_DEFAULT)
        )
    };
    let put = app
        .call(
            Method::PUT,
            &url("stack1", CUSTOMER_1),
            Some(json!({"properties": {"tenantId": TENANT_1}})),
        )
        .await;
    assert_eq!(put.status, 200, "{put:?}");
    assert_eq!(
        put.body,
        json!({
            "id": format!("/subscriptions/{CSPSS_DEFAULT}/resourceGroups/azurestack/providers/Microsoft.AzureStack/registrations/stack1/customerSubscriptions/{CUSTOMER_1}"),
            "name": format!("stack1/{CUSTOMER_1}"),
            "type": "Microsoft.AzureStack/registrations/customerSubscriptions",
            "properties": {"tenantId": TENANT_1}
        })
    );
    let list = app
        .call(
            Method::GET,
            &format!(
                "{}/stack1/customerSubscriptions?api-version=2017-06-01",
                base(CSPSS_DEFAULT)
            ),
            None,
        )
        .await;
    assert_eq!(
        list.body["value"][0]["name"],
        format!("stack1/{CUSTOMER_1}")
    );
    assert_eq!(
        app.call(Method::GET, &url("stack1", CUSTOMER_1), None)
            .await
            .status,
        200
    );

    let cases = [
        (
            "capacity",
            CUSTOMER_1,
            TENANT_1,
            409,
            "CustomerSubscriptionsNotAllowed",
        ),
        ("stack1", EA_SUB, TENANT_1, 400, "InvalidCSPSubscription"),
        (
            "stack1",
            FOREIGN_CUSTOMER,
            TENANT_2,
            400,
            "BadCustomerSubscriptionId",
        ),
        ("stack1", CUSTOMER_1B, TENANT_2, 400, "TenantMismatch"),
        ("nope", CUSTOMER_1, TENANT_1, 404, "RegistrationNotFound"),
    ];
    for (reg, sub, tenant, status, code) in cases {
        let answer = app
            .call(
                Method::PUT,
                &url(reg, sub),
                Some(json!({"properties": {"tenantId": tenant}})),
            )
            .await;
        assert_eq!(answer.error(), (status, code), "{reg} {sub}");
    }
    // A registration of another default subscription is not under this one.
    let ea = format!(
        "/subscriptions/{CSPSS_DEFAULT}/resourceGroups/azurestack/providers/Microsoft.AzureStack/registrations/ea-stack?api-version=2017-06-01"
    );
    assert_eq!(
        app.call(Method::GET, &ea, None).await.code(),
        "RegistrationNotFound"
    );

    assert_eq!(
        app.call(Method::DELETE, &url("stack1", CUSTOMER_1), None)
            .await
            .status,
        204
    );
    let missing = app
        .call(Method::GET, &url("stack1", CUSTOMER_1), None)
        .await;
    assert_eq!(missing.error(), (404, "CustomerSubscriptionNotFound"));
}

#[tokio::test]
async fn api_versions_tokens_and_locations_are_checked() {
    let app = seeded().await;
    let path = format!("{}/stack1", base(CSPSS_DEFAULT));
    let missing = app.call(Method::GET, &path, None).await;
    assert_eq!(missing.error(), (400, "MissingApiVersionParameter"));
    let unknown = app
        .call(Method::GET, &format!("{path}?api-version=2099-01-01"), None)
        .await;
    assert_eq!(unknown.error(), (400, "UnsupportedApiVersionValue"));
    assert!(
        unknown.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("2017-06-01")
    );
    let url = format!("{}/hub-x?api-version=2017-06-01", base(CSPSS_DEFAULT));
    let bad_token = app
        .call(
            Method::PUT,
            &url,
            Some(json!({"location": "global", "properties": {"registrationToken": "!!!"}})),
        )
        .await;
    assert_eq!(
        (
            bad_token.status.as_u16(),
            bad_token.code(),
            bad_token.target()
        ),
        (
            400,
            "InvalidRegistrationToken",
            "properties.registrationToken"
        )
    );
    let bad_location = app.call(Method::PUT, &url, Some(json!({"location": "westus", "properties": {"registrationToken": token(NEW_CLOUD, BillingModel::PayAsYouUse)}}))).await;
    assert_eq!(
        (bad_location.status.as_u16(), bad_location.target()),
        (400, "location")
    );
    let taken = app.call(Method::PUT, &url, Some(json!({"location": "global", "properties": {"registrationToken": token(CLOUD_1, BillingModel::PayAsYouUse)}}))).await;
    assert_eq!(taken.error(), (409, "CloudIdAlreadyRegistered"));
    let no_default = app.call(Method::PUT,
        &format!("{}/hub-y?api-version=2017-06-01", base("d0000000-0000-0000-0000-0000000000ff")),
        Some(json!({"location": "global", "properties": {"registrationToken": token(NEW_CLOUD, BillingModel::PayAsYouUse)}})),
    )
    .await;
    assert_eq!(no_default.error(), (400, "InvalidCustomerSubscriptionId"));
    let anonymous = app
        .raw(
            Method::GET,
            &format!("{path}?api-version=2017-06-01"),
            None,
            None,
            "",
        )
        .await;
    assert_eq!(anonymous.error(), (401, "InvalidAuthenticationToken"));
}
