-- migsafe:no-transaction
CREATE TYPE order_status AS ENUM ('new', 'paid');
ALTER TYPE order_status ADD VALUE IF NOT EXISTS 'refunded';
ALTER TABLE orders ALTER COLUMN status TYPE order_status USING status::order_status;
