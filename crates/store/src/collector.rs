//! What the collector keeps (SPEC §10): each registration's collector settings, the user
//! subscriptions its stack ever listed, per subscriber the last reported hour fully
//! collected, and the rows held until their subscription is known. An hour's records, its
//! cursor and its held rows are written in one transaction, so a crash anywhere re-collects
//! at most that hour, as duplicates.

use std::collections::BTreeMap;

use jiff::Timestamp;
use stackbill_core::events::EventType;
use stackbill_core::rules::RegistryError;
use stackbill_core::{Disposition, RegistrationName, SubscriptionId, TenantId, UsageRecord};

use crate::db::{Conn, instant, micros, params, parse};
use crate::directory::load_registration;
use crate::error::{Result, StoreError};
use crate::store::Store;
use crate::usage::write_records;

/// How a collector proves who it is to the stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientCredential {
    /// A file on the server holding the client secret, read at each collection.
    SecretFile(String),
    /// A PEM file on the server holding the client certificate and its key.
    CertificateFile(String),
    /// The client secret itself, sealed with the server's key ([`crate::SecretKeyring`]).
    SealedSecret(String),
    /// The certificate and key PEM itself, sealed with the server's key.
    SealedCertificate(String),
}

impl ClientCredential {
    /// How it is given, as the API names it: `clientSecretFile`, `clientCertificateFile`,
    /// `clientSecret` or `clientCertificate`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::SecretFile(_) => "clientSecretFile",
            Self::CertificateFile(_) => "clientCertificateFile",
            Self::SealedSecret(_) => "clientSecret",
            Self::SealedCertificate(_) => "clientCertificate",
        }
    }

    /// What a sealed credential of `registration` is bound to.
    pub fn context(registration: &RegistrationName, kind: &str) -> String {
        format!("collector:{}:{kind}", key(registration))
    }

    fn columns(&self) -> [Option<&str>; 4] {
        let mut columns = [None; 4];
        let (slot, value) = match self {
            Self::SecretFile(v) => (0, v),
            Self::CertificateFile(v) => (1, v),
            Self::SealedSecret(v) => (2, v),
            Self::SealedCertificate(v) => (3, v),
        };
        columns[slot] = Some(value.as_str());
        columns
    }

    fn from_columns(columns: [Option<String>; 4]) -> Result<Self> {
        match columns {
            [Some(v), None, None, None] => Ok(Self::SecretFile(v)),
            [None, Some(v), None, None] => Ok(Self::CertificateFile(v)),
            [None, None, Some(v), None] => Ok(Self::SealedSecret(v)),
            [None, None, None, Some(v)] => Ok(Self::SealedCertificate(v)),
            _ => Err(StoreError::corrupt(
                "a collector has not exactly one client credential",
            )),
        }
    }
}

/// The CAs a collector trusts for the stack's endpoints, besides the system's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaSource {
    /// A PEM file on the server, read at each collection.
    File(String),
    /// The PEM itself (certificates are not secret).
    Pem(String),
}

/// How a registration's stack is reached. A secret is stored sealed, or as the path of the
/// file on the server that holds it; never in clear text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectorConfig {
    /// The registration whose stack this is.
    pub registration: RegistrationName,
    /// `https://adminmanagement.{region}.{fqdn}` (`http://` for simulators).
    pub admin_endpoint: String,
    /// The stack's Default Provider Subscription.
    pub provider_subscription: SubscriptionId,
    /// The service principal's application (client) id.
    pub client_id: String,
    /// The Entra ID directory (tenant) id, or `adfs`.
    pub directory: String,
    /// The client secret or certificate.
    pub credential: ClientCredential,
    /// CAs to trust for the stack's endpoints.
    pub ca: Option<CaSource>,
    /// The first reported hour to collect.
    pub start: Timestamp,
}

/// A collector setting that is not valid: why, without the field's name, which each
/// adapter spells its own way (`--admin-endpoint`, `adminEndpoint`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidSetting(pub String);

