-- databasechangelog and databasechangeloglock as `liquibase update` leaves
-- them on PostgreSQL (unquoted names, so lower case); dateexecuted is the
-- session's local time, md5sum Liquibase's own checksum (not compared).
CREATE TABLE databasechangeloglock (id INTEGER NOT NULL, locked BOOLEAN NOT NULL, lockgranted TIMESTAMP WITHOUT TIME ZONE, lockedby VARCHAR(255), CONSTRAINT databasechangeloglock_pkey PRIMARY KEY (id));
INSERT INTO databasechangeloglock (id, locked) VALUES (1, FALSE);
CREATE TABLE databasechangelog (id VARCHAR(255) NOT NULL, author VARCHAR(255) NOT NULL, filename VARCHAR(255) NOT NULL, dateexecuted TIMESTAMP WITHOUT TIME ZONE NOT NULL, orderexecuted INTEGER NOT NULL, exectype VARCHAR(10) NOT NULL, md5sum VARCHAR(35), description VARCHAR(255), comments VARCHAR(255), tag VARCHAR(255), liquibase VARCHAR(20), contexts VARCHAR(255), labels VARCHAR(255), deployment_id VARCHAR(10));
INSERT INTO databasechangelog (id, author, filename, dateexecuted, orderexecuted, exectype, md5sum, description, comments, tag, liquibase, contexts, labels, deployment_id) VALUES
    ('users-table', 'maria', 'db/changelog/001-users.sql', TIMESTAMPTZ '2024-09-01 08:00:01+00' AT TIME ZONE current_setting('TimeZone'), 1, 'EXECUTED', '9:2b8f6c0e8d4a4b4c7f1e3a5d6c7b8a90', 'sql', '', NULL, '4.29.2', NULL, NULL, '5180000001'),
    ('users-name', 'maria', 'db/changelog/001-users.sql', TIMESTAMPTZ '2024-09-01 08:00:02+00' AT TIME ZONE current_setting('TimeZone'), 2, 'EXECUTED', NULL, 'sql', '', NULL, '4.29.2', NULL, NULL, '5180000001'),
    ('orders-table', 'tomas', 'db/changelog/002-orders.sql', TIMESTAMPTZ '2024-09-01 08:00:03+00' AT TIME ZONE current_setting('TimeZone'), 3, 'EXECUTED', '9:0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f', 'sql', '', NULL, '4.29.2', NULL, NULL, '5180000001');
