//! The application over a real TCP socket, with a real HTTP client.

use serde_json::{Value, json};
use stackbill_api::router;
use stackbill_test_support::{ADMIN_TOKEN, TestStore, admin_state};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_over_loopback() {
    let db = TestStore::new();
    let state = admin_state(&db);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, router(state)).await });

    let base = format!("http://{address}");
    let client = tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let put = agent
            .put(&format!("{base}/v1/partners/p1"))
            .header("Authorization", &format!("Bearer {ADMIN_TOKEN}"))
            .send_json(json!({"name": "Contoso"}))
            .unwrap();
        let put_status = put.status().as_u16();
        let mut got = agent
            .get(&format!("{base}/v1/partners/p1"))
            .header("Authorization", &format!("Bearer {ADMIN_TOKEN}"))
            .call()
            .unwrap();
        let body: Value = got.body_mut().read_json().unwrap();
        let mut denied = agent.get(&format!("{base}/v1/partners/p1")).call().unwrap();
        let denied_body: Value = denied.body_mut().read_json().unwrap();
        (put_status, body, denied.status().as_u16(), denied_body)
    })
    .await
    .unwrap();
    server.abort();

    assert_eq!(client.0, 201);
    assert_eq!(client.1, json!({"partnerId": "p1", "name": "Contoso"}));
    assert_eq!(client.2, 401);
    assert_eq!(client.3["error"]["code"], "InvalidAuthenticationToken");
}
