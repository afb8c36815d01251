-- The Sqitch registry as `sqitch deploy` leaves it on PostgreSQL (the
-- tables of Sqitch's pg.sql that adopt reads or must leave alone), after
-- deploying users, orders, order_total and, after @v1, the reworked
-- order_total. Change ids are placeholders of the right form; script hashes
-- are the SHA-1 of each deploy file, as Sqitch records them.
CREATE SCHEMA sqitch;
CREATE TABLE sqitch.releases (version REAL PRIMARY KEY, installed_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(), installer_name TEXT NOT NULL, installer_email TEXT NOT NULL);
CREATE TABLE sqitch.projects (project TEXT PRIMARY KEY, uri TEXT NULL UNIQUE, created_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(), creator_name TEXT NOT NULL, creator_email TEXT NOT NULL);
CREATE TABLE sqitch.changes (
    change_id       TEXT        PRIMARY KEY,
    script_hash     TEXT            NULL,
    change          TEXT        NOT NULL,
    project         TEXT        NOT NULL REFERENCES sqitch.projects(project) ON UPDATE CASCADE,
    note            TEXT        NOT NULL DEFAULT '',
    committed_at    TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    committer_name  TEXT        NOT NULL,
    committer_email TEXT        NOT NULL,
    planned_at      TIMESTAMPTZ NOT NULL,
    planner_name    TEXT        NOT NULL,
    planner_email   TEXT        NOT NULL,
    UNIQUE(project, script_hash)
);
CREATE TABLE sqitch.tags (tag_id TEXT PRIMARY KEY, tag TEXT NOT NULL, project TEXT NOT NULL REFERENCES sqitch.projects(project) ON UPDATE CASCADE, change_id TEXT NOT NULL REFERENCES sqitch.changes(change_id) ON UPDATE CASCADE, note TEXT NOT NULL DEFAULT '', committed_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(), committer_name TEXT NOT NULL, committer_email TEXT NOT NULL, planned_at TIMESTAMPTZ NOT NULL, planner_name TEXT NOT NULL, planner_email TEXT NOT NULL, UNIQUE(project, tag));
CREATE TABLE sqitch.dependencies (change_id TEXT NOT NULL REFERENCES sqitch.changes(change_id) ON UPDATE CASCADE ON DELETE CASCADE, type TEXT NOT NULL, dependency TEXT NOT NULL, dependency_id TEXT NULL REFERENCES sqitch.changes(change_id) ON UPDATE CASCADE, PRIMARY KEY (change_id, dependency));
CREATE TABLE sqitch.events (event TEXT NOT NULL, change_id TEXT NOT NULL, change TEXT NOT NULL, project TEXT NOT NULL REFERENCES sqitch.projects(project) ON UPDATE CASCADE, note TEXT NOT NULL DEFAULT '', requires TEXT[] NOT NULL DEFAULT '{}', conflicts TEXT[] NOT NULL DEFAULT '{}', tags TEXT[] NOT NULL DEFAULT '{}', committed_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(), committer_name TEXT NOT NULL, committer_email TEXT NOT NULL, planned_at TIMESTAMPTZ NOT NULL, planner_name TEXT NOT NULL, planner_email TEXT NOT NULL, PRIMARY KEY (change_id, committed_at));
INSERT INTO sqitch.releases VALUES (1.1, '2024-10-06 08:00:00+00', 'Ines Rey', 'ines@example.com');
INSERT INTO sqitch.projects VALUES ('shop', NULL, '2024-10-06 08:00:00+00', 'Ines Rey', 'ines@example.com');
INSERT INTO sqitch.changes VALUES
    ('1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a', '15cc41f296f38b82fcbf39ba8ea8203edb18eb3d', 'users', 'shop', 'The users table.', '2024-10-06 08:00:01+00', 'Ines Rey', 'ines@example.com', '2024-10-01 09:00:00+00', 'Ines Rey', 'ines@example.com'),
    ('3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c', 'c6d27531441a04e358b08aaa87690069fe5ef8a4', 'orders', 'shop', 'The orders table.', '2024-10-06 08:00:02+00', 'Ines Rey', 'ines@example.com', '2024-10-02 09:00:00+00', 'Ines Rey', 'ines@example.com'),
    ('5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e', '562058003307680423a823ba08a8572cfe5b4826', 'order_total', 'shop', 'order_total().', '2024-10-06 08:00:03+00', 'Ines Rey', 'ines@example.com', '2024-10-03 09:00:00+00', 'Ines Rey', 'ines@example.com'),
    ('7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a', '35fd50dcd721348134b154e86a397036ce8be286', 'order_total', 'shop', 'order_total() of paid orders only.', '2024-10-06 08:00:04+00', 'Ines Rey', 'ines@example.com', '2024-10-05 09:00:00+00', 'Ines Rey', 'ines@example.com');
INSERT INTO sqitch.tags VALUES ('9c9c9c9c9c9c9c9c9c9c9c9c9c9c9c9c9c9c9c9c', '@v1', 'shop', '5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e', 'First release.', '2024-10-06 08:00:03+00', 'Ines Rey', 'ines@example.com', '2024-10-04 09:00:00+00', 'Ines Rey', 'ines@example.com');
INSERT INTO sqitch.events (event, change_id, change, project, note, committed_at, committer_name, committer_email, planned_at, planner_name, planner_email)
    SELECT 'deploy', change_id, change, project, note, committed_at, committer_name, committer_email, planned_at, planner_name, planner_email FROM sqitch.changes;
