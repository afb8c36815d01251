-- schema_migrations as golang-migrate's postgres driver leaves it after `migrate up`:
-- one row, the current version, not dirty.
CREATE TABLE IF NOT EXISTS schema_migrations (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL);
INSERT INTO schema_migrations (version, dirty) VALUES (3, false);
