-- Revert shop:order_total from pg

BEGIN;

DROP FUNCTION order_total();

COMMIT;
