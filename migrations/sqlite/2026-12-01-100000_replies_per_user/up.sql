-- The replies generating for a user (USER_MAX_GENERATIONS), counted at every start: a
-- small partial index, like the one per chat.
CREATE INDEX messages_generating_by_user ON messages (user_id) WHERE status = 'generating';
