-- drizzle.__drizzle_migrations as drizzle-orm's migrate() leaves it: the
-- SHA-256 of each journal entry's file and the entry's `when` (hashes
-- computed outside migsafe).
CREATE SCHEMA IF NOT EXISTS "drizzle";
CREATE TABLE IF NOT EXISTS "drizzle"."__drizzle_migrations" (
    id SERIAL PRIMARY KEY,
    hash text NOT NULL,
    created_at bigint
);
INSERT INTO "drizzle"."__drizzle_migrations" ("hash", "created_at") VALUES
    ('73ac73b97fbb33f3ad9a106c334c456062cf3b9e5041f8091e7955c9d67e11d3', 1717000000000),
    ('d99de3202b0d1b10d94fdfda3c32f9431b5f041d6e3299c5b7933aa0479ac37d', 1717100000000),
    ('553371a6f3edc160811f01e839a464cb9fd1138988347df8bc67bb8ebc4ffcca', 1717200000000);
