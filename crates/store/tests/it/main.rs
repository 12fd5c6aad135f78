//! Store tests on real SQLite files: restart safety and the migration runner.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod billing_props;
mod collectors;
mod history_props;
mod ingest_props;

use std::sync::Arc;

use stackbill_core::{OfferType, RateCardName, Subscription};
use stackbill_store::{Store, StoreError, SystemClock};
use stackbill_test_support::fixtures::partner;
use stackbill_test_support::{TestDb, postgres_execute};

/// Runs a future to its end on a fresh single-threaded runtime (for proptest bodies).
pub(crate) fn run<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

#[tokio::test]
async fn data_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    {
        let store = Store::open(&path, Arc::new(SystemClock)).unwrap();
        store.put_partner(partner()).await.unwrap();
        store
            .put_subscription(Subscription {
                id: "d0000000-0000-0000-0000-000000000001".parse().unwrap(),
                offer_type: OfferType::Cspss,
                partner_id: Some("p1".parse().unwrap()),
                customer_tenant_id: None,
                display_name: "shared".to_owned(),
                rate_card: RateCardName::default_card(),
                markup_percent: "2.50".parse().unwrap(),
            })
            .await
            .unwrap();
    }
    let reopened = Store::open(&path, Arc::new(SystemClock)).unwrap();
    assert_eq!(reopened.partners().await.unwrap(), vec![partner()]);
    let subscription = reopened
        .subscription("d0000000-0000-0000-0000-000000000001".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(subscription.markup_percent.to_string(), "2.5");
    assert_eq!(subscription.display_name, "shared");
}

/// Runs `sql` on the test's database directly, behind stackbill's back.
fn tamper(db: &TestDb, sql: &str) {
    if db.is_postgres() {
        postgres_execute(&db.location, sql).unwrap();
    } else {
        rusqlite::Connection::open(&db.location)
            .unwrap()
            .execute_batch(sql)
            .unwrap();
    }
}

#[test]
fn a_database_from_a_newer_stackbill_is_refused() {
    let db = TestDb::new();
    drop(db.open(Arc::new(SystemClock)));
    tamper(
        &db,
        "INSERT INTO schema_migrations VALUES (999, 'future', 'x', 0)",
    );
    let err = Store::open_location(&db.location, Arc::new(SystemClock)).unwrap_err();
    assert!(matches!(err, StoreError::Schema(_)), "{err}");
    assert!(err.to_string().contains("999"), "{err}");
}

#[test]
fn an_altered_migration_is_refused() {
    let db = TestDb::new();
    drop(db.open(Arc::new(SystemClock)));
    tamper(
        &db,
        "UPDATE schema_migrations SET checksum = 'tampered' WHERE version = 1",
    );
    let err = Store::open_location(&db.location, Arc::new(SystemClock)).unwrap_err();
    assert!(err.to_string().contains("differs"), "{err}");
}

#[test]
fn nodes_starting_at_once_migrate_one_database_once() {
    let db = TestDb::new();
    let opened: Vec<_> = (0..6)
        .map(|_| {
            let location = db.location.clone();
            std::thread::spawn(move || Store::open_location(&location, Arc::new(SystemClock)))
        })
        .collect();
    let stores: Vec<Store> = opened
        .into_iter()
        .map(|t| t.join().unwrap().unwrap())
        .collect();
    // Every node works on the one schema: a write through one is read through another.
    run(async {
        stores[0].put_partner(partner()).await.unwrap();
        assert_eq!(stores[5].partners().await.unwrap(), vec![partner()]);
    });
    // And reopening finds nothing to do.
    drop(Store::open_location(&db.location, Arc::new(SystemClock)).unwrap());
}

#[tokio::test]
async fn the_database_is_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    drop(Store::open(&path, Arc::new(SystemClock)).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn tokens_are_found_by_the_hash_of_their_secret() {
    use stackbill_store::{NewToken, Role, TokenGrant};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("s.db"), Arc::new(SystemClock)).unwrap();
    assert!(!store.has_admin_token().await.unwrap());
    let grant = TokenGrant {
        role: Role::Admin,
        partner_id: None,
        cloud_id: None,
        tenant_id: None,
        name: "ops".to_owned(),
    };
    store
        .create_token(NewToken {
            id: "t1".to_owned(),
            grant: grant.clone(),
            secret_sha256: [7; 32],
        })
        .await
        .unwrap();
    assert!(store.has_admin_token().await.unwrap());
    let found = store.token_by_secret([7; 32]).await.unwrap().unwrap();
    assert_eq!((found.id.as_str(), &found.grant), ("t1", &grant));
    assert!(store.token_by_secret([8; 32]).await.unwrap().is_none());
}

#[tokio::test]
async fn closing_the_store_folds_the_write_ahead_log_into_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let store = Store::open(&path, Arc::new(SystemClock)).unwrap();
    store.put_partner(partner()).await.unwrap();
    assert_eq!(
        store.partners().await.unwrap().len(),
        1,
        "a reader connection is used"
    );
    drop(store);
    assert!(
        !dir.path().join("s.db-wal").exists(),
        "the last connection to close checkpoints"
    );
    // The file alone now holds everything.
    let copy = dir.path().join("copy.db");
    std::fs::copy(&path, &copy).unwrap();
    let reopened = Store::open(&copy, Arc::new(SystemClock)).unwrap();
    assert_eq!(reopened.partners().await.unwrap(), vec![partner()]);
}
