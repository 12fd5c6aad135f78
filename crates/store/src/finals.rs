//! Which months are final for whom: the `finalized_periods` rows as the core's
//! [`Finalizations`].

use stackbill_core::billing::{Finalizations, PartnerScope};

use crate::db::{Conn, instant, params, parse};
use crate::error::Result;

/// The finalizations recorded by `as_of` (`None`: all).
pub(crate) fn load_finalized(conn: &Conn<'_>, as_of: Option<i64>) -> Result<Finalizations> {
    conn.query_map(
        "SELECT period, partner_id, finalized_at FROM finalized_periods
         WHERE CAST(?1 AS BIGINT) IS NULL OR finalized_at <= ?1",
        params![as_of],
        |row| {
            let scope = scope_from_text(&row.get::<String>(1)?)?;
            Ok((parse(&row.get::<String>(0)?)?, scope, instant(row.get(2)?)?))
        },
    )
    .map(|rows| rows.into_iter().collect())
}

/// A partner scope as `finalized_periods` stores it: the partner id, empty for all, `-`
/// (which no partner id can be) for the subscriptions of no partner.
pub(crate) fn scope_text(scope: &PartnerScope) -> &str {
    match scope {
        PartnerScope::All => "",
        PartnerScope::Partner(partner) => partner.as_str(),
        PartnerScope::Unpartnered => "-",
    }
}

fn scope_from_text(text: &str) -> Result<PartnerScope> {
    Ok(match text {
        "" => PartnerScope::All,
        "-" => PartnerScope::Unpartnered,
        partner => PartnerScope::Partner(parse(partner)?),
    })
}