impl CollectorConfig {
    /// An admin endpoint as the collector uses it: http(s), no query, no trailing `/`.
    pub fn admin_endpoint_of(text: &str) -> std::result::Result<String, InvalidSetting> {
        let trimmed = text.trim().trim_end_matches('/');
        let scheme_ok = trimmed.starts_with("https://") || trimmed.starts_with("http://");
        let host = trimmed.split_once("://").map_or("", |(_, rest)| rest);
        if !scheme_ok
            || host.is_empty()
            || trimmed.contains(['?', '#'])
            || trimmed.contains(char::is_whitespace)
        {
            return Err(InvalidSetting(format!(
                "'{text}' is not an http(s) URL such as \
                 https://adminmanagement.local.azurestack.external"
            )));
        }
        Ok(trimmed.to_owned())
    }

    /// A directory as stored: a tenant GUID, `adfs` (any case), or empty (found from the
    /// stack).
    pub fn directory_of(text: Option<&str>) -> std::result::Result<String, InvalidSetting> {
        let text = text.unwrap_or_default().trim();
        if text.eq_ignore_ascii_case("adfs") {
            return Ok("adfs".to_owned());
        }
        if !text.is_empty() && text.parse::<TenantId>().is_err() {
            return Err(InvalidSetting(format!(
                "'{text}' is neither a directory (tenant) GUID nor adfs"
            )));
        }
        Ok(text.to_owned())
    }
}

/// A collector's settings and how it fares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectorState {
    /// The settings.
    pub config: CollectorConfig,
    /// When it was added.
    pub created_at: Timestamp,
    /// When a collection last succeeded.
    pub last_success: Option<Timestamp>,
    /// The last failure since then: when, its code and message.
    pub last_error: Option<(Timestamp, String, String)>,
    /// The earliest reported hour (hours since the epoch) any known subscriber still has to
    /// collect from, if any subscriber is known.
    pub collected_through: Option<i64>,
    /// Known user subscriptions.
    pub subscribers: usize,
    /// Rows held for unknown user subscriptions.
    pub held: usize,
}

impl CollectorState {
    /// Closed reported hours at `now` not collected yet for the subscriber furthest behind;
    /// `None` while no subscriber is known.
    pub fn lag_hours(&self, now: Timestamp) -> Option<i64> {
        self.collected_through
            .map(|hour| (stackbill_core::period::hour_number(now) - hour - 1).max(0))
    }
}

/// A user subscription a stack listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscriber {
    /// The user subscription.
    pub subscription_id: SubscriptionId,
    /// Its directory.
    pub tenant_id: TenantId,
    /// Its state when last listed.
    pub state: String,
    /// Its display name.
    pub display_name: String,
}

/// A held row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldRow {
    /// Its key, to release it.
    pub held_id: i64,
    /// The reported hour it came in (hours since the epoch).
    pub reported_hour: i64,
    /// Its user subscription, as the stack wrote it.
    pub subscription_id: String,
    /// The row as JSON.
    pub row_json: String,
}

/// One collected hour of one subscriber, to commit at once.
#[derive(Debug, Default)]
pub struct CollectedHour {
    /// The subscriber whose cursor moves, with the hour it moves to (hours since the epoch);
    /// `None` when only held rows are released.
    pub cursor: Option<(SubscriptionId, i64)>,
    /// The valid records.
    pub records: Vec<UsageRecord>,
    /// Rows to hold: (reported hour, user subscription, row JSON).
    pub hold: Vec<(i64, String, String)>,
    /// Held rows now collected.
    pub release: Vec<i64>,
}

fn key(name: &RegistrationName) -> String {
    name.as_str().to_ascii_lowercase()
}

const COLUMNS: &str = "registration, admin_endpoint, provider_subscription, client_id, directory,
     secret_file, certificate_file, ca_file, start_hour, created_at, last_success_at,
     last_error_at, last_error_code, last_error_message, secret_sealed, certificate_sealed,
     ca_pem";

