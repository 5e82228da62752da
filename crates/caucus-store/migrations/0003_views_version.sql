-- Schema 3: the views are trusted by the version of the fold and view layout that wrote
-- them, no longer by a state hash recomputed at the first write after every open (a full
-- hash of the state: over 100 ms at 60,000 entries). The views are written in the same
-- transaction as the entries they show, so only another fold can make them differ.
-- 0 (every database from schema 2) means "unknown": the first write rewrites them.
ALTER TABLE groups ADD COLUMN views_version INTEGER NOT NULL DEFAULT 0;
ALTER TABLE groups DROP COLUMN state_hash;
