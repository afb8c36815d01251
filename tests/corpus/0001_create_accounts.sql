CREATE TABLE accounts (
    id         serial PRIMARY KEY,
    email      varchar(255) NOT NULL,
    created_at timestamp NOT NULL DEFAULT now()
);
CREATE INDEX accounts_email_idx ON accounts (email);
