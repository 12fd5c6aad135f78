//! Shared test helpers: a settable clock, a fresh store in a temporary directory, and the
//! real application router called in-process.

use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use jiff::Timestamp;
use serde_json::Value;
use stackbill_api::{AppState, AuthConfig, hash_secret, router};
use stackbill_core::Clock;
use stackbill_store::Store;
use tempfile::TempDir;
use tower::ServiceExt;

/// The admin token every test app accepts.
pub const ADMIN_TOKEN: &str = "test-admin-token";

/// A clock that stands still until a test moves it.
#[derive(Debug)]
pub struct FixedClock(Mutex<Timestamp>);

impl FixedClock {
    /// A clock reading `at`.
    pub fn new(at: &str) -> Arc<Self> {
        Arc::new(Self(Mutex::new(
            at.parse().expect("a valid RFC 3339 instant"),
        )))
    }

    /// Moves the clock to an instant.
    pub fn set_instant(&self, at: Timestamp) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = at;
    }

    /// Moves the clock to `at`.
    pub fn set(&self, at: &str) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) =
            at.parse().expect("a valid RFC 3339 instant");
    }
}

impl Clock for FixedClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A fresh store in its own temporary directory.
pub struct TestStore {
    /// The store.
    pub store: Store,
    /// The clock it reads.
    pub clock: Arc<FixedClock>,
    /// Holds the directory alive for the test's duration.
    pub dir: TempDir,
}

impl TestStore {
    /// Opens a fresh database with the clock at 2025-06-15T12:00:00Z.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let clock = FixedClock::new("2025-06-15T12:00:00Z");
        let store =
            Store::open(dir.path().join("stackbill.db"), clock.clone()).expect("the store opens");
        Self { store, clock, dir }
    }
}

impl Default for TestStore {
    fn default() -> Self {
        Self::new()
    }
}

/// The real application over a fresh store, called without a socket.
pub struct TestApp {
    /// The store behind it.
    pub db: TestStore,
    /// The application.
    pub router: Router,
}

/// An answer: status and JSON body (`Value::Null` when empty).
#[derive(Debug)]
pub struct Answer {
    /// The HTTP status.
    pub status: StatusCode,
    /// The parsed body.
    pub body: Value,
}

impl Answer {
    /// `error.code` of an ARM error answer.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    /// `error.target` of an ARM error answer.
    pub fn target(&self) -> &str {
        self.body["error"]["target"].as_str().unwrap_or("")
    }
}

/// The state of an app on `db` that accepts [`ADMIN_TOKEN`] over plain HTTP.
pub fn admin_state(db: &TestStore) -> AppState {
    AppState {
        store: db.store.clone(),
        auth: Arc::new(AuthConfig {
            env_admin_sha256: Some(hash_secret(ADMIN_TOKEN)),
        }),
        public_url: None,
        https: false,
    }
}

impl TestApp {
    /// A fresh app that accepts [`ADMIN_TOKEN`].
    pub fn new() -> Self {
        // Record metrics from the first app of the process on, as `serve` does.
        let _ = stackbill_api::telemetry::metrics_handle();
        let db = TestStore::new();
        Self {
            router: router(admin_state(&db)),
            db,
        }
    }

    /// Sends a request with the admin token; `body` is sent as JSON text when given.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.raw(
            method,
            path,
            Some(ADMIN_TOKEN),
            body.map(|b| b.to_string()),
            "application/json",
        )
        .await
    }

    /// Sends a request exactly as given.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<String>,
        content_type: &str,
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        if body.is_some() {
            request = request.header("content-type", content_type);
        }
        let request = request
            .body(body.map_or_else(Body::empty, Body::from))
            .expect("a valid request");
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("the router answers");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("a readable body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("every answer is JSON")
        };
        Answer { status, body }
    }

    /// GET with the admin token.
    pub async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, None).await
    }

    /// PUT a JSON body with the admin token.
    pub async fn put(&self, path: &str, body: Value) -> Answer {
        self.call(Method::PUT, path, Some(body)).await
    }

    /// DELETE with the admin token.
    pub async fn delete(&self, path: &str) -> Answer {
        self.call(Method::DELETE, path, None).await
    }
}

impl Default for TestApp {
    fn default() -> Self {
        Self::new()
    }
}
