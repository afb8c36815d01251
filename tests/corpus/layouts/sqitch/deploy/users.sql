-- Deploy flipr:users to pg

BEGIN;

CREATE TABLE users (
    nickname text PRIMARY KEY,
    active   boolean NOT NULL DEFAULT true
);

COMMIT;
