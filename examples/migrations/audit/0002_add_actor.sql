ALTER TABLE audit.events ADD COLUMN actor text;
