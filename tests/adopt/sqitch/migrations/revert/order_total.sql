-- Revert shop:order_total from pg

BEGIN;

CREATE OR REPLACE FUNCTION order_total() RETURNS numeric LANGUAGE sql AS $$ SELECT coalesce(sum(amount), 0) FROM orders $$;

COMMIT;
