DROP TABLE refresh_tokens;
DROP TABLE users;
DROP TABLE business_settings;
DROP TABLE organizations;
