//! `stackbill database copy`: an embedded database moved into PostgreSQL answers every read
//! as the file did, and goes on as the file would; a target with data is refused untouched.
//! Run when `STACKBILL_TEST_POSTGRES` names a server.

use std::path::PathBuf;

use serde_json::Value;
use stackbill_test_support::{TestDb, postgres_admin_url};

use crate::{Location, ok_json, stackbill, stored};

/// A demo database file (a finalized month with a late record, this month's drafts, a
/// token), and a new PostgreSQL database to copy it into; `None` without PostgreSQL.
fn file_and_target() -> Option<(tempfile::TempDir, PathBuf, Value, TestDb)> {
    if postgres_admin_url().is_none() {
        eprintln!("skipped: STACKBILL_TEST_POSTGRES is not set");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("stackbill.db");
    let summary = ok_json(
        &file,
        &["demo", "--no-serve", "--json", "--usage-records", "5000"],
    );
    ok_json(
        &file,
        &[
            "token", "create", "--role", "admin", "--name", "ops", "--json",
        ],
    );
    let target = TestDb::new();
    assert!(target.is_postgres());
    Some((dir, file, summary, target))
}

fn copy(file: &PathBuf, url: &str) -> std::process::Output {
    stackbill(file, &["database", "copy", "--to", url, "--json"])
}

/// The answers of every read command that lists the directory, the tokens and the invoices.
fn reads(db: &(impl Location + ?Sized), summary: &Value) -> Vec<(String, Value)> {
    let months = [&summary["finalizedPeriod"], &summary["draftPeriod"]];
    let months: Vec<&str> = months.iter().map(|m| m.as_str().unwrap()).collect();
    let mut commands: Vec<Vec<String>> = [
        "partner list",
        "subscription list",
        "registration list",
        "meter list",
        "token list",
    ]
    .iter()
    .map(|c| c.split(' ').map(str::to_owned).collect())
    .collect();
    for month in &months {
        commands.push(vec!["invoice".into(), "list".into(), (*month).to_owned()]);
        let invoices = ok_json(db, &["invoice", "list", month, "--json"]);
        for invoice in invoices.as_array().unwrap() {
            let subscription = invoice["subscriptionId"].as_str().unwrap().to_owned();
            commands.push(vec![
                "invoice".into(),
                "show".into(),
                subscription,
                (*month).to_owned(),
            ]);
        }
    }
    let registrations = ok_json(db, &["registration", "list", "--json"]);
    for registration in registrations.as_array().unwrap() {
        let name = registration["name"].as_str().unwrap().to_owned();
        commands.push(vec!["tenant".into(), "history".into(), name]);
    }
    commands
        .into_iter()
        .map(|mut command| {
            command.push("--json".into());
            let args: Vec<&str> = command.iter().map(String::as_str).collect();
            (command.join(" "), ok_json(db, &args))
        })
        .collect()
}

#[test]
fn a_file_copied_into_postgres_answers_the_same_and_goes_on() {
    let Some((dir, file, summary, target)) = file_and_target() else {
        return;
    };
    let output = copy(&file, &target.location);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let records = stored(file.to_str().unwrap());
    assert_eq!(report["tables"]["usage_records"], records.len() as u64);
    let per_table: u64 = report["tables"]
        .as_object()
        .unwrap()
        .values()
        .map(|rows| rows.as_u64().unwrap())
        .sum();
    assert_eq!(report["rows"], per_table);
    assert!(report["tables"]["final_invoices"].as_u64().unwrap() > 0);

    let before = reads(&file, &summary);
    assert!(before.len() > 10, "{before:?}");
    assert_eq!(reads(&target, &summary), before);
    assert_eq!(stored(&target.location), records);

    // The same new usage, late and re-sent records among it, imported into each: the same
    // dispositions, the same invoices (new records, values and batches numbered after the
    // copied ones).
    let usage = dir.path().join("more.ndjson");
    let month = summary["draftPeriod"].as_str().unwrap();
    let generated = std::process::Command::new(env!("CARGO_BIN_EXE_stackbill"))
        .args([
            "generate",
            "--records",
            "800",
            "--month",
            month,
            "--seed",
            "9",
        ])
        .args([
            "--duplicates",
            "50",
            "--late",
            "50",
            "--out",
            usage.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(generated.status.success());
    let drafts = ["invoice", "list", month, "--json"];
    let drafts_before = ok_json(&target, &drafts);
    std::thread::sleep(std::time::Duration::from_millis(20));
    let before_import = jiff::Timestamp::now().to_string();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let import = ["usage", "import", usage.to_str().unwrap(), "--json"];
    let counts = |answer: Value| {
        ["records", "accepted", "duplicates", "conflicts", "rejected"].map(|k| answer[k].clone())
    };
    let from_file = counts(ok_json(&file, &import));
    assert_eq!(counts(ok_json(&target, &import)), from_file);
    assert!(from_file[1].as_u64().unwrap() > 0, "{from_file:?}");
    assert_eq!(reads(&target, &summary), reads(&file, &summary));
    // As the data stood before the import: the records it added are numbered after every
    // copied one, so none of them counts.
    let as_of = [
        "invoice",
        "list",
        month,
        "--as-of",
        &before_import,
        "--json",
    ];
    assert_eq!(ok_json(&target, &as_of), drafts_before);
    assert_ne!(ok_json(&target, &drafts), drafts_before);
    assert_eq!(stored(&target.location), stored(file.to_str().unwrap()));
}

#[test]
fn a_copy_into_a_database_with_data_is_refused_and_changes_nothing() {
    let Some((_dir, file, _summary, target)) = file_and_target() else {
        return;
    };
    assert!(copy(&file, &target.location).status.success());
    let stored_before = stored(&target.location);
    let again = copy(&file, &target.location);
    assert_eq!(again.status.code(), Some(1));
    let message = String::from_utf8_lossy(&again.stderr);
    assert!(
        message.contains("not empty") && message.contains("has rows"),
        "{message}"
    );
    assert_eq!(stored(&target.location), stored_before);

    let missing = file.with_file_name("missing.db");
    let output = stackbill(&missing, &["database", "copy", "--to", &target.location]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("no database file"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!missing.exists(), "a missing file is not created");

    let into_file = stackbill(&file, &["database", "copy", "--to", "other.db"]);
    assert_eq!(into_file.status.code(), Some(1));
}
