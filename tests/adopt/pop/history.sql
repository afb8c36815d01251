-- schema_migration as pop's migrator leaves it after `soda migrate up`.
CREATE TABLE IF NOT EXISTS schema_migration (version varchar(14) NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS schema_migration_version_idx ON schema_migration (version);
INSERT INTO schema_migration (version) VALUES ('20240601100000'), ('20240602100000'), ('20240603100000');
