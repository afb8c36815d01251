-- schema_migrations as dbmate's postgres driver leaves it after `dbmate up`.
CREATE TABLE IF NOT EXISTS schema_migrations (version varchar(128) PRIMARY KEY);
INSERT INTO schema_migrations (version) VALUES ('20240105090000'), ('20240106090000'), ('20240107090000');
