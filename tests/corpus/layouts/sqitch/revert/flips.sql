-- Revert flipr:flips from pg: back to the v1.0 body

BEGIN;

CREATE OR REPLACE FUNCTION flip_count() RETURNS bigint LANGUAGE sql AS $$
    SELECT count(*) FROM users;
$$;

COMMIT;
