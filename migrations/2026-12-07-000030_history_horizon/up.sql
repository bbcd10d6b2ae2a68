-- The history horizon: the earliest time a call or call event of the organization may carry.
-- NULL keeps the rule every organization had before this column: nothing before the
-- organization's creation (organizations.created_at). An ADMIN sets an earlier horizon to
-- import the history of a contact centre that moves from another system.
ALTER TABLE business_settings ADD COLUMN history_horizon timestamptz NULL;
