-- Revoking tokens: an access token carries the account's token generation at issue
-- time, and is accepted only while it is still the account's. Changing the password or
-- logging out everywhere raises it by one. Existing tokens (without the claim) count as
-- generation 0, so they keep working until the first revocation.
ALTER TABLE users ADD COLUMN token_generation bigint NOT NULL DEFAULT 0;
