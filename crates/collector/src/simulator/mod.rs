//! A simulated Azure Stack Hub admin API (`stackbill simulate-stack`): the metadata endpoint,
//! an Entra-style and an AD FS-style token endpoint that check the client secret, the user
//! subscriptions, and `subscriberUsageAggregates` in the shapes of the real recordings
//! (`tests/fixtures/`). Everything it serves follows from its seed: tenants, resources, the
//! quantities (doubles printed as .NET prints them: up to 17 significant digits, `E-05`
//! exponents), which reported hour carries each usage hour (most one hour late, some two,
//! a few in the same hour, some split across two windows), meter ids upper-case for storage
//! and lower-case for compute, `resourcegroups` spelt as storage spells it, and per-month
//! meters accruing 1/(hours in the month). [`SimStack::truth`] gives the exact totals it
//! serves, per tenant, meter and usage hour. At a fault rate, a share of answers are 429,
//! 500, 504 or a connection reset.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
mod http;

use axum::Router;
use axum::routing::{get, post};
use base64::Engine;
use jiff::Timestamp;
use serde_json::{Value, json};
use stackbill_core::period::{hour_number, hour_start};
use stackbill_core::total::Total;
use stackbill_core::{MeterId, Quantity, SubscriptionId, TenantId};

/// How the simulated stack signs users in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// Entra ID: tokens from `{login}/{directory}/oauth2/token`.
    Entra {
        /// The stack's home directory.
        directory: String,
    },
    /// AD FS: tokens from `{adfs}/oauth2/token`.
    Adfs,
}

/// What the simulated stack holds and how it behaves.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Everything served follows from it.
    pub seed: u64,
    /// User subscriptions, one tenant each.
    pub tenants: usize,
    /// The first usage hour.
    pub from: Timestamp,
    /// How many usage hours.
    pub hours: i64,
    /// The share of answers that fail (429, 500, 504 or a reset), 0 to 1.
    pub faults: f64,
    /// The identity system.
    pub identity: Identity,
    /// The service principal it accepts.
    pub client_id: String,
    /// Its secret.
    pub client_secret: String,
    /// The Default Provider Subscription.
    pub provider_subscription: SubscriptionId,
    /// How long a token lives.
    pub token_lifetime: Duration,
    /// Usage rows a page.
    pub page_size: usize,
    /// How many of the last tenants' subscriptions are not listed until [`SimStack::reveal`].
    pub hidden: usize,
    /// Whether it is served over HTTPS (the scheme of the links it gives).
    pub https: bool,
    /// The tenants' directories, in order, when they must be these (a demo's customers);
    /// the others follow from the seed.
    pub tenant_ids: Vec<TenantId>,
    /// Whether the first subscriber's answers also carry the rows of the subscriptions not
    /// listed yet (as a provider's answers may carry its delegated subscriptions').
    pub stray_hidden: bool,
    /// A certificate (DER) whose key's client assertions it accepts besides the secret.
    pub client_certificate: Option<Vec<u8>>,
}

impl SimOptions {
    /// A small stack of `tenants` for `hours` from `from`, no faults, Entra ID.
    pub fn new(seed: u64, tenants: usize, from: Timestamp, hours: i64) -> Self {
        Self {
            seed,
            tenants,
            from,
            hours,
            faults: 0.0,
            identity: Identity::Entra {
                directory: "5a000000-0000-4000-8000-00000000d1e0".to_owned(),
            },
            client_id: "stackbill-collector".to_owned(),
            client_secret: "simulated-secret".to_owned(),
            provider_subscription: guid(seed, 0, 0)
                .parse()
                .unwrap_or_else(|_| SubscriptionId::from_uuid(Default::default())),
            token_lifetime: Duration::from_secs(3599),
            page_size: 1000,
            hidden: 0,
            https: false,
            tenant_ids: Vec::new(),
            stray_hidden: false,
            client_certificate: None,
        }
    }
}

