-- _sqlx_migrations as `sqlx migrate run` leaves it: SHA-384 of each file,
-- execution_time in nanoseconds (checksums computed outside migsafe).
CREATE TABLE IF NOT EXISTS _sqlx_migrations (
    version BIGINT PRIMARY KEY,
    description TEXT NOT NULL,
    installed_on TIMESTAMPTZ NOT NULL DEFAULT now(),
    success BOOLEAN NOT NULL,
    checksum BYTEA NOT NULL,
    execution_time BIGINT NOT NULL
);
INSERT INTO _sqlx_migrations (version, description, installed_on, success, checksum, execution_time) VALUES
    (20240201100000, 'create users', TIMESTAMPTZ '2024-02-04 09:00:01+00', true, decode('ccc07995a8744fe42f85efb99a0d7736df5e3baa5f20beee31d02ad6da00e37d3bdb02d7cde288119c9c34c829f63c74', 'hex'), 1500000),
    (20240202100000, 'add user name', TIMESTAMPTZ '2024-02-04 09:00:02+00', true, decode('1cbcaf90cd06dd1e91bb437dda25beb868db059633033ad5629cbe618973a6d25fe4b403e88c790f290f9cd81b448c0c', 'hex'), 3000000),
    (20240203100000, 'create orders', TIMESTAMPTZ '2024-02-04 09:00:03+00', true, decode('69eb4590272248a1b567d34df90ea2fbe7a44798fa9e28afbefbe495a4cb02880b182e204b568d396ea4032b28c62a06', 'hex'), 4500000);
