//! How a campaign dials and whether it runs.

use super::closed_set;

closed_set!(
    /// `campaigns.dial_mode`; only outbound campaigns have one.
    #[derive(async_graphql::Enum)]
    DialMode { Preview => "PREVIEW", Progressive => "PROGRESSIVE", Predictive => "PREDICTIVE", Manual => "MANUAL" }
);

closed_set!(
    /// `campaigns.status`. ARCHIVED is final: an archived campaign keeps its history.
    #[derive(async_graphql::Enum)]
    CampaignStatus { Active => "ACTIVE", Paused => "PAUSED", Archived => "ARCHIVED" }
);
