//! The `stackbill` binary as users run it: separate processes on one database (a file, or
//! PostgreSQL when `STACKBILL_TEST_POSTGRES` is set; the demo always makes a file).

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod collect;
mod copy;
mod crash;
mod day_to_day;
mod import;
mod invoice;
mod nodes;
mod output;
mod ratecard;
mod slow;
mod storage;
mod webhooks;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;
use stackbill_test_support::TestDb;

/// A database the binary can be pointed at.
pub(crate) trait Location {
    /// The arguments that select it.
    fn db_args(&self) -> Vec<std::ffi::OsString>;
}

impl Location for std::path::Path {
    fn db_args(&self) -> Vec<std::ffi::OsString> {
        vec!["--db".into(), self.into()]
    }
}

impl Location for std::path::PathBuf {
    fn db_args(&self) -> Vec<std::ffi::OsString> {
        self.as_path().db_args()
    }
}

impl Location for [String] {
    fn db_args(&self) -> Vec<std::ffi::OsString> {
        self.iter().map(Into::into).collect()
    }
}

impl Location for TestDb {
    fn db_args(&self) -> Vec<std::ffi::OsString> {
        self.args().iter().map(Into::into).collect()
    }
}

/// Every record stored at `location` (a file or a PostgreSQL URL), by stack and id, without
/// the acceptance instants (the one thing a re-run may change).
pub(crate) fn stored(location: &str) -> Vec<stackbill_core::UsageRecord> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = stackbill_store::Store::open_location(
        location,
        std::sync::Arc::new(stackbill_store::SystemClock),
    )
    .unwrap();
    let mut records = runtime
        .block_on(store.usage_records(0, i64::MAX / 7200))
        .unwrap();
    for record in &mut records {
        record.reported_time = None;
    }
    records
}

/// The binary with `args`, on `db`, with no database or token from the environment.
pub(crate) fn command(db: &(impl Location + ?Sized), args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_stackbill"));
    command
        .args(args)
        .args(db.db_args())
        .env_remove("STACKBILL_DB")
        .env_remove("STACKBILL_DATABASE_URL")
        .env_remove("STACKBILL_ADMIN_TOKEN");
    command
}

pub(crate) fn stackbill(db: &(impl Location + ?Sized), args: &[&str]) -> Output {
    command(db, args).output().expect("stackbill runs")
}

pub(crate) fn ok_json(db: &(impl Location + ?Sized), args: &[&str]) -> Value {
    let output = stackbill(db, args);
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("--json prints JSON")
}

const DEFAULT: &str = "d0000000-0000-0000-0000-000000000001";
const CUSTOMER: &str = "c0000000-0000-0000-0000-000000000001";
const TENANT: &str = "70000000-0000-0000-0000-000000000001";
const CLOUD: &str = "ca000000-0000-0000-0000-000000000001";

#[test]
fn data_written_by_one_process_is_read_by_the_next() {
    let db = TestDb::new();
    ok_json(
        &db,
        &["partner", "add", "p1", "--name", "Contoso", "--json"],
    );
    ok_json(
        &db,
        &[
            "subscription",
            "add",
            DEFAULT,
            "--offer-type",
            "CSPSS",
            "--partner",
            "p1",
            "--json",
        ],
    );
    ok_json(
        &db,
        &[
            "subscription",
            "add",
            CUSTOMER,
            "--offer-type",
            "csp",
            "--partner",
            "p1",
            "--customer-tenant",
            TENANT,
            "--markup-percent",
            "-5.5",
            "--json",
        ],
    );
    ok_json(
        &db,
        &[
            "registration",
            "add",
            "hub1",
            "--cloud-id",
            CLOUD,
            "--subscription",
            DEFAULT,
            "--json",
        ],
    );
    let added = ok_json(
        &db,
        &[
            "tenant",
            "add",
            "hub1",
            "--tenant",
            TENANT,
            "--subscription",
            CUSTOMER,
            "--effective-from",
            "2025-01-01T00:00:00Z",
            "--json",
        ],
    );
    assert_eq!(added["effectiveFrom"], "2025-01-01T00:00:00Z");

    let subs = ok_json(&db, &["subscription", "list", "--partner", "p1", "--json"]);
    assert_eq!(subs.as_array().unwrap().len(), 2);
    assert_eq!(subs[0]["markupPercent"], "-5.5");
    let tenants = ok_json(&db, &["tenant", "list", "hub1", "--json"]);
    assert_eq!(tenants[0]["tenantId"], TENANT);
    assert_eq!(tenants[0]["subscriptionId"], CUSTOMER);
    let before = ok_json(
        &db,
        &[
            "tenant",
            "list",
            "hub1",
            "--as-of",
            "2024-12-31T23:00:00Z",
            "--json",
        ],
    );
    assert_eq!(before.as_array().unwrap().len(), 0);

    let removed = stackbill(
        &db,
        &["tenant", "remove", "hub1", "--subscription", CUSTOMER],
    );
    assert!(removed.status.success());
    let history = ok_json(&db, &["tenant", "history", "hub1", "--json"]);
    assert_eq!(history.as_array().unwrap().len(), 2);
    assert_eq!(history[1]["subscriptionId"], Value::Null);
    let registration = ok_json(&db, &["registration", "show", "HUB1", "--json"]);
    assert_eq!(registration["subscriptionId"], DEFAULT);
    let meter = ok_json(
        &db,
        &[
            "meter",
            "show",
            "F271A8A388C44D93956A063E1D2FA80B",
            "--json",
        ],
    );
    assert_eq!(meter["name"], "Static IP Address Usage");
}

