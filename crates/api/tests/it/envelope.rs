//! Malformed requests of every kind answer in the ARM error envelope.

use axum::http::Method;
use serde_json::json;
use stackbill_test_support::{ADMIN_TOKEN, TestApp};

#[tokio::test]
async fn malformed_json_is_invalid_json() {
    let app = TestApp::new();
    for body in ["{", "{\"name\": }", "not json", "{\"name\":\"a\"} trailing"] {
        let answer = app
            .raw(
                Method::PUT,
                "/v1/partners/p1",
                Some(ADMIN_TOKEN),
                Some(body.to_owned()),
                "application/json",
            )
            .await;
        assert_eq!(answer.error(), (400, "InvalidJson"), "{body}: {answer:?}");
    }
}

#[tokio::test]
async fn wrong_types_missing_and_unknown_fields_name_the_field() {
    let app = TestApp::new();
    let wrong_type = app.put("/v1/partners/p1", json!({"name": 5})).await;
    assert_eq!(
        (wrong_type.code(), wrong_type.target()),
        ("InvalidRequestContent", "name")
    );
    let missing = app.put("/v1/partners/p1", json!({})).await;
    assert_eq!(missing.code(), "InvalidRequestContent");
    assert!(
        missing.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("name"),
        "{missing:?}"
    );
    let unknown = app
        .put("/v1/partners/p1", json!({"name": "x", "colour": "red"}))
        .await;
    assert_eq!(unknown.code(), "InvalidRequestContent");
    assert!(
        unknown.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("colour"),
        "{unknown:?}"
    );
    let mismatch = app
        .put("/v1/partners/p1", json!({"partnerId": "p2", "name": "x"}))
        .await;
    assert_eq!(
        (mismatch.code(), mismatch.target()),
        ("InvalidRequestContent", "partnerId")
    );
    let not_json = app
        .raw(
            Method::PUT,
            "/v1/partners/p1",
            Some(ADMIN_TOKEN),
            Some("name=x".into()),
            "application/x-www-form-urlencoded",
        )
        .await;
    assert_eq!(not_json.error(), (415, "UnsupportedMediaType"));
}

#[tokio::test]
async fn bad_identifiers_and_parameters_are_400_with_a_target() {
    let app = TestApp::new();
    let cases = [
        ("/v1/subscriptions/not-a-guid", "subscriptionId"),
        ("/v1/partners/bad%20id", "partnerId"),
        ("/v1/meters/123", "meterId"),
        (
            "/v1/registrations/r/customerSubscriptions?asOf=yesterday",
            "asOf",
        ),
        (
            "/v1/registrations/r/customerSubscriptions?asOf=2025-01-01T00:00:00",
            "asOf",
        ),
    ];
    for (path, target) in cases {
        let answer = app.get(path).await;
        assert_eq!(
            answer.error_at(),
            (400, "InvalidParameter", target),
            "{path}"
        );
    }
    let precise = app
        .put(
            "/v1/registrations/r/customerSubscriptions/c0000000-0000-0000-0000-000000000001",
            json!({"tenantId": "70000000-0000-0000-0000-000000000001", "effectiveFrom": "2025-01-01T00:00:00.0000001Z"}),
        )
        .await;
    assert_eq!(
        (precise.code(), precise.target()),
        ("InvalidParameter", "effectiveFrom")
    );
    let bad_tenant = app
        .put(
            "/v1/registrations/r/customerSubscriptions/c0000000-0000-0000-0000-000000000001",
            json!({"tenantId": "x"}),
        )
        .await;
    assert_eq!(
        (bad_tenant.code(), bad_tenant.target()),
        ("InvalidRequestContent", "tenantId")
    );
}

#[tokio::test]
async fn unknown_routes_methods_and_missing_tokens() {
    let app = TestApp::new();
    let route = app.get("/v1/nothing-here").await;
    assert_eq!(route.error(), (404, "RouteNotFound"));
    let method = app.call(Method::POST, "/v1/partners/p1", None).await;
    assert_eq!(method.error(), (405, "MethodNotAllowed"));
    let anonymous = app.raw(Method::GET, "/v1/partners", None, None, "").await;
    assert_eq!(anonymous.error(), (401, "InvalidAuthenticationToken"));
    let wrong = app
        .raw(Method::GET, "/v1/partners", Some("guess"), None, "")
        .await;
    assert_eq!(wrong.error(), (401, "InvalidAuthenticationToken"));
    let health = app.raw(Method::GET, "/healthz", None, None, "").await;
    assert_eq!(health.status, 200);
    assert_eq!(health.body["database"], "ok");
    let backend = if app.db.db.is_postgres() {
        "postgres"
    } else {
        "sqlite"
    };
    assert_eq!(health.body["backend"], backend);
}

#[tokio::test]
async fn bodies_past_the_limit_are_refused() {
    let app = TestApp::new();
    let name = "x".repeat(stackbill_api::extract::MAX_DIRECTORY_BODY_BYTES);
    let answer = app.put("/v1/partners/p1", json!({"name": name})).await;
    assert_eq!(answer.error(), (413, "RequestTooLarge"));
    let fits = "x".repeat(stackbill_api::extract::MAX_DIRECTORY_BODY_BYTES - 20);
    assert_eq!(
        app.put("/v1/partners/p1", json!({"name": fits}))
            .await
            .status,
        201
    );
}

#[tokio::test]
async fn every_answer_carries_a_request_id_and_only_unavailability_a_retry_after() {
    let app = TestApp::new();
    for (method, path, token) in [
        (Method::GET, "/healthz", None),
        (Method::GET, "/v1/meters?$top=1", Some(ADMIN_TOKEN)),
        (Method::GET, "/v1/partners/nope", Some(ADMIN_TOKEN)),
        (Method::GET, "/v1/partners", None),
        (Method::GET, "/nowhere", Some(ADMIN_TOKEN)),
    ] {
        let mut request = axum::http::Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let response = tower::ServiceExt::oneshot(
            app.router.clone(),
            request.body(axum::body::Body::empty()).unwrap(),
        )
        .await
        .unwrap();
        let id = response
            .headers()
            .get("x-ms-request-id")
            .expect(path)
            .to_str()
            .unwrap();
        assert_eq!(id.len(), 36, "{path}: {id}");
        assert!(response.headers().get("retry-after").is_none(), "{path}");
    }
}
