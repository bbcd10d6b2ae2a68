ALTER TABLE business_settings DROP COLUMN audit_performance_reads;
