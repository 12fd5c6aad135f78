//! What every handler reaches: the store and who may call. A leaf module, so that the
//! router (`app.rs`), the handlers and authentication all depend on it and not on each other.

use std::sync::Arc;

use stackbill_store::Store;

use crate::usage_pages::UsagePages;

/// What every handler can reach.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The database.
    pub store: Store,
    /// Who may call.
    pub auth: Arc<AuthConfig>,
    /// The externally visible base URL (scheme, host, port, path prefix) for absolute
    /// `nextLink`s; `None`: built from the request's `Host`.
    pub public_url: Option<String>,
    /// Whether this server speaks HTTPS (the scheme of links built from `Host`).
    pub https: bool,
    /// The Commerce usage listings kept between their pages.
    pub pages: UsagePages,
    /// The key that seals collectors' secrets given as values.
    pub secrets: Arc<stackbill_store::SecretKeyring>,
}

/// Who may call the API besides the tokens in the store.
#[derive(Clone, Default)]
pub struct AuthConfig {
    /// SHA-256 of the admin token given by `STACKBILL_ADMIN_TOKEN`, if any.
    pub env_admin_sha256: Option<[u8; 32]>,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field(
                "env_admin_sha256",
                &self.env_admin_sha256.map(|_| "[redacted]"),
            )
            .finish()
    }
}
