//! The service-level formula an organization chose. The KPI engine computes with it, business
//! settings store it, the API reports it beside every service-level value.

use serde::{Deserialize, Serialize};

use super::closed_set;

closed_set!(
    /// How service level is computed; the organization picks one, and every SL value reports it.
    #[derive(async_graphql::Enum, Serialize, Deserialize)]
    #[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    ServiceLevelVariant {
        /// answered within T / (answered + abandoned − short abandoned). The default.
        AnsweredWithinOverOfferedExcludingShortAbandons => "ANSWERED_WITHIN_OVER_OFFERED_EXCLUDING_SHORT_ABANDONS",
        /// answered within T / answered.
        AnsweredWithinOverAnswered => "ANSWERED_WITHIN_OVER_ANSWERED",
        /// (answered within T + abandoned within T) / (answered + abandoned).
        AnsweredAndAbandonedWithinOverOffered => "ANSWERED_AND_ABANDONED_WITHIN_OVER_OFFERED",
        /// answered within T / (answered + abandoned).
        AnsweredWithinOverOffered => "ANSWERED_WITHIN_OVER_OFFERED",
        /// answered within T / (answered + abandoned after T).
        AnsweredWithinOverOfferedExcludingAbandonsWithin => "ANSWERED_WITHIN_OVER_OFFERED_EXCLUDING_ABANDONS_WITHIN",
    }
);
