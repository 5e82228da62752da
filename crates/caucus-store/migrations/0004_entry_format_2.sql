-- Schema 4: entries in body format 2 (each body names its place in its device's chain
-- and, for authority entries, the authority entries it was made on). Bodies written in
-- format 1 cannot be read, nor converted (they are signed): before this step runs, the
-- store refuses a database that holds any (`StoreError::OldEntryFormat`), so the
-- organizer exports them with the build that wrote them. Nothing else changes; the
-- views are marked unknown so the first write rewrites them with the new fold.
UPDATE groups SET views_version = 0;
