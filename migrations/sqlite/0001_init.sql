-- Orbit table as last loaded from the configuration (for `callpark orbits` and audits).
CREATE TABLE orbit_range (
    name  TEXT PRIMARY KEY NOT NULL,
    first TEXT NOT NULL,
    last  TEXT NOT NULL,
    pool  TEXT NOT NULL,
    lot   TEXT,
    size  INTEGER NOT NULL
);

-- Every call callpark holds now. Deadlines are absolute (ms since the Unix epoch) so that a
-- restart resumes each timer where it was.
CREATE TABLE parked_call (
    channel   TEXT PRIMARY KEY NOT NULL,
    pool      TEXT NOT NULL,
    orbit     TEXT,
    parker    TEXT NOT NULL,
    caller    TEXT NOT NULL,
    parked_at INTEGER NOT NULL,
    deadline  INTEGER NOT NULL,
    attempt   INTEGER NOT NULL,
    state     TEXT NOT NULL,
    record    TEXT NOT NULL
);
-- Orbits are globally unique: the database refuses a second call on one orbit too.
CREATE UNIQUE INDEX parked_call_orbit ON parked_call (orbit) WHERE orbit IS NOT NULL;
CREATE INDEX parked_call_pool ON parked_call (pool);

-- Every park, retrieve, ringback, fallback and disconnect.
CREATE TABLE event_log (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      INTEGER NOT NULL,
    pool    TEXT NOT NULL,
    kind    TEXT NOT NULL,
    channel TEXT NOT NULL,
    orbit   TEXT,
    detail  TEXT NOT NULL
);
CREATE INDEX event_log_channel ON event_log (channel);

-- Custom music-on-hold files kept in the data directory, with their checksums.
CREATE TABLE media (
    name      TEXT PRIMARY KEY NOT NULL,
    path      TEXT NOT NULL,
    sha256    TEXT NOT NULL,
    size      INTEGER NOT NULL,
    stored_at INTEGER NOT NULL
);
