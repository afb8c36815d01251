-- __diesel_schema_migrations as diesel leaves it after `diesel migration run`
-- (run_on is CURRENT_TIMESTAMP in the server's time zone when each ran).
CREATE TABLE IF NOT EXISTS __diesel_schema_migrations (
       version VARCHAR(50) PRIMARY KEY NOT NULL,
       run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
INSERT INTO __diesel_schema_migrations (version, run_on) VALUES
    ('20240301100000', TIMESTAMPTZ '2024-03-04 08:00:01+00' AT TIME ZONE current_setting('TimeZone')),
    ('20240302100000', TIMESTAMPTZ '2024-03-04 08:00:02+00' AT TIME ZONE current_setting('TimeZone')),
    ('20240303100000', TIMESTAMPTZ '2024-03-04 08:00:03+00' AT TIME ZONE current_setting('TimeZone'));