/// A GUID that follows from (seed, kind, n).
fn guid(seed: u64, kind: u64, n: u64) -> String {
    let mut rng = fastrand::Rng::with_seed(mix(&(seed, kind, n)));
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        rng.u32(..),
        rng.u16(..),
        rng.u16(..0x1000),
        rng.u16(..0x1000),
        rng.u64(..1 << 48)
    )
}

fn mix(value: &impl Hash) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

/// A meter a resource reports, as its resource provider spells it.
#[derive(Debug, Clone, Copy)]
struct SimMeter {
    id: &'static str,
    kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// GB*hours: any double, some tiny.
    Capacity,
    /// VM hours: one an hour, or a part of it.
    Hours,
    /// Cores × hours.
    Cores,
    /// Per month: 1/(hours in the month) an hour.
    PerMonth,
}

const STORAGE: [SimMeter; 3] = [
    SimMeter {
        id: "B5C15376-6C94-4FDD-B655-1A69D138ACA3",
        kind: Kind::Capacity,
    },
    SimMeter {
        id: "09F8879E-87E9-4305-A572-4B7BE209F857",
        kind: Kind::Capacity,
    },
    SimMeter {
        id: "B4438D5D-453B-4EE1-B42A-DC72E377F1E4",
        kind: Kind::Capacity,
    },
];
const VM: [SimMeter; 2] = [
    SimMeter {
        id: "6dab500f-a4fd-49c4-956d-229bb9c8c793",
        kind: Kind::Hours,
    },
    SimMeter {
        id: "fab6eb84-500b-4a09-a8ca-7358f8bbaea5",
        kind: Kind::Cores,
    },
];
const DISK: [SimMeter; 1] = [SimMeter {
    id: "d5f7731b-f639-404a-89d0-e46186e22c8d",
    kind: Kind::PerMonth,
}];

/// One resource of a tenant.
#[derive(Debug, Clone)]
struct Resource {
    uri: String,
    meters: &'static [SimMeter],
}

/// One user subscription and its tenant.
#[derive(Debug, Clone)]
struct Tenant {
    subscription: String,
    tenant: String,
    resources: Vec<Resource>,
}

/// One row the stack serves.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    tenant: usize,
    resource: usize,
    meter: &'static str,
    usage_hour: i64,
    quantity: String,
}

/// The simulated stack.
pub struct SimStack {
    options: SimOptions,
    tenants: Vec<Tenant>,
    audience: String,
    hidden: Mutex<BTreeSet<usize>>,
    tokens: Mutex<HashMap<String, Instant>>,
    requests: AtomicU64,
    tokens_issued: AtomicU64,
    faults_served: AtomicU64,
}

impl std::fmt::Debug for SimStack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimStack")
            .field("tenants", &self.tenants.len())
            .finish_non_exhaustive()
    }
}

/// Prints a double as the stack does (.NET's shortest round trip: exponents below 1e-4,
/// two exponent digits at least).
pub fn print_double(value: f64) -> String {
    if value != 0.0 && value.abs() < 1e-4 {
        let text = format!("{value:E}");
        match text.split_once('E') {
            Some((mantissa, exponent)) => {
                let (sign, digits) = exponent
                    .strip_prefix('-')
                    .map_or(("+", exponent), |d| ("-", d));
                format!("{mantissa}E{sign}{digits:0>2}")
            }
            None => text,
        }
    } else {
        format!("{value}")
    }
}

