//! The directory: partners, billing subscriptions and registrations (SPEC §1).

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;

use crate::error_code::ErrorCode;
use crate::ids::{CloudId, PartnerId, RateCardName, RegistrationName, SubscriptionId, TenantId};

/// A closed set of words parsed from text, with the accepted spellings listed in errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{value}' is not a valid {kind}; expected one of: {expected}")]
pub struct UnknownVariant {
    /// What was being parsed.
    pub kind: &'static str,
    /// The rejected text.
    pub value: String,
    /// The accepted spellings, comma separated.
    pub expected: &'static str,
}

macro_rules! word_enum {
    ($(#[$doc:meta])* $name:ident, $kind:literal, { $($(#[$vdoc:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The canonical spelling.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }
        }

        /// Case-insensitive, as Azure compares these words.
        impl FromStr for $name {
            type Err = UnknownVariant;

            fn from_str(value: &str) -> Result<Self, Self::Err> {
                $(if value.eq_ignore_ascii_case($text) {
                    return Ok(Self::$variant);
                })+
                Err(UnknownVariant {
                    kind: $kind,
                    value: value.chars().take(80).collect(),
                    expected: concat!($($text, " "),+),
                })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

word_enum!(
    /// The offer a billing subscription was bought under.
    OfferType, "offerType", {
        /// Cloud Solution Provider: a customer's subscription, billed to its partner.
        Csp => "CSP",
        /// CSP shared services (Azure Partner Shared Services): the partner's own subscription.
        Cspss => "CSPSS",
        /// Enterprise Agreement.
        Ea => "EA",
        /// Pay as you go.
        Payg => "PAYG",
    }
);

word_enum!(
    /// How a stack is licensed (SPEC §1, reference §1.6).
    BillingModel, "billingModel", {
        /// Connected, billed by usage; the only model that may add tenants.
        PayAsYouUse => "PayAsYouUse",
        /// Capacity licensing, possibly disconnected; no customer subscriptions.
        Capacity => "Capacity",
        /// Development kits: usage reported, not charged.
        Development => "Development",
    }
);

/// A CSP partner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partner {
    /// The key.
    pub id: PartnerId,
    /// Display name.
    pub name: String,
}

/// A billing subscription, the thing that is charged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// The key.
    pub id: SubscriptionId,
    /// The offer it was bought under.
    pub offer_type: OfferType,
    /// Who it rolls up to (CSP and CSPSS only).
    pub partner_id: Option<PartnerId>,
    /// The customer's directory (CSP only).
    pub customer_tenant_id: Option<TenantId>,
    /// A human name.
    pub display_name: String,
    /// The rate card its usage is priced with.
    pub rate_card: RateCardName,
    /// Markup on the rate card's prices, in percent; may be negative.
    pub markup_percent: Decimal,
}

/// Why a subscription's fields do not fit its offer type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscriptionError {
    /// CSP and CSPSS subscriptions roll up to a partner.
    #[error("a {offer_type} subscription needs a partnerId")]
    PartnerRequired {
        /// The offer type given.
        offer_type: OfferType,
    },
    /// EA and PAYG subscriptions are not a partner's.
    #[error("a {offer_type} subscription has no partnerId")]
    PartnerNotAllowed {
        /// The offer type given.
        offer_type: OfferType,
    },
    /// A CSP subscription belongs to one customer directory.
    #[error("a CSP subscription needs the customer's directory in customerTenantId")]
    CustomerTenantRequired,
    /// Only CSP subscriptions have a customer directory.
    #[error("only a CSP subscription has a customerTenantId, not a {offer_type} one")]
    CustomerTenantNotAllowed {
        /// The offer type given.
        offer_type: OfferType,
    },
    /// Markups below -100 % would turn prices negative.
    #[error("markupPercent must be at least -100, got {markup_percent}")]
    MarkupTooLow {
        /// The markup given.
        markup_percent: Decimal,
    },
}

impl SubscriptionError {
    /// The error code.
    pub const fn code(&self) -> ErrorCode {
        ErrorCode::InvalidSubscription
    }

    /// The field the error is about.
    pub fn target(&self) -> &'static str {
        match self {
            Self::PartnerRequired { .. } | Self::PartnerNotAllowed { .. } => "partnerId",
            Self::CustomerTenantRequired | Self::CustomerTenantNotAllowed { .. } => {
                "customerTenantId"
            }
            Self::MarkupTooLow { .. } => "markupPercent",
        }
    }
}

