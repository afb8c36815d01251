-- +migrate Up
CREATE TABLE accounts (id bigint PRIMARY KEY, name text NOT NULL);

-- +migrate Down
DROP TABLE accounts;

-- +migrate Up
-- A second up section runs after the first.
ALTER TABLE accounts ADD COLUMN created_at timestamptz NOT NULL DEFAULT now();
