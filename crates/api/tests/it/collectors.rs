//! A registration's collector over the native API: an admin configures it (its settings
//! name files on the server), the owning partner reads it, nobody else sees it, and the
//! secret is never returned.

use axum::http::Method;
use serde_json::json;

use crate::*;

#[tokio::test]
async fn collectors_are_configured_by_admins_and_read_by_their_partner() {
    let app = seeded().await;
    let secret = app.db.dir().join("secret.txt");
    std::fs::write(&secret, "s3cret-value").unwrap();
    let body = json!({
        "adminEndpoint": "https://adminmanagement.local.azurestack.external/",
        "providerSubscription": "5a000000-0000-4000-8000-000000000001",
        "clientId": "app-1",
        "clientSecretFile": secret.display().to_string(),
        "directory": "ADFS",
        "start": "2025-05-01T00:30:00Z",
    });
    let path = "/v1/registrations/stack1/collector";
    let missing = app.get(path).await;
    assert_eq!(missing.error(), (404, "CollectorNotFound"));
    let created = app.put(path, body.clone()).await;
    assert_eq!(created.status, 201, "{created:?}");
    assert_eq!(
        created.body["adminEndpoint"],
        "https://adminmanagement.local.azurestack.external"
    );
    assert_eq!(created.body["directory"], "adfs");
    assert_eq!(
        created.body["start"], "2025-05-01T00:00:00Z",
        "a whole hour"
    );
    assert!(!created.body.to_string().contains("s3cret"), "{created:?}");
    assert_eq!(app.put(path, body.clone()).await.status, 200);

    let owner = app
        .token(json!({"role": "partner", "partnerId": "p1"}))
        .await;
    let read = app.call_as(&owner, Method::GET, path, None).await;
    assert_eq!(read.status, 200, "{read:?}");
    assert_eq!(read.body["registration"], "stack1");
    assert_eq!(
        read.body["lagHours"],
        serde_json::Value::Null,
        "nothing collected yet"
    );
    let write = app
        .call_as(&owner, Method::PUT, path, Some(body.clone()))
        .await;
    assert_eq!(write.error(), (403, "AuthorizationFailed"));
    let other = app
        .token(json!({"role": "partner", "partnerId": "p2"}))
        .await;
    let hidden = app.call_as(&other, Method::GET, path, None).await;
    assert_eq!(hidden.error(), (404, "RegistrationNotFound"));

    let mut bad = body.clone();
    bad["adminEndpoint"] = json!("adminmanagement.local");
    assert_eq!(
        app.put(path, bad).await.error_at(),
        (400, "InvalidParameter", "adminEndpoint")
    );
    let mut bad = body.clone();
    bad["clientSecretFile"] = json!("/nonexistent/secret");
    assert_eq!(
        app.put(path, bad).await.error_at(),
        (400, "InvalidParameter", "clientSecretFile")
    );
    let mut bad = body.clone();
    bad["clientSecret"] = json!("inline");
    assert_eq!(app.put(path, bad).await.error().0, 400);
    let unknown = app
        .put("/v1/registrations/nope/collector", body.clone())
        .await;
    assert_eq!(unknown.error(), (404, "RegistrationNotFound"));

    // Never collected yet: /healthz stays ok and names it.
    let health = app.raw(Method::GET, "/healthz", None, None, "").await;
    assert_eq!(health.status, 200, "{health:?}");
    assert_eq!(health.body["status"], "ok");
    assert_eq!(
        health.body["laggingCollectors"][0]["registration"], "stack1",
        "{health:?}"
    );

    let removed = app.call(Method::DELETE, path, None).await;
    assert_eq!(removed.status, 204);
    assert_eq!(app.get(path).await.error(), (404, "CollectorNotFound"));
}
