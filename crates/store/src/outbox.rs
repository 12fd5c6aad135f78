//! Webhooks' storage: each partner's endpoints, and the outbox. A write that causes an event
//! stores it (and one pending delivery per endpoint that wants it) in its own transaction, so
//! an event exists exactly when its cause committed; the dispatcher delivers after commit,
//! claiming due deliveries under a lease so that a node that dies mid-delivery leaves them to
//! be tried again, under the same event id.

use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Value, json};
use stackbill_core::PartnerId;
use stackbill_core::events::{EventType, Subscribed, next_attempt_after};

use crate::db::{Conn, instant, micros, params, parse};
use crate::error::{Result, StoreError};
use crate::store::Store;

/// A partner's webhook endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEndpoint {
    /// Its id (`we_…`).
    pub id: String,
    /// Whose events it receives.
    pub partner_id: PartnerId,
    /// Where they are posted.
    pub url: String,
    /// Which.
    pub types: Subscribed,
    /// What it is for.
    pub description: String,
    /// Deliveries are made (a 410 answer, or an operator, turns this off).
    pub enabled: bool,
    /// Why it was turned off.
    pub disabled_reason: Option<String>,
    /// Its signing secret, sealed.
    pub secret_sealed: String,
    /// When it was created.
    pub created_at: Timestamp,
}

/// One event's delivery to one endpoint, as the delivery log shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The event id (`webhook-id`), the same on every attempt.
    pub event_id: String,
    /// Its type.
    pub event_type: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    /// Attempts made.
    pub attempts: u32,
    /// When the next is due.
    pub next_attempt_at: Option<Timestamp>,
    /// The last attempt's instant, HTTP status and error.
    pub last_attempt_at: Option<Timestamp>,
    /// The last HTTP status answered.
    pub last_status: Option<u16>,
    /// The last failure, when there was no answer.
    pub last_error: Option<String>,
    /// When the event happened.
    pub created_at: Timestamp,
    /// The body sent.
    pub body: String,
}

/// A delivery the dispatcher claimed: what to send where.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    /// The event id.
    pub event_id: String,
    /// The endpoint.
    pub endpoint_id: String,
    /// Its URL.
    pub url: String,
    /// Its sealed secret.
    pub secret_sealed: String,
    /// The body.
    pub body: String,
    /// Attempts made before this one.
    pub attempts: u32,
}

/// What one attempt got.
#[derive(Debug, Clone, Default)]
pub struct AttemptOutcome {
    /// The HTTP status, when the endpoint answered.
    pub status: Option<u16>,
    /// Why there was no answer (timeout, refused connection).
    pub error: Option<String>,
    /// How long it took.
    pub duration: Duration,
    /// The receiver's `Retry-After`.
    pub retry_after: Option<Duration>,
}

const ENDPOINT_COLUMNS: &str = "endpoint_id, partner_id, url, event_types, description, enabled,
     disabled_reason, secret_sealed, created_at";

fn endpoint_from_row(row: &crate::db::Row<'_>) -> Result<WebhookEndpoint> {
    let types: String = row.get(3)?;
    Ok(WebhookEndpoint {
        id: row.get(0)?,
        partner_id: parse(&row.get::<String>(1)?)?,
        url: row.get(2)?,
        types: Subscribed::parse(types.split(',')).map_err(StoreError::corrupt)?,
        description: row.get(4)?,
        enabled: row.get::<i64>(5)? != 0,
        disabled_reason: row.get(6)?,
        secret_sealed: row.get(7)?,
        created_at: instant(row.get(8)?)?,
    })
}

