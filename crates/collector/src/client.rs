//! HTTP to a stack's admin API (SPEC §10): metadata discovery, a client-credentials token
//! (Entra ID or AD FS) cached and renewed before it expires and once on a 401, and GETs
//! retried with exponential backoff and jitter on 429 (honouring `Retry-After`), 5xx,
//! timeouts and resets. Usage pages are followed through `nextLink` byte for byte.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use ring::signature::RsaKeyPair;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use jiff::Timestamp;
use reqwest::StatusCode;
use reqwest::header::RETRY_AFTER;
use stackbill_core::SubscriptionId;
use stackbill_store::{CaSource, ClientCredential, SecretKeyring};
use tokio::sync::{Mutex, OnceCell};

use crate::wire::{AccessToken, Metadata, UsagePage, UsageRow, UserSubscription, WireError};

/// How a stack is reached and who signs in.
#[derive(Clone)]
pub struct StackAccess {
    /// `https://adminmanagement.{region}.{fqdn}`, no trailing `/`.
    pub admin_endpoint: String,
    /// The Default Provider Subscription.
    pub provider_subscription: SubscriptionId,
    /// The Entra ID directory, or `adfs`.
    pub directory: String,
    /// The service principal's client id.
    pub client_id: String,
    /// Its secret or certificate (never printed).
    pub credential: Credential,
    /// Extra CAs to trust, PEM.
    pub ca_pem: Option<Vec<u8>>,
}

/// How the service principal proves who it is.
#[derive(Clone)]
pub enum Credential {
    /// A client secret.
    Secret(String),
    /// A certificate and its RSA key: the token request carries a signed client assertion
    /// (RFC 7523, `x5t` the certificate's SHA-1 thumbprint).
    Certificate {
        /// The certificate, DER.
        certificate: Vec<u8>,
        /// Its key.
        key: Arc<RsaKeyPair>,
    },
}

impl Credential {
    /// Reads a PEM file holding a certificate and its PKCS#8 RSA key.
    pub fn from_certificate_pem(pem: &[u8]) -> Result<Self, String> {
        let certificate = CertificateDer::from_pem_slice(pem)
            .map_err(|err| format!("no certificate in it: {err}"))?;
        let key = match PrivateKeyDer::from_pem_slice(pem) {
            Ok(PrivateKeyDer::Pkcs8(key)) => key,
            Ok(_) => return Err("its key is not PKCS#8 (\"BEGIN PRIVATE KEY\")".to_owned()),
            Err(err) => return Err(format!("no private key in it: {err}")),
        };
        let key = RsaKeyPair::from_pkcs8(key.secret_pkcs8_der())
            .map_err(|err| format!("its key is not an RSA key: {err}"))?;
        Ok(Self::Certificate {
            certificate: certificate.as_ref().to_vec(),
            key: Arc::new(key),
        })
    }
}

/// base64url without padding, as JWTs are written.
fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A client assertion for the token endpoint `audience`: a JWT signed RS256 with the key,
/// naming the certificate by its SHA-1 thumbprint, valid for ten minutes.
fn client_assertion(
    client_id: &str,
    audience: &str,
    certificate: &[u8],
    key: &RsaKeyPair,
) -> Result<String, StackError> {
    let thumbprint = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, certificate);
    let header =
        serde_json::json!({"alg": "RS256", "typ": "JWT", "x5t": b64url(thumbprint.as_ref())});
    let now = Timestamp::now().as_second();
    let mut jti = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut jti)
        .map_err(|_| StackError::Config("no system randomness".to_owned()))?;
    let claims = serde_json::json!({
        "aud": audience, "iss": client_id, "sub": client_id,
        "jti": b64url(&jti), "nbf": now - 60, "exp": now + 600,
    });
    let signed = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let mut signature = vec![0; key.public().modulus_len()];
    key.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        signed.as_bytes(),
        &mut signature,
    )
    .map_err(|_| StackError::Config("the certificate's key cannot sign".to_owned()))?;
    Ok(format!("{signed}.{}", b64url(&signature)))
}

