//! Webhooks end to end: `serve` processes deliver to real HTTP receivers on loopback, whose
//! signatures are checked with an implementation of HMAC-SHA256 other than the server's
//! (RustCrypto's `hmac`, where the server signs with `ring`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use stackbill_test_support::TestDb;

use crate::{CLOUD, DEFAULT, Node, ok_json, stackbill};

/// A request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    id: String,
    timestamp: String,
    signature: String,
    body: String,
}

/// An HTTP receiver on loopback that answers each request with the next status of its
/// script (then 200).
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    fn start(script: &[u16]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let got = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(script.to_vec()));
        let (log, answers) = (Arc::clone(&got), Arc::clone(&script));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut headers = std::collections::HashMap::new();
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                loop {
                    line.clear();
                    reader.read_line(&mut line).unwrap();
                    let trimmed = line.trim_end();
                    if trimmed.is_empty() {
                        break;
                    }
                    if let Some((name, value)) = trimmed.split_once(':') {
                        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
                    }
                }
                let length: usize = headers
                    .get("content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let mut body = vec![0u8; length];
                reader.read_exact(&mut body).unwrap();
                let header = |name: &str| headers.get(name).cloned().unwrap_or_default();
                log.lock().unwrap().push(Received {
                    id: header("webhook-id"),
                    timestamp: header("webhook-timestamp"),
                    signature: header("webhook-signature"),
                    body: String::from_utf8(body).unwrap(),
                });
                let status = {
                    let mut answers = answers.lock().unwrap();
                    if answers.is_empty() {
                        200
                    } else {
                        answers.remove(0)
                    }
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
            }
        });
        Self { url, got }
    }

    fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Waits until `done` holds of what was received, for up to `seconds`.
    fn wait_for(&self, seconds: u64, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let until = Instant::now() + Duration::from_secs(seconds);
        loop {
            let got = self.received();
            if done(&got) || Instant::now() > until {
                return got;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Standard Webhooks' check, written independently of the server's.
fn verify(secret: &str, request: &Received) -> bool {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.{}", request.id, request.timestamp, request.body).as_bytes());
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    request
        .signature
        .split(' ')
        .any(|candidate| candidate == expected)
}

fn types(received: &[Received]) -> Vec<String> {
    received
        .iter()
        .map(|r| {
            serde_json::from_str::<Value>(&r.body).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

const OTHER_DEFAULT: &str = "d0000000-0000-0000-0000-000000000002";
const OTHER_CLOUD: &str = "ca000000-0000-0000-0000-000000000002";

fn call(node: &Node, method: &str, path: &str, body: Option<Value>) -> Value {
    let url = format!("{}{path}", node.address);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let auth = "Bearer secret-admin";
    let mut response = match (method, body) {
        ("GET", _) => agent.get(&url).header("authorization", auth).call(),
        ("POST", None) => agent.post(&url).header("authorization", auth).send_empty(),
        ("POST", Some(body)) => agent
            .post(&url)
            .header("authorization", auth)
            .header("content-type", "application/json")
            .send(body.to_string()),
        ("PUT", Some(body)) => agent
            .put(&url)
            .header("authorization", auth)
            .header("content-type", "application/json")
            .send(body.to_string()),
        other => panic!("no such call: {other:?}"),
    }
    .unwrap();
    let text = response.body_mut().read_to_string().unwrap();
    serde_json::from_str(&text).unwrap_or(Value::String(text))
}

fn usage(id: &str, cloud: &str, start: &str) -> String {
    let start: jiff::Timestamp = start.parse().unwrap();
    let end = start + jiff::SignedDuration::from_hours(1);
    format!(
        "{}\n",
        json!({"id": id, "cloudId": cloud, "tenantId": "70000000-0000-0000-0000-0000000000aa",
               "subscriptionId": "50000000-0000-0000-0000-000000000001",
               "meterId": "b4438d5d-453b-4ee1-b42a-dc72e377f1e4", "quantity": "1",
               "usageStartTime": start.to_string(), "usageEndTime": end.to_string()})
    )
}

fn post_usage(node: &Node, body: String) {
    let url = format!("{}/v1/usage", node.address);
    let response = ureq::post(&url)
        .header("authorization", "Bearer secret-admin")
        .header("content-type", "application/x-ndjson")
        .send(body)
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[test]
fn events_are_signed_retried_kept_across_a_kill_and_only_ever_the_partner_s_own() {
    let db = TestDb::new();
    for (partner, default, stack, cloud) in [
        ("p1", DEFAULT, "hub1", CLOUD),
        ("p2", OTHER_DEFAULT, "hub2", OTHER_CLOUD),
    ] {
        ok_json(
            &db,
            &["partner", "add", partner, "--name", partner, "--json"],
        );
        ok_json(
            &db,
            &[
                "subscription",
                "add",
                default,
                "--offer-type",
                "CSPSS",
                "--partner",
                partner,
                "--json",
            ],
        );
        ok_json(
            &db,
            &[
                "registration",
                "add",
                stack,
                "--cloud-id",
                cloud,
                "--subscription",
                default,
                "--json",
            ],
        );
    }
    let key = db.dir.path().join("secret.key");
    let key = key.to_str().unwrap();
    // p1's receiver fails its first request; p2's answers every one.
    let mine = Receiver::start(&[500]);
    let theirs = Receiver::start(&[]);
    let node = Node::start(&db, &["--secret-key-file", key, "--collect-every", "0"]);
    let created = call(
        &node,
        "POST",
        "/v1/webhooks",
        Some(
            json!({"partnerId": "p1", "url": mine.url, "eventTypes": ["*"], "description": "ops"}),
        ),
    );
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{created}");
    let endpoint = created["id"].as_str().unwrap().to_owned();
    let other = call(
        &node,
        "POST",
        "/v1/webhooks",
        Some(
            json!({"partnerId": "p2", "url": theirs.url, "eventTypes": ["invoice.finalized", "usage.unmapped_tenant"]}),
        ),
    );
    let other_secret = other["secret"].as_str().unwrap().to_owned();
    let shown = call(&node, "GET", &format!("/v1/webhooks/{endpoint}"), None);
    assert!(
        shown.get("secret").is_none(),
        "the secret is shown once: {shown}"
    );
    let refused = call(
        &node,
        "POST",
        "/v1/webhooks",
        Some(json!({"partnerId": "p1", "url": "http://example.com/hook", "eventTypes": ["*"]})),
    );
    assert_eq!(refused["error"]["code"], "InvalidWebhook", "{refused}");

    // A tenant of p1's stack with no subscription of its own: billed to the default.
    let last_month = stackbill_core::Period::containing(jiff::Timestamp::now()).previous();
    let start = last_month.start().to_string();
    post_usage(&node, usage("u1", CLOUD, &start));
    let got = mine.wait_for(30, |got| got.len() >= 2);
    assert_eq!(
        types(&got),
        ["usage.unmapped_tenant", "usage.unmapped_tenant"]
    );
    assert_eq!(got[0].id, got[1].id, "a retry carries the same webhook-id");
    assert!(got.iter().all(|r| verify(&secret, r)), "{got:?}");
    let payload: Value = serde_json::from_str(&got[1].body).unwrap();
    assert_eq!(payload["data"]["cloudId"], CLOUD);
    assert_eq!(payload["data"]["subscriptionId"], DEFAULT);
    let log = call(
        &node,
        "GET",
        &format!("/v1/webhooks/{endpoint}/deliveries"),
        None,
    );
    let first = &log["value"][0];
    assert_eq!(
        (
            first["status"].as_str(),
            first["attempts"].as_u64(),
            first["lastStatus"].as_u64()
        ),
        (Some("delivered"), Some(2), Some(200)),
        "{log}"
    );
    assert!(theirs.received().is_empty(), "p2 hears nothing of p1");

    // Replay: the same event again, under its id.
    let event = first["eventId"].as_str().unwrap().to_owned();
    let replayed = call(
        &node,
        "POST",
        &format!("/v1/webhooks/{endpoint}/deliveries/{event}/replay"),
        None,
    );
    assert!(replayed.is_null() || replayed == "", "{replayed}");
    let got = mine.wait_for(30, |got| got.len() >= 3);
    assert_eq!(got[2].id, event);
    assert!(verify(&secret, &got[2]));

    // Killed between commit and delivery: a node that does not deliver finalizes the month
    // and dies at once; the next node delivers what it committed.
    drop(node);
    let quiet = Node::start(
        &db,
        &[
            "--secret-key-file",
            key,
            "--collect-every",
            "0",
            "--no-webhook-delivery",
        ],
    );
    let finalized = call(
        &quiet,
        "POST",
        &format!("/v1/periods/{last_month}/finalize?partnerId=p1"),
        None,
    );
    assert_eq!(
        finalized["value"].as_array().unwrap().len(),
        1,
        "{finalized}"
    );
    let mut quiet = quiet;
    quiet.child.kill().unwrap();
    quiet.child.wait().unwrap();
    assert_eq!(
        mine.received().len(),
        3,
        "nothing delivered by the node that died"
    );
    let node = Node::start(&db, &["--secret-key-file", key, "--collect-every", "0"]);
    let got = mine.wait_for(30, |got| got.len() >= 4);
    assert_eq!(types(&got)[3], "invoice.finalized");
    let finalized: Value = serde_json::from_str(&got[3].body).unwrap();
    assert_eq!(finalized["data"]["subscriptionId"], DEFAULT);
    assert_eq!(
        finalized["data"]["invoiceNumber"],
        format!("INV-{}-000001", last_month.year())
    );
    assert!(verify(&secret, &got[3]));

    // p2's own event goes to p2 only, signed with p2's secret.
    post_usage(&node, usage("u2", OTHER_CLOUD, &start));
    let got = theirs.wait_for(30, |got| !got.is_empty());
    assert_eq!(types(&got), ["usage.unmapped_tenant"]);
    assert!(verify(&other_secret, &got[0]) && !verify(&secret, &got[0]));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(mine.received().len(), 4, "p1 hears nothing of p2");

    // 410 Gone disables the endpoint.
    let gone = Receiver::start(&[410]);
    let updated = call(
        &node,
        "PUT",
        &format!("/v1/webhooks/{endpoint}"),
        Some(json!({"url": gone.url, "eventTypes": ["*"]})),
    );
    assert_eq!(updated["enabled"], true, "{updated}");
    call(
        &node,
        "POST",
        &format!("/v1/webhooks/{endpoint}/deliveries/{event}/replay"),
        None,
    );
    gone.wait_for(30, |got| !got.is_empty());
    let until = Instant::now() + Duration::from_secs(10);
    let disabled = loop {
        let shown = call(&node, "GET", &format!("/v1/webhooks/{endpoint}"), None);
        if shown["enabled"] == false || Instant::now() > until {
            break shown;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(disabled["enabled"], false, "{disabled}");
    assert!(
        disabled["disabledReason"].as_str().unwrap().contains("410"),
        "{disabled}"
    );
    let listed = stackbill(&db, &["webhook", "list", "--json"]);
    assert!(listed.status.success(), "{listed:?}");
}
