-- boeflow state, migration 002 (issue 17): exactly-once publication.
-- * A review decision is recorded once: its key (draft, content, kind, reviewer; not its
--   time) is unique per day, so a rerun of the same answer finds its row. Item notes are
--   kept with it, and content_key says what the decision publishes.
-- * A digest version is 'publishing' from the moment it is decided until its files, the
--   pointer digests/YYYY/MM/DD/current.json, Elasticsearch, the feed and this row all hold
--   it; then 'published'. At most one version of a day is 'publishing'; error says why the
--   last attempt stopped.
-- * A delivery is one message per recipient: keyed by day, version, channel and recipient.
ALTER TABLE review_decisions ADD COLUMN decision_key text;
ALTER TABLE review_decisions ADD COLUMN content_key text;
ALTER TABLE review_decisions ADD COLUMN notes jsonb NOT NULL DEFAULT '{}'::jsonb;
CREATE UNIQUE INDEX review_decisions_key ON review_decisions (day, decision_key)
    WHERE decision_key IS NOT NULL;

ALTER TABLE digests ADD COLUMN content_key text;
ALTER TABLE digests ADD COLUMN error text;
ALTER TABLE digests ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();
CREATE UNIQUE INDEX digests_one_publishing ON digests (day) WHERE status = 'publishing';

ALTER TABLE deliveries ADD COLUMN recipient text NOT NULL DEFAULT '';
ALTER TABLE deliveries ADD COLUMN message_id text;
ALTER TABLE deliveries DROP CONSTRAINT deliveries_pkey;
ALTER TABLE deliveries ADD PRIMARY KEY (day, version, channel, recipient);
