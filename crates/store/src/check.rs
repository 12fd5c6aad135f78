//! `stackbill database check`: an integrity check of the database. On the embedded file,
//! SQLite's own page-level check and the foreign keys; on PostgreSQL (whose storage checks
//! its own pages), the foreign keys stackbill relies on and the indexes' validity. The
//! schema itself was checked against this binary's migrations when the store opened.

use crate::db::{Conn, params};
use crate::error::Result;
use crate::store::Store;

/// Foreign keys checked on PostgreSQL: (table, column, referenced table, its column).
const REFERENCES: &[(&str, &str, &str, &str)] = &[
    ("subscriptions", "partner_id", "partners", "partner_id"),
    (
        "registrations",
        "default_subscription_id",
        "subscriptions",
        "subscription_id",
    ),
    (
        "mapping_events",
        "registration_id",
        "registrations",
        "registration_id",
    ),
    (
        "subscription_pricing",
        "subscription_id",
        "subscriptions",
        "subscription_id",
    ),
    (
        "rate_card_tiers",
        "version_id",
        "rate_card_versions",
        "version_id",
    ),
];

fn sqlite_problems(conn: &Conn<'_>) -> Result<Vec<String>> {
    let mut problems: Vec<String> = conn
        .query_map("PRAGMA integrity_check", params![], |row| {
            row.get::<String>(0)
        })?
        .into_iter()
        .filter(|line| line != "ok")
        .collect();
    conn.query_each("PRAGMA foreign_key_check", params![], |row| {
        let table: String = row.get(0)?;
        let rowid: Option<i64> = row.get(1)?;
        let parent: String = row.get(2)?;
        problems.push(format!(
            "{table} row {} refers to a missing {parent} row",
            rowid.map_or_else(|| "?".to_owned(), |r| r.to_string())
        ));
        Ok(())
    })?;
    Ok(problems)
}

fn postgres_problems(conn: &Conn<'_>) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    for (table, column, parent, key) in REFERENCES {
        let orphans: i64 = conn.query_one(
            &format!(
                "SELECT count(*) FROM {table} t
                 WHERE t.{column} IS NOT NULL
                   AND NOT EXISTS (SELECT 1 FROM {parent} p WHERE p.{key} = t.{column})"
            ),
            params![],
            |row| row.get(0),
        )?;
        if orphans > 0 {
            problems.push(format!(
                "{orphans} {table} rows refer to a missing {parent} row ({column})"
            ));
        }
    }
    conn.query_each(
        "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
         WHERE NOT i.indisvalid",
        params![],
        |row| {
            problems.push(format!("index {} is not valid", row.get::<String>(0)?));
            Ok(())
        },
    )?;
    Ok(problems)
}

impl Store {
    /// Checks the database's integrity; the problems found (none: it is sound).
    pub async fn check(&self) -> Result<Vec<String>> {
        let postgres = self.backend_name() == "postgres";
        self.read(move |conn| {
            if postgres {
                postgres_problems(conn)
            } else {
                sqlite_problems(conn)
            }
        })
        .await
    }
}
