CREATE TABLE pets (id uuid PRIMARY KEY, kind text NOT NULL);
