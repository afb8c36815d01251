-- A nullable column with no default: a catalog-only change, no table rewrite.
ALTER TABLE accounts ADD COLUMN email text;

CREATE FUNCTION normalize_email(raw text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT lower(trim(raw)); -- the semicolon inside the body is not a statement end
$$;
