//! `stackbill serve`: the HTTP API with graceful shutdown, and the first admin token.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use stackbill_api::auth::{new_secret, new_token_id};
use stackbill_api::webhook_delivery::{DispatchSettings, Dispatcher};
use stackbill_api::{AppState, AuthConfig, hash_secret, router_with};
use stackbill_store::{NewToken, Role, SecretKeyring, Store, TokenGrant};

/// The environment variable that holds the admin token.
pub(crate) const ADMIN_TOKEN_ENV: &str = "STACKBILL_ADMIN_TOKEN";

/// Stores a new admin token and returns its secret.
pub(crate) async fn create_admin_token(store: &Store, name: &str) -> Result<String> {
    let secret = new_secret().map_err(|err| anyhow::anyhow!(err))?;
    let id = new_token_id().map_err(|err| anyhow::anyhow!(err))?;
    store
        .create_token(NewToken {
            id,
            grant: TokenGrant {
                role: Role::Admin,
                partner_id: None,
                cloud_id: None,
                tenant_id: None,
                name: name.to_owned(),
            },
            secret_sha256: hash_secret(&secret),
        })
        .await?;
    Ok(secret)
}

/// Who may call: the environment's admin token, or the stored ones. At the first start
/// without either, an admin token is created and printed once.
pub(crate) async fn auth_config(store: &Store) -> Result<AuthConfig> {
    let env_admin_sha256 = std::env::var(ADMIN_TOKEN_ENV)
        .ok()
        .filter(|token| !token.trim().is_empty())
        .map(|token| hash_secret(token.trim()));
    if env_admin_sha256.is_none() && !store.has_admin_token().await? {
        let secret = create_admin_token(store, "first admin").await?;
        eprintln!("created the first admin token (shown once; keep it safe):\n\n    {secret}\n");
    }
    Ok(AuthConfig { env_admin_sha256 })
}

/// How long requests in flight may take to finish after a shutdown signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// The socket to serve on, bound before anything else happens, so that a busy port fails
/// the command before it creates a database or a token.
pub(crate) fn bind(address: SocketAddr) -> Result<std::net::TcpListener> {
    std::net::TcpListener::bind(address).map_err(|err| {
        let hint = if err.kind() == std::io::ErrorKind::AddrInUse {
            ": another process listens there; stop it or choose another address with --listen"
        } else {
            ""
        };
        anyhow::anyhow!("cannot listen on {address}: {err}{hint}")
    })
}

/// Where and how to listen.
pub(crate) struct Listen {
    /// The socket, bound by [`bind`].
    pub(crate) listener: std::net::TcpListener,
    /// Certificate chain and key (PEM) to serve HTTPS with.
    pub(crate) tls: Option<(PathBuf, PathBuf)>,
    /// The externally visible base URL, for absolute links.
    pub(crate) public_url: Option<String>,
    /// How long a client may take to send a request's headers, and to send its first request
    /// on a new connection: a slow or silent client is disconnected after it.
    pub(crate) header_timeout: Duration,
}

/// The default of [`Listen::header_timeout`].
pub(crate) const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves until SIGTERM or Ctrl-C, then finishes the requests in flight.
pub(crate) async fn serve(
    store: Store,
    secrets: Arc<SecretKeyring>,
    auth: AuthConfig,
    listen: Listen,
    webhooks: Option<DispatchSettings>,
    ready: impl FnOnce(String),
) -> Result<()> {
    if stackbill_api::telemetry::metrics_handle().is_none() {
        tracing::warn!("serving without /metrics");
    }
    // Serving nodes deliver the webhook outbox (claims keep them from doubling up).
    let _stop_delivering = match webhooks {
        Some(settings) => {
            let dispatcher = Dispatcher::new(store.clone(), Arc::clone(&secrets), settings)
                .map_err(|err| anyhow::anyhow!(err))?;
            Some(AbortOnDrop(tokio::spawn(dispatcher.run())))
        }
        None => None,
    };
    let app = router_with(
        AppState {
            store: store.clone(),
            auth: Arc::new(auth),
            public_url: listen.public_url.clone(),
            https: listen.tls.is_some(),
            pages: Default::default(),
            secrets,
        },
        stackbill_console::pages(),
    );
    let listener = listen.listener;
    listener.set_nonblocking(true)?;
    let address = listener.local_addr()?;
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        stopper.graceful_shutdown(Some(DRAIN_TIMEOUT));
    });
    let Some((cert, key)) = listen.tls else {
        tracing::info!(%address, db = %store.location(), "serving http");
        ready(format!("http://{address}"));
        let mut server = axum_server::from_tcp(listener)?
            .handle(handle)
            .first_request_timeout(listen.header_timeout);
        limit_slow_clients(&mut server, listen.header_timeout);
        server.serve(app.into_make_service()).await?;
        tracing::info!("stopped");
        return Ok(());
    };
    let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(&cert, &key)
        .await
        .with_context(|| {
            format!(
                "cannot load the TLS certificate {} and key {}",
                cert.display(),
                key.display()
            )
        })?;
    tracing::info!(%address, db = %store.location(), "serving https");
    ready(format!("https://{address}"));
    let mut server = axum_server::from_tcp_rustls(listener, config)?
        .handle(handle)
        .first_request_timeout(listen.header_timeout);
    limit_slow_clients(&mut server, listen.header_timeout);
    server.serve(app.into_make_service()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Stops a background task when serving ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Bounds how long a client may take over a request's headers, and keep an idle connection:
/// the header timer also runs while a kept-alive connection waits for its next request.
fn limit_slow_clients<A: axum_server::Address, B>(
    server: &mut axum_server::Server<A, B>,
    header_timeout: Duration,
) {
    server
        .http_builder()
        .http1()
        .header_read_timeout(header_timeout)
        .max_buf_size(HTTP_BUFFER_BYTES);
}

/// The HTTP server's read buffer: room for the largest URI and headers the API reads
/// (`stackbill_api::MAX_URI_BYTES`, `MAX_HEADER_BYTES`), so that it answers an over-long one
/// itself, in the ARM envelope.
const HTTP_BUFFER_BYTES: usize =
    4 * (stackbill_api::MAX_URI_BYTES + stackbill_api::MAX_HEADER_BYTES);

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
