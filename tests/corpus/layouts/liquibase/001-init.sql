--liquibase formatted sql

--changeset ana:create-authors
--comment: the people who write the books
CREATE TABLE authors (id bigint PRIMARY KEY, name text NOT NULL);
--rollback DROP TABLE authors;

--changeset ana:create-books
CREATE TABLE books (
  id bigint PRIMARY KEY,
  author_id bigint REFERENCES authors (id),
  title text
);
--rollback DROP TABLE books;
