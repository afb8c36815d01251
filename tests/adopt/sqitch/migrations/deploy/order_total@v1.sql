-- Deploy shop:order_total to pg
-- requires: orders

BEGIN;

CREATE FUNCTION order_total() RETURNS numeric LANGUAGE sql AS $$ SELECT coalesce(sum(amount), 0) FROM orders $$;

COMMIT;
