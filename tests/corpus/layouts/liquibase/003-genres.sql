-- liquibase formatted sql
-- changeset cy:genres
CREATE TABLE genres (id int PRIMARY KEY, name text);
INSERT INTO genres VALUES (1, 'poetry'), (2, 'prose');
-- rollback DELETE FROM genres;
-- rollback DROP TABLE genres;
