-- +migrate Up notransaction
CREATE INDEX CONCURRENTLY accounts_name_idx ON accounts (name);

-- +migrate Down notransaction
DROP INDEX CONCURRENTLY accounts_name_idx;
