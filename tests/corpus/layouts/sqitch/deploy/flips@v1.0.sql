-- Deploy flipr:flips to pg
-- requires: users

BEGIN;

CREATE FUNCTION flip_count() RETURNS bigint LANGUAGE sql AS $$
    SELECT count(*) FROM users;
$$;

COMMIT;
