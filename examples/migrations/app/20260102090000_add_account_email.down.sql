DROP FUNCTION normalize_email(text);
ALTER TABLE accounts DROP COLUMN email;
