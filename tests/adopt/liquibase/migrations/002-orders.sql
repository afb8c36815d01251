--liquibase formatted sql

--changeset tomas:orders-table
CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint NOT NULL REFERENCES users (id));
--rollback DROP TABLE orders;
