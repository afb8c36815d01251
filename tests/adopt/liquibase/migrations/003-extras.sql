--liquibase formatted sql

--changeset tomas:order-count splitStatements:false
--comment: order_count() counts a user's orders
-- a plain comment is part of the changeset's SQL (and of its checksum)
CREATE FUNCTION order_count(uid bigint) RETURNS bigint LANGUAGE sql AS $$
    SELECT count(*) FROM orders WHERE user_id = uid;
$$;
--rollback DROP FUNCTION order_count(bigint);

--changeset maria:orders-user-idx runInTransaction:false
--preconditions onFail:MARK_RAN
--precondition-sql-check expectedResult:0 SELECT count(*) FROM pg_indexes WHERE indexname = 'orders_user_idx'
CREATE INDEX CONCURRENTLY orders_user_idx ON orders (user_id);
--rollback DROP INDEX CONCURRENTLY orders_user_idx;

--changeset maria:users-email-check
ALTER TABLE users
	ADD CONSTRAINT users_email_check CHECK (email <> '');
--rollback ALTER TABLE users DROP CONSTRAINT users_email_check;