/// `stackbill database init`: an empty, migrated database for the commands that need one.
pub(crate) fn initialized() -> TestDb {
    let db = TestDb::new();
    let init = stackbill(&db, &["database", "init"]);
    assert!(init.status.success(), "{init:?}");
    db
}

#[test]
fn refusals_exit_1_with_the_code_and_usage_errors_exit_2() {
    let db = initialized();
    let missing = stackbill(
        &db,
        &[
            "registration",
            "add",
            "hub1",
            "--cloud-id",
            CLOUD,
            "--subscription",
            DEFAULT,
        ],
    );
    assert_eq!(missing.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.starts_with("error: InvalidCustomerSubscriptionId:"),
        "{stderr}"
    );
    let not_found = stackbill(&db, &["tenant", "list", "nope"]);
    assert_eq!(not_found.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&not_found.stderr).contains("RegistrationNotFound"));

    let bad_guid = stackbill(&db, &["subscription", "show", "not-a-guid"]);
    assert_eq!(bad_guid.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_guid.stderr).contains("is not a GUID"));
    let bad_model = stackbill(
        &db,
        &[
            "registration",
            "add",
            "r",
            "--cloud-id",
            CLOUD,
            "--subscription",
            DEFAULT,
            "--billing-model",
            "Free",
        ],
    );
    assert_eq!(bad_model.status.code(), Some(2));
    let no_command = Command::new(env!("CARGO_BIN_EXE_stackbill"))
        .output()
        .unwrap();
    assert_eq!(no_command.status.code(), Some(2));
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    let db = initialized();
    // The reading end is closed before the command prints (as `stackbill ... | head` leaves
    // it once head has its lines): the command stops, with no panic and no error.
    let mut child = command(&db, &["meter", "list", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn a_database_url_must_be_postgres_and_reachable() {
    let not_postgres = stackbill(
        &[
            "--database-url".to_owned(),
            "mysql://db/stackbill".to_owned(),
        ][..],
        &["partner", "list"],
    );
    assert_eq!(not_postgres.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&not_postgres.stderr).contains("postgres://"));
    // Nothing listens on port 1: the answer is an error naming the database, not a hang.
    let started = std::time::Instant::now();
    let unreachable = stackbill(
        &[
            "--database-url".to_owned(),
            "postgres://stackbill:secret@127.0.0.1:1/stackbill".to_owned(),
        ][..],
        &["partner", "list"],
    );
    assert_eq!(unreachable.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&unreachable.stderr);
    assert!(
        stderr.contains("cannot open the PostgreSQL database"),
        "{stderr}"
    );
    assert!(stderr.contains("refused"), "the cause is said: {stderr}");
    assert!(
        !stderr.contains("secret"),
        "the password is never printed: {stderr}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}

#[test]
fn demo_seeds_a_csp_with_registered_and_unregistered_tenants() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo.db");
    let summary = ok_json(&db, &["demo", "--no-serve", "--json", "--tenants", "5"]);
    assert_eq!(summary["registrations"], 3);
    assert!(summary["tenantsMapped"].as_u64().unwrap() >= 4);
    assert!(summary["tenantsUnregistered"].as_u64().unwrap() >= 1);
    assert!(summary["adminToken"].as_str().unwrap().starts_with("sb_"));
    // The real flow: the two hubs are simulated stacks, collected from the start of last
    // month; the month is finalized and this month's usage so far is a draft.
    assert_eq!(summary["usageSource"], "collected", "{summary}");
    let collected = summary["usageAccepted"].as_u64().unwrap();
    assert!(collected > 10_000, "a month and more of usage: {summary}");
    assert_eq!(
        summary["usageAccepted"], summary["usageRecords"],
        "{summary}"
    );
    assert_eq!(summary["usageRejected"], 0, "{summary}");
    assert!(
        summary["finalizedInvoices"].as_u64().unwrap() >= 4,
        "{summary}"
    );
    let collectors = ok_json(&db, &["collector", "list", "--json"]);
    let collectors = collectors.as_array().unwrap();
    assert_eq!(collectors.len(), 2, "{collectors:?}");
    assert!(
        collectors.iter().all(|c| c["lastSuccess"].is_string()),
        "{collectors:?}"
    );
    // Generated usage instead, with a few malformed records among it.
    let generated = dir.path().join("generated.db");
    let summary = ok_json(
        &generated,
        &["demo", "--no-serve", "--json", "--usage-records", "3000"],
    );
    assert_eq!(summary["usageSource"], "generated", "{summary}");
    assert!(
        summary["usageAccepted"].as_u64().unwrap() > 2_500,
        "{summary}"
    );
    let registrations = ok_json(&db, &["registration", "list", "--json"]);
    assert_eq!(registrations.as_array().unwrap().len(), 3);
    // Running it again starts afresh rather than failing on existing data.
    let again = stackbill(&db, &["demo", "--no-serve", "--tenants", "5"]);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
}

#[test]
fn serve_answers_over_http_and_stops_on_sigterm() {
    let db = TestDb::new();
    let mut child = command(&db, &["serve", "--listen", "127.0.0.1:0"])
        .env("STACKBILL_ADMIN_TOKEN", "secret-admin")
        .env("RUST_LOG", "warn,stackbill::access=info")
        .env_remove("NO_COLOR")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let address = loop {
        let line = lines.next().expect("serve prints its address").unwrap();
        if let Some(rest) = line.strip_prefix("stackbill listening on ") {
            break rest.to_owned();
        }
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let health: Value = agent
        .get(&format!("{address}/healthz"))
        .call()
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap();
    assert_eq!(health["status"], "ok");
    let mut meters = agent
        .get(&format!("{address}/v1/meters?$top=2"))
        .header("Authorization", "Bearer secret-admin")
        .call()
        .unwrap();
    assert_eq!(meters.status().as_u16(), 200);
    let body: Value = meters.body_mut().read_json().unwrap();
    assert_eq!(body["value"].as_array().unwrap().len(), 2);
    let request_id = meters
        .headers()
        .get("x-ms-request-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    // One access-log line per request, with the id the answer carried, and no colour codes
    // when standard error is not a terminal.
    let logged = lines
        .by_ref()
        .map(Result::unwrap)
        .find(|line| line.contains(&request_id))
        .expect("the request is logged with its id");
    for part in [
        "method=GET",
        "route=/v1/meters",
        "status=200",
        "latency_ms=",
    ] {
        assert!(logged.contains(part), "{part} in {logged}");
    }
    assert!(!logged.contains('\u{1b}'), "colour codes in {logged:?}");

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "graceful shutdown exits 0, got {status:?}"
    );
}

#[test]
fn tokens_are_created_listed_and_revoked() {
    let db = TestDb::new();
    ok_json(
        &db,
        &["partner", "add", "p1", "--name", "Contoso", "--json"],
    );
    let created = ok_json(
        &db,
        &[
            "token",
            "create",
            "--role",
            "partner",
            "--partner",
            "p1",
            "--name",
            "ops",
            "--json",
        ],
    );
    assert!(created["token"].as_str().unwrap().starts_with("sb_"));
    assert_eq!(created["partnerId"], "p1");
    let id = created["id"].as_str().unwrap().to_owned();
    let listed = ok_json(&db, &["token", "list", "--json"]);
    assert_eq!(listed[0]["id"], id.as_str());
    assert!(listed[0].get("token").is_none(), "secrets are never listed");
    let missing_scope = stackbill(&db, &["token", "create", "--role", "stack"]);
    assert_eq!(missing_scope.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing_scope.stderr).contains("cloudId"));
    assert!(stackbill(&db, &["token", "revoke", &id]).status.success());
    let again = stackbill(&db, &["token", "revoke", &id]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("TokenNotFound"));
    assert_eq!(
        ok_json(&db, &["token", "list", "--json"]),
        serde_json::json!([])
    );
}

#[test]
fn serve_refuses_an_unreadable_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.db");
    let missing = Command::new(env!("CARGO_BIN_EXE_stackbill"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            "/nonexistent/cert.pem",
            "--tls-key",
            "/nonexistent/key.pem",
            "--db",
        ])
        .arg(&db)
        .env("STACKBILL_ADMIN_TOKEN", "t")
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot load the TLS certificate"));
    let half = Command::new(env!("CARGO_BIN_EXE_stackbill"))
        .args(["serve", "--tls-cert", "cert.pem", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert_eq!(half.status.code(), Some(2), "--tls-cert needs --tls-key");
}

/// A `stackbill serve` process, killed when dropped.
pub(crate) struct Node {
    pub(crate) child: Child,
    /// `http://host:port`.
    pub(crate) address: String,
}

impl Node {
    /// Starts `serve` on a free port with the admin token `secret-admin`, and `extra`.
    pub(crate) fn start(db: &(impl Location + ?Sized), extra: &[&str]) -> Self {
        let mut args = vec!["serve", "--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let mut child = command(db, &args)
            .env("STACKBILL_ADMIN_TOKEN", "secret-admin")
            .env("RUST_LOG", "error")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let address = loop {
            let line = lines.next().expect("serve prints its address").unwrap();
            if let Some(rest) = line.strip_prefix("stackbill listening on ") {
                break rest.to_owned();
            }
        };
        // Keep reading so that the node never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Self { child, address }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
