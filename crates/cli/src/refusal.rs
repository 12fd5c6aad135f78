//! How the CLI names a refusal: the same [`ErrorCode`] the API answers with, printed before
//! the message (`SubscriptionNotFound: subscription … does not exist`).

use stackbill_core::{BillingModel, ErrorCode, RegistryError, TenantId};
use stackbill_store::StoreError;

/// A request the CLI refuses itself, such as a show of something that does not exist.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub(crate) struct Refusal {
    code: ErrorCode,
    message: String,
}

/// A refusal with `code`, as an error to return.
pub(crate) fn refused(code: ErrorCode, message: impl Into<String>) -> anyhow::Error {
    Refusal {
        code,
        message: message.into(),
    }
    .into()
}

/// The text printed for a failed command: a refusal's code first, as the API does; any
/// other failure with its chain of causes. A store's refusal names the command line's flags
/// where its message names the API's fields.
pub(crate) fn describe(err: &anyhow::Error) -> String {
    if let Some(refusal) = err.downcast_ref::<Refusal>() {
        return format!("{}: {refusal}", refusal.code);
    }
    let refusal = err
        .downcast_ref::<StoreError>()
        .and_then(|store| Some((store.code()?, store)));
    match refusal {
        Some((code, store)) => format!("{code}: {}", with_flags(&store.to_string())),
        None => format!("{err:#}"),
    }
}

/// The API's field names and the command line's flags for them.
const FLAGS: &[(&str, &str)] = &[
    ("customerTenantId", "--customer-tenant"),
    ("partnerId", "--partner"),
    ("markupPercent", "--markup-percent"),
    ("offerType", "--offer-type"),
    ("billingModel", "--billing-model"),
    ("displayName", "--display-name"),
    ("effectiveFrom", "--effective-from"),
    ("legalName", "--legal-name"),
    ("taxId", "--tax-id"),
    ("invoicePrefix", "--invoice-prefix"),
    ("taxRatePercent", "--tax-rate"),
];

/// `message` with each API field name it holds as a word replaced by its flag.
fn with_flags(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for (i, word) in message.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let bare = word.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
        match FLAGS.iter().find(|(field, _)| *field == bare) {
            Some((_, flag)) => {
                out.push_str(flag);
                out.push_str(&word[bare.len()..]);
            }
            None => out.push_str(word),
        }
    }
    out
}

/// What `registration add` should say when the store refuses it: the next step, in commands.
pub(crate) fn registration_add(err: StoreError, billing_model: BillingModel) -> anyhow::Error {
    match err {
        StoreError::Rule(RegistryError::InvalidCustomerSubscriptionId { subscription, .. }) => {
            refused(
                ErrorCode::InvalidCustomerSubscriptionId,
                format!(
                    "the default subscription {subscription} does not exist; add it first: \
                     `stackbill subscription add {subscription} --offer-type CSPSS --partner \
                     PARTNER` (CSP or CSPSS for a {billing_model} registration that bills \
                     tenants separately)"
                ),
            )
        }
        StoreError::Rule(RegistryError::CustomerSubscriptionsNotAllowed { registration }) => {
            refused(
                ErrorCode::CustomerSubscriptionsNotAllowed,
                format!(
                    "registration '{registration}' still maps tenants to customer subscriptions, \
                     and a Capacity registration cannot; remove them first (`stackbill tenant \
                     list {registration}`, then `stackbill tenant remove {registration} \
                     --subscription ID` for each), then switch"
                ),
            )
        }
        other => other.into(),
    }
}

/// What `tenant add` should say when the store refuses it: the next step, in commands.
pub(crate) fn tenant_add(err: StoreError, tenant: TenantId) -> anyhow::Error {
    match err {
        StoreError::Rule(RegistryError::InvalidCustomerSubscriptionId { subscription, .. }) => {
            refused(
                ErrorCode::InvalidCustomerSubscriptionId,
                format!(
                    "subscription {subscription} does not exist; add the customer's CSP \
                     subscription first: `stackbill subscription add {subscription} \
                     --offer-type CSP --partner PARTNER --customer-tenant {tenant}`"
                ),
            )
        }
        StoreError::Rule(RegistryError::CustomerSubscriptionsNotAllowed { registration }) => {
            refused(
                ErrorCode::CustomerSubscriptionsNotAllowed,
                format!(
                    "registration '{registration}' bills by capacity, so its tenants cannot \
                     be billed separately; to map them, re-register it pay-as-you-use: \
                     `stackbill registration add {registration} --cloud-id … --subscription … \
                     --billing-model PayAsYouUse`"
                ),
            )
        }
        other => other.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_print_their_code_first() {
        let err = refused(ErrorCode::InvoiceNotFound, "no invoice");
        assert_eq!(describe(&err), "InvoiceNotFound: no invoice");
        let err = anyhow::Error::from(StoreError::UnknownPartner("p1".parse().unwrap()));
        assert_eq!(
            describe(&err),
            "UnknownPartner: partner 'p1' does not exist; create it first"
        );
        let err = anyhow::anyhow!("disk full").context("cannot write");
        assert_eq!(describe(&err), "cannot write: disk full");
    }

    #[test]
    fn store_refusals_name_flags_not_fields() {
        let err = anyhow::Error::from(StoreError::InvalidSubscription(
            stackbill_core::directory::SubscriptionError::CustomerTenantRequired,
        ));
        assert_eq!(
            describe(&err),
            "InvalidSubscription: a CSP subscription needs the customer's directory in \
             --customer-tenant"
        );
        assert_eq!(with_flags("needs a partnerId."), "needs a --partner.");
        assert_eq!(with_flags("partnerIdentity"), "partnerIdentity");
    }
}
