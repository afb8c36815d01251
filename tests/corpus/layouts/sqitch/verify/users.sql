-- Verify flipr:users on pg

BEGIN;

SELECT nickname, active FROM users WHERE false;

ROLLBACK;
