//! `partner profile` and `subscription profile`: show a billing profile, or change the fields
//! given (the others are kept) as a new version.

use anyhow::Result;
use rust_decimal::Decimal;
use stackbill_api::profiles::ProfileDto;
use stackbill_core::profile::{BillingProfile, ProfileOwner};

use stackbill_store::Store;

use crate::cli::{OutputArgs, ProfileFields};
use crate::output;
use crate::output::outln;
use crate::refusal::refused;

/// The fields `--unset` names.
const UNSETTABLE: &[&str] = &[
    "legal-name",
    "address",
    "country",
    "tax-id",
    "invoice-prefix",
    "tax-rate",
];

/// What one `profile` command asks for.
pub(crate) struct ProfileCommand {
    pub(crate) owner: ProfileOwner,
    pub(crate) id: String,
    pub(crate) fields: ProfileFields,
    pub(crate) invoice_prefix: Option<String>,
    pub(crate) tax_rate: Option<Decimal>,
    pub(crate) output: OutputArgs,
}

impl ProfileCommand {
    fn changes_anything(&self) -> bool {
        let f = &self.fields;
        f.legal_name.is_some()
            || !f.address.is_empty()
            || f.country.is_some()
            || f.tax_id.is_some()
            || !f.unset.is_empty()
            || self.invoice_prefix.is_some()
            || self.tax_rate.is_some()
    }
}

/// Runs `command` on `store`.
pub(crate) async fn run(store: Store, command: ProfileCommand) -> Result<()> {
    let exists = match command.owner {
        ProfileOwner::Partner => store.partner(command.id.parse()?).await?.is_some(),
        ProfileOwner::Subscription => store.subscription(command.id.parse()?).await?.is_some(),
    };
    if !exists {
        let (code, what) = match command.owner {
            ProfileOwner::Partner => (stackbill_core::ErrorCode::PartnerNotFound, "partner"),
            ProfileOwner::Subscription => (
                stackbill_core::ErrorCode::SubscriptionNotFound,
                "subscription",
            ),
        };
        return Err(refused(
            code,
            format!("{what} {} does not exist", command.id),
        ));
    }
    let current = store
        .profile(command.owner, command.id.clone(), command.fields.as_of)
        .await?
        .unwrap_or_default();
    let profile = if command.changes_anything() {
        let changed = apply(current, &command)?;
        store
            .put_profile(command.owner, command.id.clone(), changed.clone())
            .await?;
        if !command.output.json {
            eprintln!(
                "{} {}'s billing profile updated",
                command.owner.as_str(),
                command.id
            );
        }
        changed
    } else {
        current
    };
    if command.output.json {
        return output::json(&ProfileDto::from(profile));
    }
    let rows = [
        ("legal name", profile.legal_name.clone().unwrap_or_default()),
        ("address", profile.address.join(", ")),
        ("country", profile.country.clone().unwrap_or_default()),
        ("tax id", profile.tax_id.clone().unwrap_or_default()),
    ];
    for (label, value) in rows {
        outln!(
            "{label:<15} {}",
            if value.is_empty() { "-" } else { &value }
        )?;
    }
    let last = match command.owner {
        ProfileOwner::Partner => ("invoice prefix", profile.prefix().to_owned()),
        ProfileOwner::Subscription => (
            "tax rate %",
            profile
                .tax_rate_percent
                .map_or_else(|| "-".to_owned(), |r| r.normalize().to_string()),
        ),
    };
    outln!("{:<15} {}", last.0, last.1)?;
    Ok(())
}

/// `current` with the command's flags applied: `--unset` first, then the values given.
fn apply(mut profile: BillingProfile, command: &ProfileCommand) -> Result<BillingProfile> {
    for field in &command.fields.unset {
        match field.as_str() {
            "legal-name" => profile.legal_name = None,
            "address" => profile.address.clear(),
            "country" => profile.country = None,
            "tax-id" => profile.tax_id = None,
            "invoice-prefix" => profile.invoice_prefix = None,
            "tax-rate" => profile.tax_rate_percent = None,
            other => {
                return Err(refused(
                    stackbill_core::ErrorCode::InvalidBillingProfile,
                    format!(
                        "--unset: '{other}' is not a field; one of {}",
                        UNSETTABLE.join(", ")
                    ),
                ));
            }
        }
    }
    let fields = &command.fields;
    if fields.legal_name.is_some() {
        profile.legal_name.clone_from(&fields.legal_name);
    }
    if !fields.address.is_empty() {
        profile.address.clone_from(&fields.address);
    }
    if let Some(country) = &fields.country {
        profile.country = Some(country.to_ascii_uppercase());
    }
    if fields.tax_id.is_some() {
        profile.tax_id.clone_from(&fields.tax_id);
    }
    if command.invoice_prefix.is_some() {
        profile.invoice_prefix.clone_from(&command.invoice_prefix);
    }
    if command.tax_rate.is_some() {
        profile.tax_rate_percent = command.tax_rate;
    }
    Ok(profile)
}