fn load_states(conn: &Conn<'_>, only: Option<&str>) -> Result<Vec<CollectorState>> {
    let sql = format!(
        "SELECT {COLUMNS}, registration_key FROM collectors
         WHERE CAST(?1 AS TEXT) IS NULL OR registration_key = ?1 ORDER BY registration_key"
    );
    let rows = conn.query_map(&sql, params![only], |row| {
        let start_hour: i64 = row.get(8)?;
        let error = match (
            row.get::<Option<i64>>(11)?,
            row.get::<Option<String>>(12)?,
            row.get::<Option<String>>(13)?,
        ) {
            (Some(at), Some(code), Some(message)) => Some((instant(at)?, code, message)),
            _ => None,
        };
        Ok((
            row.get::<String>(17)?,
            CollectorState {
                config: CollectorConfig {
                    registration: parse(&row.get::<String>(0)?)?,
                    admin_endpoint: row.get(1)?,
                    provider_subscription: parse(&row.get::<String>(2)?)?,
                    client_id: row.get(3)?,
                    directory: row.get(4)?,
                    credential: ClientCredential::from_columns([
                        row.get(5)?,
                        row.get(6)?,
                        row.get(14)?,
                        row.get(15)?,
                    ])?,
                    ca: match (
                        row.get::<Option<String>>(7)?,
                        row.get::<Option<String>>(16)?,
                    ) {
                        (Some(path), _) => Some(CaSource::File(path)),
                        (None, Some(pem)) => Some(CaSource::Pem(pem)),
                        (None, None) => None,
                    },
                    start: stackbill_core::period::hour_start(start_hour)
                        .map_err(StoreError::corrupt)?,
                },
                created_at: instant(row.get(9)?)?,
                last_success: row.get::<Option<i64>>(10)?.map(instant).transpose()?,
                last_error: error,
                collected_through: None,
                subscribers: 0,
                held: 0,
            },
        ))
    })?;
    let mut states = Vec::with_capacity(rows.len());
    for (registration_key, mut state) in rows {
        state.subscribers = count(
            conn,
            "SELECT COUNT(*) FROM collector_subscribers WHERE registration_key = ?1",
            &registration_key,
        )?;
        state.held = count(
            conn,
            "SELECT COUNT(*) FROM collector_held WHERE registration_key = ?1",
            &registration_key,
        )?;
        state.collected_through = conn
            .query_opt(
                "SELECT MIN(last_hour) FROM collector_cursors WHERE registration_key = ?1",
                params![registration_key],
                |row| row.get::<Option<i64>>(0),
            )?
            .flatten();
        states.push(state);
    }
    Ok(states)
}

fn count(conn: &Conn<'_>, sql: &str, registration_key: &str) -> Result<usize> {
    let n: i64 = conn
        .query_opt(sql, params![registration_key], |row| row.get(0))?
        .unwrap_or(0);
    Ok(usize::try_from(n).unwrap_or(0))
}

