-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION lower_email() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.email := lower(NEW.email);
  RETURN NEW;
END;
$$;
-- +goose StatementEnd
CREATE TRIGGER users_lower_email BEFORE INSERT ON users
  FOR EACH ROW EXECUTE FUNCTION lower_email();

-- +goose Down
-- +goose StatementBegin
DROP TRIGGER users_lower_email ON users;
DROP FUNCTION lower_email();
-- +goose StatementEnd
