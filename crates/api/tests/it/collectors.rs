//! A registration's collector over the native API: an admin or the owning partner configures
//! it (files on the server by an admin only; a secret given as a value is stored sealed),
//! nobody else sees it, and the secret is never returned.

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
    assert_eq!(
        write.error_at(),
        (403, "AuthorizationFailed", "clientSecretFile"),
        "a partner never names a server file"
    );
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
    assert_eq!(
        app.put(path, bad).await.error_at(),
        (400, "InvalidParameter", "clientSecret"),
        "one credential only"
    );
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

#[tokio::test]
async fn a_partner_configures_its_collector_with_a_secret_stored_sealed() {
    let app = seeded().await;
    let path = "/v1/registrations/stack1/collector";
    let owner = app
        .token(json!({"role": "partner", "partnerId": "p1"}))
        .await;
    let body = json!({
        "adminEndpoint": "https://adminmanagement.local.azurestack.external",
        "providerSubscription": "5a000000-0000-4000-8000-000000000001",
        "clientId": "app-1",
        "clientSecret": "partner-s3cret-value",
        "caCertificates": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    });
    let created = app
        .call_as(&owner, Method::PUT, path, Some(body.clone()))
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    assert_eq!(created.body["credential"], "clientSecret");
    assert_eq!(created.body["caCertificates"], true);
    assert!(!created.body.to_string().contains("s3cret"), "{created:?}");
    let read = app.call_as(&owner, Method::GET, path, None).await;
    assert!(!read.body.to_string().contains("s3cret"), "{read:?}");

    // Stored sealed, under a key created beside the database and readable by its owner only.
    let Some(state) = app
        .db
        .store
        .collector("stack1".parse().unwrap())
        .await
        .unwrap()
    else {
        panic!("the collector is stored")
    };
    let stackbill_store::ClientCredential::SealedSecret(sealed) = &state.config.credential else {
        panic!("stored as {:?}", state.config.credential)
    };
    assert!(!sealed.contains("s3cret"), "{sealed}");
    let key_file = app.db.dir().join("secret.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let opened = stackbill_store::SecretKeyring::new(&key_file)
        .open(sealed, "collector:stack1:clientSecret")
        .unwrap();
    assert_eq!(opened, b"partner-s3cret-value");
    if let Ok(bytes) = std::fs::read(&app.db.db.location) {
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains("partner-s3cret"), "clear text in the file");
    }

    // A certificate that is not PEM, a CA file or a customer are refused, naming why.
    let mut bad = body.clone();
    bad.as_object_mut().unwrap().remove("clientSecret");
    bad["clientCertificate"] = json!("not a pem");
    let refused = app.call_as(&owner, Method::PUT, path, Some(bad)).await;
    assert_eq!(
        refused.error_at(),
        (400, "InvalidParameter", "clientCertificate")
    );
    let mut bad = body.clone();
    bad.as_object_mut().unwrap().remove("caCertificates");
    bad["caFile"] = json!("/etc/hostname");
    let refused = app.call_as(&owner, Method::PUT, path, Some(bad)).await;
    assert_eq!(refused.error_at(), (403, "AuthorizationFailed", "caFile"));
    let customer = app
        .token(json!({"role": "customer", "partnerId": "p1", "tenantId": TENANT_1}))
        .await;
    let refused = app
        .call_as(&customer, Method::PUT, path, Some(body.clone()))
        .await;
    assert_eq!(refused.error().0, 403, "{refused:?}");
    let other = app
        .token(json!({"role": "partner", "partnerId": "p2"}))
        .await;
    let hidden = app.call_as(&other, Method::PUT, path, Some(body)).await;
    assert_eq!(hidden.error(), (404, "RegistrationNotFound"));
    let unchanged = app.get(path).await;
    assert_eq!(unchanged.body["credential"], "clientSecret");

    // The partner removes it.
    let removed = app.call_as(&owner, Method::DELETE, path, None).await;
    assert_eq!(removed.status, 204, "{removed:?}");
}
