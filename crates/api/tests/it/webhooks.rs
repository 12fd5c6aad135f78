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

#[tokio::test]
async fn a_claim_lapses_so_a_dead_node_s_delivery_is_made_again_and_failures_follow_the_schedule() {
    use std::time::Duration;

    use stackbill_store::AttemptOutcome;

    let app = crate::billing::priced().await;
    let created = app
        .call(
            Method::POST,
            "/v1/webhooks",
            Some(json!({"partnerId": "p1", "url": "https://hooks.example.com/", "eventTypes": ["invoice.finalized"]})),
        )
        .await;
    let endpoint = created.body["id"].as_str().unwrap().to_owned();
    app.call(Method::POST, "/v1/periods/2025-05/finalize", None)
        .await;
    let store = &app.db.store;
    let lease = Duration::from_secs(60);
    let first = store.claim_deliveries(10, lease).await.unwrap();
    assert_eq!(first.len(), 2, "one event per final invoice of p1");
    assert!(
        store.claim_deliveries(10, lease).await.unwrap().is_empty(),
        "claimed"
    );
    // The claiming node died: once the lease lapses, the same events are due again.
    app.db.clock.set("2025-06-15T12:01:01Z");
    let again = store.claim_deliveries(10, lease).await.unwrap();
    let ids = |d: &[stackbill_store::DueDelivery]| {
        let mut ids: Vec<String> = d.iter().map(|d| d.event_id.clone()).collect();
        ids.sort();
        ids
    };
    assert_eq!(ids(&again), ids(&first), "the same event ids");

    // One is delivered; the other fails every time: retried on the schedule, then failed.
    let mut deliveries = again.into_iter();
    let delivered = deliveries.next().unwrap();
    let ok = AttemptOutcome {
        status: Some(204),
        ..AttemptOutcome::default()
    };
    store.record_attempt(delivered.clone(), ok).await.unwrap();
    let mut failing = deliveries.next().unwrap();
    let mut now: jiff::Timestamp = "2025-06-15T12:01:02Z".parse().unwrap();
    for attempt in 1..=10 {
        let outcome = AttemptOutcome {
            status: Some(503),
            ..AttemptOutcome::default()
        };
        store
            .record_attempt(failing.clone(), outcome)
            .await
            .unwrap();
        let wait = stackbill_core::events::next_attempt_after(attempt, None);
        let log = store
            .webhook_deliveries(endpoint.clone(), 10)
            .await
            .unwrap();
        let row = log.iter().find(|d| d.event_id == failing.event_id).unwrap();
        assert_eq!(row.attempts, attempt);
        match wait {
            Some(wait) => {
                assert_eq!(row.status, "pending");
                assert!(
                    store.claim_deliveries(10, lease).await.unwrap().is_empty(),
                    "not due yet"
                );
                // The attempt was recorded a few microseconds after `now`: a second later.
                now += jiff::SignedDuration::try_from(wait).unwrap()
                    + jiff::SignedDuration::from_secs(1);
                app.db.clock.set_instant(now);
                let due = store.claim_deliveries(10, lease).await.unwrap();
                assert_eq!(due.len(), 1, "due after {wait:?}");
                failing = due.into_iter().next().unwrap();
            }
            None => assert_eq!(row.status, "failed", "after 10 attempts"),
        }
    }
    let log = store.webhook_deliveries(endpoint, 10).await.unwrap();
    let done = log
        .iter()
        .find(|d| d.event_id == delivered.event_id)
        .unwrap();
    assert_eq!(
        (done.status.as_str(), done.attempts, done.last_status),
        ("delivered", 1, Some(204))
    );
}
