UPDATE orders SET plan = 'pro' WHERE total > 1000;
DELETE FROM order_audit;
