CREATE OR REPLACE VIEW order_totals AS
SELECT user_id, sum(total) AS total FROM orders GROUP BY user_id;
