//! How the CLI names a refusal: the same [`ErrorCode`] the API answers with, printed before
//! the message (`SubscriptionNotFound: subscription … does not exist`).

use stackbill_core::ErrorCode;
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
/// other failure with its chain of causes.
pub(crate) fn describe(err: &anyhow::Error) -> String {
    if let Some(refusal) = err.downcast_ref::<Refusal>() {
        return format!("{}: {refusal}", refusal.code);
    }
    let refusal = err
        .downcast_ref::<StoreError>()
        .and_then(|store| Some((store.code()?, store)));
    match refusal {
        Some((code, store)) => format!("{code}: {store}"),
        None => format!("{err:#}"),
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
}
