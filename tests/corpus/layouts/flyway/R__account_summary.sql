-- Re-run by Flyway whenever this file changes: it must be idempotent.
CREATE OR REPLACE VIEW account_summary AS
SELECT a.id,
       a.email,
       count(o.id) AS orders,
       coalesce(sum(o.total), 0) AS spent
FROM accounts a
LEFT JOIN orders o ON o.account_id = a.id
GROUP BY a.id, a.email;