/// A random id: `prefix` and 32 hex digits.
pub fn random_id(prefix: &str) -> Result<String> {
    let mut bytes = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| StoreError::Config("no randomness for an id".to_owned()))?;
    Ok(format!(
        "{prefix}{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ))
}

impl Store {
    /// Registers an endpoint (its id and sealed secret made by the caller).
    pub async fn create_webhook(&self, endpoint: WebhookEndpoint) -> Result<WebhookEndpoint> {
        self.write(move |tx, now| {
            if !tx.exists(
                "SELECT 1 FROM partners WHERE partner_id = ?1",
                params![endpoint.partner_id.as_str()],
            )? {
                return Err(StoreError::UnknownPartner(endpoint.partner_id.clone()));
            }
            tx.execute(
                "INSERT INTO webhook_endpoints (endpoint_id, partner_id, url, event_types,
                 description, secret_sealed, enabled, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, ?7, ?7)",
                params![
                    endpoint.id.as_str(),
                    endpoint.partner_id.as_str(),
                    endpoint.url.as_str(),
                    endpoint.types.to_text(),
                    endpoint.description.as_str(),
                    endpoint.secret_sealed.as_str(),
                    micros(now)
                ],
            )?;
            Ok(WebhookEndpoint {
                created_at: now,
                enabled: true,
                disabled_reason: None,
                ..endpoint
            })
        })
        .await
    }

    /// Changes an endpoint's URL, types, description or state; enabling clears the reason
    /// it was disabled. `None` when there is no such endpoint.
    pub async fn update_webhook(
        &self,
        id: String,
        url: String,
        types: Subscribed,
        description: String,
        enabled: bool,
    ) -> Result<Option<WebhookEndpoint>> {
        self.write(move |tx, now| {
            let changed = tx.execute(
                "UPDATE webhook_endpoints SET url = ?2, event_types = ?3, description = ?4,
                     enabled = ?5,
                     disabled_reason = CASE WHEN ?5 = CAST(1 AS BIGINT) THEN NULL
                                            ELSE COALESCE(disabled_reason, 'disabled by an operator') END,
                     updated_at = ?6
                 WHERE endpoint_id = ?1",
                params![
                    id.as_str(),
                    url,
                    types.to_text(),
                    description,
                    i64::from(enabled),
                    micros(now)
                ],
            )?;
            if changed == 0 {
                return Ok(None);
            }
            load_endpoint(tx, &id)
        })
        .await
    }

    /// Every endpoint, or one partner's, by id.
    pub async fn webhooks(&self, partner: Option<PartnerId>) -> Result<Vec<WebhookEndpoint>> {
        self.read(move |conn| {
            conn.query_map(
                &format!(
                    "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints
                     WHERE CAST(?1 AS TEXT) IS NULL OR partner_id = ?1 ORDER BY endpoint_id"
                ),
                params![partner.as_ref().map(PartnerId::as_str)],
                endpoint_from_row,
            )
        })
        .await
    }

    /// One endpoint.
    pub async fn webhook(&self, id: String) -> Result<Option<WebhookEndpoint>> {
        self.read(move |conn| load_endpoint(conn, &id)).await
    }

    /// Removes an endpoint with its delivery log; `false` when there was none.
    pub async fn delete_webhook(&self, id: String) -> Result<bool> {
        self.write(move |tx, _| {
            for table in ["webhook_attempts", "webhook_deliveries"] {
                tx.execute(
                    &format!("DELETE FROM {table} WHERE endpoint_id = ?1"),
                    params![id.as_str()],
                )?;
            }
            Ok(tx.execute(
                "DELETE FROM webhook_endpoints WHERE endpoint_id = ?1",
                params![id.as_str()],
            )? > 0)
        })
        .await
    }

    /// An endpoint's deliveries, latest event first.
    pub async fn webhook_deliveries(&self, id: String, limit: u32) -> Result<Vec<Delivery>> {
        self.read(move |conn| {
            conn.query_map(
                "SELECT d.event_id, e.event_type, d.status, d.attempts, d.next_attempt_at,
                        d.last_attempt_at, d.last_status, d.last_error, e.created_at, e.body
                 FROM webhook_deliveries d JOIN webhook_events e ON e.event_id = d.event_id
                 WHERE d.endpoint_id = ?1
                 ORDER BY e.created_at DESC, d.event_id LIMIT ?2",
                params![id.as_str(), i64::from(limit)],
                |row| {
                    Ok(Delivery {
                        event_id: row.get(0)?,
                        event_type: row.get(1)?,
                        status: row.get(2)?,
                        attempts: u32::try_from(row.get::<i64>(3)?).unwrap_or(0),
                        next_attempt_at: row.get::<Option<i64>>(4)?.map(instant).transpose()?,
                        last_attempt_at: row.get::<Option<i64>>(5)?.map(instant).transpose()?,
                        last_status: row
                            .get::<Option<i64>>(6)?
                            .and_then(|s| u16::try_from(s).ok()),
                        last_error: row.get(7)?,
                        created_at: instant(row.get(8)?)?,
                        body: row.get(9)?,
                    })
                },
            )
        })
        .await
    }

    /// Sends an event to an endpoint again, now, under the same event id (a delivered or
    /// failed one too); `false` when the endpoint never had that event.
    pub async fn replay_webhook(&self, id: String, event_id: String) -> Result<bool> {
        self.write(move |tx, now| {
            Ok(tx.execute(
                "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = ?3
                 WHERE endpoint_id = ?1 AND event_id = ?2",
                params![id.as_str(), event_id.as_str(), micros(now)],
            )? > 0)
        })
        .await
    }

    /// Whether some delivery of an enabled endpoint is due (a read, so that an idle
    /// dispatcher takes no write lock).
    pub async fn deliveries_due(&self) -> Result<bool> {
        let now = micros(self.now());
        self.read(move |conn| {
            conn.exists(
                "SELECT 1 FROM webhook_deliveries d
                 JOIN webhook_endpoints w ON w.endpoint_id = d.endpoint_id
                 WHERE d.status = 'pending' AND d.next_attempt_at <= ?1 AND w.enabled = 1",
                params![now],
            )
        })
        .await
    }

    /// Claims up to `limit` due deliveries of enabled endpoints for `lease`: nobody else
    /// takes them until then, and if this node dies they fall due again.
    pub async fn claim_deliveries(&self, limit: u32, lease: Duration) -> Result<Vec<DueDelivery>> {
        self.write(move |tx, now| {
            let due = tx.query_map(
                "SELECT d.event_id, d.endpoint_id, w.url, w.secret_sealed, e.body, d.attempts
                 FROM webhook_deliveries d
                 JOIN webhook_endpoints w ON w.endpoint_id = d.endpoint_id
                 JOIN webhook_events e ON e.event_id = d.event_id
                 WHERE d.status = 'pending' AND d.next_attempt_at <= ?1 AND w.enabled = 1
                 ORDER BY d.next_attempt_at, d.event_id LIMIT ?2",
                params![micros(now), i64::from(limit)],
                |row| {
                    Ok(DueDelivery {
                        event_id: row.get(0)?,
                        endpoint_id: row.get(1)?,
                        url: row.get(2)?,
                        secret_sealed: row.get(3)?,
                        body: row.get(4)?,
                        attempts: u32::try_from(row.get::<i64>(5)?).unwrap_or(0),
                    })
                },
            )?;
            let until = micros(now) + i64::try_from(lease.as_micros()).unwrap_or(i64::MAX / 2);
            for delivery in &due {
                tx.execute(
                    "UPDATE webhook_deliveries SET next_attempt_at = ?3
                     WHERE event_id = ?1 AND endpoint_id = ?2",
                    params![
                        delivery.event_id.as_str(),
                        delivery.endpoint_id.as_str(),
                        until
                    ],
                )?;
            }
            Ok(due)
        })
        .await
    }

    /// Records an attempt: a 2xx delivers; 410 Gone disables the endpoint; anything else is
    /// tried again on the schedule, until it has failed for good.
    pub async fn record_attempt(
        &self,
        delivery: DueDelivery,
        outcome: AttemptOutcome,
    ) -> Result<()> {
        self.write(move |tx, now| {
            let attempts = delivery.attempts + 1;
            let ok = outcome.status.is_some_and(|s| (200..300).contains(&s));
            let gone = outcome.status == Some(410);
            let next = if ok || gone {
                None
            } else {
                next_attempt_after(attempts, outcome.retry_after)
            };
            let status = match (ok, next) {
                (true, _) => "delivered",
                (false, Some(_)) => "pending",
                (false, None) => "failed",
            };
            let next_at = next
                .map(|wait| micros(now) + i64::try_from(wait.as_micros()).unwrap_or(i64::MAX / 2));
            tx.execute(
                "INSERT INTO webhook_attempts (event_id, endpoint_id, attempt, attempted_at,
                 status, error, duration_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (event_id, endpoint_id, attempt) DO NOTHING",
                params![
                    delivery.event_id.as_str(),
                    delivery.endpoint_id.as_str(),
                    i64::from(attempts),
                    micros(now),
                    outcome.status.map(i64::from),
                    outcome.error.as_deref(),
                    i64::try_from(outcome.duration.as_millis()).unwrap_or(i64::MAX)
                ],
            )?;
            tx.execute(
                "UPDATE webhook_deliveries SET status = ?3, attempts = ?4, next_attempt_at = ?5,
                     last_attempt_at = ?6, last_status = ?7, last_error = ?8
                 WHERE event_id = ?1 AND endpoint_id = ?2",
                params![
                    delivery.event_id.as_str(),
                    delivery.endpoint_id.as_str(),
                    status,
                    i64::from(attempts),
                    next_at,
                    micros(now),
                    outcome.status.map(i64::from),
                    outcome.error.as_deref()
                ],
            )?;
            if gone {
                tx.execute(
                    "UPDATE webhook_endpoints SET enabled = 0, disabled_reason = ?2,
                         updated_at = ?3
                     WHERE endpoint_id = ?1",
                    params![
                        delivery.endpoint_id.as_str(),
                        format!("the endpoint answered 410 Gone at {now}"),
                        micros(now)
                    ],
                )?;
            }
            Ok(())
        })
        .await
    }

    /// Emits each partner's `usage.rejected` digest of every ended hour of the last day that
    /// had refusals and was not announced yet; answers how many were emitted.
    pub async fn emit_rejection_digests(&self) -> Result<usize> {
        self.write(|tx, now| {
            if !wants(tx, EventType::UsageRejected)? {
                return Ok(0);
            }
            let current = stackbill_core::period::hour_number(now);
            let rows = tx.query_map(
                "SELECT hour, partner_id, code, records FROM partner_rejections
                 WHERE hour < ?1 AND hour >= ?2 AND partner_id <> ''
                 ORDER BY hour, partner_id, code",
                params![current, current - 24],
                |row| {
                    Ok((
                        row.get::<i64>(0)?,
                        row.get::<String>(1)?,
                        row.get::<String>(2)?,
                        row.get::<i64>(3)?,
                    ))
                },
            )?;
            let mut digests: std::collections::BTreeMap<
                (i64, String),
                serde_json::Map<String, Value>,
            > = std::collections::BTreeMap::new();
            for (hour, partner, code, records) in rows {
                digests
                    .entry((hour, partner))
                    .or_default()
                    .insert(code, json!(records));
            }
            let mut emitted = 0;
            for ((hour, partner), codes) in digests {
                if !mark_once(tx, &format!("rejected:{partner}:{hour}"), now)? {
                    continue;
                }
                let start =
                    stackbill_core::period::hour_start(hour).map_err(StoreError::corrupt)?;
                let total: i64 = codes.values().filter_map(Value::as_i64).sum();
                let data = json!({
                    "hourStart": start.to_string(),
                    "hourEnd": (start + jiff::SignedDuration::from_hours(1)).to_string(),
                    "records": total,
                    "byCode": codes,
                });
                emit(tx, &parse(&partner)?, EventType::UsageRejected, data, now)?;
                emitted += 1;
            }
            Ok(emitted)
        })
        .await
    }
}

