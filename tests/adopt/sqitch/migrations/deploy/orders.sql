-- Deploy shop:orders to pg
-- requires: users

BEGIN;

CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint NOT NULL REFERENCES users (id), paid boolean NOT NULL DEFAULT false, amount numeric NOT NULL);

COMMIT;
