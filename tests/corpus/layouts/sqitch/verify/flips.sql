-- Verify flipr:flips on pg

BEGIN;

SELECT has_function_privilege('flip_count()', 'execute');

ROLLBACK;
