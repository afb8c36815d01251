-- Accounts, as a Flyway project starts: plain DDL, no transaction control.
CREATE TABLE accounts (
    id         bigint PRIMARY KEY,
    email      text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);