impl StackAccess {
    /// The access a stored collector describes: its secret and CA files read now, a sealed
    /// secret opened with `keyring`.
    pub fn from_config(
        config: &stackbill_store::CollectorConfig,
        keyring: &SecretKeyring,
    ) -> Result<Self, StackError> {
        let read = |path: &str, what: &str| {
            std::fs::read(path).map_err(|err| {
                StackError::Config(format!("cannot read the {what} file {path}: {err}"))
            })
        };
        let unseal = |sealed: &str| {
            let context = ClientCredential::context(&config.registration, config.credential.kind());
            keyring.open(sealed, &context).map_err(|err| {
                StackError::Config(format!(
                    "the collector's {}: {err}",
                    config.credential.kind()
                ))
            })
        };
        let secret = |bytes: Vec<u8>, source: &str| {
            let secret = String::from_utf8(bytes).map_err(|_| {
                StackError::Config(format!("the client secret {source} is not UTF-8"))
            })?;
            Ok::<_, StackError>(Credential::Secret(
                secret.trim_end_matches(['\r', '\n']).to_owned(),
            ))
        };
        let certificate = |pem: Vec<u8>, source: &str| {
            Credential::from_certificate_pem(&pem).map_err(|why| {
                StackError::Config(format!("the client certificate {source}: {why}"))
            })
        };
        let credential = match &config.credential {
            ClientCredential::SecretFile(path) => {
                secret(read(path, "client secret")?, &format!("file {path}"))?
            }
            ClientCredential::CertificateFile(path) => {
                certificate(read(path, "client certificate")?, &format!("file {path}"))?
            }
            ClientCredential::SealedSecret(sealed) => secret(unseal(sealed)?, "stored")?,
            ClientCredential::SealedCertificate(sealed) => certificate(unseal(sealed)?, "stored")?,
        };
        let ca_pem = match &config.ca {
            Some(CaSource::File(path)) => Some(read(path, "CA")?),
            Some(CaSource::Pem(pem)) => Some(pem.clone().into_bytes()),
            None => None,
        };
        Ok(Self {
            admin_endpoint: config.admin_endpoint.clone(),
            provider_subscription: config.provider_subscription,
            directory: config.directory.clone(),
            client_id: config.client_id.clone(),
            credential,
            ca_pem,
        })
    }
}

impl std::fmt::Debug for StackAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StackAccess")
            .field("admin_endpoint", &self.admin_endpoint)
            .field("provider_subscription", &self.provider_subscription)
            .field("directory", &self.directory)
            .field("client_id", &self.client_id)
            .field("credential", &"[redacted]")
            .finish_non_exhaustive()
    }
}

/// How requests are retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Tries per request, the first included.
    pub attempts: u32,
    /// The first backoff; it doubles with each try.
    pub base: Duration,
    /// The longest backoff (and the longest `Retry-After` honoured).
    pub max: Duration,
    /// The longest a request may take.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 8,
            base: Duration::from_millis(500),
            max: Duration::from_secs(60),
            timeout: Duration::from_secs(120),
        }
    }
}

/// Why talking to a stack failed.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    /// The stack answered with an error that retrying does not mend, or kept failing.
    #[error("{url} answered {status} {code}: {message}")]
    Answer {
        /// What was asked (without query).
        url: String,
        /// The HTTP status.
        status: u16,
        /// The ARM (or OAuth) error code.
        code: String,
        /// Its message.
        message: String,
    },
    /// The stack could not be reached, or the connection broke, on every try.
    #[error("cannot reach {url}: {message}")]
    Unreachable {
        /// What was asked (without query).
        url: String,
        /// Why.
        message: String,
    },
    /// An answer that is not what the API sends.
    #[error("{url}: {source}")]
    Wire {
        /// What was asked.
        url: String,
        /// Why it could not be read.
        source: WireError,
    },
    /// The settings cannot work (a bad CA file, say).
    #[error("{0}")]
    Config(String),
}

impl StackError {
    /// A short code for logs, metrics and `collector show`.
    pub fn code(&self) -> String {
        match self {
            Self::Answer { status: 401, .. } | Self::Answer { status: 403, .. } => {
                "StackAuthenticationFailed".to_owned()
            }
            Self::Answer { code, .. } => code.clone(),
            Self::Unreachable { .. } => "StackUnreachable".to_owned(),
            Self::Wire { .. } => "StackAnswerInvalid".to_owned(),
            Self::Config(_) => "CollectorConfigInvalid".to_owned(),
        }
    }
}

fn without_query(url: &str) -> String {
    url.split('?').next().unwrap_or(url).to_owned()
}

/// A client of one stack's admin API.
pub struct StackClient {
    http: reqwest::Client,
    access: StackAccess,
    retry: RetryPolicy,
    metadata: OnceCell<Metadata>,
    token: Mutex<Option<(String, Instant)>>,
}

impl std::fmt::Debug for StackClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StackClient")
            .field("access", &self.access)
            .finish_non_exhaustive()
    }
}

