//! A small versioned migration runner: migrations are embedded SQL files applied in order,
//! each in its own transaction, recorded with a checksum in `schema_migrations`.

use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

use crate::error::{Result, StoreError};

/// One schema step.
pub(crate) struct Migration {
    pub(crate) version: i64,
    pub(crate) name: &'static str,
    pub(crate) sql: &'static str,
}

/// The embedded SQLite migrations, in order. Never edit a released one: add a new step.
pub(crate) const SQLITE_MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "directory",
        sql: include_str!("../migrations/sqlite/0001_directory.sql"),
    },
    Migration {
        version: 2,
        name: "usage",
        sql: include_str!("../migrations/sqlite/0002_usage.sql"),
    },
    Migration {
        version: 3,
        name: "billing",
        sql: include_str!("../migrations/sqlite/0003_billing.sql"),
    },
    Migration {
        version: 4,
        name: "late_usage",
        sql: include_str!("../migrations/sqlite/0004_late_usage.sql"),
    },
    Migration {
        version: 5,
        name: "store_clock",
        sql: include_str!("../migrations/sqlite/0005_store_clock.sql"),
    },
    Migration {
        version: 6,
        name: "azure_registrations",
        sql: include_str!("../migrations/sqlite/0006_azure_registrations.sql"),
    },
];

fn checksum(sql: &str) -> String {
    let digest = Sha256::digest(sql.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Brings the schema up to date. Refuses a database written by a newer stackbill, and one
/// whose applied migrations differ from this binary's.
pub(crate) fn migrate(
    conn: &mut Connection,
    migrations: &[Migration],
    now_micros: i64,
) -> Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            checksum TEXT NOT NULL,
            applied_at INTEGER NOT NULL
        ) STRICT",
    )?;
    let newest: Option<i64> = conn
        .query_row("SELECT max(version) FROM schema_migrations", [], |row| {
            row.get(0)
        })
        .optional()?
        .flatten();
    let known = migrations.last().map_or(0, |m| m.version);
    if let Some(newest) = newest
        && newest > known
    {
        return Err(StoreError::Schema(format!(
            "the database is at schema version {newest}, this stackbill knows up to {known}; upgrade stackbill"
        )));
    }
    for migration in migrations {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let applied: Option<String> = tx
            .query_row(
                "SELECT checksum FROM schema_migrations WHERE version = ?1",
                [migration.version],
                |row| row.get(0),
            )
            .optional()?;
        let sum = checksum(migration.sql);
        match applied {
            Some(applied) if applied == sum => continue,
            Some(_) => {
                return Err(StoreError::Schema(format!(
                    "migration {} ({}) differs from the one applied to this database",
                    migration.version, migration.name
                )));
            }
            None => {}
        }
        tx.execute_batch(migration.sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (?1, ?2, ?3, ?4)",
            params![migration.version, migration.name, sum, now_micros],
        )?;
        tx.commit()?;
        tracing::info!(
            version = migration.version,
            name = migration.name,
            "applied migration"
        );
    }
    Ok(())
}
