--liquibase formatted sql

--changeset maria:users-table
CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL);
--rollback DROP TABLE users;

--changeset maria:users-name
ALTER TABLE users ADD COLUMN name text;
--rollback ALTER TABLE users DROP COLUMN name;
