//! `stackbill collector` and `stackbill collect` against `stackbill simulate-stack`, each a
//! process of its own: what is collected equals the simulator's truth, collecting again
//! stores nothing new, a collection killed at any moment re-runs to the same state, and
//! failures are named with a non-zero exit.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rust_decimal::Decimal;
use serde_json::Value;
use stackbill_test_support::TestDb;

use crate::{Location, ok_json, stackbill, stored};

const DEFAULT: &str = "d0000000-0000-0000-0000-000000000001";
const CLOUD: &str = "ca000000-0000-0000-0000-000000000001";
const FROM: &str = "2026-01-01T00:00:00Z";
/// Past every reported hour of the simulated usage.
const TO: &str = "2026-01-06T00:00:00Z";
const KILL_POINTS: u32 = 10;

/// A running simulated stack, stopped when dropped.
struct Sim {
    child: Child,
    url: String,
    provider: String,
    directory: String,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `stackbill simulate-stack` with `args`, writing its truth to `truth`; the collector flags
/// are read from the command it prints.
fn start_sim(truth: &std::path::Path, args: &[&str]) -> Sim {
    let mut child = Command::new(env!("CARGO_BIN_EXE_stackbill"))
        .args(["simulate-stack", "--listen", "127.0.0.1:0"])
        .args(args)
        .arg("--truth")
        .arg(truth)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut text = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        text.push_str(&line);
        text.push(' ');
        if line.contains("collector add") {
            break;
        }
    }
    Sim {
        url: word(&text, "--admin-endpoint "),
        provider: word(&text, "--provider-subscription "),
        directory: word(&text, "--directory "),
        child,
    }
}

fn word(text: &str, flag: &str) -> String {
    let at = text
        .find(flag)
        .unwrap_or_else(|| panic!("{flag} in {text}"))
        + flag.len();
    text[at..].split_whitespace().next().unwrap().to_owned()
}

/// A simulated stack of `tenants` over `hours` from [`FROM`].
fn simulate(truth: &std::path::Path, tenants: &str, hours: &str) -> Sim {
    start_sim(
        truth,
        &[
            "--seed",
            "5",
            "--tenants",
            tenants,
            "--from",
            FROM,
            "--hours",
            hours,
        ],
    )
}

fn registered(db: &(impl Location + ?Sized)) {
    ok_json(db, &["partner", "add", "p1", "--name", "Contoso", "--json"]);
    ok_json(
        db,
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
        db,
        &[
            "registration",
            "add",
            "hub",
            "--cloud-id",
            CLOUD,
            "--subscription",
            DEFAULT,
            "--json",
        ],
    );
}

/// `stackbill collector add hub` for `sim` with the secret in `secret`, from `start`, with
/// `extra` flags.
fn add_collector(
    db: &(impl Location + ?Sized),
    sim: &Sim,
    secret: &std::path::Path,
    start: &str,
    extra: &[&str],
) -> Value {
    let flags = [
        "collector",
        "add",
        "hub",
        "--admin-endpoint",
        &sim.url,
        "--provider-subscription",
        &sim.provider,
        "--client-id",
        "stackbill-collector",
        "--client-secret-file",
        secret.to_str().unwrap(),
        "--directory",
        &sim.directory,
        "--start",
        start,
        "--json",
    ];
    ok_json(db, &[&flags[..], extra].concat())
}

/// Stored quantities summed per (tenant, meter, usage hour), as the truth file gives them.
fn sums(records: &[stackbill_core::UsageRecord]) -> BTreeMap<(String, String, String), Decimal> {
    let mut sums = BTreeMap::new();
    for r in records {
        *sums
            .entry((
                r.tenant_id.to_string(),
                r.meter_id.to_string(),
                r.usage_start.to_string(),
            ))
            .or_insert(Decimal::ZERO) += r.quantity.value();
    }
    sums
}

