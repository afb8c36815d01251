-- +GOOSE UP
CREATE TABLE orders (
  id bigint PRIMARY KEY,
  user_id bigint NOT NULL REFERENCES users (id),
  note text DEFAULT '-- +goose Down is not a marker inside a string'
);
-- +goose ENVSUB OFF

-- +GOOSE DOWN
DROP TABLE orders;
