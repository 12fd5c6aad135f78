//! Shared test helpers: a settable clock, a fresh store in a temporary directory, the real
//! application router called in-process, and domain [`fixtures`].

pub mod fixtures;

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

/// The environment variable naming the PostgreSQL server the tests run against (an admin
/// URL, e.g. `postgres://postgres@127.0.0.1:5432/postgres`). Unset: the tests use SQLite files.
pub const POSTGRES_ENV: &str = "STACKBILL_TEST_POSTGRES";

/// The PostgreSQL server the tests run against, if any.
pub fn postgres_admin_url() -> Option<String> {
    std::env::var(POSTGRES_ENV)
        .ok()
        .filter(|url| !url.trim().is_empty())
}

/// Runs `sql` on the server at `url`, from a thread of its own (callers may be inside a
/// runtime, or not).
pub fn postgres_execute(url: &str, sql: &str) -> Result<(), String> {
    postgres_query(url, sql).map(drop)
}

/// The rows `sql` (one statement or several) returns on the server at `url`, each column as
/// text; from a thread of its own.
pub fn postgres_query(url: &str, sql: &str) -> Result<Vec<Vec<Option<String>>>, String> {
    let mut session = PostgresSession::open(url, sql)?;
    Ok(std::mem::take(&mut session.rows))
}

/// A session on a PostgreSQL server that has run some SQL and stays open, with any
/// transaction that SQL began and the locks it took, until dropped (then it disconnects, so
/// the transaction rolls back).
pub struct PostgresSession {
    /// The rows the SQL returned, each column as text.
    pub rows: Vec<Vec<Option<String>>>,
    release: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PostgresSession {
    /// Connects to `url` and runs `sql` (simple query protocol: several statements may
    /// follow one another), from a thread of its own.
    pub fn open(url: &str, sql: &str) -> Result<Self, String> {
        let (url, sql) = (url.to_owned(), sql.to_owned());
        let (ran, result) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(err) => return drop(ran.send(Err(err.to_string()))),
            };
            runtime.block_on(async {
                let (client, connection) =
                    match tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
                        Ok(connected) => connected,
                        Err(err) => {
                            return drop(ran.send(Err(format!("cannot connect to {url}: {err}"))));
                        }
                    };
                let driver = tokio::spawn(connection);
                let rows = client.simple_query(&sql).await.map_err(|err| {
                    let detail = err.as_db_error().map(|db| db.message().to_owned());
                    format!("{sql}: {}", detail.unwrap_or_else(|| err.to_string()))
                });
                let rows = rows.map(|messages| {
                    messages
                        .iter()
                        .filter_map(|message| match message {
                            tokio_postgres::SimpleQueryMessage::Row(row) => Some(
                                (0..row.len())
                                    .map(|n| row.get(n).map(str::to_owned))
                                    .collect(),
                            ),
                            _ => None,
                        })
                        .collect()
                });
                let _ = ran.send(rows);
                // Hold the session (the driver needs no polling while nothing is asked).
                let _ = released.recv();
                drop(client);
                let _ = driver.await;
            });
        });
        let rows = result
            .recv()
            .map_err(|_| "the PostgreSQL session thread stopped".to_owned())??;
        Ok(Self {
            rows,
            release: Some(release),
            thread: Some(thread),
        })
    }
}

