-- Schema 2: opened bodies beside their envelopes, the groups a node folds, and the
-- materialized state (views) the CLI queries without folding.

-- A node stores the body plaintext of each entry once it has opened and verified it, so
-- loading its state needs no cryptography (the database itself is encrypted). Relays,
-- and entries a node cannot open yet, leave both NULL.
ALTER TABLE entries ADD COLUMN body BLOB;        -- encoded caucus_proto::Body
ALTER TABLE entries ADD COLUMN body_id BLOB;     -- caucus_crypto::BodyId (32 bytes)
-- Re-sealed copies share a body id; all are kept (the fold dedups them), the index
-- answers "was this body stored already" for the crypto layer's replay check.
CREATE INDEX entries_by_body ON entries (body_id) WHERE body_id IS NOT NULL;
CREATE INDEX entries_unopened ON entries (group_id, id) WHERE body IS NULL;

-- The groups this node folds, with the state the views below show.
CREATE TABLE groups (
    group_id      BLOB PRIMARY KEY,          -- 16 bytes
    founder       BLOB NOT NULL,             -- identity key (32 bytes), from the creation record
    state_hash    BLOB NOT NULL,             -- caucus_model::State::state_hash of the views
    name          TEXT,                      -- group name, once set
    headcount     INTEGER,                   -- campaign headcount, once set
    target_percent INTEGER,                  -- campaign target, once set
    current_epoch INTEGER NOT NULL
) WITHOUT ROWID;

-- Contacts, removed ones included (flagged). *_key columns hold the Unicode lowercase
-- of the field beside them, for the case-insensitive filters of caucus_model.
CREATE TABLE v_contacts (
    group_id     BLOB NOT NULL,
    contact_id   BLOB NOT NULL,
    name         TEXT NOT NULL,
    department   TEXT NOT NULL,
    shift        TEXT NOT NULL,
    job          TEXT NOT NULL,
    handle       TEXT NOT NULL,
    rating       INTEGER,                    -- 1..5, NULL when unrated
    assigned_to  TEXT NOT NULL,
    removed      INTEGER NOT NULL,           -- 0 or 1
    first_seen_ms      INTEGER NOT NULL,
    first_seen_counter INTEGER NOT NULL,
    name_key     TEXT NOT NULL,
    dept_key     TEXT NOT NULL,
    shift_key    TEXT NOT NULL,
    job_key      TEXT NOT NULL,
    handle_key   TEXT NOT NULL,
    assigned_key TEXT NOT NULL,
    PRIMARY KEY (group_id, contact_id)
) WITHOUT ROWID;
-- The workplace map reads this index alone.
CREATE INDEX v_contacts_map ON v_contacts (group_id, removed, department, shift, rating);
CREATE INDEX v_contacts_by_name ON v_contacts (group_id, removed, name_key, contact_id);

-- Every tag ever set on a contact, with whether it is on.
CREATE TABLE v_tags (
    group_id   BLOB NOT NULL,
    contact_id BLOB NOT NULL,
    tag        TEXT NOT NULL,
    tag_key    TEXT NOT NULL,
    is_on      INTEGER NOT NULL,
    PRIMARY KEY (group_id, contact_id, tag)
) WITHOUT ROWID;
CREATE INDEX v_tags_by_key ON v_tags (group_id, tag_key, is_on);

-- Conversation notes. sort_key orders a contact's notes as caucus_model::NoteKey does
-- (day, clock, entry id) under memcmp.
CREATE TABLE v_notes (
    group_id        BLOB NOT NULL,
    entry_id        BLOB NOT NULL,
    contact_id      BLOB NOT NULL,
    sort_key        BLOB NOT NULL,
    day             INTEGER NOT NULL,
    author_identity BLOB NOT NULL,
    author_device   BLOB NOT NULL,
    hlc_ms          INTEGER NOT NULL,
    hlc_counter     INTEGER NOT NULL,
    date            INTEGER,                 -- conversation day, when given
    by_name         TEXT,                    -- who had the conversation, when given
    text            TEXT NOT NULL,
    text_key        TEXT,                    -- lowercase text, NULL when equal to text
    PRIMARY KEY (group_id, entry_id)
) WITHOUT ROWID;
CREATE INDEX v_notes_by_contact ON v_notes (group_id, contact_id, sort_key);

CREATE TABLE v_followups (
    group_id    BLOB NOT NULL,
    followup_id BLOB NOT NULL,
    contact_id  BLOB NOT NULL,
    due         INTEGER NOT NULL,            -- days since 1970-01-01
    assignee    TEXT NOT NULL,
    task        TEXT NOT NULL,
    done        INTEGER NOT NULL,
    PRIMARY KEY (group_id, followup_id)
) WITHOUT ROWID;
CREATE INDEX v_followups_due ON v_followups (group_id, done, due);

-- Notices. starts_at and expires_at hold u64 milliseconds shifted into i64 order
-- (value XOR 2^63) so SQL compares them as the model does.
CREATE TABLE v_notices (
    group_id     BLOB NOT NULL,
    notice_id    BLOB NOT NULL,
    title        TEXT NOT NULL,
    starts_at    INTEGER NOT NULL,
    place        TEXT NOT NULL,
    body         TEXT NOT NULL,
    urgent       INTEGER NOT NULL,
    expires_at   INTEGER,
    posted_by    BLOB NOT NULL,
    cancelled    INTEGER NOT NULL,
    PRIMARY KEY (group_id, notice_id)
) WITHOUT ROWID;

CREATE TABLE v_acks (
    group_id  BLOB NOT NULL,
    notice_id BLOB NOT NULL,
    identity  BLOB NOT NULL,
    PRIMARY KEY (group_id, notice_id, identity)
) WITHOUT ROWID;

CREATE TABLE v_members (
    group_id BLOB NOT NULL,
    identity BLOB NOT NULL,
    name     TEXT NOT NULL,
    is_admin INTEGER NOT NULL,
    removed  INTEGER NOT NULL,
    PRIMARY KEY (group_id, identity)
) WITHOUT ROWID;

CREATE TABLE v_devices (
    group_id BLOB NOT NULL,
    device   BLOB NOT NULL,
    identity BLOB NOT NULL,
    dh       BLOB NOT NULL,
    label    TEXT NOT NULL,
    revoked  INTEGER NOT NULL,
    PRIMARY KEY (group_id, device)
) WITHOUT ROWID;
