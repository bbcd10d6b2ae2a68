//! How a campaign dials and whether it runs.

use super::closed_set;

closed_set!(
    /// `campaigns.dial_mode`; only outbound campaigns have one.
    DialMode { Preview => "PREVIEW", Progressive => "PROGRESSIVE", Predictive => "PREDICTIVE", Manual => "MANUAL" }
);

closed_set!(
    /// `campaigns.status`.
    CampaignStatus { Active => "ACTIVE", Paused => "PAUSED", Archived => "ARCHIVED" }
);
