CREATE OR REPLACE VIEW report_base AS
SELECT o.id, o.account_id, o.total, o.status FROM orders o;
