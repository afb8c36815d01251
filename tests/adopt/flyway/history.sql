-- flyway_schema_history as `flyway migrate` leaves it on PostgreSQL (its
-- createMetaDataTable.sql); checksums are Flyway's line-by-line CRC32,
-- computed outside migsafe.
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
    (1, '1', 'create users', 'SQL', 'V1__create_users.sql', 996368910, 'app', TIMESTAMPTZ '2024-07-01 06:00:01+00' AT TIME ZONE current_setting('TimeZone'), 12, true),
    (2, '1.1', 'add user name', 'SQL', 'V1_1__add_user_name.sql', -1936848893, 'app', TIMESTAMPTZ '2024-07-01 06:00:02+00' AT TIME ZONE current_setting('TimeZone'), 24, true),
    (3, '2', 'create orders', 'SQL', 'V2__create_orders.sql', 261717243, 'app', TIMESTAMPTZ '2024-07-01 06:00:03+00' AT TIME ZONE current_setting('TimeZone'), 36, true);
