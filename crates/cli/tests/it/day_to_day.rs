//! The command line's day-to-day edges: a command that reads never creates an empty database
//! in place of a missing one, refusals name the next step and the flag to fix, and `serve`
//! on a busy port fails before it creates anything.

use std::process::Command;

use crate::{initialized, ok_json, stackbill};

const DEFAULT: &str = "d0000000-0000-0000-0000-000000000001";
const CUSTOMER: &str = "d0000000-0000-0000-0000-000000000002";
const TENANT: &str = "70000000-0000-0000-0000-000000000001";
const CLOUD: &str = "ca000000-0000-0000-0000-000000000001";

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn reading_commands_refuse_a_missing_database_file_and_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("typo.db");
    for args in [
        &["invoice", "list", "2025-06"][..],
        &["tenant", "list", "hub"],
        &["registration", "list"],
        &["collect"],
        &["usage", "import", "/dev/null", "--format", "ndjson"],
    ] {
        let refused = stackbill(&db, args);
        assert_eq!(refused.status.code(), Some(1), "{args:?}");
        let text = stderr(&refused);
        assert!(
            text.contains(&format!("no database at {}", db.display()))
                && text.contains("stackbill database init")
                && text.contains("--db"),
            "{args:?}: {text}"
        );
        assert!(!db.exists(), "{args:?} created {}", db.display());
    }
    let created = ok_json(&db, &["database", "init", "--json"]);
    assert_eq!(created["created"], true, "{created}");
    assert!(db.is_file());
    let again = ok_json(&db, &["database", "init", "--json"]);
    assert_eq!(again["created"], false, "{again}");
    let listed = ok_json(&db, &["registration", "list", "--json"]);
    assert_eq!(listed, serde_json::json!([]));

    // The first set-up step creates one, and says so.
    let fresh = dir.path().join("fresh.db");
    let added = stackbill(&fresh, &["partner", "add", "p1", "--name", "P"]);
    assert!(added.status.success(), "{added:?}");
    assert!(
        stderr(&added).contains("created a new database at"),
        "{added:?}"
    );
}

#[test]
fn refusals_name_the_next_step_and_the_flag() {
    let db = initialized();
    ok_json(&db, &["partner", "add", "p1", "--name", "P", "--json"]);
    let register = |model: &str| {
        stackbill(
            &db,
            &[
                "registration",
                "add",
                "hub",
                "--cloud-id",
                CLOUD,
                "--subscription",
                DEFAULT,
                "--billing-model",
                model,
            ],
        )
    };
    let no_default = register("PayAsYouUse");
    assert_eq!(no_default.status.code(), Some(1));
    let text = stderr(&no_default);
    assert!(
        text.starts_with("error: InvalidCustomerSubscriptionId: the default subscription")
            && text.contains(&format!("stackbill subscription add {DEFAULT}")),
        "{text}"
    );

    let no_tenant = stackbill(
        &db,
        &[
            "subscription",
            "add",
            CUSTOMER,
            "--offer-type",
            "CSP",
            "--partner",
            "p1",
        ],
    );
    let text = stderr(&no_tenant);
    assert!(
        text.contains("--customer-tenant") && !text.contains("customerTenantId"),
        "{text}"
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
    assert!(register("PayAsYouUse").status.success());
    let unknown = stackbill(
        &db,
        &[
            "tenant",
            "add",
            "hub",
            "--tenant",
            TENANT,
            "--subscription",
            CUSTOMER,
        ],
    );
    let text = stderr(&unknown);
    assert!(
        text.contains(&format!("stackbill subscription add {CUSTOMER}"))
            && text.contains(&format!("--customer-tenant {TENANT}")),
        "{text}"
    );
    ok_json(
        &db,
        &[
            "subscription",
            "add",
            CUSTOMER,
            "--offer-type",
            "CSP",
            "--partner",
            "p1",
            "--customer-tenant",
            TENANT,
            "--json",
        ],
    );
    ok_json(
        &db,
        &[
            "tenant",
            "add",
            "hub",
            "--tenant",
            TENANT,
            "--subscription",
            CUSTOMER,
            "--json",
        ],
    );
    let capacity = register("Capacity");
    assert_eq!(capacity.status.code(), Some(1));
    let text = stderr(&capacity);
    assert!(
        text.starts_with("error: CustomerSubscriptionsNotAllowed:")
            && text.contains("remove them first")
            && text.contains("stackbill tenant remove hub"),
        "{text}"
    );

    let bare_date = stackbill(&db, &["tenant", "list", "hub", "--as-of", "2025-05-01"]);
    assert_eq!(bare_date.status.code(), Some(2));
    assert!(
        stderr(&bare_date).contains("e.g. 2025-05-01T00:00:00Z"),
        "{}",
        stderr(&bare_date)
    );
}

#[test]
fn serve_on_a_busy_port_fails_before_it_creates_anything() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = busy.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("new.db");
    let output = Command::new(env!("CARGO_BIN_EXE_stackbill"))
        .args(["serve", "--listen", &address, "--db"])
        .arg(&db)
        .env_remove("STACKBILL_ADMIN_TOKEN")
        .env_remove("STACKBILL_DATABASE_URL")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    assert!(
        text.contains(&format!("cannot listen on {address}")) && text.contains("--listen"),
        "{text}"
    );
    assert!(!text.contains("admin token"), "{text}");
    assert!(!db.exists(), "a database was created");
    drop(busy);
}

