-- Deploy shop:order_total to pg

BEGIN;

CREATE OR REPLACE FUNCTION order_total() RETURNS numeric LANGUAGE sql AS $$ SELECT coalesce(sum(amount), 0) FROM orders WHERE paid $$;

COMMIT;
