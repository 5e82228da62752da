-- Schema 1: entries, key material, settings, peers and sync bookkeeping.

-- Every entry this node holds, as the ciphertext envelope it travels as.
CREATE TABLE entries (
    id          BLOB PRIMARY KEY,        -- BLAKE3 of envelope (32 bytes)
    group_id    BLOB NOT NULL,           -- 16 bytes, as in the envelope header
    epoch       INTEGER NOT NULL,
    envelope    BLOB NOT NULL,           -- the encoded envelope, byte for byte
    received_ms INTEGER NOT NULL         -- local wall clock when first stored
) WITHOUT ROWID;
CREATE INDEX entries_by_group ON entries (group_id, id);

-- Key material, always wrapped (sealed under a key derived from the passphrase) by the
-- crypto layer before it reaches the store.
CREATE TABLE wrapped_keys (
    name    TEXT PRIMARY KEY,           -- e.g. "identity", "device", "epoch/<group>/<n>"
    wrapped BLOB NOT NULL
) WITHOUT ROWID;

-- Small settings of this node (display name, listen addresses, group list …).
CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
) WITHOUT ROWID;

-- Peers seen, for reconnecting and for `caucus status`.
CREATE TABLE peers (
    peer_id     TEXT PRIMARY KEY,
    addresses   TEXT NOT NULL,           -- newline-separated multiaddrs
    last_seen_ms INTEGER NOT NULL
) WITHOUT ROWID;

-- Last completed catch-up sync per group and peer.
CREATE TABLE sync_log (
    group_id     BLOB NOT NULL,
    peer_id      TEXT NOT NULL,
    last_sync_ms INTEGER NOT NULL,
    PRIMARY KEY (group_id, peer_id)
) WITHOUT ROWID;
