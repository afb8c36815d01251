-- migsafe:allow drop-column-or-table -- unused since release 42, backed up
ALTER TABLE orders DROP COLUMN legacy_flags;
ALTER TABLE orders RENAME COLUMN total TO amount;
VACUUM FULL orders;
REINDEX TABLE orders;
CREATE INDEX CONCURRENTLY orders_amount_idx ON orders (amount);
