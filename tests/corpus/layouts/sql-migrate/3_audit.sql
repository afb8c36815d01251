-- +migrate Up
-- +migrate StatementBegin
CREATE FUNCTION audit_accounts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.name := trim(NEW.name);
  RETURN NEW;
END;
$$;
-- +migrate StatementEnd
CREATE TRIGGER accounts_audit BEFORE INSERT ON accounts
  FOR EACH ROW EXECUTE FUNCTION audit_accounts();

-- +migrate Down
DROP TRIGGER accounts_audit ON accounts;
-- +migrate StatementBegin
DROP FUNCTION audit_accounts();
-- +migrate StatementEnd
