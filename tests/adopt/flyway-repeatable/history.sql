-- flyway_schema_history as `flyway migrate` leaves it on PostgreSQL after
-- V1, V2 and the repeatables: R__order_totals ran twice (its file was
-- edited in between: the last row counts), R__old_report ran and was then
-- removed, which Flyway 9's `repair` records as a DELETE row. Checksums
-- are Flyway's line-by-line CRC32, computed outside migsafe.
CREATE TABLE "flyway_schema_history" (
    "installed_rank" INT NOT NULL,
    "version" VARCHAR(50),
    "description" VARCHAR(200) NOT NULL,
    "type" VARCHAR(20) NOT NULL,
    "script" VARCHAR(1000) NOT NULL,
    "checksum" INTEGER,
    "installed_by" VARCHAR(100) NOT NULL,
    "installed_on" TIMESTAMP NOT NULL DEFAULT now(),
    "execution_time" INTEGER NOT NULL,
    "success" BOOLEAN NOT NULL
);
ALTER TABLE "flyway_schema_history" ADD CONSTRAINT "flyway_schema_history_pk" PRIMARY KEY ("installed_rank");
CREATE INDEX "flyway_schema_history_s_idx" ON "flyway_schema_history" ("success");
INSERT INTO "flyway_schema_history" (installed_rank, version, description, type, script, checksum, installed_by, installed_on, execution_time, success) VALUES
    (1, '1', 'create users', 'SQL', 'V1__create_users.sql', 1045294102, 'app', TIMESTAMPTZ '2024-07-01 06:00:01+00' AT TIME ZONE current_setting('TimeZone'), 12, true),
    (2, '2', 'create orders', 'SQL', 'V2__create_orders.sql', 54437598, 'app', TIMESTAMPTZ '2024-07-01 06:00:02+00' AT TIME ZONE current_setting('TimeZone'), 20, true),
    (3, NULL, 'order totals', 'SQL', 'R__order_totals.sql', -1197331402, 'app', TIMESTAMPTZ '2024-07-01 06:00:03+00' AT TIME ZONE current_setting('TimeZone'), 5, true),
    (4, NULL, 'user names', 'SQL', 'R__user_names.sql', -145635911, 'app', TIMESTAMPTZ '2024-07-01 06:00:04+00' AT TIME ZONE current_setting('TimeZone'), 4, true),
    (5, NULL, 'old report', 'SQL', 'R__old_report.sql', 1, 'app', TIMESTAMPTZ '2024-07-01 06:00:05+00' AT TIME ZONE current_setting('TimeZone'), 3, true),
    (6, NULL, 'old report', 'DELETE', 'R__old_report.sql', 1, 'app', TIMESTAMPTZ '2024-08-01 09:00:00+00' AT TIME ZONE current_setting('TimeZone'), 0, true),
    (7, NULL, 'order totals', 'SQL', 'R__order_totals.sql', 773163939, 'app', TIMESTAMPTZ '2024-08-02 10:00:00+00' AT TIME ZONE current_setting('TimeZone'), 6, true);
