--liquibase formatted sql

--changeset bo:title-functions endDelimiter:/ splitStatements:false
CREATE FUNCTION book_title(b books) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  RETURN upper(b.title);
END;
$$
/
CREATE FUNCTION author_name(a authors) RETURNS text LANGUAGE sql AS $$ SELECT a.name $$
/
--rollback DROP FUNCTION author_name(authors);
--rollback DROP FUNCTION book_title(books);

--changeset bo:books-title-index runInTransaction:false
CREATE INDEX CONCURRENTLY books_title_idx ON books (title);
--rollback DROP INDEX CONCURRENTLY books_title_idx;

--changeset bo:mysql-only dbms:mysql
ALTER TABLE books ENGINE=InnoDB;
