//! A small versioned migration runner: migrations are embedded SQL files applied in order,
//! each in its own transaction, recorded with a checksum in `schema_migrations`. Each
//! database has its own list; the PostgreSQL one starts from the SQLite schema's shape.

use sha2::{Digest, Sha256};

use crate::db::{Conn, params};
use crate::error::{Result, StoreError};

/// One schema step.
pub(crate) struct Migration {
    pub(crate) version: i64,
    pub(crate) name: &'static str,
    pub(crate) sql: &'static str,
}

macro_rules! migration {
    ($version:expr, $name:literal, $file:literal) => {
        Migration {
            version: $version,
            name: $name,
            sql: include_str!($file),
        }
    };
}

/// The embedded SQLite migrations, in order. Never edit a released one: add a new step.
pub(crate) const SQLITE_MIGRATIONS: &[Migration] = &[
    migration!(1, "directory", "../migrations/sqlite/0001_directory.sql"),
    migration!(2, "usage", "../migrations/sqlite/0002_usage.sql"),
    migration!(3, "billing", "../migrations/sqlite/0003_billing.sql"),
    migration!(4, "late_usage", "../migrations/sqlite/0004_late_usage.sql"),
    migration!(
        5,
        "store_clock",
        "../migrations/sqlite/0005_store_clock.sql"
    ),
    migration!(
        6,
        "azure_registrations",
        "../migrations/sqlite/0006_azure_registrations.sql"
    ),
    migration!(
        7,
        "rate_card_owners",
        "../migrations/sqlite/0007_rate_card_owners.sql"
    ),
    migration!(
        8,
        "subscription_pricing",
        "../migrations/sqlite/0008_subscription_pricing.sql"
    ),
    migration!(9, "collectors", "../migrations/sqlite/0009_collectors.sql"),
    migration!(
        10,
        "sealed_collector_secrets",
        "../migrations/sqlite/0010_sealed_collector_secrets.sql"
    ),
    migration!(
        11,
        "final_line_prices",
        "../migrations/sqlite/0011_final_line_prices.sql"
    ),
    migration!(
        12,
        "rejection_counts",
        "../migrations/sqlite/0012_rejection_counts.sql"
    ),
    migration!(
        13,
        "billing_profiles",
        "../migrations/sqlite/0013_billing_profiles.sql"
    ),
    migration!(14, "webhooks", "../migrations/sqlite/0014_webhooks.sql"),
    migration!(
        15,
        "cost_rate_cards",
        "../migrations/sqlite/0015_cost_rate_cards.sql"
    ),
];

/// The embedded PostgreSQL migrations, in order. Never edit a released one: add a new step.
pub(crate) const POSTGRES_MIGRATIONS: &[Migration] = &[
    migration!(1, "schema", "../migrations/postgres/0001_schema.sql"),
    migration!(
        2,
        "rate_card_owners",
        "../migrations/postgres/0002_rate_card_owners.sql"
    ),
    migration!(
        3,
        "subscription_pricing",
        "../migrations/postgres/0003_subscription_pricing.sql"
    ),
    migration!(
        4,
        "collectors",
        "../migrations/postgres/0004_collectors.sql"
    ),
    migration!(
        5,
        "sealed_collector_secrets",
        "../migrations/postgres/0005_sealed_collector_secrets.sql"
    ),
    migration!(
        6,
        "final_line_prices",
        "../migrations/postgres/0006_final_line_prices.sql"
    ),
    migration!(
        7,
        "rejection_counts",
        "../migrations/postgres/0007_rejection_counts.sql"
    ),
    migration!(
        8,
        "billing_profiles",
        "../migrations/postgres/0008_billing_profiles.sql"
    ),
    migration!(9, "webhooks", "../migrations/postgres/0009_webhooks.sql"),
    migration!(
        10,
        "cost_rate_cards",
        "../migrations/postgres/0010_cost_rate_cards.sql"
    ),
];

fn checksum(sql: &str) -> String {
    let digest = Sha256::digest(sql.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Brings the schema up to date, each step in a transaction opened with `begin`. Refuses a
/// database written by a newer stackbill, and one whose applied migrations differ from
/// this binary's.
pub(crate) fn migrate(
    conn: &Conn<'_>,
    migrations: &[Migration],
    begin: &str,
    now_micros: i64,
) -> Result<()> {
    // SQLite's STRICT tables know INTEGER; PostgreSQL's 64-bit integer is BIGINT.
    let (integer, strict) = match conn {
        Conn::Sqlite(_) => ("INTEGER", " STRICT"),
        Conn::Postgres(_) => ("BIGINT", ""),
    };
    conn.batch(&format!(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version {integer} PRIMARY KEY,
            name TEXT NOT NULL,
            checksum TEXT NOT NULL,
            applied_at {integer} NOT NULL
        ){strict}"
    ))?;
    let newest: Option<i64> = conn.query_one(
        "SELECT max(version) FROM schema_migrations",
        params![],
        |row| row.get(0),
    )?;
    let known = migrations.last().map_or(0, |m| m.version);
    if let Some(newest) = newest
        && newest > known
    {
        return Err(StoreError::Schema(format!(
            "the database is at schema version {newest}, this stackbill knows up to {known}; upgrade stackbill"
        )));
    }
    for migration in migrations {
        conn.batch(begin)?;
        let applied = (|| {
            let applied: Option<String> = conn.query_opt(
                "SELECT checksum FROM schema_migrations WHERE version = ?1",
                params![migration.version],
                |row| row.get(0),
            )?;
            let sum = checksum(migration.sql);
            match applied {
                Some(applied) if applied == sum => return Ok(false),
                Some(_) => {
                    return Err(StoreError::Schema(format!(
                        "migration {} ({}) differs from the one applied to this database",
                        migration.version, migration.name
                    )));
                }
                None => {}
            }
            conn.batch(migration.sql)?;
            conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum, applied_at)
                 VALUES (?1, ?2, ?3, ?4)",
                params![migration.version, migration.name, sum, now_micros],
            )?;
            Ok(true)
        })();
        match applied {
            Ok(applied) => {
                conn.batch("COMMIT")?;
                if applied {
                    tracing::info!(
                        version = migration.version,
                        name = migration.name,
                        "applied migration"
                    );
                }
            }
            Err(err) => {
                let _ = conn.batch("ROLLBACK");
                return Err(err);
            }
        }
    }
    Ok(())
}
