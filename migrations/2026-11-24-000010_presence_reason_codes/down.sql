ALTER TABLE agents DROP COLUMN presence_since;
DROP TABLE presence_reason_codes;