impl SimStack {
    /// The stack `options` describe.
    pub fn new(options: SimOptions) -> Self {
        let seed = options.seed;
        let tenants = (0..options.tenants as u64)
            .map(|n| {
                let subscription = guid(seed, 1, n);
                let mut rng = fastrand::Rng::with_seed(mix(&(seed, 2, n)));
                let mut resources = Vec::new();
                let group = format!("rg-{n}");
                resources.push(Resource {
                    uri: format!(
                        "/subscriptions/{subscription}/resourcegroups/{group}/providers/Microsoft.Storage/storageAccounts/sa{n}"
                    ),
                    meters: &STORAGE,
                });
                for vm in 0..rng.usize(1..=3) {
                    resources.push(Resource {
                        uri: format!(
                            "/subscriptions/{subscription}/resourceGroups/{group}/providers/Microsoft.Compute/virtualMachines/vm{vm}"
                        ),
                        meters: &VM,
                    });
                    resources.push(Resource {
                        uri: format!(
                            "/subscriptions/{subscription}/resourceGroups/{group}/providers/Microsoft.Compute/disks/vm{vm}-osdisk"
                        ),
                        meters: &DISK,
                    });
                }
                let tenant = (usize::try_from(n).ok())
                    .and_then(|n| options.tenant_ids.get(n))
                    .map_or_else(|| guid(seed, 3, n), ToString::to_string);
                Tenant {
                    subscription,
                    tenant,
                    resources,
                }
            })
            .collect();
        let hidden = (options.tenants.saturating_sub(options.hidden)..options.tenants).collect();
        Self {
            audience: format!("https://adminmanagement.sim.local/{}", guid(seed, 4, 0)),
            tenants,
            hidden: Mutex::new(hidden),
            tokens: Mutex::new(HashMap::new()),
            requests: AtomicU64::new(0),
            tokens_issued: AtomicU64::new(0),
            faults_served: AtomicU64::new(0),
            options,
        }
    }

    /// The options it was made with.
    pub fn options(&self) -> &SimOptions {
        &self.options
    }

