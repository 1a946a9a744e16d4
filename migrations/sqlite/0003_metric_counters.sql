-- Metrics kept as entries are committed (Store::apply), so a scrape reads a few rows however
-- long the event log is, and pruning old entries (`[service] keep_log`) changes no metric.

-- callpark_events_total: entries logged per pool and kind.
CREATE TABLE metric_counter (
    pool TEXT NOT NULL,
    kind TEXT NOT NULL,
    n    INTEGER NOT NULL,
    PRIMARY KEY (pool, kind)
) WITHOUT ROWID;

-- callpark_time_to_retrieve_seconds: retrieved calls per pool, lot (`general` for none) and
-- bucket (`le_ms`, the bucket's upper bound in ms; 9223372036854775807 for +Inf), not
-- cumulative, with the sum of their waits.
CREATE TABLE retrieve_wait (
    pool   TEXT NOT NULL,
    lot    TEXT NOT NULL,
    le_ms  INTEGER NOT NULL,
    n      INTEGER NOT NULL,
    sum_ms INTEGER NOT NULL,
    PRIMARY KEY (pool, lot, le_ms)
) WITHOUT ROWID;

-- A counter bumped by every commit that changes the parked calls or the log: the API decodes
-- its list of parked calls again only when it moved.
CREATE TABLE store_generation (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n  INTEGER NOT NULL
);
INSERT INTO store_generation (id, n) VALUES (1, 0);

-- The counters of the log written before this migration, counted once.
INSERT INTO metric_counter (pool, kind, n)
    SELECT pool, kind, COUNT(*) FROM event_log GROUP BY pool, kind;

INSERT INTO retrieve_wait (pool, lot, le_ms, n, sum_ms)
    SELECT pool, lot, le_ms, COUNT(*), SUM(waited) FROM (
        SELECT pool, lot, waited,
               CASE WHEN waited <= 5000 THEN 5000
                    WHEN waited <= 10000 THEN 10000
                    WHEN waited <= 30000 THEN 30000
                    WHEN waited <= 60000 THEN 60000
                    WHEN waited <= 90000 THEN 90000
                    WHEN waited <= 120000 THEN 120000
                    WHEN waited <= 300000 THEN 300000
                    WHEN waited <= 600000 THEN 600000
                    ELSE 9223372036854775807 END AS le_ms
          FROM (SELECT r.pool AS pool, COALESCE(r.lot, 'general') AS lot,
                       r.at - MAX(p.at) AS waited
                  FROM event_log r JOIN event_log p
                    ON p.channel = r.channel AND p.kind = 'parked' AND p.id < r.id
                 WHERE r.kind = 'retrieved'
                 GROUP BY r.id))
     GROUP BY pool, lot, le_ms;