fn load_endpoint(conn: &Conn<'_>, id: &str) -> Result<Option<WebhookEndpoint>> {
    conn.query_opt(
        &format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE endpoint_id = ?1"),
        params![id],
        endpoint_from_row,
    )
}

/// The event types the enabled endpoints receive, one entry per distinct set (so that work to
/// find events is spent only when some endpoint wants them).
pub(crate) fn subscribed(conn: &Conn<'_>) -> Result<Vec<Subscribed>> {
    let types: Vec<String> = conn.query_map(
        "SELECT DISTINCT event_types FROM webhook_endpoints WHERE enabled = 1",
        params![],
        |row| row.get(0),
    )?;
    Ok(types
        .iter()
        .filter_map(|t| Subscribed::parse(t.split(',')).ok())
        .collect())
}

/// Whether some enabled endpoint receives `kind`.
pub(crate) fn wants(conn: &Conn<'_>, kind: EventType) -> Result<bool> {
    Ok(subscribed(conn)?.iter().any(|s| s.includes(kind)))
}

/// Records `mark` once: `true` the first time.
pub(crate) fn mark_once(conn: &Conn<'_>, mark: &str, now: Timestamp) -> Result<bool> {
    Ok(conn.execute(
        "INSERT INTO webhook_marks (mark, created_at) VALUES (?1, ?2)
         ON CONFLICT (mark) DO NOTHING",
        params![mark, micros(now)],
    )? > 0)
}

