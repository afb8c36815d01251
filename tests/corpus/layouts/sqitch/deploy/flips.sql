-- Deploy flipr:flips to pg
-- requires: users

BEGIN;

CREATE OR REPLACE FUNCTION flip_count() RETURNS bigint LANGUAGE sql AS $$
    SELECT count(*) FROM users WHERE active;
$$;

COMMIT;