impl Drop for PostgresSession {
    fn drop(&mut self) {
        drop(self.release.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A database of its own for one test: a file in a temporary directory, or, when
/// [`POSTGRES_ENV`] is set, a new database on that server (dropped with this value).
pub struct TestDb {
    /// Holds the directory alive for the test's duration.
    pub dir: TempDir,
    /// The database: a file path or a `postgres://` URL.
    pub location: String,
    /// The new database's name and the admin URL, for PostgreSQL.
    postgres: Option<(String, String)>,
}

impl TestDb {
    /// A fresh, empty database.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        match postgres_admin_url() {
            Some(admin) => {
                let name = format!("t_{}", uuid::Uuid::new_v4().simple());
                postgres_execute(&admin, &format!("CREATE DATABASE {name}"))
                    .expect("the test database is created");
                let (base, _) = admin
                    .rsplit_once('/')
                    .expect("an admin URL with a database");
                Self {
                    dir,
                    location: format!("{base}/{name}"),
                    postgres: Some((name, admin)),
                }
            }
            None => {
                let location = dir.path().join("stackbill.db").display().to_string();
                Self {
                    dir,
                    location,
                    postgres: None,
                }
            }
        }
    }

    /// Whether this is a PostgreSQL database.
    pub fn is_postgres(&self) -> bool {
        self.postgres.is_some()
    }

    /// The `stackbill` command-line arguments that select this database.
    pub fn args(&self) -> [&str; 2] {
        if self.is_postgres() {
            ["--database-url", &self.location]
        } else {
            ["--db", &self.location]
        }
    }

    /// Opens the database with `clock`.
    pub fn open(&self, clock: Arc<dyn Clock>) -> Store {
        Store::open_location(&self.location, clock).expect("the store opens")
    }
}

impl Default for TestDb {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((name, admin)) = &self.postgres {
            let _ = postgres_execute(
                admin,
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            );
        }
    }
}

/// A fresh store of its own: a SQLite file, or a PostgreSQL database when
/// [`POSTGRES_ENV`] is set.
pub struct TestStore {
    /// The store.
    pub store: Store,
    /// The clock it reads.
    pub clock: Arc<FixedClock>,
    /// The database (and the temporary directory beside it).
    pub db: TestDb,
}

impl TestStore {
    /// Opens a fresh database with the clock at 2025-06-15T12:00:00Z.
    pub fn new() -> Self {
        let db = TestDb::new();
        let clock = FixedClock::new("2025-06-15T12:00:00Z");
        let store = db.open(clock.clone());
        Self { store, clock, db }
    }

    /// The temporary directory of the test.
    pub fn dir(&self) -> &std::path::Path {
        self.db.dir.path()
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

/// An answer: status and JSON body (`Value::Null` when empty; a file's text as a string).
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

    /// The status and `error.code`, to compare with an expected refusal in one assertion.
    pub fn error(&self) -> (u16, &str) {
        (self.status.as_u16(), self.code())
    }

    /// The status, `error.code` and `error.target`.
    pub fn error_at(&self) -> (u16, &str, &str) {
        (self.status.as_u16(), self.code(), self.target())
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
        pages: Default::default(),
        secrets: Arc::new(stackbill_store::SecretKeyring::new(
            db.dir().join("secret.key"),
        )),
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
        let json = response
            .headers()
            .get("content-type")
            .is_none_or(|kind| kind.as_bytes().starts_with(b"application/json"));
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("a readable body");
        let body = if bytes.is_empty() {
            Value::Null
        } else if json {
            serde_json::from_slice(&bytes).expect("every JSON answer parses")
        } else {
            // A file (CSV, PDF): its text, for tests that only look at the status.
            Value::String(String::from_utf8_lossy(&bytes).into_owned())
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

    /// Sends a request with `token`; `body` is sent as JSON text when given.
    pub async fn call_as(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Answer {
        self.raw(
            method,
            path,
            Some(token),
            body.map(|b| b.to_string()),
            "application/json",
        )
        .await
    }

    /// Creates a token with the admin token (`{"role", "partnerId"?, "cloudId"?, ...}`) and
    /// answers its secret.
    pub async fn token(&self, grant: Value) -> String {
        let created = self.call(Method::POST, "/v1/tokens", Some(grant)).await;
        assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
        created.body["token"]
            .as_str()
            .expect("a token secret")
            .to_owned()
    }
}

impl Default for TestApp {
    fn default() -> Self {
        Self::new()
    }
}
