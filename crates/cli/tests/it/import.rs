//! `stackbill usage import` and `stackbill generate` as users run them.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

use stackbill_test_support::TestDb;

use crate::{Location, command, ok_json, stackbill};

/// Seeds `db` with the demo (its stacks and tenants match the generator's) and writes a
/// usage file into `dir`.
pub(crate) fn demo_with_usage(
    db: &(impl Location + ?Sized),
    dir: &std::path::Path,
    records: u64,
    noise: bool,
) -> std::path::PathBuf {
    ok_json(
        db,
        &["demo", "--no-serve", "--json", "--usage-records", "0"],
    );
    let file = dir.join("usage.ndjson");
    let records = records.to_string();
    let mut args = vec![
        "generate",
        "--records",
        &records,
        "--month",
        "2025-05",
        "--seed",
        "3",
        "--out",
    ];
    let file_arg = file.to_str().unwrap().to_owned();
    args.push(&file_arg);
    if noise {
        args.extend(["--duplicates", "20", "--late", "20", "--bad", "10"]);
    }
    let generated = Command::new(env!("CARGO_BIN_EXE_stackbill"))
        .args(&args)
        .output()
        .unwrap();
    assert!(
        generated.status.success(),
        "{}",
        String::from_utf8_lossy(&generated.stderr)
    );
    file
}

#[test]
fn import_reports_every_record_once_and_a_rerun_changes_nothing() {
    let db = TestDb::new();
    let file = demo_with_usage(&db, db.dir.path(), 3_000, true);
    let errors = db.dir.path().join("errors.ndjson");
    let file_arg = file.to_str().unwrap();
    let errors_arg = errors.to_str().unwrap();
    let first = ok_json(
        &db,
        &[
            "usage",
            "import",
            file_arg,
            "--json",
            "--errors",
            errors_arg,
            "--batch-records",
            "700",
        ],
    );
    let count = |v: &Value, k: &str| v[k].as_u64().unwrap();
    assert_eq!(count(&first, "records"), 3_000);
    assert_eq!(
        count(&first, "accepted")
            + count(&first, "duplicates")
            + count(&first, "conflicts")
            + count(&first, "rejected"),
        3_000
    );
    assert!(
        count(&first, "duplicates") > 0 && count(&first, "rejected") > 0,
        "{first}"
    );
    assert_eq!(count(&first, "conflicts"), 0);
    let lines: Vec<Value> = std::fs::read_to_string(&errors)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len() as u64, count(&first, "rejected"));
    for line in &lines {
        assert_eq!(line["file"], file_arg);
        assert!(line["index"].as_u64().unwrap() < 3_000);
        assert!(
            ["InvalidQuantity", "InvalidTimeWindow"].contains(&line["code"].as_str().unwrap()),
            "{line}"
        );
        assert!(
            line["id"].is_string() && line["target"].is_string() && line["message"].is_string()
        );
    }

    let again = ok_json(&db, &["usage", "import", file_arg, "--json"]);
    assert_eq!(count(&again, "accepted"), 0);
    assert_eq!(
        count(&again, "duplicates"),
        count(&first, "accepted") + count(&first, "duplicates")
    );
    assert_eq!(count(&again, "rejected"), count(&first, "rejected"));
}

#[test]
fn stdin_csv_and_json_files_are_read() {
    let db = TestDb::new();
    let dir = &db.dir;
    let file = demo_with_usage(&db, dir.path(), 50, false);
    let text = std::fs::read_to_string(&file).unwrap();
    let mut child = command(&db, &["usage", "import", "-", "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["accepted"], 50);

    // The same records as a JSON array and as CSV are duplicates.
    let records: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let json_file = dir.path().join("usage.json");
    std::fs::write(
        &json_file,
        serde_json::to_string(&serde_json::json!({ "value": records })).unwrap(),
    )
    .unwrap();
    let summary = ok_json(
        &db,
        &["usage", "import", json_file.to_str().unwrap(), "--json"],
    );
    assert_eq!(summary["duplicates"], 50);
    let mut csv = String::from(
        "id,cloudId,tenantId,subscriptionId,meterId,quantity,usageStartTime,usageEndTime,instanceData\n",
    );
    for r in &records {
        let instance = r["instanceData"].to_string().replace('"', "\"\"");
        csv.push_str(&format!(
            "{},{},{},{},{},{},{},{},\"{instance}\"\n",
            r["id"].as_str().unwrap(),
            r["cloudId"].as_str().unwrap(),
            r["tenantId"].as_str().unwrap(),
            r["subscriptionId"].as_str().unwrap(),
            r["meterId"].as_str().unwrap(),
            r["quantity"].as_str().unwrap(),
            r["usageStartTime"].as_str().unwrap(),
            r["usageEndTime"].as_str().unwrap(),
        ));
    }
    let csv_file = dir.path().join("usage.data");
    std::fs::write(&csv_file, csv).unwrap();
    let summary = ok_json(
        &db,
        &[
            "usage",
            "import",
            csv_file.to_str().unwrap(),
            "--format",
            "csv",
            "--json",
        ],
    );
    assert_eq!(summary["duplicates"], 50, "{summary}");
}

#[test]
fn import_failures_exit_non_zero() {
    let db = crate::initialized();
    let unknown = db.dir.path().join("usage.txt");
    std::fs::write(&unknown, "").unwrap();
    let output = stackbill(&db, &["usage", "import", unknown.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--format"));
    let missing = stackbill(&db, &["usage", "import", "/nonexistent/usage.ndjson"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot open"));
    let usage = stackbill(&db, &["usage", "import"]);
    assert_eq!(usage.status.code(), Some(2));
}