/// Stores an event of `partner` in the caller's transaction, with a pending delivery to each
/// of its enabled endpoints that receives `kind` (none: nothing is stored).
pub(crate) fn emit(
    conn: &Conn<'_>,
    partner: &PartnerId,
    kind: EventType,
    data: Value,
    now: Timestamp,
) -> Result<()> {
    let endpoints: Vec<(String, String)> = conn.query_map(
        "SELECT endpoint_id, event_types FROM webhook_endpoints
         WHERE partner_id = ?1 AND enabled = 1 ORDER BY endpoint_id",
        params![partner.as_str()],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    let receivers: Vec<String> = endpoints
        .into_iter()
        .filter(|(_, types)| Subscribed::parse(types.split(',')).is_ok_and(|s| s.includes(kind)))
        .map(|(id, _)| id)
        .collect();
    if receivers.is_empty() {
        return Ok(());
    }
    let id = random_id("msg_")?;
    let mut body = serde_json::Map::new();
    body.insert("type".to_owned(), Value::from(kind.as_str()));
    body.insert("timestamp".to_owned(), Value::from(now.to_string()));
    body.insert("data".to_owned(), data);
    let body = Value::Object(body);
    conn.execute(
        "INSERT INTO webhook_events (event_id, partner_id, event_type, body, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            id.as_str(),
            partner.as_str(),
            kind.as_str(),
            body.to_string(),
            micros(now)
        ],
    )?;
    for endpoint in receivers {
        conn.execute(
            "INSERT INTO webhook_deliveries (event_id, endpoint_id, status, attempts,
             next_attempt_at) VALUES (?1, ?2, 'pending', 0, ?3)",
            params![id.as_str(), endpoint, micros(now)],
        )?;
    }
    Ok(())
}
