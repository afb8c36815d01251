CREATE OR REPLACE VIEW user_names AS SELECT id, coalesce(name, email) AS shown FROM users;