/// The rustls crypto provider, installed once for the process.
fn install_crypto() {
    // Another part of the process may have installed it first: either is ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

enum Outcome {
    Done(Vec<u8>),
    Retry {
        error: StackError,
        after: Option<Duration>,
    },
    Unauthorized(StackError),
    Fail(StackError),
}

impl StackClient {
    /// A client of the stack `access` names.
    pub fn new(access: StackAccess, retry: RetryPolicy) -> Result<Self, StackError> {
        install_crypto();
        let mut builder = reqwest::Client::builder()
            .timeout(retry.timeout)
            .connect_timeout(Duration::from_secs(30))
            .user_agent(concat!("stackbill-collector/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = &access.ca_pem {
            let certificates = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|err| StackError::Config(format!("the CA file is not PEM: {err}")))?;
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let http = builder
            .build()
            .map_err(|err| StackError::Config(format!("cannot make an HTTP client: {err}")))?;
        Ok(Self {
            http,
            access: StackAccess {
                admin_endpoint: access.admin_endpoint.trim_end_matches('/').to_owned(),
                ..access
            },
            retry,
            metadata: OnceCell::new(),
            token: Mutex::new(None),
        })
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let exponential = self.retry.base.saturating_mul(1 << attempt.min(16));
        let capped = exponential.min(self.retry.max);
        // Full jitter over the upper half: never a burst of clients in step.
        capped / 2 + capped.mul_f64(fastrand::f64() / 2.0)
    }

    async fn attempt(&self, request: reqwest::RequestBuilder, url: &str) -> Outcome {
        let answer = match request.send().await {
            Ok(answer) => answer,
            Err(err) => {
                return Outcome::Retry {
                    error: StackError::Unreachable {
                        url: without_query(url),
                        message: err.to_string(),
                    },
                    after: None,
                };
            }
        };
        let status = answer.status();
        let retry_after = (answer.headers().get(RETRY_AFTER))
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = match answer.bytes().await {
            Ok(body) => body.to_vec(),
            Err(err) => {
                return Outcome::Retry {
                    error: StackError::Unreachable {
                        url: without_query(url),
                        message: format!("the answer broke off: {err}"),
                    },
                    after: None,
                };
            }
        };
        if status.is_success() {
            return Outcome::Done(body);
        }
        let (code, message) = error_of(&body, status);
        let error = StackError::Answer {
            url: without_query(url),
            status: status.as_u16(),
            code,
            message,
        };
        if status == StatusCode::UNAUTHORIZED {
            Outcome::Unauthorized(error)
        } else if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            Outcome::Retry {
                error,
                after: retry_after,
            }
        } else {
            Outcome::Fail(error)
        }
    }

    /// Sends a request built by `build` until it succeeds, retrying what may pass.
    async fn send(
        &self,
        url: &str,
        authorized: bool,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<Vec<u8>, StackError> {
        let mut renewed = false;
        let mut attempt = 0;
        loop {
            let mut request = build(&self.http);
            if authorized {
                request = request.bearer_auth(Box::pin(self.token(false)).await?);
            }
            let (error, after) = match self.attempt(request, url).await {
                Outcome::Done(body) => return Ok(body),
                Outcome::Fail(error) => return Err(error),
                Outcome::Unauthorized(error) if authorized && !renewed => {
                    // An expired or revoked token: renew it once, at once.
                    renewed = true;
                    tracing::debug!(%error, "token refused; renewing it");
                    Box::pin(self.token(true)).await?;
                    continue;
                }
                Outcome::Unauthorized(error) => return Err(error),
                Outcome::Retry { error, after } => (error, after),
            };
            attempt += 1;
            if attempt >= self.retry.attempts {
                return Err(error);
            }
            let wait = after.map_or_else(|| self.backoff(attempt), |a| a.min(self.retry.max));
            tracing::debug!(%error, attempt, ?wait, "retrying");
            tokio::time::sleep(wait).await;
        }
    }

    /// The login endpoint and audience, discovered once.
    pub async fn metadata(&self) -> Result<&Metadata, StackError> {
        self.metadata
            .get_or_try_init(|| async {
                let url = format!(
                    "{}/metadata/endpoints?api-version=2015-01-01",
                    self.access.admin_endpoint
                );
                let body = self.send(&url, false, |http| http.get(&url)).await?;
                Metadata::parse(&body).map_err(|source| StackError::Wire {
                    url: without_query(&url),
                    source,
                })
            })
            .await
    }

    /// A live bearer token: the cached one unless it is due for renewal or `renew`.
    async fn token(&self, renew: bool) -> Result<String, StackError> {
        let mut cached = self.token.lock().await;
        if let Some((token, renew_at)) = cached.as_ref()
            && !renew
            && Instant::now() < *renew_at
        {
            return Ok(token.clone());
        }
        let metadata = self.metadata().await?;
        // AD FS when asked for, or when no directory is given and the stack signs in with
        // AD FS (its login endpoint ends in `/adfs/`).
        let directory = self.access.directory.as_str();
        let adfs = directory.eq_ignore_ascii_case("adfs")
            || (directory.is_empty()
                && metadata
                    .login_endpoint
                    .to_ascii_lowercase()
                    .ends_with("/adfs/"));
        let url = if adfs {
            format!("{}oauth2/token", metadata.login_endpoint)
        } else if directory.is_empty() {
            return Err(StackError::Config(format!(
                "the stack signs in with Entra ID ({}): give its directory (tenant) id with \
                 --directory",
                metadata.login_endpoint
            )));
        } else {
            format!("{}{directory}/oauth2/token", metadata.login_endpoint)
        };
        let proof = match &self.access.credential {
            Credential::Secret(secret) => ("client_secret", secret.clone()),
            Credential::Certificate { certificate, key } => (
                "client_assertion",
                client_assertion(&self.access.client_id, &url, certificate, key)?,
            ),
        };
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_id", self.access.client_id.as_str()),
            (proof.0, proof.1.as_str()),
            ("resource", metadata.audience.as_str()),
        ];
        if proof.0 == "client_assertion" {
            form.push((
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ));
        }
        let issued = Instant::now();
        let body = self
            .send(&url, false, |http| http.post(&url).form(&form))
            .await?;
        let token = AccessToken::parse(&body).map_err(|source| StackError::Wire {
            url: url.clone(),
            source,
        })?;
        // Renewed five minutes before it expires, or at half its life when it is short.
        let life = Duration::from_secs(token.expires_in);
        let margin = Duration::from_secs(300).min(life / 2);
        *cached = Some((token.token.clone(), issued + life - margin));
        Ok(token.token)
    }

    /// The stack's user subscriptions; the count of entries left out (ids not GUIDs).
    pub async fn subscriptions(&self) -> Result<(Vec<UserSubscription>, usize), StackError> {
        let url = format!(
            "{}/subscriptions/{}/providers/Microsoft.Subscriptions.Admin/subscriptions?api-version=2015-11-01",
            self.access.admin_endpoint, self.access.provider_subscription
        );
        let body = self.send(&url, true, |http| http.get(&url)).await?;
        crate::wire::parse_subscriptions(&body).map_err(|source| StackError::Wire {
            url: without_query(&url),
            source,
        })
    }

    /// Every usage row one subscriber reported in `[hour, hour + 1h)`, every page.
    pub async fn usage_hour(
        &self,
        subscriber: SubscriptionId,
        hour: Timestamp,
    ) -> Result<Vec<UsageRow>, StackError> {
        let end = hour + jiff::SignedDuration::from_hours(1);
        let mut url = format!(
            "{}/subscriptions/{}/providers/Microsoft.Commerce.Admin/subscriberUsageAggregates?api-version=2015-06-01-preview&reportedStartTime={}&reportedEndTime={}&aggregationGranularity=Hourly&subscriberId={subscriber}",
            self.access.admin_endpoint,
            self.access.provider_subscription,
            hour.strftime("%Y-%m-%dT%H:%M:%SZ"),
            end.strftime("%Y-%m-%dT%H:%M:%SZ"),
        );
        let mut rows = Vec::new();
        loop {
            // The nextLink goes out exactly as it came: never parsed and re-encoded.
            let target = reqwest::Url::parse(&url).map_err(|err| StackError::Unreachable {
                url: without_query(&url),
                message: format!("not a URL: {err}"),
            })?;
            let body = self
                .send(&url, true, |http| http.get(target.clone()))
                .await?;
            let page = UsagePage::parse(&body).map_err(|source| StackError::Wire {
                url: without_query(&url),
                source,
            })?;
            rows.extend(page.rows);
            match page.next_link {
                Some(next) => url = next,
                None => return Ok(rows),
            }
        }
    }
}

/// The code and message of an error answer: ARM's envelope, OAuth's, or the status.
fn error_of(body: &[u8], status: StatusCode) -> (String, String) {
    let value: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    if let Some(error) = value.get("error") {
        if let Some(code) = error.get("code").and_then(|c| c.as_str()) {
            let message = (error.get("message").and_then(|m| m.as_str())).unwrap_or_default();
            return (code.to_owned(), message.to_owned());
        }
        if let Some(code) = error.as_str() {
            let message =
                (value.get("error_description").and_then(|m| m.as_str())).unwrap_or_default();
            return (code.to_owned(), message.to_owned());
        }
    }
    let text = String::from_utf8_lossy(body);
    (
        status
            .canonical_reason()
            .unwrap_or("Error")
            .replace(' ', ""),
        text.chars().take(200).collect(),
    )
}
