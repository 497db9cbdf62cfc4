-- When each write arrived. A new column with a default: the release that runs before it keeps working
-- (it never names the column), which is what lets a rollback go back to the old code on either database.
ALTER TABLE writes ADD COLUMN created_at timestamptz NOT NULL DEFAULT now();
