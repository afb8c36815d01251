-- "Functions" sorts before "account summary": Flyway orders repeatables by
-- description, and 'F' comes before 'a'.
CREATE OR REPLACE FUNCTION open_orders(account bigint) RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT count(*) FROM orders WHERE account_id = account AND status <> 'done'
$$;
