//! Crash safety: an import killed with SIGKILL at any moment, then run again, leaves exactly
//! what one clean import leaves.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::import::demo_with_usage;
use crate::stored;

const KILL_POINTS: u32 = 20;

fn import(db: &std::path::Path, file: &std::path::Path) -> Command {
    let mut command = crate::command(db, &["usage", "import", "--json", "--batch-records", "250"]);
    command
        .arg(file)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

#[test]
fn killed_imports_rerun_to_the_clean_state() {
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("s.db");
    let file = demo_with_usage(&template, dir.path(), 6_000, true);

    let clean = dir.path().join("clean.db");
    std::fs::copy(&template, &clean).unwrap();
    let started = Instant::now();
    assert!(import(&clean, &file).status().unwrap().success());
    let clean_duration = started.elapsed();
    let expected = stored(clean.to_str().unwrap());
    assert!(expected.len() > 5_000, "{}", expected.len());

    let mut interrupted = 0;
    for point in 0..KILL_POINTS {
        let db = dir.path().join(format!("killed-{point}.db"));
        std::fs::copy(&template, &db).unwrap();
        // Kill points spread over the whole import, from its start to its end.
        let delay = clean_duration.mul_f64(f64::from(point) / f64::from(KILL_POINTS));
        let mut child = import(&db, &file).spawn().unwrap();
        std::thread::sleep(delay.max(Duration::from_millis(1)));
        let killed = Command::new("kill")
            .args(["-KILL", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let status = child.wait().unwrap();
        if !status.success() {
            interrupted += 1;
        }
        assert!(
            import(&db, &file).status().unwrap().success(),
            "the re-run after kill point {point} failed"
        );
        assert_eq!(
            stored(db.to_str().unwrap()),
            expected,
            "kill point {point} left a different state"
        );
    }
    assert!(
        interrupted >= KILL_POINTS / 2,
        "only {interrupted} imports were interrupted"
    );
}
