-- A collector configured over the API carries its client secret or certificate as a value,
-- not a file on the server: stored sealed (ChaCha20-Poly1305 under the server's key, which
-- the database never holds). Its CAs may likewise come as PEM text. Exactly one of
-- secret_file, certificate_file, secret_sealed and certificate_sealed is set.
ALTER TABLE collectors ADD COLUMN secret_sealed TEXT COLLATE "C";
ALTER TABLE collectors ADD COLUMN certificate_sealed TEXT COLLATE "C";
ALTER TABLE collectors ADD COLUMN ca_pem TEXT COLLATE "C";
