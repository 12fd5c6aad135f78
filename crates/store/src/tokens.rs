//! API tokens: only a SHA-256 of each secret is stored, never the secret.

use crate::db::{Row, instant, micros, params, parse_opt};
use jiff::Timestamp;
use stackbill_core::{CloudId, PartnerId, TenantId};

use crate::error::Result;
use crate::store::Store;

/// What a token may do (SPEC §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Everything.
    Admin,
    /// One partner's objects.
    Partner,
    /// Forwarding one stack's usage.
    Stack,
    /// Seeing one tenant's registration status.
    Customer,
}

impl Role {
    /// The stored and wire spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Partner => "partner",
            Self::Stack => "stack",
            Self::Customer => "customer",
        }
    }

    /// Parses the stored and wire spelling.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Admin, Self::Partner, Self::Stack, Self::Customer]
            .into_iter()
            .find(|role| role.as_str() == text)
    }
}

/// What a token grants: a role and its scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenGrant {
    /// Its role.
    pub role: Role,
    /// The partner scope of a partner token.
    pub partner_id: Option<PartnerId>,
    /// The stack scope of a stack token.
    pub cloud_id: Option<CloudId>,
    /// The tenant scope of a customer token.
    pub tenant_id: Option<TenantId>,
    /// A label for people.
    pub name: String,
}

/// A token to store.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// Its public id (not secret).
    pub id: String,
    /// What it grants.
    pub grant: TokenGrant,
    /// SHA-256 of the secret.
    pub secret_sha256: [u8; 32],
}

/// A stored token, without its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// Its public id.
    pub id: String,
    /// What it grants.
    pub grant: TokenGrant,
    /// When it was created.
    pub created_at: Timestamp,
}

impl Store {
    /// Stores a new token.
    pub async fn create_token(&self, token: NewToken) -> Result<TokenRecord> {
        self.write(move |tx, now| {
            tx.execute(
                "INSERT INTO tokens (token_id, role, partner_id, cloud_id, tenant_id, name,
                 secret_sha256, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    token.id,
                    token.grant.role.as_str(),
                    token.grant.partner_id.as_ref().map(PartnerId::as_str),
                    token.grant.cloud_id.map(|c| c.to_string()),
                    token.grant.tenant_id.map(|t| t.to_string()),
                    token.grant.name,
                    token.secret_sha256.as_slice(),
                    micros(now),
                ],
            )?;
            Ok(TokenRecord {
                id: token.id,
                grant: token.grant,
                created_at: now,
            })
        })
        .await
    }

    /// The live token whose secret hashes to `secret_sha256`.
    pub async fn token_by_secret(&self, secret_sha256: [u8; 32]) -> Result<Option<TokenRecord>> {
        self.read(move |conn| {
            conn.query_opt(
                "SELECT token_id, role, partner_id, cloud_id, tenant_id, name, created_at FROM
                 tokens
                 WHERE secret_sha256 = ?1 AND revoked_at IS NULL",
                params![secret_sha256.as_slice()],
                record,
            )
        })
        .await
    }

    /// Whether any live admin token is stored.
    pub async fn has_admin_token(&self) -> Result<bool> {
        self.read(|conn| {
            conn.exists(
                "SELECT 1 FROM tokens WHERE role = 'admin' AND revoked_at IS NULL LIMIT 1",
                params![],
            )
        })
        .await
    }
}

impl Store {
    /// Live tokens by creation, optionally only those belonging to one partner.
    pub async fn tokens(&self, partner: Option<PartnerId>) -> Result<Vec<TokenRecord>> {
        self.read(move |conn| {
            conn.query_map(
                "SELECT token_id, role, partner_id, cloud_id, tenant_id, name, created_at FROM
                 tokens
                 WHERE revoked_at IS NULL AND (CAST(?1 AS TEXT) IS NULL OR partner_id = ?1)
                 ORDER BY created_at, token_id",
                params![partner.as_ref().map(PartnerId::as_str)],
                record,
            )
        })
        .await
    }

    /// Revokes a live token; `false` when there is no such live token.
    pub async fn revoke_token(&self, id: String) -> Result<bool> {
        self.write(move |tx, now| {
            let changed = tx.execute(
                "UPDATE tokens SET revoked_at = ?1 WHERE token_id = ?2 AND revoked_at IS NULL",
                params![micros(now), id],
            )?;
            Ok(changed == 1)
        })
        .await
    }
}

/// A token row: token_id, role, partner_id, cloud_id, tenant_id, name, created_at.
fn record(row: &Row<'_>) -> Result<TokenRecord> {
    let role: String = row.get(1)?;
    let role = Role::parse(&role)
        .ok_or_else(|| crate::StoreError::corrupt(format!("token role '{role}'")))?;
    Ok(TokenRecord {
        id: row.get(0)?,
        grant: TokenGrant {
            role,
            partner_id: parse_opt(row.get::<Option<String>>(2)?.as_deref())?,
            cloud_id: parse_opt(row.get::<Option<String>>(3)?.as_deref())?,
            tenant_id: parse_opt(row.get::<Option<String>>(4)?.as_deref())?,
            name: row.get(5)?,
        },
        created_at: instant(row.get(6)?)?,
    })
}
