//! Identifier newtypes. Each has one constructor that checks its rule, so a value of
//! one of these types is valid by construction; raw strings live only at the edges.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

/// Why a string is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Not a GUID in one of the accepted forms.
    #[error("'{value}' is not a GUID (expected 32 hexadecimal digits, hyphens optional)")]
    NotAGuid {
        /// The rejected text, shortened when long.
        value: String,
    },
    /// A name that breaks its pattern or length.
    #[error("'{value}' is not a valid {kind}: {rule}")]
    BadName {
        /// What kind of name it was meant to be.
        kind: &'static str,
        /// The rejected text, shortened when long.
        value: String,
        /// The rule it breaks.
        rule: &'static str,
    },
}

/// Shortens user input quoted back in an error message.
fn quoted(value: &str) -> String {
    const MAX_QUOTED_CHARS: usize = 80;
    if value.chars().count() <= MAX_QUOTED_CHARS {
        value.to_owned()
    } else {
        let mut short: String = value.chars().take(MAX_QUOTED_CHARS).collect();
        short.push('…');
        short
    }
}

/// Parses a GUID in any case, with or without hyphens (the two forms Azure tools send).
fn parse_guid(value: &str) -> Result<Uuid, IdError> {
    let well_formed = match value.len() {
        32 => value.bytes().all(|b| b.is_ascii_hexdigit()),
        36 => value.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        }),
        _ => false,
    };
    if !well_formed {
        return Err(IdError::NotAGuid {
            value: quoted(value),
        });
    }
    Uuid::try_parse(value).map_err(|_| IdError::NotAGuid {
        value: quoted(value),
    })
}

macro_rules! guid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Uuid);

        impl $name {
            /// Wraps an already parsed UUID.
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// The UUID inside.
            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(value: &str) -> Result<Self, Self::Err> {
                parse_guid(value).map(Self)
            }
        }

        /// Lowercase and hyphenated, the one form stackbill ever returns.
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0.hyphenated())
            }
        }
    };
}

guid_id!(
    /// A billing subscription (the Azure-side subscription that is charged).
    SubscriptionId
);
guid_id!(
    /// A directory (Azure AD / Entra tenant).
    TenantId
);
guid_id!(
    /// One Azure Stack Hub instance.
    CloudId
);
guid_id!(
    /// A usage meter.
    MeterId
);

macro_rules! name_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $max:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
        pub struct $name(String);

        impl $name {
            /// The most characters the name may have.
            pub const MAX_CHARS: usize = $max;

            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(value: &str) -> Result<Self, Self::Err> {
                let ok_chars = value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
                // ARM's resource-name rules: no name of dots only ("." or ".."), none that
                // ends with a dot.
                let ok_ends = value
                    .bytes()
                    .next()
                    .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
                    && !value.ends_with('.');
                if value.is_empty() || value.len() > $max || !ok_chars || !ok_ends {
                    return Err(IdError::BadName {
                        kind: $kind,
                        value: quoted(value),
                        rule: concat!(
                            "1 to ", $max, " characters of A-Z, a-z, 0-9, '.', '_' or '-', ",
                            "starting with a letter, a digit or '_' and not ending with '.'"
                        ),
                    });
                }
                Ok(Self(value.to_owned()))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

name_id!(
    /// A CSP partner (direct, distributor or reseller).
    PartnerId,
    "partnerId",
    64
);
name_id!(
    /// A registration: one per stack.
    RegistrationName,
    "registration name",
    90
);
name_id!(
    /// A rate card's name.
    RateCardName,
    "rate card name",
    64
);

impl RateCardName {
    /// The rate card a subscription uses when none is named.
    pub fn default_card() -> Self {
        Self("default".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_are_accepted_in_any_case_with_or_without_hyphens() {
        let forms = [
            "B4438D5D-453B-4EE1-B42A-DC72E377F1E4",
            "b4438d5d-453b-4ee1-b42a-dc72e377f1e4",
            "B4438D5D453B4EE1B42ADC72E377F1E4",
        ];
        for form in forms {
            let id: MeterId = form.parse().expect(form);
            assert_eq!(id.to_string(), "b4438d5d-453b-4ee1-b42a-dc72e377f1e4");
        }
    }

    #[test]
    fn malformed_guids_are_rejected() {
        for bad in [
            "",
            "not-a-guid",
            "{b4438d5d-453b-4ee1-b42a-dc72e377f1e4}",
            "urn:uuid:b4438d5d-453b-4ee1-b42a-dc72e377f1e4",
            "b4438d5d-453b-4ee1-b42a-dc72e377f1e",
            "b4438d5d-453b-4ee1-b42a-dc72e377f1eg",
            "b4438d5d453b-4ee1-b42a-dc72e377f1e4a",
        ] {
            assert!(bad.parse::<SubscriptionId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn names_follow_their_pattern() {
        assert!("contoso-csp.eu_1".parse::<PartnerId>().is_ok());
        assert!("".parse::<PartnerId>().is_err());
        assert!("a b".parse::<PartnerId>().is_err());
        assert!("x".repeat(64).parse::<PartnerId>().is_ok());
        assert!("x".repeat(65).parse::<PartnerId>().is_err());
        assert!("x".repeat(90).parse::<RegistrationName>().is_ok());
        assert!("x".repeat(91).parse::<RegistrationName>().is_err());
        for bad in [".", "..", "-x", "x.", ".hidden"] {
            assert!(bad.parse::<RegistrationName>().is_err(), "{bad}");
        }
        assert!("hub_1.west-2".parse::<RegistrationName>().is_ok());
        let err = "bad/name".parse::<PartnerId>().unwrap_err();
        assert!(err.to_string().contains("partnerId"), "{err}");
    }
}
