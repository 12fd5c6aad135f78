//! Several `stackbill serve` processes on one PostgreSQL database: concurrent, overlapping
//! and conflicting deliveries are accepted exactly once, a node frozen mid-write does not
//! hold the others up for good, and a database crash in the middle loses nothing
//! acknowledged; and a database reached over TLS only. Run when
//! `STACKBILL_TEST_POSTGRES` names a server.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use stackbill_test_support::{
    PostgresSession, TestDb, postgres_admin_url, postgres_execute, postgres_query,
};

use crate::import::demo_with_usage;
use crate::{Location, Node, ok_json, stackbill, stored};

const ADMIN: &str = "secret-admin";

/// Whether these tests can run (they need PostgreSQL); says so when they cannot.
fn postgres_available() -> bool {
    let available = postgres_admin_url().is_some();
    if !available {
        eprintln!("skipped: STACKBILL_TEST_POSTGRES is not set");
    }
    available
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// One POST of NDJSON lines: the status, the Retry-After header and the JSON answer.
fn post(
    agent: &ureq::Agent,
    node: &str,
    lines: &[String],
) -> Result<(u16, Option<String>, Value), String> {
    let mut response = agent
        .post(&format!("{node}/v1/usage"))
        .header("Authorization", format!("Bearer {ADMIN}"))
        .header("Content-Type", "application/x-ndjson")
        .send(lines.join("\n"))
        .map_err(|err| err.to_string())?;
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    let body: Value = response
        .body_mut()
        .read_json()
        .map_err(|err| err.to_string())?;
    Ok((response.status().as_u16(), retry_after, body))
}

/// A copy of an NDJSON record with another quantity: the same key, other content.
fn conflicting(line: &str) -> Option<String> {
    let mut record: Value = serde_json::from_str(line).ok()?;
    let quantity: f64 = record["quantity"].as_str()?.parse().ok()?;
    record["quantity"] = Value::String(format!("{}", quantity.floor() + 1000.0));
    Some(record.to_string())
}

/// A usage file for the demo's stacks (with re-sent, late and malformed records) and what
/// one clean import of it stores, on a database of its own (kept alive by the answer).
fn clean_import(records: u64) -> (TestDb, PathBuf, Vec<stackbill_core::UsageRecord>) {
    let clean = TestDb::new();
    let file = demo_with_usage(&clean, clean.dir.path(), records, true);
    ok_json(
        &clean,
        &["usage", "import", file.to_str().unwrap(), "--json"],
    );
    let expected = stored(&clean.location);
    (clean, file, expected)
}

/// Seeds a database with the demo's directory and no usage of last month.
fn demo(db: &(impl Location + ?Sized)) {
    ok_json(
        db,
        &["demo", "--no-serve", "--json", "--usage-records", "0"],
    );
}

fn lines(file: &Path) -> Vec<String> {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn nodes_on_one_database_accept_every_record_exactly_once() {
    if !postgres_available() {
        return;
    }
    let (_clean, file, expected) = clean_import(6_000);
    let db = TestDb::new();
    demo(&db);
    // The demo stores a record of its own (this month's draft).
    let before = stored(&db.location).len() as u64;
    let lines = Arc::new(lines(&file));
    let nodes: Vec<Node> = (0..3).map(|_| Node::start(&db, &[])).collect();
    let addresses: Arc<Vec<String>> = Arc::new(nodes.iter().map(|n| n.address.clone()).collect());
    let accepted = Arc::new(AtomicU64::new(0));
    let conflicts = Arc::new(AtomicU64::new(0));
    let chunks = lines.len().div_ceil(250);
    let clients: Vec<_> = (0..6)
        .map(|client| {
            let (lines, addresses) = (Arc::clone(&lines), Arc::clone(&addresses));
            let (accepted, conflicts) = (Arc::clone(&accepted), Arc::clone(&conflicts));
            std::thread::spawn(move || {
                let agent = agent();
                // Every client sends every record, each from another starting point, so
                // that the same records reach different nodes at the same time.
                for step in 0..chunks {
                    let chunk = (step + client * chunks / 6) % chunks;
                    let part = &lines[chunk * 250..((chunk + 1) * 250).min(lines.len())];
                    let node = &addresses[(client + step) % addresses.len()];
                    let (status, _, body) = post(&agent, node, part).unwrap();
                    assert_eq!(status, 200, "{body}");
                    accepted.fetch_add(body["accepted"].as_u64().unwrap(), Ordering::Relaxed);
                    // Then, through another node, a conflicting copy of a record that is now
                    // stored: it is refused, and the stored record stands.
                    if let Some(copy) = part.iter().find_map(|line| conflicting(line)) {
                        let other = &addresses[(client + step + 1) % addresses.len()];
                        let (status, _, body) = post(&agent, other, &[copy]).unwrap();
                        assert_eq!(status, 200, "{body}");
                        assert_eq!(body["accepted"], 0, "{body}");
                        conflicts.fetch_add(
                            body["conflicts"].as_array().map_or(0, Vec::len) as u64,
                            Ordering::Relaxed,
                        );
                    }
                }
            })
        })
        .collect();
    for client in clients {
        client.join().unwrap();
    }
    assert_eq!(
        stored(&db.location),
        expected,
        "the nodes stored what one clean import stores"
    );
    assert_eq!(
        accepted.load(Ordering::Relaxed) + before,
        expected.len() as u64,
        "each record is accepted once, by one node"
    );
    assert!(conflicts.load(Ordering::Relaxed) > 0);
}

/// A PostgreSQL cluster of this test's own, so that crashing it disturbs no other test.
struct OwnCluster {
    dir: PathBuf,
    admin: String,
}

fn cluster_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/pg-cluster.sh")
}

fn cluster(action: &str, dir: &Path) -> String {
    cluster_with(action, dir, false)
}

fn cluster_with(action: &str, dir: &Path, tls: bool) -> String {
    let output = std::process::Command::new(cluster_script())
        .args([action, dir.to_str().unwrap()])
        .env("PG_CLUSTER_TLS", if tls { "1" } else { "0" })
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "pg-cluster.sh {action}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

impl OwnCluster {
    fn start() -> Self {
        Self::start_with(false)
    }

    /// With `tls`, the cluster takes TCP connections over TLS only, with a certificate signed
    /// by `dir/ca.crt`.
    fn start_with(tls: bool) -> Self {
        // Kept here and removed by `pg-cluster.sh stop` when the cluster is dropped.
        let dir = tempfile::Builder::new()
            .prefix("stackbill-own-")
            .tempdir()
            .unwrap()
            .keep();
        let admin = cluster_with("start", &dir, tls);
        Self { dir, admin }
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        cluster("stop", &self.dir);
    }
}

#[test]
fn a_database_crash_mid_ingest_loses_nothing_acknowledged() {
    if !postgres_available() {
        return;
    }
    let own = OwnCluster::start();
    postgres_execute(&own.admin, "CREATE DATABASE stackbill").unwrap();
    let url = format!("{}/stackbill", own.admin.rsplit_once('/').unwrap().0);
    let db = ["--database-url".to_owned(), url.clone()];
    demo(&db[..]);
    let (_clean, file, expected) = clean_import(3_000);
    let lines = Arc::new(lines(&file));
    let nodes: Vec<Node> = (0..2).map(|_| Node::start(&db[..], &[])).collect();
    let addresses: Arc<Vec<String>> = Arc::new(nodes.iter().map(|n| n.address.clone()).collect());
    let acknowledged = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let chunks: Vec<Vec<String>> = lines.chunks(100).map(<[String]>::to_vec).collect();
    let chunks = Arc::new(chunks);
    // Each client sends its first half, then re-sends it until the crash is near, then sends
    // a quarter into the crash and, once the database is down, the last quarter through the
    // outage: every chunk until acknowledged, as a stack does.
    let crashing = Arc::new(AtomicBool::new(false));
    let down = Arc::new(AtomicBool::new(false));
    let halfway = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..2)
        .map(|client| {
            let (chunks, addresses) = (Arc::clone(&chunks), Arc::clone(&addresses));
            let (acknowledged, refused) = (Arc::clone(&acknowledged), Arc::clone(&refused));
            let (crashing, down) = (Arc::clone(&crashing), Arc::clone(&down));
            let halfway = Arc::clone(&halfway);
            std::thread::spawn(move || {
                let agent = agent();
                let send = |index: usize, chunk: &[String]| loop {
                    let node = &addresses[index % addresses.len()];
                    match post(&agent, node, chunk) {
                        Ok((200, _, body)) => break body,
                        Ok((503, retry_after, body)) => {
                            assert_eq!(retry_after.as_deref(), Some("1"), "{body}");
                            assert_eq!(body["error"]["code"], "ServiceUnavailable", "{body}");
                            refused.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok((status, _, body)) => panic!("{status}: {body}"),
                        Err(err) => panic!("the node did not answer: {err}"),
                    }
                    std::thread::sleep(Duration::from_millis(100));
                };
                let mine: Vec<(usize, &Vec<String>)> =
                    chunks.iter().enumerate().skip(client).step_by(2).collect();
                let (first, rest) = mine.split_at(mine.len() / 2);
                let (into_crash, through_outage) = rest.split_at(rest.len() / 2);
                for &(index, chunk) in first {
                    send(index, chunk);
                    acknowledged.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                }
                halfway.fetch_add(1, Ordering::Relaxed);
                let mut again = first.iter().cycle();
                while !crashing.load(Ordering::Relaxed) {
                    if let Some(&(index, chunk)) = again.next() {
                        let body = send(index, chunk);
                        assert_eq!(
                            body["accepted"], 0,
                            "a re-sent record is never accepted twice"
                        );
                    }
                }
                for &(index, chunk) in into_crash {
                    send(index, chunk);
                    acknowledged.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                }
                while !down.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(10));
                }
                for &(index, chunk) in through_outage {
                    send(index, chunk);
                    acknowledged.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                }
            })
        })
        .collect();
    // Crash the database while both clients are sending, keep it down a moment, restart it.
    let started = Instant::now();
    while halfway.load(Ordering::Relaxed) < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "ingestion did not get halfway"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    // New records are in flight when the database goes down.
    crashing.store(true, Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(30));
    cluster("crash", &own.dir);
    down.store(true, Ordering::Relaxed);
    let health = agent()
        .get(&format!("{}/healthz", addresses[0]))
        .call()
        .unwrap();
    assert_eq!(
        health.status().as_u16(),
        503,
        "healthz reports the database down"
    );
    std::thread::sleep(Duration::from_secs(2));
    cluster("restart", &own.dir);
    for client in clients {
        client.join().unwrap();
    }
    assert!(
        refused.load(Ordering::Relaxed) > 0,
        "some requests met the outage"
    );
    let mut health = agent()
        .get(&format!("{}/healthz", addresses[1]))
        .call()
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
    let health: Value = health.body_mut().read_json().unwrap();
    assert_eq!(health["database"], "ok");
    drop(nodes);
    assert_eq!(
        stored(&url),
        expected,
        "every acknowledged record is stored, once"
    );
}

