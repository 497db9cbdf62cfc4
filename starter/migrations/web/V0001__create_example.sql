-- Migrations of service web, applied in version order to the idle slot's database after it is copied
-- (only when the profile gives the service a database). File names: V<version>__<name>.sql.
-- A migration that fails stops the promotion before any switch; see `updateserver migrate status <stage>`.
-- Written in SQL that PostgreSQL and MySQL both accept; keep to your own engine's dialect.
CREATE TABLE example (
  id integer PRIMARY KEY,
  note varchar(200) NOT NULL
);
