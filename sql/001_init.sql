-- boeflow state, migration 001: publication days, documents, enrichments, task outcomes,
-- review decisions, digests and deliveries. Forward-only: never edit an applied file; add
-- sql/NNN_*.sql instead. Applied by `boeflow db upgrade` (schema_migrations records them).

CREATE TABLE days (
    day             date PRIMARY KEY,
    status          text NOT NULL DEFAULT 'pending',   -- pending | published | no_publication | error
    boe_number      text,
    items           integer NOT NULL DEFAULT 0,
    fetched         integer NOT NULL DEFAULT 0,
    indexed         integer NOT NULL DEFAULT 0,
    enriched        integer NOT NULL DEFAULT 0,
    needs_attention integer NOT NULL DEFAULT 0,
    failed          integer NOT NULL DEFAULT 0,
    digest_status   text,                               -- draft | awaiting_review | published | rejected | timed_out
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- One row per (day, task): the latest outcome of each task of the daily DAG.
CREATE TABLE task_runs (
    day         date NOT NULL REFERENCES days (day) ON DELETE CASCADE,
    task        text NOT NULL,                          -- which_day | fetch | index | enrich | review | build_digest | approve | publish | deliver
    status      text NOT NULL,                          -- running | success | failed | skipped
    run_id      text,
    detail      jsonb NOT NULL DEFAULT '{}'::jsonb,
    error       text,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    PRIMARY KEY (day, task)
);

CREATE TABLE documents (
    boe_id        text PRIMARY KEY,
    day           date NOT NULL REFERENCES days (day) ON DELETE CASCADE,
    section       text,
    department    text,
    title         text,
    fetch_status  text,                                 -- stored | failed
    fetch_error   text,
    index_status  text,                                 -- indexed | failed | not_fetched
    index_error   text,
    content_hash  text,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX documents_day ON documents (day);

CREATE TABLE enrichments (
    boe_id             text PRIMARY KEY REFERENCES documents (boe_id) ON DELETE CASCADE,
    day                date NOT NULL,
    summary_status     text,                            -- ok | failed | none
    translation_status text,
    review_status      text,                            -- auto_checked | needs_attention | failed
    needs_attention    boolean NOT NULL DEFAULT false,
    review_reasons     jsonb NOT NULL DEFAULT '[]'::jsonb,
    error              text,
    summarizer_model   text,
    translator_model   text,
    prompt_version     text,
    smoke              boolean NOT NULL DEFAULT false,
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX enrichments_day ON enrichments (day);

CREATE TABLE review_decisions (
    id            bigserial PRIMARY KEY,
    day           date NOT NULL REFERENCES days (day) ON DELETE CASCADE,
    decision      text NOT NULL,                        -- approved | rejected | timed_out | without_review
    reviewer      text,
    reviewer_id   text,
    decided_at    timestamptz NOT NULL,
    excluded      jsonb NOT NULL DEFAULT '[]'::jsonb,   -- BOE ids
    edits         jsonb NOT NULL DEFAULT '{}'::jsonb,   -- BOE id -> {resumen, review}
    note          text,
    run_id        text,
    draft_hash    text NOT NULL,                        -- the draft the reviewer saw
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX review_decisions_day ON review_decisions (day);

CREATE TABLE digests (
    day           date NOT NULL REFERENCES days (day) ON DELETE CASCADE,
    version       integer NOT NULL,
    status        text NOT NULL,                        -- published
    draft_hash    text NOT NULL,
    content_hash  text NOT NULL,
    decision_id   bigint REFERENCES review_decisions (id),
    without_review boolean NOT NULL DEFAULT false,
    paths         jsonb NOT NULL DEFAULT '{}'::jsonb,   -- format -> raw store path
    items         integer NOT NULL DEFAULT 0,
    excluded      integer NOT NULL DEFAULT 0,
    published_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (day, version)
);

CREATE TABLE deliveries (
    day          date NOT NULL,
    version      integer NOT NULL,
    channel      text NOT NULL,                         -- e.g. mail:digest, mail:watchlist:<name>
    recipients   jsonb NOT NULL DEFAULT '[]'::jsonb,
    status       text NOT NULL,                         -- sent | failed
    attempts     integer NOT NULL DEFAULT 0,
    error        text,
    subject      text,
    sent_at      timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (day, version, channel),
    FOREIGN KEY (day, version) REFERENCES digests (day, version) ON DELETE CASCADE
);