fn truth(path: &std::path::Path) -> BTreeMap<(String, String, String), Decimal> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            let text = |k: &str| v[k].as_str().unwrap().to_owned();
            (
                (text("tenantId"), text("meterId"), text("usageStartTime")),
                text("quantity").parse::<Decimal>().unwrap(),
            )
        })
        .collect()
}

#[test]
fn collected_usage_equals_the_stacks_truth_and_is_collected_once() {
    let db = TestDb::new();
    let dir = tempfile::tempdir().unwrap();
    let truth_file = dir.path().join("truth.ndjson");
    let sim = simulate(&truth_file, "4", "36");
    registered(&db);
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "simulated-secret\n").unwrap();

    // Flags are checked and named before anything is stored.
    let bad = stackbill(
        &db,
        &[
            "collector",
            "add",
            "hub",
            "--admin-endpoint",
            "adminmanagement.local",
            "--provider-subscription",
            &sim.provider,
            "--client-id",
            "x",
            "--client-secret-file",
            secret.to_str().unwrap(),
        ],
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--admin-endpoint"));
    let not_pem = stackbill(
        &db,
        &[
            "collector",
            "add",
            "hub",
            "--admin-endpoint",
            &sim.url,
            "--provider-subscription",
            &sim.provider,
            "--client-id",
            "x",
            "--client-certificate",
            secret.to_str().unwrap(),
        ],
    );
    assert!(!not_pem.status.success());
    assert!(String::from_utf8_lossy(&not_pem.stderr).contains("--client-certificate"));
    let missing = stackbill(&db, &["collector", "show", "hub"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("has no collector"));

    let added = add_collector(&db, &sim, &secret, FROM, &[]);
    assert_eq!(added["registration"], "hub");
    assert!(
        !added.to_string().contains("simulated-secret"),
        "the secret is never shown: {added}"
    );
    let collected = ok_json(&db, &["collect", "--to", TO, "--json"]);
    let outcome = &collected["collectors"][0];
    assert_eq!(outcome["registration"], "hub", "{collected}");
    assert!(outcome["accepted"].as_u64().unwrap() > 100, "{collected}");
    assert_eq!(outcome["accepted"], outcome["records"], "{collected}");
    let location = db.args()[1].to_owned();
    let records = stored(&location);
    assert_eq!(sums(&records), truth(&truth_file));

    let again = ok_json(&db, &["collect", "--to", TO, "--json"]);
    assert_eq!(again["collectors"][0]["accepted"], 0, "{again}");
    let shown = ok_json(&db, &["collector", "show", "hub", "--json"]);
    assert_eq!(shown["subscribers"], 4, "{shown}");
    assert!(shown["lastSuccess"].is_string(), "{shown}");
    assert_eq!(shown["lastError"], Value::Null, "{shown}");

    // A stack that cannot be reached fails the run, named, and is recorded.
    drop(sim);
    let failed = stackbill(
        &db,
        &[
            "collect",
            "--from",
            FROM,
            "--to",
            TO,
            "--attempts",
            "1",
            "--json",
        ],
    );
    assert_eq!(failed.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(stderr.contains("hub: StackUnreachable"), "{stderr}");
    let shown = ok_json(&db, &["collector", "show", "hub", "--json"]);
    assert_eq!(shown["lastError"]["code"], "StackUnreachable", "{shown}");
    assert_eq!(stored(&location), records, "a failed run changes nothing");

    let removed = stackbill(&db, &["collector", "remove", "hub"]);
    assert!(removed.status.success());
    assert_eq!(stored(&location), records, "the collected usage stays");
}

#[test]
fn killed_collections_rerun_to_the_clean_state() {
    let dir = tempfile::tempdir().unwrap();
    let truth_file = dir.path().join("truth.ndjson");
    let sim = simulate(&truth_file, "12", "96");
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "simulated-secret").unwrap();
    let template = dir.path().join("template.db");
    registered(&template);
    add_collector(&template, &sim, &secret, FROM, &[]);

    let collect = |db: &std::path::Path| {
        let mut command = crate::command(db, &["collect", "--to", TO, "--json"]);
        command.stdout(Stdio::null()).stderr(Stdio::null());
        command
    };
    let clean = dir.path().join("clean.db");
    std::fs::copy(&template, &clean).unwrap();
    let started = Instant::now();
    assert!(collect(&clean).status().unwrap().success());
    let duration = started.elapsed();
    let expected = stored(clean.to_str().unwrap());
    assert_eq!(sums(&expected), truth(&truth_file));

    let mut interrupted = 0;
    for point in 0..KILL_POINTS {
        let db = dir.path().join(format!("killed-{point}.db"));
        std::fs::copy(&template, &db).unwrap();
        let delay = duration.mul_f64(f64::from(point) / f64::from(KILL_POINTS));
        let mut child = collect(&db).spawn().unwrap();
        std::thread::sleep(delay.max(Duration::from_millis(1)));
        let killed = Command::new("kill")
            .args(["-KILL", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        if !child.wait().unwrap().success() {
            interrupted += 1;
        }
        assert!(
            collect(&db).status().unwrap().success(),
            "the re-run after kill point {point} failed"
        );
        assert_eq!(
            stored(db.to_str().unwrap()),
            expected,
            "kill point {point}: something lost or doubled"
        );
    }
    assert!(interrupted > 0, "no kill landed during a collection");
}

/// A simulated stack of `tenants` with the usage of the day before yesterday (every reported
/// hour of it closed), its truth file, and the first usage hour.
fn recent_sim(dir: &std::path::Path, tenants: &str) -> (Sim, std::path::PathBuf, jiff::Timestamp) {
    let truth_file = dir.join("truth.ndjson");
    let now = jiff::Timestamp::now();
    let from = jiff::Timestamp::from_second(now.as_second() / 3600 * 3600 - 48 * 3600).unwrap();
    let from_text = from.to_string();
    let sim = start_sim(
        &truth_file,
        &["--tenants", tenants, "--hours", "24", "--from", &from_text],
    );
    (sim, truth_file, from)
}

/// A `stackbill serve` collecting every minute, with `extra` flags: the child, its address,
/// and its log lines as they come.
fn spawn_serve(db: &TestDb, extra: &[&str]) -> (Child, String, Arc<Mutex<Vec<String>>>) {
    let mut server = crate::command(
        db,
        &[
            &["serve", "--listen", "127.0.0.1:0", "--collect-every", "1"],
            extra,
        ]
        .concat(),
    )
    .env("STACKBILL_ADMIN_TOKEN", "secret-admin")
    .env("RUST_LOG", "info")
    .env("NO_COLOR", "1")
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut lines = BufReader::new(server.stderr.take().unwrap()).lines();
    let address = loop {
        let line = lines.next().expect("serve prints its address").unwrap();
        if let Some(rest) = line.strip_prefix("stackbill listening on ") {
            break rest.to_owned();
        }
    };
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&log);
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    (server, address, log)
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// Waits for the collector of `hub` to have succeeded once, as `address` sees it.
fn wait_for_success(address: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let shown: Value = agent()
            .get(&format!("{address}/v1/registrations/hub/collector"))
            .header("Authorization", "Bearer secret-admin")
            .call()
            .unwrap()
            .body_mut()
            .read_json()
            .unwrap();
        if shown["lastSuccess"].is_string() || Instant::now() > deadline {
            return shown;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `stackbill serve` collects every configured stack by itself, at start and then on its
/// schedule, and `/metrics` and `/healthz` tell how each collector fares.
#[test]
fn serve_collects_configured_stacks_by_itself() {
    let db = TestDb::new();
    let dir = tempfile::tempdir().unwrap();
    let (sim, truth_file, from) = recent_sim(dir.path(), "3");
    registered(&db);
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "simulated-secret").unwrap();
    add_collector(&db, &sim, &secret, &from.to_string(), &[]);
    let (mut server, address, _log) = spawn_serve(&db, &[]);
    let shown = wait_for_success(&address);
    assert!(shown["lastSuccess"].is_string(), "{shown}");
    assert_eq!(shown["subscribers"], 3, "{shown}");
    let location = db.args()[1].to_owned();
    assert_eq!(sums(&stored(&location)), truth(&truth_file));
    let metrics = agent()
        .get(&format!("{address}/metrics"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert!(
        metrics.contains("stackbill_collector_failing{registration=\"hub\"} 0"),
        "{metrics}"
    );
    let health: Value = agent()
        .get(&format!("{address}/healthz"))
        .call()
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap();
    assert_eq!(health["status"], "ok", "{health}");
    let _ = server.kill();
    let _ = server.wait();
}

/// A collecting `stackbill serve` killed (SIGKILL) at several points, each restart resuming
/// where the last left off: in the end the store holds the stack's truth, nothing lost or
/// doubled. The collector's secret is stored sealed (`--seal`), under a key file that the
/// restarted server opens again.
#[test]
fn a_killed_collecting_server_resumes_without_loss_or_double() {
    let db = TestDb::new();
    let dir = tempfile::tempdir().unwrap();
    let (sim, truth_file, from) = recent_sim(dir.path(), "60");
    registered(&db);
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "simulated-secret").unwrap();
    let key = dir.path().join("secret.key");
    let key_flag = ["--secret-key-file", key.to_str().unwrap()];
    add_collector(
        &db,
        &sim,
        &secret,
        &from.to_string(),
        &[&["--seal"][..], &key_flag].concat(),
    );
    std::fs::remove_file(&secret).unwrap();
    assert!(key.is_file(), "the key is created on first use");
    let location = db.args()[1].to_owned();
    if let Ok(bytes) = std::fs::read(&location) {
        assert!(!String::from_utf8_lossy(&bytes).contains("simulated-secret"));
    }
    let serve_flags = [&key_flag[..], &["--collect-lease", "2"]].concat();
    let truth = truth(&truth_file);
    let mut interrupted = 0;
    let mut progress = Vec::new();
    for delay_ms in [100, 300, 600, 1000] {
        // The killed node's lease expires before the next one starts.
        std::thread::sleep(Duration::from_millis(2100));
        let (mut server, _, _) = spawn_serve(&db, &serve_flags);
        std::thread::sleep(Duration::from_millis(delay_ms));
        let killed = Command::new("kill")
            .args(["-KILL", &server.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let _ = server.wait();
        let records = stored(&location);
        if sums(&records) != truth {
            interrupted += 1;
        }
        progress.push(records.len());
    }
    assert!(
        interrupted >= 2 && progress.windows(2).any(|w| w[0] < w[1]),
        "kills landed during one collection only: {progress:?}"
    );
    // The last node's lease expires, and a new node finishes the work.
    std::thread::sleep(Duration::from_millis(2100));
    let (mut server, address, _) = spawn_serve(&db, &serve_flags);
    let shown = wait_for_success(&address);
    let _ = server.kill();
    let _ = server.wait();
    assert!(shown["lastSuccess"].is_string(), "{shown}");
    assert_eq!(shown["credential"], "clientSecret", "{shown}");
    assert_eq!(sums(&stored(&location)), truth);
}

/// Two nodes on one database collect the same stack under its lease: every hour is
/// collected by one of them, once (no node re-reads what the other stored).
#[test]
fn two_nodes_collect_each_hour_once() {
    let db = TestDb::new();
    let dir = tempfile::tempdir().unwrap();
    let (sim, truth_file, from) = recent_sim(dir.path(), "3");
    registered(&db);
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "simulated-secret").unwrap();
    add_collector(&db, &sim, &secret, &from.to_string(), &[]);
    let (mut first, address, first_log) = spawn_serve(&db, &[]);
    let (mut second, _, second_log) = spawn_serve(&db, &[]);
    assert!(wait_for_success(&address)["lastSuccess"].is_string());
    // The round that succeeded is logged by its node (on a busy machine, a moment later).
    let logged = |log: &Arc<Mutex<Vec<String>>>| {
        log.lock().unwrap().iter().any(|l| l.contains(" collected"))
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(logged(&first_log) || logged(&second_log)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    // Let the later node's first round end too.
    std::thread::sleep(Duration::from_secs(2));
    let _ = first.kill();
    let _ = second.kill();
    let _ = first.wait();
    let _ = second.wait();
    let location = db.args()[1].to_owned();
    let records = stored(&location);
    assert_eq!(sums(&records), truth(&truth_file));
    let field = |line: &str, name: &str| -> u64 {
        line.split_whitespace()
            .find_map(|part| part.strip_prefix(&format!("{name}=")))
            .map_or(0, |n| n.parse().unwrap())
    };
    let (mut accepted, mut duplicates, mut rounds) = (0, 0, 0);
    for log in [first_log, second_log] {
        for line in log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(" collected"))
        {
            accepted += field(line, "accepted");
            duplicates += field(line, "duplicates");
            rounds += 1;
        }
    }
    assert!(rounds >= 1);
    assert_eq!(accepted, records.len() as u64, "every record stored once");
    assert_eq!(duplicates, 0, "no hour was collected by both nodes");
}

/// Next to a stack the server cannot reach: `collect --forward-to` posts with a stack token
/// and keeps its cursors in a local state file, moved only once the server stored the hour.
#[test]
fn a_forwarding_collector_posts_to_the_server_and_keeps_its_own_state() {
    let db = TestDb::new();
    let dir = tempfile::tempdir().unwrap();
    let (sim, truth_file, from) = recent_sim(dir.path(), "3");
    registered(&db);
    let token = ok_json(
        &db,
        &[
            "token",
            "create",
            "--role",
            "stack",
            "--cloud-id",
            CLOUD,
            "--json",
        ],
    )["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "simulated-secret").unwrap();
    let state = dir.path().join("state.json");
    let (mut server, address, _log) = spawn_serve(&db, &[]);
    let forward = |server: &str, extra: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_stackbill"));
        command
            .args([
                "collect",
                "--json",
                "--forward-to",
                server,
                "--token",
                &token,
            ])
            .args(["--cloud-id", CLOUD, "--admin-endpoint", &sim.url])
            .args([
                "--provider-subscription",
                &sim.provider,
                "--client-id",
                "stackbill-collector",
            ])
            .args(["--directory", &sim.directory, "--start", &from.to_string()])
            .arg("--client-secret-file")
            .arg(&secret)
            .arg("--state")
            .arg(&state)
            .args(extra)
            .env_remove("STACKBILL_DB")
            .env_remove("STACKBILL_DATABASE_URL");
        command.output().unwrap()
    };
    let first = forward(&address, &[]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let first: Value = serde_json::from_slice(&first.stdout).unwrap();
    let outcome = &first["collectors"][0];
    assert!(outcome["accepted"].as_u64().unwrap() > 0, "{first}");
    assert_eq!(outcome["accepted"], outcome["records"], "{first}");
    let location = db.args()[1].to_owned();
    assert_eq!(sums(&stored(&location)), truth(&truth_file));

    let again = forward(&address, &[]);
    assert!(again.status.success());
    let again: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(
        again["collectors"][0]["hours"], 0,
        "the state file's cursors: {again}"
    );

    // With the server away, nothing moves and the run fails, named.
    let _ = server.kill();
    let _ = server.wait();
    let before = std::fs::read(&state).unwrap();
    let away = forward(&address, &["--from", &from.to_string(), "--attempts", "1"]);
    assert_eq!(away.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&away.stderr);
    assert!(stderr.contains("ServerUnreachable"), "{stderr}");
    assert_eq!(
        std::fs::read(&state).unwrap(),
        before,
        "the state waits for the server"
    );
}
