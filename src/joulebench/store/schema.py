"""The results database schema (SQLite). Every table the runner writes and the report reads is here.

Versioned: ``meta.schema_version`` is checked on open; a database written by a newer joulebench is
refused with a clear message rather than misread. Energies are joules, times seconds, powers watts;
every measured-vs-estimated distinction is a column, never implied.
"""

from __future__ import annotations

SCHEMA_VERSION = 4

DDL = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- One invocation of `joulebench run` (or one cell of a sweep).
CREATE TABLE IF NOT EXISTS runs (
    id                 INTEGER PRIMARY KEY,
    created_unix_s     REAL NOT NULL,
    finished_unix_s    REAL,
    status             TEXT NOT NULL,          -- running | ok | partial | failed | interrupted
    engine             TEXT NOT NULL,
    engine_version     TEXT,
    model              TEXT NOT NULL,
    model_label        TEXT,                   -- e.g. "llama-3.2-1b", for tables
    workload           TEXT NOT NULL,
    batch_size         INTEGER NOT NULL,
    output_tokens      INTEGER NOT NULL,
    length_mode        TEXT NOT NULL,          -- fixed | natural
    device             TEXT NOT NULL,          -- cuda | cpu
    tensor_parallel    INTEGER NOT NULL DEFAULT 1,
    joulebench_version TEXT NOT NULL,
    sweep_key          TEXT,                   -- identifies the cell of a sweep plan, for resume
    config_json        TEXT NOT NULL,          -- the full resolved configuration
    environment_json   TEXT NOT NULL           -- GPUs, driver, power limits, CPU, engine versions, host
);

-- One measured trial: a setup trial (fresh process), a token-generation repeat, or the warm-up batch
-- before an engine start's first repeat.
CREATE TABLE IF NOT EXISTS trials (
    id               INTEGER PRIMARY KEY,
    run_id           INTEGER NOT NULL REFERENCES runs(id),
    kind             TEXT NOT NULL,            -- setup | generation | warmup | idle
    repeat_index     INTEGER NOT NULL,
    status           TEXT NOT NULL,            -- ok | failed | running
    error            TEXT,
    started_unix_s   REAL NOT NULL,
    duration_s       REAL,
    cache_state      TEXT,                     -- setup trials: warm | cold | unknown (page cache)
    compile_cache    TEXT,                     -- setup trials: warm | cold | unknown (engine compile caches)
    n_requests       INTEGER,
    prompt_tokens    INTEGER,                  -- summed over requests, from the tokenizer
    output_tokens    INTEGER,                  -- summed over requests, from the engine's token IDs
    details_json     TEXT                      -- engine info, code path, anything else
);

-- Energy of one window (stage) of a trial, per component and device; device 'all' is the sum.
CREATE TABLE IF NOT EXISTS stage_energy (
    id                  INTEGER PRIMARY KEY,
    trial_id            INTEGER NOT NULL REFERENCES trials(id),
    stage               TEXT NOT NULL,         -- import | engine_init | model_load | first_token | setup
                                               -- | generate | steady | idle
    component           TEXT NOT NULL,         -- gpu | cpu | dram | platform | node | other
    device              TEXT NOT NULL,         -- e.g. gpu0, package-0, node, all
    start_s             REAL NOT NULL,         -- monotonic clock of the measuring host
    end_s               REAL NOT NULL,
    energy_j            REAL,                  -- NULL when the window could not be measured (see flags)
    avg_power_w         REAL,
    peak_power_w        REAL,
    idle_power_w        REAL,
    above_idle_energy_j REAL,
    method              TEXT NOT NULL,         -- counter | integrated | derived | estimated
    estimated           INTEGER NOT NULL,      -- 1 when method = estimated
    flags               TEXT NOT NULL DEFAULT '',  -- comma-separated
    uncertainty_j       REAL                   -- bound of energy_j's error (docs/counters.md); NULL:
                                               -- estimated, or written before version 2
);

-- Per-request metrics of a generation trial.
CREATE TABLE IF NOT EXISTS requests (
    id              INTEGER PRIMARY KEY,
    trial_id        INTEGER NOT NULL REFERENCES trials(id),
    request_index   INTEGER NOT NULL,
    prompt_tokens   INTEGER,
    output_tokens   INTEGER NOT NULL,
    finish_reason   TEXT,
    ttft_s          REAL,
    tpot_s          REAL,
    e2e_s           REAL,
    itl_json        TEXT,                      -- inter-token latencies (s), when streamed
    error           TEXT,
    submit_s        REAL,                      -- monotonic clock of the measuring host, as start_s;
    first_token_s   REAL,                      -- NULL where the engine gives no such time, or for rows
    finish_s        REAL,                      -- written before version 3
    energy_j        REAL,                      -- the request's share of its repeat's energy (docs/phases.md)
    energy_estimated INTEGER                   -- 1 when that energy includes estimated parts
);

-- The power/energy trace of a trial, gzip-compressed JSONL in the documented trace format.
CREATE TABLE IF NOT EXISTS traces (
    trial_id  INTEGER PRIMARY KEY REFERENCES trials(id),
    format    TEXT NOT NULL,                   -- jsonl.gz
    data      BLOB NOT NULL
);

-- `joulebench roofline`: one microbenchmark on one card (docs/roofline.md).
CREATE TABLE IF NOT EXISTS roofline (
    id                  INTEGER PRIMARY KEY,
    created_unix_s      REAL NOT NULL,
    host                TEXT NOT NULL,
    joulebench_version  TEXT NOT NULL,
    device              TEXT NOT NULL,         -- e.g. gpu0
    device_name         TEXT NOT NULL,         -- the card's own name: limits are compared by it
    device_uuid         TEXT,
    kernel              TEXT NOT NULL,         -- copy | gemm
    unit                TEXT NOT NULL,         -- byte | flop
    dtype               TEXT NOT NULL,
    units               REAL NOT NULL,         -- bytes moved (read + written) or FLOPs done
    start_s             REAL NOT NULL,         -- monotonic clock of the measuring host
    end_s               REAL NOT NULL,
    energy_j            REAL NOT NULL,
    uncertainty_j       REAL,
    idle_power_w        REAL,
    above_idle_energy_j REAL,
    method              TEXT NOT NULL,         -- counter | integrated
    flags               TEXT NOT NULL DEFAULT '',
    environment_json    TEXT NOT NULL          -- driver, clocks, power limit of the card at the time
);

-- The card's readings over one roofline row's window, as `traces` holds a trial's.
CREATE TABLE IF NOT EXISTS roofline_traces (
    roofline_id  INTEGER PRIMARY KEY REFERENCES roofline(id),
    format       TEXT NOT NULL,                -- jsonl.gz
    data         BLOB NOT NULL
);

CREATE INDEX IF NOT EXISTS trials_run ON trials(run_id);
CREATE INDEX IF NOT EXISTS stage_energy_trial ON stage_energy(trial_id);
CREATE INDEX IF NOT EXISTS requests_trial ON requests(trial_id);
CREATE INDEX IF NOT EXISTS runs_sweep ON runs(sweep_key);
"""
