-- Revert flipr:flips from pg

BEGIN;

DROP FUNCTION flip_count();

COMMIT;
