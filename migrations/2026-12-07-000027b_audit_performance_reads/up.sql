-- An organization may ask that every read of other agents' performance (a supervisor looking
-- at the agent performance table) leave an audit record: some works councils and labour
-- agreements require that monitoring of individual employees be traceable. Off by default.
ALTER TABLE business_settings
    ADD COLUMN audit_performance_reads boolean NOT NULL DEFAULT false;
