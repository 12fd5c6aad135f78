//! Collecting where the server cannot reach the stack (`stackbill collect --forward-to`):
//! the collector runs next to the stack and posts each hour's records to the server's
//! `POST /v1/usage` with a stack token. What a server keeps in its database (the user
//! subscriptions, the cursors, the held rows) lives in a local state file, written only
//! after the server answered that it stored the hour, and replaced atomically, so a crash
//! anywhere re-sends at most an hour, which the server counts as duplicates.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use stackbill_core::{CloudId, SubscriptionId, UsageRecord};
use stackbill_store::{CollectedHour, HeldRow, Subscriber};
use tokio::sync::Mutex;

use crate::client::RetryPolicy;
use crate::collect::{CollectError, Sink, Stored};

/// Records per request: well under the server's 32 MiB body limit.
const RECORDS_PER_POST: usize = 5_000;

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct State {
    cloud_id: String,
    subscribers: Vec<SubscriberState>,
    cursors: BTreeMap<String, i64>,
    held: Vec<HeldState>,
    next_held_id: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SubscriberState {
    subscription_id: String,
    tenant_id: String,
    state: String,
    display_name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HeldState {
    held_id: i64,
    reported_hour: i64,
    subscription_id: String,
    row_json: String,
}

/// A server reached over HTTP, with the collector's state in a local file.
pub struct ForwardSink {
    http: reqwest::Client,
    usage_url: String,
    token: String,
    retry: RetryPolicy,
    path: PathBuf,
    state: Mutex<State>,
}

fn state_error(path: &Path, what: impl std::fmt::Display) -> CollectError {
    CollectError::State(format!("{}: {what}", path.display()))
}

impl ForwardSink {
    /// A sink posting to the server at `server` (its base URL) with `token`, for stack
    /// `cloud`, its state in `path` (created when missing).
    pub fn open(
        server: &str,
        token: String,
        cloud: CloudId,
        path: PathBuf,
        retry: RetryPolicy,
    ) -> Result<Self, CollectError> {
        let state = match std::fs::read(&path) {
            Ok(bytes) => {
                let state: State = serde_json::from_slice(&bytes)
                    .map_err(|err| state_error(&path, format!("not a collector state: {err}")))?;
                if state.cloud_id != cloud.to_string() {
                    return Err(state_error(
                        &path,
                        format!(
                            "holds the state of stack {}, not {cloud}; give another --state",
                            state.cloud_id
                        ),
                    ));
                }
                state
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => State {
                cloud_id: cloud.to_string(),
                ..State::default()
            },
            Err(err) => return Err(state_error(&path, err)),
        };
        let http = reqwest::Client::builder()
            .timeout(retry.timeout)
            .user_agent(concat!("stackbill-collector/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| CollectError::State(format!("cannot make an HTTP client: {err}")))?;
        Ok(Self {
            http,
            usage_url: format!("{}/v1/usage", server.trim_end_matches('/')),
            token,
            retry,
            path,
            state: Mutex::new(state),
        })
    }

    /// Replaces the state file atomically: a new file, synced, renamed over the old one.
    fn save(&self, state: &State) -> Result<(), CollectError> {
        let bytes = serde_json::to_vec_pretty(state).map_err(|err| state_error(&self.path, err))?;
        let mut temporary = self.path.clone().into_os_string();
        temporary.push(".tmp");
        let temporary = PathBuf::from(temporary);
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&temporary)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            std::fs::rename(&temporary, &self.path)?;
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        };
        write().map_err(|err| state_error(&self.path, err))
    }

    /// Posts records, retrying what may pass; the server's counts.
    async fn post(&self, records: &[UsageRecord]) -> Result<Stored, CollectError> {
        let mut body = String::new();
        for record in records {
            body.push_str(&record_json(record).to_string());
            body.push('\n');
        }
        let mut attempt = 0;
        loop {
            let sent = self
                .http
                .post(&self.usage_url)
                .bearer_auth(&self.token)
                .header("content-type", "application/x-ndjson")
                .body(body.clone())
                .send()
                .await;
            let failure = match sent {
                Ok(answer) if answer.status().is_success() => {
                    let bytes = answer.bytes().await.map_err(|err| CollectError::Forward {
                        code: "ServerUnreachable".to_owned(),
                        message: format!("the answer broke off: {err}"),
                    })?;
                    return counts(&bytes);
                }
                Ok(answer) => {
                    let status = answer.status();
                    let bytes = answer.bytes().await.unwrap_or_default();
                    let body: Value = serde_json::from_slice(&bytes).unwrap_or_default();
                    let code = body["error"]["code"]
                        .as_str()
                        .unwrap_or("ServerError")
                        .to_owned();
                    let message = body["error"]["message"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned();
                    let error = CollectError::Forward {
                        code,
                        message: format!("{} answered {status}: {message}", self.usage_url),
                    };
                    if !(status.is_server_error() || status.as_u16() == 429) {
                        return Err(error);
                    }
                    error
                }
                Err(err) => CollectError::Forward {
                    code: "ServerUnreachable".to_owned(),
                    message: format!("cannot reach {}: {err}", self.usage_url),
                },
            };
            attempt += 1;
            if attempt >= self.retry.attempts {
                return Err(failure);
            }
            let wait = self
                .retry
                .base
                .saturating_mul(1 << attempt.min(16))
                .min(self.retry.max);
            tokio::time::sleep(wait / 2 + wait.mul_f64(fastrand::f64() / 2.0)).await;
        }
    }
}

/// A record as `POST /v1/usage` reads it (SPEC §3).
fn record_json(record: &UsageRecord) -> Value {
    let end = record.usage_start + SignedDuration::from_hours(1);
    let instance =
        (record.instance_data.as_deref()).and_then(|text| serde_json::from_str::<Value>(text).ok());
    json!({
        "id": record.id.as_str(),
        "cloudId": record.cloud_id.to_string(),
        "tenantId": record.tenant_id.to_string(),
        "subscriptionId": record.subscription_id.to_string(),
        "meterId": record.meter_id.to_string(),
        "quantity": record.quantity.to_string(),
        "usageStartTime": record.usage_start.to_string(),
        "usageEndTime": end.to_string(),
        "reportedTime": record.reported_time.map(|t| t.to_string()),
        "instanceData": instance,
    })
}

/// The counts of an ingestion answer.
fn counts(body: &[u8]) -> Result<Stored, CollectError> {
    let value: Value = serde_json::from_slice(body).map_err(|err| CollectError::Forward {
        code: "ServerAnswerInvalid".to_owned(),
        message: format!("the usage answer is not JSON: {err}"),
    })?;
    let len = |key: &str| value[key].as_array().map_or(0, |a| a.len() as u64);
    for rejection in value["rejected"].as_array().into_iter().flatten().take(10) {
        tracing::warn!(%rejection, "the server refused a collected record");
    }
    Ok(Stored {
        accepted: value["accepted"].as_u64().unwrap_or(0),
        duplicates: value["duplicates"].as_u64().unwrap_or(0),
        conflicts: len("conflicts"),
        rejected: len("rejected"),
    })
}

impl Sink for ForwardSink {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }

    async fn remember(&self, listed: Vec<Subscriber>) -> Result<Vec<Subscriber>, CollectError> {
        let mut state = self.state.lock().await;
        for s in listed {
            let id = s.subscription_id.to_string();
            let entry = SubscriberState {
                subscription_id: id.clone(),
                tenant_id: s.tenant_id.to_string(),
                state: s.state,
                display_name: s.display_name,
            };
            match state
                .subscribers
                .iter_mut()
                .find(|k| k.subscription_id == id)
            {
                Some(known) => {
                    known.state = entry.state;
                    known.display_name = entry.display_name;
                }
                None => state.subscribers.push(entry),
            }
        }
        self.save(&state)?;
        state
            .subscribers
            .iter()
            .map(|s| {
                Ok(Subscriber {
                    subscription_id: s
                        .subscription_id
                        .parse()
                        .map_err(|e| state_error(&self.path, e))?,
                    tenant_id: s
                        .tenant_id
                        .parse()
                        .map_err(|e| state_error(&self.path, e))?,
                    state: s.state.clone(),
                    display_name: s.display_name.clone(),
                })
            })
            .collect()
    }

    async fn held(&self) -> Result<Vec<HeldRow>, CollectError> {
        let state = self.state.lock().await;
        Ok(state
            .held
            .iter()
            .map(|h| HeldRow {
                held_id: h.held_id,
                reported_hour: h.reported_hour,
                subscription_id: h.subscription_id.clone(),
                row_json: h.row_json.clone(),
            })
            .collect())
    }

    async fn cursors(&self) -> Result<BTreeMap<SubscriptionId, i64>, CollectError> {
        let state = self.state.lock().await;
        state
            .cursors
            .iter()
            .map(|(sub, hour)| Ok((sub.parse().map_err(|e| state_error(&self.path, e))?, *hour)))
            .collect()
    }

    async fn commit(&self, hour: CollectedHour) -> Result<Stored, CollectError> {
        let mut stored = Stored::default();
        for chunk in hour.records.chunks(RECORDS_PER_POST) {
            let posted = self.post(chunk).await?;
            stored.accepted += posted.accepted;
            stored.duplicates += posted.duplicates;
            stored.conflicts += posted.conflicts;
            stored.rejected += posted.rejected;
        }
        // The server has the records: only now does the state move.
        let mut state = self.state.lock().await;
        for (reported_hour, subscription_id, row_json) in hour.hold {
            state.next_held_id += 1;
            let held_id = state.next_held_id;
            state.held.push(HeldState {
                held_id,
                reported_hour,
                subscription_id,
                row_json,
            });
        }
        state.held.retain(|h| !hour.release.contains(&h.held_id));
        if let Some((subscriber, last)) = hour.cursor {
            let cursor = state.cursors.entry(subscriber.to_string()).or_insert(last);
            *cursor = (*cursor).max(last);
        }
        self.save(&state)?;
        Ok(stored)
    }
}
