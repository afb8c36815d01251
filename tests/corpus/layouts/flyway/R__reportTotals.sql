-- Needs report_base. The description "report base" sorts before
-- "reportTotals" (a space before 'T'), though the file name
-- R__report_base.sql sorts after R__reportTotals.sql byte by byte.
CREATE OR REPLACE VIEW report_totals AS
SELECT status, sum(total) AS total FROM report_base GROUP BY status;
