-- gorp_migrations as sql-migrate leaves it after `sql-migrate up`: the file
-- name as id, applied_at as gorp maps a time.Time.
CREATE TABLE IF NOT EXISTS gorp_migrations (id text NOT NULL PRIMARY KEY, applied_at timestamp with time zone);
INSERT INTO gorp_migrations (id, applied_at) VALUES
    ('1_create_users.sql', '2024-05-01 07:30:01+00'),
    ('2_add_user_name.sql', '2024-05-01 07:30:02+00'),
    ('3_create_orders.sql', '2024-05-01 07:30:03+00');
