//! Storage faults, on real file systems: a full disk and a read-only mount answer with their
//! own codes (503 with Retry-After) and show in `/healthz`; `serve` refuses a database it
//! cannot write; `database check` finds a damaged file. The fault tests need to mount a
//! small tmpfs (root in a container that allows it) and say so when they cannot.

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;
use stackbill_test_support::TestDb;

use crate::{Node, command, ok_json, stackbill};

/// A small tmpfs, unmounted when dropped.
struct Mount(PathBuf);

impl Mount {
    fn new(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().ok()?.keep();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            eprintln!("cannot mount a tmpfs here: storage fault tests need root and mount");
            return None;
        }
        Some(Self(dir))
    }

    /// A 4 MiB tmpfs holding a database with one partner.
    fn with_database() -> Option<(Self, PathBuf)> {
        let mount = Self::new("4m")?;
        let db = mount.0.join("stackbill.db");
        ok_json(
            &db,
            &["partner", "add", "p1", "--name", "Contoso", "--json"],
        );
        Some((mount, db))
    }

    fn remount(&self, options: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

#[test]
fn a_full_disk_answers_storage_full_until_space_is_freed() {
    let Some((mount, db)) = Mount::with_database() else {
        return;
    };
    let server = Node::start(&db, &[]);
    // Fill the disk.
    let filler = mount.0.join("filler");
    let mut file = std::fs::File::create(&filler).unwrap();
    let block = vec![0u8; 64 * 1024];
    while file.write_all(&block).is_ok() {}
    drop(file);
    let agent = agent();
    let mut answer = agent
        .put(&format!("{}/v1/partners/p2", server.address))
        .header("Authorization", "Bearer secret-admin")
        .send_json(serde_json::json!({"name": "Fabrikam"}))
        .unwrap();
    assert_eq!(answer.status().as_u16(), 503);
    assert!(answer.headers().get("retry-after").is_some());
    let body: Value = answer.body_mut().read_json().unwrap();
    assert_eq!(body["error"]["code"], "StorageFull", "{body}");
    let mut health = agent
        .get(&format!("{}/healthz", server.address))
        .call()
        .unwrap();
    assert_eq!(health.status().as_u16(), 503);
    let body: Value = health.body_mut().read_json().unwrap();
    assert_eq!(body["database"], "full", "{body}");
    // Space comes back: so does the service.
    std::fs::remove_file(&filler).unwrap();
    let health = agent
        .get(&format!("{}/healthz", server.address))
        .call()
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
}

#[test]
fn serve_refuses_a_database_it_cannot_write() {
    let Some((mount, db)) = Mount::with_database() else {
        return;
    };
    mount.remount("ro");
    let refused = command(&db, &["serve", "--listen", "127.0.0.1:0"])
        .env("STACKBILL_ADMIN_TOKEN", "secret-admin")
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("cannot be written"), "{stderr}");
    mount.remount("rw");
}

#[test]
fn database_check_finds_a_damaged_file() {
    let db = TestDb::new();
    if db.is_postgres() {
        // The PostgreSQL check runs on a sound database.
        let checked = ok_json(&db, &["database", "check", "--json"]);
        assert_eq!(checked["ok"], true, "{checked}");
        return;
    }
    ok_json(
        &db,
        &["partner", "add", "p1", "--name", "Contoso", "--json"],
    );
    let checked = ok_json(&db, &["database", "check", "--json"]);
    assert_eq!(checked["ok"], true, "{checked}");
    // Scribble over every page but the first, behind SQLite's back.
    let path = PathBuf::from(&db.location);
    let mut bytes = std::fs::read(&path).unwrap();
    for byte in &mut bytes[4096..] {
        *byte = 0xA5;
    }
    std::fs::write(&path, bytes).unwrap();
    let damaged = stackbill(&db, &["database", "check"]);
    assert_eq!(damaged.status.code(), Some(1), "{damaged:?}");
}
