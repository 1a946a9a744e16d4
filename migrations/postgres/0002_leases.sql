-- Several nodes share one PostgreSQL: each pool is driven by the node holding its lease.
-- Times are the database's own clock in ms since the Unix epoch, so nodes whose clocks
-- disagree still agree on when a lease ran out.

-- One row per pool that was ever leased. `epoch` only grows: every takeover adds one, and
-- every write a pool's loop makes checks that its epoch is still the row's (Store::apply).
CREATE TABLE pool_lease (
    pool    TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    holder  TEXT COLLATE "C" NOT NULL,
    epoch   BIGINT NOT NULL,
    expires BIGINT NOT NULL,
    taken   BIGINT NOT NULL
);

-- Each node's last sign of life, for `prefer`: a pool goes home to a node that is alive.
CREATE TABLE node (
    name TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    seen BIGINT NOT NULL
);

-- Operators' requests (the admin API's retrieve and hang-up) made on a node that does not hold
-- the pool: the holder carries each out and writes its answer (`ok`, `no_call`, `busy`); the
-- asking node waits for it. Old rows are deleted as new ones come.
CREATE TABLE operator_request (
    id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    pool    TEXT COLLATE "C" NOT NULL,
    request TEXT NOT NULL,
    asked   BIGINT NOT NULL,
    answer  TEXT
);
CREATE INDEX operator_request_open ON operator_request (pool, id) WHERE answer IS NULL;