/// Sends a signal (`STOP`, `CONT`) to a node.
fn signal(node: &Node, name: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &node.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name}");
}

/// Waits until `sql` (a count) on `url` says `want`.
fn wait_for_count(url: &str, sql: &str, want: &str) {
    let started = Instant::now();
    loop {
        let rows = postgres_query(url, sql).unwrap();
        if rows[0][0].as_deref() == Some(want) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{sql}: {rows:?}, not {want}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A node frozen in the middle of a write (a paused VM, say) holds the write lock of every
/// node; the server ends its session after `idle_in_transaction_session_timeout`, the other
/// nodes go on, and the frozen node, thawed, answers 503 for the write it lost and takes it
/// when sent again. Meanwhile a writer that cannot have the lock in `lock_timeout` gets 503.
#[test]
fn a_frozen_node_gives_up_the_write_lock() {
    if !postgres_available() {
        return;
    }
    let db = TestDb::new();
    let file = demo_with_usage(&db, db.dir.path(), 200, false);
    let lines = lines(&file);
    let (first, second) = lines.split_at(100);
    let before = stored(&db.location).len();
    let url = format!("{}?idle_in_transaction_session_timeout=2", db.location);
    let args = ["--database-url".to_owned(), url];
    let (frozen, other) = (Node::start(&args[..], &[]), Node::start(&args[..], &[]));

    // Node one's write waits for the write lock, held by another session; node one is
    // frozen, and then the lock is let go: node one's transaction has it, and never goes on.
    let holder = PostgresSession::open(
        &db.location,
        "BEGIN; UPDATE store_clock SET last_micros = last_micros WHERE id = 1",
    )
    .unwrap();
    // A node that waits a second at most for the write lock answers 503 meanwhile.
    let impatient = Node::start(
        &[
            "--database-url".to_owned(),
            format!("{}?lock_timeout=1", db.location),
        ][..],
        &[],
    );
    let (status, retry_after, body) = post(&agent(), &impatient.address, first).unwrap();
    assert_eq!(status, 503, "{body}");
    assert_eq!(retry_after.as_deref(), Some("1"));
    drop(impatient);
    let sent = {
        let (address, first) = (frozen.address.clone(), first.to_vec());
        std::thread::spawn(move || post(&agent(), &address, &first))
    };
    let ours = "SELECT count(*) FROM pg_stat_activity \
                WHERE datname = current_database() AND application_name = 'stackbill'";
    wait_for_count(
        &db.location,
        &format!("{ours} AND wait_event_type = 'Lock'"),
        "1",
    );
    signal(&frozen, "STOP");
    drop(holder);
    wait_for_count(
        &db.location,
        &format!("{ours} AND state = 'idle in transaction'"),
        "1",
    );

    // The other node's write waits until the server ends the frozen node's session.
    let started = Instant::now();
    let (status, _, body) = post(&agent(), &other.address, second).unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], 100, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the write lock came back before writers give up waiting for it"
    );

    // Thawed, the frozen node answers its lost write with 503, and takes it when re-sent.
    signal(&frozen, "CONT");
    let (status, retry_after, body) = sent.join().unwrap().unwrap();
    assert_eq!(status, 503, "{body}");
    assert_eq!(retry_after.as_deref(), Some("1"));
    assert_eq!(body["error"]["code"], "ServiceUnavailable", "{body}");
    let (status, _, body) = post(&agent(), &frozen.address, first).unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], 100, "{body}");
    drop((frozen, other));
    assert_eq!(stored(&db.location).len(), before + 200);
}

