-- _prisma_migrations as `prisma migrate deploy` leaves it on PostgreSQL
-- (checksums computed outside migsafe). The orders migration failed once,
-- was marked rolled back (`prisma migrate resolve --rolled-back`) and then
-- applied again: two rows.
CREATE TABLE "_prisma_migrations" (
    "id" VARCHAR(36) NOT NULL,
    "checksum" VARCHAR(64) NOT NULL,
    "finished_at" TIMESTAMPTZ,
    "migration_name" VARCHAR(255) NOT NULL,
    "logs" TEXT,
    "rolled_back_at" TIMESTAMPTZ,
    "started_at" TIMESTAMPTZ NOT NULL DEFAULT now(),
    "applied_steps_count" INTEGER NOT NULL DEFAULT 0,

    CONSTRAINT "_prisma_migrations_pkey" PRIMARY KEY ("id")
);
INSERT INTO "_prisma_migrations" (id, checksum, finished_at, migration_name, logs, rolled_back_at, started_at, applied_steps_count) VALUES
    ('0f4a4c1e-0000-4000-8000-000000000001', 'c7758e2c1558c641e1735e3e29af25ea22a91730d476f8e20216e94ac97b5d80', '2024-08-04 10:00:01.250+00', '20240801100000_create_users', NULL, NULL, '2024-08-04 10:00:01+00', 1),
    ('0f4a4c1e-0000-4000-8000-000000000002', '763b057c1680f7fe1d2b8b5244e00330176b1e8ba0d89f68d633cdae463492f3', '2024-08-04 10:00:02.100+00', '20240802100000_add_user_name', NULL, NULL, '2024-08-04 10:00:02+00', 1),
    ('0f4a4c1e-0000-4000-8000-000000000003', 'a1a989c331bac6e2e72713455516e7d8209c95dd916b2c088400dcf06040cd6e', NULL, '20240803100000_create_orders', 'Database error: relation "users" is locked', '2024-08-04 10:05:00+00', '2024-08-04 10:00:03+00', 0),
    ('0f4a4c1e-0000-4000-8000-000000000004', 'a1a989c331bac6e2e72713455516e7d8209c95dd916b2c088400dcf06040cd6e', '2024-08-04 10:10:00.500+00', '20240803100000_create_orders', NULL, NULL, '2024-08-04 10:10:00+00', 1);