    /// Lists the hidden subscriptions from now on.
    pub fn reveal(&self) {
        self.hidden
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Forgets every token issued: the next request with one is a 401, as after a key roll.
    pub fn revoke_tokens(&self) {
        self.tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Tokens issued so far.
    pub fn tokens_issued(&self) -> u64 {
        self.tokens_issued.load(Ordering::Relaxed)
    }

    /// Failed answers served so far (429, 500, 504, resets).
    pub fn faults_served(&self) -> u64 {
        self.faults_served.load(Ordering::Relaxed)
    }

    /// The user subscriptions and their tenants, listed or not.
    pub fn subscriptions(&self) -> Vec<(SubscriptionId, TenantId)> {
        (self.tenants.iter())
            .filter_map(|t| Some((t.subscription.parse().ok()?, t.tenant.parse().ok()?)))
            .collect()
    }

    /// The parts of one (resource, meter, usage hour): (reported hour, quantity text).
    fn parts(
        &self,
        tenant: usize,
        resource: usize,
        meter: SimMeter,
        hour: i64,
    ) -> Vec<(i64, String)> {
        let mut rng = fastrand::Rng::with_seed(mix(&(
            self.options.seed,
            5,
            tenant,
            resource,
            meter.id,
            hour,
        )));
        if rng.f64() < 0.05 {
            return Vec::new(); // not running that hour
        }
        let roll = rng.f64();
        let delay = if roll < 0.95 {
            1
        } else if roll < 0.99 {
            2
        } else {
            0
        };
        let split = rng.f64() < 0.1;
        let quantity = |rng: &mut fastrand::Rng| -> String {
            let value = match meter.kind {
                Kind::Capacity if rng.f64() < 0.2 => rng.f64() * 1e-4,
                Kind::Capacity => rng.f64() * 100.0,
                Kind::Hours if rng.f64() < 0.1 => rng.f64(),
                Kind::Hours => 1.0,
                Kind::Cores => {
                    f64::from(rng.u8(1..=8)) * if rng.f64() < 0.1 { rng.f64() } else { 1.0 }
                }
                Kind::PerMonth => {
                    let start = hour_start(hour).unwrap_or(Timestamp::UNIX_EPOCH);
                    let day = start.to_zoned(jiff::tz::TimeZone::UTC).date();
                    1.0 / (f64::from(day.days_in_month()) * 24.0)
                }
            };
            print_double(value)
        };
        let first = quantity(&mut rng);
        let mut parts = vec![(hour + delay, first)];
        if split {
            let second = quantity(&mut rng);
            parts.push((hour + delay + 1, second));
        }
        parts
    }

    /// Every row of a tenant reported in `reported_hour`.
    fn rows(&self, tenant: usize, reported_hour: i64) -> Vec<Row> {
        let first = hour_number(self.options.from);
        let last = first + self.options.hours;
        let mut rows = Vec::new();
        for usage_hour in (reported_hour - 3).max(first)..=reported_hour.min(last - 1) {
            for (r, resource) in self.tenants[tenant].resources.iter().enumerate() {
                for meter in resource.meters {
                    for (reported, quantity) in self.parts(tenant, r, *meter, usage_hour) {
                        if reported == reported_hour {
                            rows.push(Row {
                                tenant,
                                resource: r,
                                meter: meter.id,
                                usage_hour,
                                quantity,
                            });
                        }
                    }
                }
            }
        }
        rows
    }

    /// The exact totals the stack serves over all reported hours, per (tenant, meter, usage
    /// hour).
    pub fn truth(&self) -> BTreeMap<(TenantId, MeterId, Timestamp), Total> {
        let first = hour_number(self.options.from);
        let mut truth = BTreeMap::new();
        for (t, tenant) in self.tenants.iter().enumerate() {
            let Ok(tenant_id) = tenant.tenant.parse::<TenantId>() else {
                continue;
            };
            for hour in first..first + self.options.hours {
                for (r, resource) in tenant.resources.iter().enumerate() {
                    for meter in resource.meters {
                        for (_, text) in self.parts(t, r, *meter, hour) {
                            let (Ok(meter_id), Ok(quantity)) =
                                (meter.id.parse::<MeterId>(), Quantity::parse(&text))
                            else {
                                continue;
                            };
                            let start = hour_start(hour).unwrap_or(Timestamp::UNIX_EPOCH);
                            let sum: &mut Total = truth
                                .entry((tenant_id, meter_id, start))
                                .or_insert(Total::ZERO);
                            *sum = sum
                                .checked_add(Total::from_decimal(quantity.value()))
                                .unwrap_or(*sum);
                        }
                    }
                }
            }
        }
        truth
    }

    /// The truth as NDJSON, one line per (tenant, meter, usage hour).
    pub fn truth_ndjson(&self) -> String {
        let mut out = String::new();
        for ((tenant, meter, start), quantity) in self.truth() {
            out.push_str(
                &json!({"tenantId": tenant.to_string(), "meterId": meter.to_string(),
                        "usageStartTime": start.to_string(), "quantity": quantity.to_string()})
                .to_string(),
            );
            out.push('\n');
        }
        out
    }

    /// The router serving the admin API.
    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/metadata/endpoints", get(http::metadata))
            .route("/login/{directory}/oauth2/token", post(http::entra_token))
            .route("/adfs/oauth2/token", post(http::adfs_token))
            .route(
                "/subscriptions/{provider}/providers/Microsoft.Subscriptions.Admin/subscriptions",
                get(http::subscriptions),
            )
            .route(
                "/subscriptions/{provider}/providers/Microsoft.Commerce.Admin/subscriberUsageAggregates",
                get(http::usage),
            )
            .with_state(self)
    }

    fn issue_token(&self) -> (String, u64) {
        let n = self.tokens_issued.fetch_add(1, Ordering::Relaxed);
        let token = format!("sim-{:016x}", mix(&(self.options.seed, 6, n)));
        let lifetime = self.options.token_lifetime;
        self.tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(token.clone(), Instant::now() + lifetime);
        (token, lifetime.as_secs())
    }

    /// The refusal of a request without a live token, as ARM answers it.
    fn refuse_token(&self, headers: &HeaderMap) -> Option<Response> {
        let token = (headers.get(header::AUTHORIZATION))
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        let tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        match token.and_then(|token| tokens.get(token)) {
            Some(expires) if *expires > Instant::now() => None,
            _ if token.is_some() => Some(http::arm_error(
                StatusCode::UNAUTHORIZED,
                "ExpiredAuthenticationToken",
                "The access token has expired.",
            )),
            _ => Some(http::arm_error(
                StatusCode::UNAUTHORIZED,
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing or invalid.",
            )),
        }
    }

    /// Whether a client assertion is a live JWT of the client, signed RS256 by the key of
    /// the certificate it names by thumbprint.
    fn assertion_holds(&self, assertion: &str) -> bool {
        let Some(certificate) = &self.options.client_certificate else {
            return false;
        };
        let decode = |part: &str| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(part)
                .ok()
        };
        let parts: Vec<&str> = assertion.split('.').collect();
        let [header, claims, signature] = parts[..] else {
            return false;
        };
        let json = |part: &str| {
            decode(part).and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        };
        let (Some(header_json), Some(claims_json), Some(signature)) =
            (json(header), json(claims), decode(signature))
        else {
            return false;
        };
        let thumbprint = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, certificate);
        let x5t = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(thumbprint.as_ref());
        let now = Timestamp::now().as_second();
        let claims_hold = claims_json["iss"] == self.options.client_id.as_str()
            && claims_json["sub"] == self.options.client_id.as_str()
            && claims_json["exp"].as_i64().is_some_and(|exp| exp > now)
            && (claims_json["aud"].as_str()).is_some_and(|aud| aud.ends_with("/oauth2/token"));
        if header_json["alg"] != "RS256" || header_json["x5t"] != x5t.as_str() || !claims_hold {
            return false;
        }
        let der = rustls_pki_types::CertificateDer::from(certificate.as_slice());
        webpki::EndEntityCert::try_from(&der).is_ok_and(|cert| {
            cert.verify_signature(
                webpki::ring::RSA_PKCS1_2048_8192_SHA256,
                format!("{header}.{claims}").as_bytes(),
                &signature,
            )
            .is_ok()
        })
    }

    /// At the fault rate, a failed answer instead of the real one.
    fn fault(&self) -> Option<Response> {
        let n = self.requests.fetch_add(1, Ordering::Relaxed);
        let mut rng = fastrand::Rng::with_seed(mix(&(self.options.seed, 7, n)));
        if rng.f64() >= self.options.faults {
            return None;
        }
        self.faults_served.fetch_add(1, Ordering::Relaxed);
        Some(match rng.u8(0..4) {
            0 => {
                let mut answer = http::arm_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "TooManyRequests",
                    "The request is being throttled.",
                );
                answer
                    .headers_mut()
                    .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
                answer
            }
            1 => http::arm_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerError",
                "Encountered internal server error.",
            ),
            2 => http::arm_error(
                StatusCode::GATEWAY_TIMEOUT,
                "GatewayTimeout",
                "The gateway did not receive a response from 'Microsoft.Commerce.Admin' within the specified time period.",
            ),
            _ => {
                // A body that breaks off: the client sees the connection reset.
                let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
                    Ok(Bytes::from_static(b"{\"value\":[")),
                    Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionReset,
                        "simulated reset",
                    )),
                ];
                let mut answer =
                    Response::new(Body::from_stream(futures_util::stream::iter(chunks)));
                answer.headers_mut().insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static("application/json"),
                );
                answer
            }
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

    use super::*;

    #[test]
    fn doubles_print_as_the_stack_prints_them() {
        assert_eq!(print_double(1.52587890625e-5), "1.52587890625E-05");
        assert_eq!(print_double(16.461425899527967), "16.461425899527967");
        assert_eq!(print_double(1.0), "1");
        assert_eq!(print_double(1.0 / 744.0), "0.0013440860215053765");
    }

    #[test]
    fn the_same_seed_serves_the_same_stack() {
        let from: Timestamp = "2025-05-01T00:00:00Z".parse().unwrap();
        let a = SimStack::new(SimOptions::new(7, 3, from, 24));
        let b = SimStack::new(SimOptions::new(7, 3, from, 24));
        assert_eq!(a.truth(), b.truth());
        assert_eq!(
            a.rows(1, hour_number(from) + 5),
            b.rows(1, hour_number(from) + 5)
        );
        let c = SimStack::new(SimOptions::new(8, 3, from, 24));
        assert_ne!(a.truth(), c.truth());
        // Every usage hour of the range is reported in some window, split or late.
        let first = hour_number(from);
        let served: usize = (0..3)
            .map(|t| {
                (first..first + 28)
                    .map(|h| a.rows(t, h).len())
                    .sum::<usize>()
            })
            .sum();
        assert!(served >= a.truth().len());
    }
}