impl Store {
    /// Adds or replaces a registration's collector. Its progress and the subscriptions it
    /// learned are kept when it is replaced.
    pub async fn put_collector(&self, config: CollectorConfig) -> Result<CollectorState> {
        self.write(move |tx, now| {
            if load_registration(tx, &config.registration)?.is_none() {
                return Err(RegistryError::RegistrationNotFound {
                    registration: config.registration.clone(),
                }
                .into());
            }
            let registration_key = key(&config.registration);
            let start_hour = stackbill_core::period::hour_number(config.start);
            let credential = config.credential.columns();
            let (ca_file, ca_pem) = match &config.ca {
                Some(CaSource::File(path)) => (Some(path.as_str()), None),
                Some(CaSource::Pem(pem)) => (None, Some(pem.as_str())),
                None => (None, None),
            };
            tx.execute(
                "DELETE FROM collectors WHERE registration_key = ?1",
                params![registration_key],
            )?;
            tx.execute(
                &format!(
                    "INSERT INTO collectors (registration_key, {COLUMNS})
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, NULL, NULL, NULL, NULL,
                             ?12, ?13, ?14)"
                ),
                params![
                    registration_key,
                    config.registration.as_str(),
                    config.admin_endpoint,
                    config.provider_subscription.to_string(),
                    config.client_id,
                    config.directory,
                    credential[0],
                    credential[1],
                    ca_file,
                    start_hour,
                    micros(now),
                    credential[2],
                    credential[3],
                    ca_pem
                ],
            )?;
            load_states(tx, Some(&registration_key))?
                .pop()
                .ok_or_else(|| StoreError::corrupt("a collector just written is missing"))
        })
        .await
    }

    /// Every collector, by registration.
    pub async fn collectors(&self) -> Result<Vec<CollectorState>> {
        self.read(|conn| load_states(conn, None)).await
    }

    /// One registration's collector, if it has one.
    pub async fn collector(
        &self,
        registration: RegistrationName,
    ) -> Result<Option<CollectorState>> {
        self.read(move |conn| Ok(load_states(conn, Some(&key(&registration)))?.pop()))
            .await
    }

    /// Removes a registration's collector with its progress; `false` when it had none. The
    /// records it collected stay.
    pub async fn remove_collector(&self, registration: RegistrationName) -> Result<bool> {
        self.write(move |tx, _| {
            let registration_key = key(&registration);
            let removed = tx.execute(
                "DELETE FROM collectors WHERE registration_key = ?1",
                params![registration_key],
            )?;
            for table in [
                "collector_subscribers",
                "collector_cursors",
                "collector_held",
            ] {
                tx.execute(
                    &format!("DELETE FROM {table} WHERE registration_key = ?1"),
                    params![registration_key],
                )?;
            }
            Ok(removed > 0)
        })
        .await
    }

    /// Remembers the user subscriptions a stack listed (new ones added, known ones' state
    /// and name updated, none forgotten) and answers every one ever listed.
    pub async fn remember_subscribers(
        &self,
        registration: RegistrationName,
        listed: Vec<Subscriber>,
    ) -> Result<Vec<Subscriber>> {
        self.write(move |tx, now| {
            let registration_key = key(&registration);
            for s in &listed {
                tx.execute(
                    "INSERT INTO collector_subscribers (registration_key, subscription_id,
                         tenant_id, state, display_name, first_seen_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (registration_key, subscription_id)
                     DO UPDATE SET state = excluded.state, display_name = excluded.display_name",
                    params![
                        registration_key,
                        s.subscription_id.to_string(),
                        s.tenant_id.to_string(),
                        s.state,
                        s.display_name,
                        micros(now)
                    ],
                )?;
            }
            tx.query_map(
                "SELECT subscription_id, tenant_id, state, display_name FROM collector_subscribers
                 WHERE registration_key = ?1 ORDER BY subscription_id",
                params![registration_key],
                |row| {
                    Ok(Subscriber {
                        subscription_id: parse(&row.get::<String>(0)?)?,
                        tenant_id: parse(&row.get::<String>(1)?)?,
                        state: row.get(2)?,
                        display_name: row.get(3)?,
                    })
                },
            )
        })
        .await
    }

    /// Per subscriber, the last reported hour fully collected (hours since the epoch).
    pub async fn collector_cursors(
        &self,
        registration: RegistrationName,
    ) -> Result<BTreeMap<SubscriptionId, i64>> {
        self.read(move |conn| {
            let rows = conn.query_map(
                "SELECT subscription_id, last_hour FROM collector_cursors
                 WHERE registration_key = ?1",
                params![key(&registration)],
                |row| Ok((parse(&row.get::<String>(0)?)?, row.get::<i64>(1)?)),
            )?;
            Ok(rows.into_iter().collect())
        })
        .await
    }

    /// The rows held for a registration, oldest first.
    pub async fn held_rows(&self, registration: RegistrationName) -> Result<Vec<HeldRow>> {
        self.read(move |conn| {
            conn.query_map(
                "SELECT held_id, reported_hour, subscription_id, row_json FROM collector_held
                 WHERE registration_key = ?1 ORDER BY held_id",
                params![key(&registration)],
                |row| {
                    Ok(HeldRow {
                        held_id: row.get(0)?,
                        reported_hour: row.get(1)?,
                        subscription_id: row.get(2)?,
                        row_json: row.get(3)?,
                    })
                },
            )
        })
        .await
    }

    /// Commits one collected hour in one transaction: its records (as [`Store::ingest`]),
    /// the rows to hold, the held rows released, and the subscriber's cursor, which only
    /// moves forward. The answer has one disposition per record, in order.
    pub async fn commit_collected(
        &self,
        registration: RegistrationName,
        hour: CollectedHour,
    ) -> Result<Vec<Disposition>> {
        let store = self.clone();
        let (dispositions, pending) = self
            .write(move |tx, now| {
                let registration_key = key(&registration);
                let (dispositions, pending) = write_records(&store, tx, &hour.records, now)?;
                for (reported_hour, subscription, row_json) in &hour.hold {
                    tx.execute(
                        "INSERT INTO collector_held (registration_key, reported_hour,
                         subscription_id, row_json)
                     VALUES (?1, ?2, ?3, ?4)",
                        params![registration_key, reported_hour, subscription, row_json],
                    )?;
                }
                for held_id in &hour.release {
                    tx.execute(
                        "DELETE FROM collector_held WHERE registration_key = ?1 AND held_id = ?2",
                        params![registration_key, held_id],
                    )?;
                }
                if let Some((subscriber, last_hour)) = hour.cursor {
                    tx.execute(
                    "INSERT INTO collector_cursors (registration_key, subscription_id, last_hour)
                     VALUES (?1, ?2, ?3)
                     ON CONFLICT (registration_key, subscription_id)
                     DO UPDATE SET last_hour = excluded.last_hour
                     WHERE excluded.last_hour > collector_cursors.last_hour",
                    params![registration_key, subscriber.to_string(), last_hour],
                )?;
                }
                Ok((dispositions, pending))
            })
            .await?;
        self.merge_values(pending).await?;
        Ok(dispositions)
    }

    /// Records how a collection of a registration's stack ended: a success clears the
    /// last error.
    pub async fn record_collection(
        &self,
        registration: RegistrationName,
        outcome: std::result::Result<(), (String, String)>,
    ) -> Result<()> {
        self.write(move |tx, now| {
            let registration_key = key(&registration);
            let failing_before: Option<Option<i64>> = tx.query_opt(
                "SELECT last_error_at FROM collectors WHERE registration_key = ?1",
                params![registration_key.as_str()],
                |row| row.get(0),
            )?;
            let was_failing = failing_before.flatten().is_some();
            let event = match &outcome {
                Ok(()) => {
                    was_failing.then(|| (EventType::CollectorRecovered, serde_json::json!({})))
                }
                Err((code, message)) => (!was_failing).then(|| {
                    (
                        EventType::CollectorFailing,
                        serde_json::json!({"code": code, "message": message}),
                    )
                }),
            };
            match outcome {
                Ok(()) => tx.execute(
                    "UPDATE collectors SET last_success_at = ?2, last_error_at = NULL,
                         last_error_code = NULL, last_error_message = NULL
                     WHERE registration_key = ?1",
                    params![registration_key, micros(now)],
                )?,
                Err((code, message)) => tx.execute(
                    "UPDATE collectors SET last_error_at = ?2, last_error_code = ?3,
                         last_error_message = ?4
                     WHERE registration_key = ?1",
                    params![registration_key, micros(now), code, message],
                )?,
            };
            if let Some((kind, mut data)) = event
                && failing_before.is_some()
            {
                let partner: Option<Option<String>> = tx.query_opt(
                    "SELECT s.partner_id FROM registrations r
                     JOIN subscriptions s ON s.subscription_id = r.default_subscription_id
                     WHERE r.name = ?1 AND r.deleted_at IS NULL",
                    params![registration.as_str()],
                    |row| row.get(0),
                )?;
                if let Some(partner) = partner.flatten() {
                    data["registration"] = serde_json::json!(registration.as_str());
                    crate::outbox::emit(tx, &parse(&partner)?, kind, data, now)?;
                }
            }
            Ok(())
        })
        .await
    }
}

