-- the name shown on invoices
ALTER TABLE users ADD COLUMN name text;
