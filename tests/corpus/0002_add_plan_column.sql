-- add a column with a constant default: instant since PostgreSQL 11
ALTER TABLE orders ADD COLUMN plan text NOT NULL DEFAULT 'free';
ALTER TABLE orders ADD COLUMN public_id uuid DEFAULT gen_random_uuid();
ALTER TABLE orders ADD COLUMN region text NOT NULL;
