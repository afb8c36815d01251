-- migsafe:no-transaction
-- migsafe:lock-timeout 5s
-- CONCURRENTLY keeps writes to accounts flowing while the index builds; it
-- cannot run inside a transaction, so this migration runs statement by statement.
CREATE INDEX CONCURRENTLY IF NOT EXISTS accounts_email_idx ON accounts (normalize_email(email));
