-- The table of the sample app (test/fixtures/app): POST /rows inserts a key and answers with its id.
-- Migrations of service web are applied in version order to the idle slot's database after it is
-- copied from the previous stage (see `database:` in the profiles); file names: V<version>__<name>.sql.
CREATE TABLE writes (id bigserial PRIMARY KEY, k text NOT NULL UNIQUE);