fn call(agent: &ureq::Agent, method: &str, url: &str, body: Option<Value>) -> (u16, Value) {
    let request = ureq::http::Request::builder()
        .method(method)
        .uri(url)
        .header("Authorization", format!("Bearer {ADMIN}"))
        .header("Content-Type", "application/json")
        .body(body.map(|b| b.to_string()).unwrap_or_default())
        .unwrap();
    let mut response = agent.run(request).unwrap();
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[test]
fn racing_finalizations_and_registrations_leave_one_history() {
    if !postgres_available() {
        return;
    }
    let db = TestDb::new();
    let file = demo_with_usage(&db, db.dir.path(), 3_000, false);
    ok_json(&db, &["usage", "import", file.to_str().unwrap(), "--json"]);
    let registrations = ok_json(&db, &["registration", "list", "--json"]);
    let default = registrations[0]["subscriptionId"]
        .as_str()
        .unwrap()
        .to_owned();
    let nodes: Vec<Node> = (0..3).map(|_| Node::start(&db, &[])).collect();
    let addresses: Arc<Vec<String>> = Arc::new(nodes.iter().map(|n| n.address.clone()).collect());

    // Eight callers finalize May at once through three nodes, while eight others race to
    // register one new name, each for a stack of its own.
    let finalizers: Vec<_> = (0..8)
        .map(|n| {
            let addresses = Arc::clone(&addresses);
            std::thread::spawn(move || {
                let node = &addresses[n % addresses.len()];
                call(
                    &agent(),
                    "POST",
                    &format!("{node}/v1/periods/2025-05/finalize"),
                    None,
                )
            })
        })
        .collect();
    let registrars: Vec<_> = (0..8)
        .map(|n| {
            let (addresses, default) = (Arc::clone(&addresses), default.clone());
            std::thread::spawn(move || {
                let node = &addresses[n % addresses.len()];
                let cloud = format!("ee000000-0000-4000-8000-{n:012}");
                let (status, body) = call(
                    &agent(),
                    "PUT",
                    &format!("{node}/v1/registrations/race-hub"),
                    Some(serde_json::json!({"cloudId": cloud, "subscriptionId": default})),
                );
                (status, body, cloud)
            })
        })
        .collect();
    let finals: Vec<(u16, Value)> = finalizers.into_iter().map(|t| t.join().unwrap()).collect();
    let registered: Vec<(u16, Value, String)> =
        registrars.into_iter().map(|t| t.join().unwrap()).collect();

    // Finalized once: every caller sees the same final invoices.
    for (status, body) in &finals {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(
            body, &finals[0].1,
            "every node answers the one finalization"
        );
    }
    assert!(!finals[0].1["value"].as_array().unwrap().is_empty());
    let listed = ok_json(&db, &["invoice", "list", "2025-05", "--json"]);
    let finalized: Vec<&Value> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["status"] == "final")
        .collect();
    assert_eq!(
        finalized.len(),
        finals[0].1["value"].as_array().unwrap().len()
    );

    // Registered once: one caller created the registration, the others were refused, and
    // the registration holds the winner's stack.
    let winners: Vec<&(u16, Value, String)> = registered
        .iter()
        .filter(|(status, _, _)| *status == 201)
        .collect();
    assert_eq!(winners.len(), 1, "{registered:?}");
    for (status, body, _) in &registered {
        assert!(
            *status == 201 || *status == 409 || *status == 400,
            "{status}: {body}"
        );
    }
    let (status, stored) = call(
        &agent(),
        "GET",
        &format!("{}/v1/registrations/race-hub", addresses[2]),
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(stored["cloudId"], winners[0].2.as_str(), "{stored}");
}

#[test]
fn a_tls_database_needs_sslmode_require_and_a_trusted_certificate() {
    if !postgres_available() {
        return;
    }
    let own = OwnCluster::start_with(true);
    let url = |query: &str| vec!["--database-url".to_owned(), format!("{}{query}", own.admin)];
    // Plain connections are refused by this server.
    let plain = stackbill(&url("")[..], &["partner", "list"]);
    assert_eq!(plain.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&plain.stderr).contains("no encryption"));
    // The server's certificate is verified: the system's authorities do not know this one.
    let unknown = stackbill(&url("?sslmode=require")[..], &["partner", "list"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("UnknownIssuer"));
    // With the authority that signed it, everything works over TLS.
    let ca = own.dir.join("ca.crt");
    let trusted = url(&format!("?sslmode=require&sslrootcert={}", ca.display()));
    ok_json(
        &trusted[..],
        &["partner", "add", "p1", "--name", "Contoso", "--json"],
    );
    let partners = ok_json(&trusted[..], &["partner", "list", "--json"]);
    assert_eq!(partners[0]["partnerId"], "p1");
}
