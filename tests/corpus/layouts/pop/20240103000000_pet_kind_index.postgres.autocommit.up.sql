CREATE INDEX CONCURRENTLY pets_kind_idx ON pets (kind);
