-- The host stub's own database <data_dir>/host.db: the event log (the source
-- of truth of an event-sourced host), the persisted user settings with their
-- logged changes, and the identity (pseudonymous id).
--
-- Applied as forward-only migrations tracked by PRAGMA user_version
-- (wep/sqlite/migrations.hpp): each step starts with a marker line
--     -- @migration <N>: <what it does>
-- and runs with `PRAGMA user_version = N` in one transaction. Never edit a
-- released step: append a new one.

-- @migration 1: events, settings, identity
CREATE TABLE IF NOT EXISTS events (
  sequence INTEGER PRIMARY KEY,      -- never deleted, so never reused
  type TEXT NOT NULL,
  payload TEXT NOT NULL,             -- a JSON object, compact
  committed_at INTEGER NOT NULL      -- Unix epoch milliseconds, UTC
);
CREATE TABLE IF NOT EXISTS settings (
  key TEXT PRIMARY KEY,
  value_json TEXT NOT NULL,
  updated_at INTEGER NOT NULL        -- Unix epoch milliseconds, UTC
);
CREATE TABLE IF NOT EXISTS identity (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  pseudonymous_id TEXT NOT NULL,     -- random UUID v4; never an auth identifier
  created_at INTEGER NOT NULL
);

-- @migration 2: setting changes join the event log, each placed after the mutation committed last before it
CREATE TABLE IF NOT EXISTS setting_changes (
  id INTEGER PRIMARY KEY,            -- change order
  after_sequence INTEGER NOT NULL,   -- the newest events.sequence when it was made (0: none)
  key TEXT NOT NULL,
  value_json TEXT NOT NULL,
  changed_at INTEGER NOT NULL        -- Unix epoch milliseconds, UTC
);
CREATE INDEX IF NOT EXISTS setting_changes_by_position ON setting_changes(after_sequence, id);
