CREATE TABLE owners (id uuid PRIMARY KEY, pet_id uuid REFERENCES pets (id));
