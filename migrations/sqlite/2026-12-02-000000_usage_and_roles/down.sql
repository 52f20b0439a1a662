DROP INDEX users_admins;
DROP TABLE token_usage;
ALTER TABLE messages DROP COLUMN usage_estimated;
ALTER TABLE messages DROP COLUMN completion_tokens;
ALTER TABLE messages DROP COLUMN prompt_tokens;
ALTER TABLE users DROP COLUMN token_limit;
ALTER TABLE users DROP COLUMN disabled;
ALTER TABLE users DROP COLUMN role;
