//! The OpenAPI description matches the router: every documented operation exists.

use axum::http::Method;
use stackbill_test_support::{ADMIN_TOKEN, TestApp};

#[tokio::test]
async fn every_documented_operation_is_served() {
    let app = TestApp::new();
    let doc = app.raw(Method::GET, "/openapi.json", None, None, "").await;
    assert_eq!(doc.status, 200);
    assert!(doc.body["openapi"].as_str().unwrap().starts_with("3."));
    assert_eq!(
        doc.body["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    for schema in [
        "PartnerDto",
        "SubscriptionBody",
        "InvoiceDto",
        "IngestDto",
        "ErrorResponse",
        "TokenBody",
    ] {
        assert!(
            doc.body["components"]["schemas"].get(schema).is_some(),
            "{schema} is described"
        );
    }
    let paths = doc.body["paths"].as_object().unwrap();
    let mut operations = 0;
    for (path, item) in paths {
        for (method, _) in item.as_object().unwrap() {
            let concrete = path
                .replace("{partnerId}", "p1")
                .replace("{subscriptionId}", "c0000000-0000-0000-0000-000000000001")
                .replace("{name}", "default")
                .replace("{meterId}", "b4438d5d-453b-4ee1-b42a-dc72e377f1e4")
                .replace("{period}", "2025-05")
                .replace("{id}", "t1");
            let method: Method = method.to_uppercase().parse().unwrap();
            let answer = app
                .raw(
                    method.clone(),
                    &concrete,
                    Some(ADMIN_TOKEN),
                    None,
                    "application/json",
                )
                .await;
            let code = answer.code();
            assert!(
                code != "RouteNotFound" && code != "MethodNotAllowed",
                "{method} {path} is documented but not served: {answer:?}"
            );
            operations += 1;
        }
    }
    assert_eq!(operations, 50, "every native operation is documented");
}

/// Every `$ref` of the document names a schema it describes.
#[tokio::test]
async fn every_reference_resolves() {
    fn refs(value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                if let Some(target) = map.get("$ref").and_then(|r| r.as_str()) {
                    out.push(target.to_owned());
                }
                map.values().for_each(|v| refs(v, out));
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let app = TestApp::new();
    let doc = app.raw(Method::GET, "/openapi.json", None, None, "").await;
    let mut found = Vec::new();
    refs(&doc.body, &mut found);
    assert!(found.len() > 30, "the document uses references");
    for target in found {
        let name = target
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("{target} is not a schema reference"));
        assert!(
            doc.body["components"]["schemas"].get(name).is_some(),
            "{target} does not resolve"
        );
    }
}
