//! Delivering the outbox: every serving node claims due deliveries under a lease, posts each
//! one signed as Standard Webhooks says (`webhook-id`, `webhook-timestamp`,
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`), and records the
//! outcome (delivered; 410 disables the endpoint; else retried on the schedule). A node that
//! dies mid-delivery leaves the claim to lapse: the event is delivered again, under its id.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use stackbill_store::{AttemptOutcome, DueDelivery, SecretKeyring, Store};

/// The context a webhook secret is sealed for.
pub fn secret_context(endpoint_id: &str) -> String {
    format!("webhook:{endpoint_id}")
}

/// The `webhook-signature` value of `body` sent as `id` at `timestamp` (unix seconds) with
/// `secret` (`whsec_` and base64).
pub fn signature(secret: &str, id: &str, timestamp: i64, body: &str) -> Result<String, String> {
    let key = STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .map_err(|err| format!("the signing secret is not base64: {err}"))?;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
    let tag = ring::hmac::sign(&key, format!("{id}.{timestamp}.{body}").as_bytes());
    Ok(format!("v1,{}", STANDARD.encode(tag.as_ref())))
}

/// A new signing secret: `whsec_` and the base64 of 32 random bytes.
pub fn new_secret() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| "no system randomness".to_owned())?;
    Ok(format!("whsec_{}", STANDARD.encode(bytes)))
}

/// How the dispatcher runs.
#[derive(Debug, Clone)]
pub struct DispatchSettings {
    /// How often it looks for due deliveries.
    pub interval: Duration,
    /// How long a claim holds (longer than the request timeout).
    pub lease: Duration,
    /// How long an endpoint may take to answer.
    pub timeout: Duration,
    /// Deliveries claimed at once.
    pub batch: u32,
}

impl Default for DispatchSettings {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(1),
            lease: Duration::from_secs(60),
            timeout: Duration::from_secs(15),
            batch: 32,
        }
    }
}

/// Delivers the outbox of one store.
#[derive(Clone)]
pub struct Dispatcher {
    store: Store,
    secrets: Arc<SecretKeyring>,
    http: reqwest::Client,
    settings: DispatchSettings,
}

impl Dispatcher {
    /// A dispatcher for `store`, opening secrets with `secrets`.
    pub fn new(
        store: Store,
        secrets: Arc<SecretKeyring>,
        settings: DispatchSettings,
    ) -> Result<Self, String> {
        // Another part of the process may have installed it first: either is ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("stackbill-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| format!("cannot make an HTTP client: {err}"))?;
        Ok(Self {
            store,
            secrets,
            http,
            settings,
        })
    }

    /// Runs until the task is dropped: the digests once a minute, due deliveries every
    /// interval.
    pub async fn run(self) {
        let mut last_digest: Option<Instant> = None;
        loop {
            if last_digest.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
                if let Err(error) = self.store.emit_rejection_digests().await {
                    tracing::warn!(%error, "cannot emit the usage.rejected digests");
                }
                last_digest = Some(Instant::now());
            }
            match self.deliver_due().await {
                Ok(0) => tokio::time::sleep(self.settings.interval).await,
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(%error, "webhook delivery failed; trying again");
                    tokio::time::sleep(self.settings.interval).await;
                }
            }
        }
    }

    /// Delivers what is due now; answers how many attempts were made.
    pub async fn deliver_due(&self) -> Result<usize, stackbill_store::StoreError> {
        if !self.store.deliveries_due().await? {
            return Ok(0);
        }
        let due = (self.store)
            .claim_deliveries(self.settings.batch, self.settings.lease)
            .await?;
        let count = due.len();
        let attempts = due.into_iter().map(|delivery| {
            let this = self.clone();
            async move {
                let outcome = this.attempt(&delivery).await;
                this.store.record_attempt(delivery, outcome).await
            }
        });
        for result in futures_util::future::join_all(attempts).await {
            result?;
        }
        Ok(count)
    }

    async fn attempt(&self, delivery: &DueDelivery) -> AttemptOutcome {
        let started = Instant::now();
        let failed = |error: String| AttemptOutcome {
            error: Some(error),
            duration: started.elapsed(),
            ..AttemptOutcome::default()
        };
        let secret = match self.secrets.open(
            &delivery.secret_sealed,
            &secret_context(&delivery.endpoint_id),
        ) {
            Ok(secret) => String::from_utf8_lossy(&secret).into_owned(),
            Err(error) => return failed(format!("cannot open the signing secret: {error}")),
        };
        let timestamp = jiff::Timestamp::now().as_second();
        let signed = match signature(&secret, &delivery.event_id, timestamp, &delivery.body) {
            Ok(signed) => signed,
            Err(error) => return failed(error),
        };
        let sent = self
            .http
            .post(&delivery.url)
            .header("content-type", "application/json")
            .header("webhook-id", &delivery.event_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signed)
            .body(delivery.body.clone())
            .send()
            .await;
        match sent {
            Ok(response) => {
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                AttemptOutcome {
                    status: Some(response.status().as_u16()),
                    error: None,
                    duration: started.elapsed(),
                    retry_after,
                }
            }
            Err(error) => failed(error.to_string()),
        }
    }
}
