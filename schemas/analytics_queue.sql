-- The analytics plugin's local queue: the ONE source of its DDL.
--
-- The plugin embeds this file at build time and applies it as forward-only
-- migrations tracked by PRAGMA user_version (wep/sqlite/migrations.hpp). Each
-- step starts with a marker line of the form
--     -- @migration <N>: <what it does>
-- and runs, together with `PRAGMA user_version = N`, in one transaction, so a
-- database is always at exactly one version and no queued row is ever lost.
-- Never edit a released step: append a new one.

-- @migration 1: the spec's analytics_queue table, exactly as written
CREATE TABLE analytics_queue (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_type TEXT NOT NULL,   -- Pseudonymous event name
    properties TEXT,            -- JSON: non-PII event properties
    user_id TEXT,               -- Pseudonymous identifier (not auth UUID)
    created_at TEXT NOT NULL
        DEFAULT (strftime('%Y-%m-%dT%H:%M:%f', 'now'))
);

-- @migration 2: rows the backend refused for good, kept for inspection
CREATE TABLE analytics_dead_letter (
    id INTEGER PRIMARY KEY,     -- the row's id in analytics_queue
    event_type TEXT NOT NULL,
    properties TEXT,
    user_id TEXT,
    created_at TEXT NOT NULL,   -- as queued (spec format, UTC)
    reason TEXT NOT NULL,       -- why the backend refused it
    failed_at TEXT NOT NULL
        DEFAULT (strftime('%Y-%m-%dT%H:%M:%f', 'now'))
);

-- @migration 3: an O(1) pending count
-- SELECT count(*) walks the whole table (tens of ms at 1,000,000 rows), and
-- per-row triggers would cost about a third of the insert rate. So every
-- statement that inserts or deletes queue rows also adjusts `pending` in the
-- same transaction (QueueStore does; anything else writing the queue must too).
-- The plugin recounts at start, which repairs any drift from outside edits.
CREATE TABLE analytics_queue_count (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    pending INTEGER NOT NULL
);
INSERT INTO analytics_queue_count (singleton, pending)
    SELECT 1, count(*) FROM analytics_queue;

-- @migration 4: how far the plugin has processed the host's event log
-- Written in the same transaction as the rows it stored, so after a crash
-- the plugin replays the log from exactly here: no mutation is recorded
-- twice or skipped. No row: the plugin has never run against an event log
-- (it then starts at the end of the host's log).
CREATE TABLE analytics_checkpoint (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    last_sequence INTEGER NOT NULL,  -- the last mutation processed (stored or not)
    enabled INTEGER NOT NULL         -- analytics_enabled as of that mutation (1 / 0)
);

-- @migration 5: rows held back from delivery while a catch-up is under way
-- NULL: nothing held. Otherwise rows with id >= hold_from_id were stored by a
-- start-up catch-up that has not reached its end yet: they are not handed to
-- the transport (a setting change to false found later in the log deletes
-- them) until the catch-up ends and sets this back to NULL.
ALTER TABLE analytics_checkpoint ADD COLUMN hold_from_id INTEGER;