impl Subscription {
    /// Checks the fields that depend on the offer type. Whether the partner exists is the
    /// caller's question: it needs the directory.
    pub fn validate(&self) -> Result<(), SubscriptionError> {
        let offer_type = self.offer_type;
        let has_partner = matches!(offer_type, OfferType::Csp | OfferType::Cspss);
        match (has_partner, &self.partner_id) {
            (true, None) => return Err(SubscriptionError::PartnerRequired { offer_type }),
            (false, Some(_)) => return Err(SubscriptionError::PartnerNotAllowed { offer_type }),
            _ => {}
        }
        match (offer_type, &self.customer_tenant_id) {
            (OfferType::Csp, None) => return Err(SubscriptionError::CustomerTenantRequired),
            (OfferType::Csp, Some(_)) | (_, None) => {}
            (_, Some(_)) => return Err(SubscriptionError::CustomerTenantNotAllowed { offer_type }),
        }
        if self.markup_percent < -Decimal::ONE_HUNDRED {
            return Err(SubscriptionError::MarkupTooLow {
                markup_percent: self.markup_percent,
            });
        }
        Ok(())
    }
}

/// A stack's registration: which subscription pays by default for its usage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The key.
    pub name: RegistrationName,
    /// The stack it registers; unique across registrations.
    pub cloud_id: CloudId,
    /// The default subscription, fixed for the registration's life.
    pub default_subscription: SubscriptionId,
    /// How the stack is licensed.
    pub billing_model: BillingModel,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csp() -> Subscription {
        Subscription {
            id: "11111111-1111-1111-1111-111111111111".parse().unwrap(),
            offer_type: OfferType::Csp,
            partner_id: Some("p1".parse().unwrap()),
            customer_tenant_id: Some("22222222-2222-2222-2222-222222222222".parse().unwrap()),
            display_name: String::new(),
            rate_card: RateCardName::default_card(),
            markup_percent: Decimal::ZERO,
        }
    }

    #[test]
    fn words_parse_case_insensitively_and_print_canonically() {
        assert_eq!("cspss".parse::<OfferType>(), Ok(OfferType::Cspss));
        assert_eq!(
            "payasyouuse".parse::<BillingModel>().map(|b| b.to_string()),
            Ok("PayAsYouUse".to_owned())
        );
        let err = "Free".parse::<OfferType>().unwrap_err();
        assert!(err.to_string().contains("CSP CSPSS EA PAYG"), "{err}");
    }

    #[test]
    fn subscription_fields_follow_the_offer_type() {
        assert_eq!(csp().validate(), Ok(()));
        let mut s = csp();
        s.partner_id = None;
        assert_eq!(s.validate().unwrap_err().target(), "partnerId");
        let mut s = csp();
        s.customer_tenant_id = None;
        assert_eq!(s.validate(), Err(SubscriptionError::CustomerTenantRequired));
        let mut s = csp();
        s.offer_type = OfferType::Cspss;
        assert_eq!(s.validate().unwrap_err().target(), "customerTenantId");
        s.customer_tenant_id = None;
        assert_eq!(s.validate(), Ok(()));
        s.offer_type = OfferType::Ea;
        assert_eq!(s.validate().unwrap_err().target(), "partnerId");
        s.partner_id = None;
        assert_eq!(s.validate(), Ok(()));
        s.markup_percent = Decimal::new(-1001, 1);
        assert_eq!(s.validate().unwrap_err().target(), "markupPercent");
        s.markup_percent = Decimal::new(-100, 0);
        assert_eq!(s.validate(), Ok(()));
    }
}
