-- databasechangelog and databasechangeloglock as `liquibase update` leaves
-- them on PostgreSQL (unquoted names, so lower case); dateexecuted is the
-- session's local time. md5sum, liquibase and deployment_id are what
-- Liquibase 4.28 recorded for these files (`liquibase update`, one run per
-- file); users-name's md5sum is NULL, as after `liquibase clear-checksums`.
CREATE TABLE databasechangeloglock (id INTEGER NOT NULL, locked BOOLEAN NOT NULL, lockgranted TIMESTAMP WITHOUT TIME ZONE, lockedby VARCHAR(255), CONSTRAINT databasechangeloglock_pkey PRIMARY KEY (id));
INSERT INTO databasechangeloglock (id, locked) VALUES (1, FALSE);
CREATE TABLE databasechangelog (id VARCHAR(255) NOT NULL, author VARCHAR(255) NOT NULL, filename VARCHAR(255) NOT NULL, dateexecuted TIMESTAMP WITHOUT TIME ZONE NOT NULL, orderexecuted INTEGER NOT NULL, exectype VARCHAR(10) NOT NULL, md5sum VARCHAR(35), description VARCHAR(255), comments VARCHAR(255), tag VARCHAR(255), liquibase VARCHAR(20), contexts VARCHAR(255), labels VARCHAR(255), deployment_id VARCHAR(10));
INSERT INTO databasechangelog (id, author, filename, dateexecuted, orderexecuted, exectype, md5sum, description, comments, tag, liquibase, contexts, labels, deployment_id) VALUES
    ('users-table', 'maria', 'db/changelog/001-users.sql', TIMESTAMPTZ '2024-09-01 08:00:01+00' AT TIME ZONE current_setting('TimeZone'), 1, 'EXECUTED', '9:3171c3bec2e9e4c673d6a994a6d09ad4', 'sql', '', NULL, '4.28.0', NULL, NULL, '6192655885'),
    ('users-name', 'maria', 'db/changelog/001-users.sql', TIMESTAMPTZ '2024-09-01 08:00:02+00' AT TIME ZONE current_setting('TimeZone'), 2, 'EXECUTED', NULL, 'sql', '', NULL, '4.28.0', NULL, NULL, '6192655885'),
    ('orders-table', 'tomas', 'db/changelog/002-orders.sql', TIMESTAMPTZ '2024-09-01 08:00:03+00' AT TIME ZONE current_setting('TimeZone'), 3, 'EXECUTED', '9:5a2decf39a8e5832407c9b36d96372cd', 'sql', '', NULL, '4.28.0', NULL, NULL, '6192661062'),
    ('order-count', 'tomas', 'db/changelog/003-extras.sql', TIMESTAMPTZ '2024-09-01 08:00:04+00' AT TIME ZONE current_setting('TimeZone'), 4, 'EXECUTED', '9:9fc507522e526e794b1675aa3dd38eae', 'sql', 'order_count() counts a user''s orders', NULL, '4.28.0', NULL, NULL, '6192666567'),
    ('orders-user-idx', 'maria', 'db/changelog/003-extras.sql', TIMESTAMPTZ '2024-09-01 08:00:05+00' AT TIME ZONE current_setting('TimeZone'), 5, 'EXECUTED', '9:7ff9767e99da035486c6abe91e77bccb', 'sql', '', NULL, '4.28.0', NULL, NULL, '6192666567'),
    ('users-email-check', 'maria', 'db/changelog/003-extras.sql', TIMESTAMPTZ '2024-09-01 08:00:06+00' AT TIME ZONE current_setting('TimeZone'), 6, 'EXECUTED', '9:afa6a9a893a2e765fb4cb38d86cba3b2', 'sql', '', NULL, '4.28.0', NULL, NULL, '6192666567');
