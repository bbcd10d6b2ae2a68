//! The contact centre's vocabulary: the closed sets of values that calls, agents and campaigns
//! take, each declared once.
//!
//! These types sit below every other module (they depend only on [`crate::error`]): the
//! database stores them by [`as_str`](call::Direction::as_str), the GraphQL schema exposes the
//! same types (their `async_graphql::Enum` derive gives the API name), ingest and the KPI
//! engine compute with them. The ones that travel on the event bus (direction, outcome,
//! presence, routing state) also derive serde with the same text as the column stores (a test
//! holds the two spellings together). Nothing here touches I/O.

pub mod agent;
pub mod call;
pub mod campaign;
pub mod ids;
pub mod saved_text;
pub mod service_level;

pub use agent::{AgentState, Presence, RoutingState};
pub use call::{AnsweredBy, CallEvent, CallState, Direction, EndReason, EventKey, EventType, Outcome, Source};
pub use campaign::{CampaignStatus, DialMode};
pub use service_level::ServiceLevelVariant;

/// A closed set of text values, as one column's CHECK constraint allows them. Each variant
/// names its stored text once; `ALL`, `as_str`, `parse` and `from_stored` follow from it, so
/// a caller cannot write a value the database would refuse, nor read one without noticing.
macro_rules! closed_set {
    (
        $(#[$meta:meta])*
        $name:ident {
            $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The value as stored in its column.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// The value of a stored or received text, if it is one.
            pub fn parse(text: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|value| value.as_str() == text)
            }

            /// A value read back from the database: anything else is a broken invariant (the
            /// column's CHECK constraint admits only these), reported as an internal error.
            pub fn from_stored(text: &str) -> $crate::error::AppResult<Self> {
                Self::parse(text).ok_or_else(|| {
                    $crate::error::AppError::internal(format!(
                        concat!("unknown ", stringify!($name), " `{}` in the database"),
                        text
                    ))
                })
            }
        }
    };
}
pub(crate) use closed_set;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_parses_back_from_its_text() {
        fn round_trip<T: Copy + PartialEq + std::fmt::Debug>(
            all: &[T],
            text: fn(T) -> &'static str,
            parse: fn(&str) -> Option<T>,
        ) {
            for &value in all {
                assert_eq!(parse(text(value)), Some(value), "{value:?}");
            }
        }
        round_trip(Direction::ALL, Direction::as_str, Direction::parse);
        round_trip(Outcome::ALL, Outcome::as_str, Outcome::parse);
        round_trip(AnsweredBy::ALL, AnsweredBy::as_str, AnsweredBy::parse);
        round_trip(EventType::ALL, EventType::as_str, EventType::parse);
        round_trip(EndReason::ALL, EndReason::as_str, EndReason::parse);
        round_trip(Source::ALL, Source::as_str, Source::parse);
        round_trip(Presence::ALL, Presence::as_str, Presence::parse);
        round_trip(RoutingState::ALL, RoutingState::as_str, RoutingState::parse);
        round_trip(DialMode::ALL, DialMode::as_str, DialMode::parse);
        round_trip(CampaignStatus::ALL, CampaignStatus::as_str, CampaignStatus::parse);
        round_trip(
            ServiceLevelVariant::ALL,
            ServiceLevelVariant::as_str,
            ServiceLevelVariant::parse,
        );
    }

    #[test]
    fn serde_writes_and_reads_the_stored_text() {
        fn same<T>(all: &[T], text: fn(T) -> &'static str)
        where
            T: Copy + PartialEq + std::fmt::Debug + serde::Serialize + serde::de::DeserializeOwned,
        {
            for &value in all {
                let json = serde_json::to_value(value).unwrap_or_default();
                assert_eq!(json, serde_json::Value::from(text(value)), "{value:?}");
                assert_eq!(serde_json::from_value::<T>(json).ok(), Some(value), "{value:?}");
            }
        }
        same(Direction::ALL, Direction::as_str);
        same(Outcome::ALL, Outcome::as_str);
        same(Presence::ALL, Presence::as_str);
        same(RoutingState::ALL, RoutingState::as_str);
        same(ServiceLevelVariant::ALL, ServiceLevelVariant::as_str);
    }

    #[test]
    fn an_unknown_stored_value_is_an_internal_error_not_a_panic() {
        assert!(Direction::parse("SIDEWAYS").is_none());
        assert_eq!(
            Outcome::from_stored("LOST").unwrap_err().code(),
            crate::error::ErrorCode::Internal
        );
    }
}
