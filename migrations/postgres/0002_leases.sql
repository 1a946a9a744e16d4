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