impl Store {
    /// Takes (or renews) the lease on collecting a registration's stack for `ttl`: `true`
    /// when `holder` has it, `false` while another live holder does.
    pub async fn lease_collector(
        &self,
        registration: RegistrationName,
        holder: String,
        ttl: std::time::Duration,
    ) -> Result<bool> {
        self.write(move |tx, now| {
            let registration_key = key(&registration);
            let ttl = jiff::SignedDuration::try_from(ttl).unwrap_or(jiff::SignedDuration::ZERO);
            tx.execute(
                "INSERT INTO collector_leases (registration_key, holder, expires_at)
                 VALUES (?1, ?2, ?3)
                 ON CONFLICT (registration_key) DO UPDATE
                 SET holder = excluded.holder, expires_at = excluded.expires_at
                 WHERE collector_leases.holder = excluded.holder
                    OR collector_leases.expires_at < ?4",
                params![registration_key, holder, micros(now + ttl), micros(now)],
            )?;
            tx.exists(
                "SELECT 1 FROM collector_leases WHERE registration_key = ?1 AND holder = ?2",
                params![registration_key, holder],
            )
        })
        .await
    }

    /// Gives a lease back, if `holder` has it.
    pub async fn release_collector(
        &self,
        registration: RegistrationName,
        holder: String,
    ) -> Result<()> {
        self.write(move |tx, _| {
            tx.execute(
                "DELETE FROM collector_leases WHERE registration_key = ?1 AND holder = ?2",
                params![key(&registration), holder],
            )?;
            Ok(())
        })
        .await
    }
}
