//! Webhook endpoints over HTTP: checks, the secret shown once, and each partner's own only.

use axum::http::Method;
use serde_json::json;

use crate::*;

#[tokio::test]
async fn endpoints_are_checked_and_each_partner_sees_its_own_only() {
    let app = seeded().await;
    let bad = [
        (
            json!({"partnerId": "p1", "url": "ftp://x/", "eventTypes": ["*"]}),
            "url",
        ),
        (
            json!({"partnerId": "p1", "url": "http://example.com/", "eventTypes": ["*"]}),
            "url",
        ),
        (
            json!({"partnerId": "p1", "url": "https://u:p@example.com/", "eventTypes": ["*"]}),
            "url",
        ),
        (
            json!({"partnerId": "p1", "url": "https://example.com/", "eventTypes": []}),
            "eventTypes",
        ),
        (
            json!({"partnerId": "p1", "url": "https://example.com/", "eventTypes": ["invoice.paid"]}),
            "eventTypes",
        ),
        (
            json!({"url": "https://example.com/", "eventTypes": ["*"]}),
            "partnerId",
        ),
    ];
    for (body, target) in bad {
        let answer = app.call(Method::POST, "/v1/webhooks", Some(body)).await;
        assert_eq!(
            answer.error_at(),
            (400, "InvalidWebhook", target),
            "{answer:?}"
        );
    }
    let mine = app
        .call(
            Method::POST,
            "/v1/webhooks",
            Some(json!({"partnerId": "p1", "url": "https://hooks.contoso.example/stackbill", "eventTypes": ["invoice.finalized", "usage.rejected"]})),
        )
        .await;
    assert_eq!(mine.status, 201, "{mine:?}");
    assert!(mine.body["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_eq!(
        mine.body["eventTypes"],
        json!(["invoice.finalized", "usage.rejected"])
    );
    let id = mine.body["id"].as_str().unwrap().to_owned();
    let theirs = app
        .call(
            Method::POST,
            "/v1/webhooks",
            Some(json!({"partnerId": "p2", "url": "https://fabrikam.example/hook", "eventTypes": ["*"]})),
        )
        .await;
    let their_id = theirs.body["id"].as_str().unwrap().to_owned();

    let p1 = app
        .token(json!({"role": "partner", "partnerId": "p1"}))
        .await;
    let listed = app.call_as(&p1, Method::GET, "/v1/webhooks", None).await;
    let ids: Vec<&str> = listed.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [id.as_str()]);
    assert!(listed.body["value"][0].get("secret").is_none());
    for (method, path) in [
        (Method::GET, format!("/v1/webhooks/{their_id}")),
        (Method::DELETE, format!("/v1/webhooks/{their_id}")),
        (Method::GET, format!("/v1/webhooks/{their_id}/deliveries")),
        (
            Method::POST,
            format!("/v1/webhooks/{their_id}/deliveries/msg_1/replay"),
        ),
    ] {
        let answer = app.call_as(&p1, method.clone(), &path, None).await;
        assert_eq!(answer.error(), (404, "WebhookNotFound"), "{method} {path}");
    }
    let for_p2 = app
        .call_as(
            &p1,
            Method::POST,
            "/v1/webhooks",
            Some(json!({"partnerId": "p2", "url": "https://x.example/", "eventTypes": ["*"]})),
        )
        .await;
    assert_eq!(for_p2.error().0, 403);
    let own = app
        .call_as(
            &p1,
            Method::POST,
            "/v1/webhooks",
            Some(json!({"url": "https://x.example/", "eventTypes": ["*"]})),
        )
        .await;
    assert_eq!(
        (own.status.as_u16(), own.body["partnerId"].as_str()),
        (201, Some("p1"))
    );
    let customer = app
        .token(json!({"role": "customer", "partnerId": "p1", "tenantId": TENANT_1}))
        .await;
    let refused = app
        .call_as(&customer, Method::GET, "/v1/webhooks", None)
        .await;
    assert_eq!(refused.error().0, 403);
    let replay = app
        .call(
            Method::POST,
            &format!("/v1/webhooks/{id}/deliveries/msg_none/replay"),
            None,
        )
        .await;
    assert_eq!(replay.error_at(), (404, "WebhookNotFound", "eventId"));
    let gone = app
        .call(Method::DELETE, &format!("/v1/webhooks/{id}"), None)
        .await;
    assert_eq!(gone.status, 204);
}