#[test]
fn the_demo_says_how_to_point_the_command_line_at_its_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo.db");
    let output = stackbill(
        &db,
        &[
            "demo",
            "--no-serve",
            "--usage-records",
            "500",
            "--tenants",
            "5",
        ],
    );
    assert!(output.status.success(), "{output:?}");
    assert!(
        stderr(&output).contains(&format!("export STACKBILL_DB={}", db.display())),
        "{}",
        stderr(&output)
    );
}

/// The settings `deploy/` gives `serve` are ones it reads, and the systemd unit is valid
/// (checked with `systemd-analyze verify` where systemd is installed). No container engine
/// runs here, so the container file is checked for its settings only.
#[test]
fn the_deploy_files_give_serve_settings_it_knows() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let help = Command::new(env!("CARGO_BIN_EXE_stackbill"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout).replace(['\n', ' '], "");
    let unit = std::fs::read_to_string(root.join("deploy/stackbill.service")).unwrap();
    let container = std::fs::read_to_string(root.join("deploy/Containerfile")).unwrap();
    let mut settings = 0;
    for text in [&unit, &container] {
        for name in text
            .split(|c: char| !(c.is_ascii_uppercase() || c == '_'))
            .filter(|word| word.starts_with("STACKBILL_") && word.len() > "STACKBILL_".len())
        {
            // The admin token is read from the environment only, never from a flag.
            let known = name == "STACKBILL_ADMIN_TOKEN" || help.contains(&format!("env:{name}"));
            assert!(known, "serve reads no {name}");
            settings += 1;
        }
    }
    assert!(settings >= 4, "{settings} settings found");
    assert!(unit.contains("ExecStart=/usr/local/bin/stackbill serve"));
    assert!(container.contains("CMD [\"serve\"]"));
    let Ok(analyze) = which("systemd-analyze") else {
        eprintln!("systemd-analyze is not installed: the unit's syntax is not verified");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("stackbill.service");
    std::fs::write(
        &copy,
        unit.replace("/usr/local/bin/stackbill", env!("CARGO_BIN_EXE_stackbill")),
    )
    .unwrap();
    let verified = Command::new(analyze)
        .arg("verify")
        .arg(&copy)
        .output()
        .unwrap();
    assert!(
        verified.status.success() && verified.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
}

fn which(program: &str) -> Result<std::path::PathBuf, ()> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
        .ok_or(())
}

#[test]
fn completions_and_the_manual_page_are_printed() {
    let run = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_stackbill"))
            .args(args)
            .output()
            .unwrap();
        assert!(output.status.success(), "{args:?}: {output:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    assert!(run(&["completions", "bash"]).contains("_stackbill()"));
    assert!(run(&["completions", "zsh"]).contains("#compdef stackbill"));
    assert!(run(&["completions", "fish"]).contains("complete -c stackbill"));
    assert!(run(&["completions", "powershell"]).contains("Register-ArgumentCompleter"));
    let man = run(&["man"]);
    assert!(
        man.contains(".TH stackbill 1") && man.contains("collector"),
        "{man}"
    );
}
