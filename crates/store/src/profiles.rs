//! Billing profiles, versioned: every change is a new row of `billing_profiles`, the one
//! recorded last is current, and an as-of read (a final invoice's document) takes the last one
//! recorded by then.

use jiff::Timestamp;
use rust_decimal::Decimal;
use stackbill_core::profile::{BillingProfile, ProfileOwner};

use crate::db::{Conn, micros, params};
use crate::error::{Result, StoreError};
use crate::store::Store;

impl Store {
    /// Records a new version of a partner's or a subscription's profile, which must exist.
    pub async fn put_profile(
        &self,
        owner: ProfileOwner,
        id: String,
        profile: BillingProfile,
    ) -> Result<()> {
        profile.validate(owner)?;
        self.write(move |tx, now| {
            let (table, key) = match owner {
                ProfileOwner::Partner => ("partners", "partner_id"),
                ProfileOwner::Subscription => ("subscriptions", "subscription_id"),
            };
            if !tx.exists(
                &format!("SELECT 1 FROM {table} WHERE {key} = ?1"),
                params![id.as_str()],
            )? {
                return Err(match owner {
                    ProfileOwner::Partner => StoreError::UnknownPartner(crate::db::parse(&id)?),
                    ProfileOwner::Subscription => {
                        StoreError::UnknownSubscription(crate::db::parse(&id)?)
                    }
                });
            }
            let address = (!profile.address.is_empty()).then(|| profile.address.join("\n"));
            tx.execute(
                "INSERT INTO billing_profiles (owner_kind, owner_id, legal_name, address, country,
                 tax_id, invoice_prefix, tax_rate_percent, recorded_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    owner.as_str(),
                    id.as_str(),
                    profile.legal_name.as_deref(),
                    address.as_deref(),
                    profile.country.as_deref(),
                    profile.tax_id.as_deref(),
                    profile.invoice_prefix.as_deref(),
                    profile
                        .tax_rate_percent
                        .map(|r| crate::db::Num(r.normalize())),
                    micros(now)
                ],
            )?;
            Ok(())
        })
        .await
    }

    /// A profile as it stands now, or as it stood at `as_of`; `None` when none was recorded.
    pub async fn profile(
        &self,
        owner: ProfileOwner,
        id: String,
        as_of: Option<Timestamp>,
    ) -> Result<Option<BillingProfile>> {
        self.read(move |conn| load_profile(conn, owner, &id, as_of.map(micros)))
            .await
    }
}

/// The last version of a profile recorded by `as_of` (`None`: the last one).
pub(crate) fn load_profile(
    conn: &Conn<'_>,
    owner: ProfileOwner,
    id: &str,
    as_of: Option<i64>,
) -> Result<Option<BillingProfile>> {
    conn.query_opt(
        "SELECT legal_name, address, country, tax_id, invoice_prefix, tax_rate_percent
         FROM billing_profiles
         WHERE owner_kind = ?1 AND owner_id = ?2
           AND (CAST(?3 AS BIGINT) IS NULL OR recorded_at <= ?3)
         ORDER BY version_id DESC LIMIT 1",
        params![owner.as_str(), id, as_of],
        |row| {
            let address: Option<String> = row.get(1)?;
            Ok(BillingProfile {
                legal_name: row.get(0)?,
                address: address.map_or_else(Vec::new, |text| {
                    text.split('\n').map(str::to_owned).collect()
                }),
                country: row.get(2)?,
                tax_id: row.get(3)?,
                invoice_prefix: row.get(4)?,
                tax_rate_percent: row.get::<Option<Decimal>>(5)?,
            })
        },
    )
}

/// Each subscription's tax rate, as its profile recorded by `as_of` (`None`: the last one)
/// gives it; subscriptions without one are absent.
pub(crate) fn tax_rates(
    conn: &Conn<'_>,
    as_of: Option<i64>,
) -> Result<std::collections::HashMap<String, Decimal>> {
    let rows = conn.query_map(
        "SELECT p.owner_id, p.tax_rate_percent FROM billing_profiles p
         WHERE p.owner_kind = 'subscription'
           AND p.version_id = (SELECT MAX(q.version_id) FROM billing_profiles q
                               WHERE q.owner_kind = 'subscription' AND q.owner_id = p.owner_id
                                 AND (CAST(?1 AS BIGINT) IS NULL OR q.recorded_at <= ?1))
           AND p.tax_rate_percent IS NOT NULL",
        params![as_of],
        |row| Ok((row.get::<String>(0)?, row.get::<Decimal>(1)?)),
    )?;
    Ok(rows.into_iter().collect())
}

/// Takes the next invoice number of `partner` (`None`: the subscriptions of no partner) for
/// `year`, in the caller's transaction: `{prefix}-{YYYY}-{NNNNNN}` with the partner's prefix
/// as its profile stands.
pub(crate) fn next_invoice_number(
    conn: &Conn<'_>,
    partner: Option<&str>,
    year: i16,
) -> Result<String> {
    let profile = match partner {
        Some(partner) => load_profile(conn, ProfileOwner::Partner, partner, None)?,
        None => None,
    };
    let sequence: i64 = conn.query_one(
        "INSERT INTO invoice_sequences (partner_id, year, last_number) VALUES (?1, ?2, 1)
         ON CONFLICT (partner_id, year) DO UPDATE
         SET last_number = invoice_sequences.last_number + 1
         RETURNING last_number",
        params![partner.unwrap_or(""), i64::from(year)],
        |row| row.get(0),
    )?;
    Ok(stackbill_core::profile::invoice_number(
        profile
            .as_ref()
            .map_or(stackbill_core::profile::DEFAULT_INVOICE_PREFIX, |p| {
                p.prefix()
            }),
        year,
        u64::try_from(sequence).unwrap_or_default(),
    ))
}
