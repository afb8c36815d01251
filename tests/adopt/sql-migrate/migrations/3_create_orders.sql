-- +migrate Up
CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint NOT NULL REFERENCES users (id));

-- +migrate Down
DROP TABLE orders;
