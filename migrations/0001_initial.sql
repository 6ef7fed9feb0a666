-- callgate's schema: tenants and their numbers, calls with their transcripts and screening results,
-- SMS text-back threads, the job queue and the voice nodes' routing records.
--
-- Conventions (kept by every later migration):
-- * Ids are `uuid DEFAULT gen_random_uuid()` (core since Postgres 13: no extension needed, which
--   matters on managed Postgres). Voice nodes are the exception: their id is the operator-chosen NODE_ID.
-- * Every time is `timestamptz`.
-- * Enumerations are `text` with a CHECK listing lowercase snake_case values, the same strings the
--   `shared` crate's domain enums serialize to (`CallMode`, `ScreeningLabel`, `Role`, `CallOutcome`).
--   Twilio's own spellings (`in-progress`, `no-answer`) are translated in `shared`, never stored.
--   Text + CHECK rather than CREATE TYPE … AS ENUM: adding a value is then one ALTER of a constraint
--   inside a transaction, and sqlx decodes it as a plain String.
-- * Every tenant-owned row carries `tenant_id`. Children point at their parent with a composite
--   foreign key `(parent_id, tenant_id) → parent (id, tenant_id)`, so the database itself refuses a row
--   that mixes two tenants (a call on another tenant's number, a turn on another tenant's call).
--   Parents therefore carry `UNIQUE (id, tenant_id)` next to their primary key.
-- * Twilio retries webhooks: every row born from a Twilio callback is unique on the Twilio SID or the
--   `I-Twilio-Idempotency-Token`, and writers use `INSERT … ON CONFLICT DO NOTHING/UPDATE`.

-- Keeps `updated_at` honest without relying on every writer to remember it.
CREATE FUNCTION set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

-- ---------------------------------------------------------------------------------------------
-- Tenants, users, dashboard sessions
-- ---------------------------------------------------------------------------------------------

CREATE TABLE tenants (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name               text NOT NULL CHECK (btrim(name) <> ''),
    -- IANA zone name (e.g. 'America/New_York'); business hours are read in this zone. Validated by the
    -- node (a CHECK cannot call the zone lookup without being volatile).
    timezone           text NOT NULL DEFAULT 'UTC',
    -- Weekly opening hours in `timezone`: {"mon": [["09:00","17:00"]], "sat": [], …}; a day that is
    -- missing means closed. Empty object = always open.
    business_hours     jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(business_hours) = 'object'),
    -- Off: calls are forwarded / sent to voicemail without the AI pipeline.
    ai_enabled         boolean NOT NULL DEFAULT true,
    -- Forward mode: SMS sent to a caller the owner did not answer. `{business}` is substituted.
    text_back_template text NOT NULL DEFAULT
        'Sorry we missed your call at {business}. Reply here and we will get back to you.',
    -- Calls, transcripts, messages and recordings older than this are deleted by the retention job.
    retention_days     integer NOT NULL DEFAULT 90 CHECK (retention_days BETWEEN 1 AND 3650),
    disabled_at        timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER tenants_updated_at BEFORE UPDATE ON tenants
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- What screening does with each label. One row per (tenant, label); a missing row means the node's
-- default (legit → transfer, marketing/unknown → take_message, spam → end_call). A table rather than
-- a jsonb column on tenants so the labels and actions are checked by the database.
CREATE TABLE screening_policies (
    tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    label      text NOT NULL CHECK (label IN ('legit', 'marketing', 'spam', 'unknown')),
    action     text NOT NULL CHECK (action IN ('transfer', 'take_message', 'end_call')),
    -- Below this confidence the result is treated as 'unknown'.
    min_confidence real NOT NULL DEFAULT 0 CHECK (min_confidence >= 0 AND min_confidence <= 1),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, label)
);
CREATE TRIGGER screening_policies_updated_at BEFORE UPDATE ON screening_policies
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE users (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- NULL only for a superadmin, who administers all tenants.
    tenant_id     uuid REFERENCES tenants (id) ON DELETE CASCADE,
    email         text NOT NULL CHECK (email LIKE '%_@_%'),
    -- Argon2id in PHC string form ($argon2id$v=19$…); never a plain or fast hash.
    password_hash text NOT NULL CHECK (password_hash LIKE '$argon2%'),
    role          text NOT NULL CHECK (role IN ('superadmin', 'admin', 'member')),
    display_name  text,
    disabled_at   timestamptz,
    last_login_at timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_tenant_required CHECK (tenant_id IS NOT NULL OR role = 'superadmin')
);
-- Case-insensitive uniqueness without the citext extension (not every managed Postgres has it);
-- look users up with `WHERE lower(email) = lower($1)` so this index is used.
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
CREATE INDEX users_tenant_idx ON users (tenant_id);
CREATE TRIGGER users_updated_at BEFORE UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Dashboard login sessions. The cookie carries a random token; only its SHA-256 is stored, so a
-- leaked database dump holds no usable session. Users own sessions (a superadmin has no tenant),
-- hence no tenant_id here.
CREATE TABLE sessions (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    token_hash   bytea NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    user_agent   text,
    ip           inet,
    CHECK (expires_at > created_at)
);
CREATE INDEX sessions_user_idx ON sessions (user_id);
-- The expiry sweep deletes by expires_at.
CREATE INDEX sessions_expires_idx ON sessions (expires_at);

-- ---------------------------------------------------------------------------------------------
-- Numbers, transfer targets, allow/block lists
-- ---------------------------------------------------------------------------------------------

CREATE TABLE phone_numbers (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    -- One number belongs to one tenant, globally: the edge routes on it.
    e164        text NOT NULL UNIQUE CHECK (e164 ~ '^\+[1-9][0-9]{1,14}$'),
    mode        text NOT NULL DEFAULT 'screening'
                CHECK (mode IN ('screening', 'receptionist', 'forward')),
    -- Where legit callers are transferred (screening) and forward mode dials.
    owner_phone text CHECK (owner_phone ~ '^\+[1-9][0-9]{1,14}$'),
    -- Preferred node region for this number's calls (routing snapshot); NULL = nearest to the caller.
    region      text,
    friendly_name text,
    -- Twilio's PN… SID when the number was provisioned through the API.
    twilio_sid  text UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (id, tenant_id)
);
CREATE INDEX phone_numbers_tenant_idx ON phone_numbers (tenant_id);
CREATE TRIGGER phone_numbers_updated_at BEFORE UPDATE ON phone_numbers
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Receptionist transfer targets ("sales", "billing").
CREATE TABLE departments (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name        text NOT NULL CHECK (btrim(name) <> ''),
    -- An E.164 number or a SIP URI, dialed with <Dial>.
    transfer_to text NOT NULL CHECK (transfer_to ~ '^(\+[1-9][0-9]{1,14}|sips?:.+)$'),
    -- What the agent may say about it and the words that route a caller there.
    description text NOT NULL DEFAULT '',
    keywords    text[] NOT NULL DEFAULT '{}',
    enabled     boolean NOT NULL DEFAULT true,
    position    integer NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name)
);
CREATE TRIGGER departments_updated_at BEFORE UPDATE ON departments
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Allow list (always put through, skip screening) and block list (reject) per tenant. One row per
-- caller number, so a number is never on both lists.
CREATE TABLE contacts (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    number     text NOT NULL CHECK (number ~ '^\+[1-9][0-9]{1,14}$'),
    kind       text NOT NULL CHECK (kind IN ('allow', 'block')),
    name       text,
    note       text,
    created_by uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, number)
);

-- ---------------------------------------------------------------------------------------------
-- Voice nodes (infrastructure, not tenant-owned): the source of the routing snapshot
-- ---------------------------------------------------------------------------------------------

CREATE TABLE voice_nodes (
    -- NODE_ID (Fly machine id or hostname): stable across restarts, so a restart updates its row.
    id                text PRIMARY KEY CHECK (id <> ''),
    region            text NOT NULL,
    -- NULL when the operator gave no position; the nearest-node choice then ranks the node last.
    lat               double precision CHECK (lat BETWEEN -90 AND 90),
    lon               double precision CHECK (lon BETWEEN -180 AND 180),
    public_url        text NOT NULL,
    active_calls      integer NOT NULL DEFAULT 0 CHECK (active_calls >= 0),
    capacity          integer NOT NULL DEFAULT 50 CHECK (capacity > 0),
    -- Set on SIGTERM: the node finishes its calls but takes no new ones.
    draining          boolean NOT NULL DEFAULT false,
    version           text,
    -- Nodes whose heartbeat is older than the snapshot's staleness limit are left out of it.
    last_heartbeat_at timestamptz NOT NULL DEFAULT now(),
    started_at        timestamptz NOT NULL DEFAULT now(),
    CHECK ((lat IS NULL) = (lon IS NULL))
);

-- ---------------------------------------------------------------------------------------------
-- Calls
-- ---------------------------------------------------------------------------------------------

CREATE TABLE calls (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- Twilio's CA… SID: retried callbacks upsert on it.
    call_sid       text NOT NULL UNIQUE CHECK (call_sid <> ''),
    tenant_id      uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    -- NULL for browser-dialer calls and after the number is released; the call history stays.
    number_id      uuid,
    from_number    text NOT NULL,
    to_number      text NOT NULL,
    direction      text NOT NULL DEFAULT 'inbound' CHECK (direction IN ('inbound', 'outbound')),
    mode           text NOT NULL CHECK (mode IN ('screening', 'receptionist', 'forward')),
    -- Twilio's last reported CallStatus, in snake_case.
    status         text NOT NULL DEFAULT 'ringing' CHECK (status IN
                   ('queued', 'ringing', 'in_progress', 'completed', 'busy', 'failed', 'no_answer', 'canceled')),
    -- What callgate made of the call; NULL while it is live.
    outcome        text CHECK (outcome IN ('completed', 'transferred', 'message_taken', 'rejected',
                                           'voicemail', 'missed', 'failed', 'abandoned')),
    -- STIR/SHAKEN attestation as Twilio reports it (e.g. 'TN-Validation-Passed-A'); free text because
    -- Twilio adds values.
    stir_verstat   text,
    caller_name    text,
    forwarded_from text,
    -- The node that handled the media. Not a foreign key: node rows are pruned, call history is not.
    node_id        text,
    region         text,
    -- Post-call summary written by the summary job (receptionist mode).
    summary        text,
    started_at     timestamptz NOT NULL DEFAULT now(),
    answered_at    timestamptz,
    ended_at       timestamptz,
    duration_s     integer CHECK (duration_s >= 0),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (id, tenant_id),
    -- Postgres 15's column list: releasing a number clears number_id only, keeping tenant_id.
    FOREIGN KEY (number_id, tenant_id) REFERENCES phone_numbers (id, tenant_id)
        ON DELETE SET NULL (number_id),
    CHECK (ended_at IS NULL OR ended_at >= started_at)
);
-- The dashboard's inbox: newest first, keyset-paginated on (started_at, id), optionally filtered.
CREATE INDEX calls_tenant_started_idx ON calls (tenant_id, started_at DESC, id DESC);
CREATE INDEX calls_tenant_mode_idx ON calls (tenant_id, mode, started_at DESC);
CREATE INDEX calls_tenant_outcome_idx ON calls (tenant_id, outcome, started_at DESC);
CREATE INDEX calls_tenant_from_idx ON calls (tenant_id, from_number, started_at DESC);
CREATE INDEX calls_number_idx ON calls (number_id);
-- Live calls per node (drain, live view); small because finished calls drop out.
CREATE INDEX calls_live_idx ON calls (node_id) WHERE ended_at IS NULL;
CREATE TRIGGER calls_updated_at BEFORE UPDATE ON calls
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Everything Twilio (or the node) reported about a call, in arrival order: status callbacks,
-- dial results, stream status, transfers.
CREATE TABLE call_events (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id       uuid NOT NULL,
    call_id         uuid NOT NULL,
    kind            text NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_]*$'),
    payload         jsonb NOT NULL DEFAULT '{}',
    -- Twilio's I-Twilio-Idempotency-Token for callbacks (a retry carries the same token); NULL for
    -- events the node records itself.
    idempotency_key text UNIQUE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (call_id, tenant_id) REFERENCES calls (id, tenant_id) ON DELETE CASCADE
);
CREATE INDEX call_events_call_idx ON call_events (call_id, created_at);

-- One row per utterance, written as the call goes. `seq` is assigned by the call's session task;
-- UNIQUE (call_id, seq) makes a re-flush after a DB outage idempotent (ON CONFLICT DO NOTHING).
CREATE TABLE transcript_turns (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id            uuid NOT NULL,
    call_id              uuid NOT NULL,
    seq                  integer NOT NULL CHECK (seq >= 0),
    speaker              text NOT NULL CHECK (speaker IN ('caller', 'agent', 'owner')),
    text                 text NOT NULL,
    started_at           timestamptz NOT NULL,
    ended_at             timestamptz,
    -- The caller barged in and the agent's turn was cut short (text is what was actually heard).
    interrupted          boolean NOT NULL DEFAULT false,
    -- Per-turn timings in milliseconds since the call's media stream started (the node's monotonic
    -- clock, so differences are exact): end of caller speech, STT final, first reply token, first TTS
    -- byte, first audio frame sent. Latency of a turn = first_audio_frame_ms - speech_end_ms.
    -- NULL where a stage did not happen (e.g. caller turns have no TTS).
    speech_end_ms        integer CHECK (speech_end_ms >= 0),
    stt_final_ms         integer CHECK (stt_final_ms >= 0),
    first_token_ms       integer CHECK (first_token_ms >= 0),
    first_tts_byte_ms    integer CHECK (first_tts_byte_ms >= 0),
    first_audio_frame_ms integer CHECK (first_audio_frame_ms >= 0),
    -- Free-text search over transcripts. 'english' stems ("refunds" finds "refund").
    text_search          tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED,
    created_at           timestamptz NOT NULL DEFAULT now(),
    UNIQUE (call_id, seq),
    FOREIGN KEY (call_id, tenant_id) REFERENCES calls (id, tenant_id) ON DELETE CASCADE
);
CREATE INDEX transcript_turns_search_idx ON transcript_turns USING gin (text_search);
CREATE INDEX transcript_turns_tenant_idx ON transcript_turns (tenant_id);

CREATE TABLE screening_results (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id  uuid NOT NULL,
    -- One verdict per call; a re-classification updates it (ON CONFLICT (call_id) DO UPDATE).
    call_id    uuid NOT NULL UNIQUE,
    label      text NOT NULL CHECK (label IN ('legit', 'marketing', 'spam', 'unknown')),
    -- One line for the inbox: "dentist confirming Tuesday's appointment".
    intent     text NOT NULL DEFAULT '',
    confidence real NOT NULL CHECK (confidence >= 0 AND confidence <= 1),
    -- Internal reasoning, shown to the tenant's admins only, never spoken.
    rationale  text NOT NULL DEFAULT '',
    -- What the tenant's policy did with it; NULL if the caller hung up first.
    action     text CHECK (action IN ('transfer', 'take_message', 'end_call')),
    created_at timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (call_id, tenant_id) REFERENCES calls (id, tenant_id) ON DELETE CASCADE
);
-- Inbox filter by label.
CREATE INDEX screening_results_tenant_label_idx ON screening_results (tenant_id, label, created_at DESC);

-- ---------------------------------------------------------------------------------------------
-- SMS text-back threads
-- ---------------------------------------------------------------------------------------------

CREATE TABLE sms_threads (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id        uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    number_id        uuid NOT NULL,
    caller_number    text NOT NULL CHECK (caller_number ~ '^\+[1-9][0-9]{1,14}$'),
    -- The missed call that started the thread, if any.
    call_id          uuid,
    -- awaiting_owner: text-back sent, the owner has 60 s to reply; owner_replied: a human has the
    -- thread, the AI stays out; ai_active: nobody replied in time, the AI answers; closed.
    state            text NOT NULL DEFAULT 'awaiting_owner'
                     CHECK (state IN ('awaiting_owner', 'owner_replied', 'ai_active', 'closed')),
    -- When the AI takes over if the owner has not replied (scheduled), or took over (past).
    ai_takeover_at   timestamptz,
    owner_replied_at timestamptz,
    -- The caller texted STOP: nothing more is sent to them from this number.
    stopped          boolean NOT NULL DEFAULT false,
    last_message_at  timestamptz NOT NULL DEFAULT now(),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (id, tenant_id),
    FOREIGN KEY (number_id, tenant_id) REFERENCES phone_numbers (id, tenant_id) ON DELETE CASCADE,
    FOREIGN KEY (call_id, tenant_id) REFERENCES calls (id, tenant_id) ON DELETE SET NULL (call_id)
);
-- At most one open thread per caller per number: an incoming SMS finds it without ambiguity.
CREATE UNIQUE INDEX sms_threads_open_key ON sms_threads (number_id, caller_number)
    WHERE state <> 'closed';
CREATE INDEX sms_threads_tenant_idx ON sms_threads (tenant_id, last_message_at DESC);
-- The takeover sweep: threads whose owner did not answer in time.
CREATE INDEX sms_threads_takeover_idx ON sms_threads (ai_takeover_at) WHERE state = 'awaiting_owner';
CREATE TRIGGER sms_threads_updated_at BEFORE UPDATE ON sms_threads
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE sms_messages (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id       uuid NOT NULL,
    thread_id       uuid NOT NULL,
    -- Twilio's SM…/MM… SID; NULL for an outbound message not yet accepted by Twilio.
    message_sid     text UNIQUE,
    direction       text NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    author          text NOT NULL CHECK (author IN ('caller', 'owner', 'ai', 'system')),
    body            text NOT NULL,
    -- Twilio's MessageStatus, snake_case.
    status          text NOT NULL DEFAULT 'queued' CHECK (status IN
                    ('accepted', 'scheduled', 'queued', 'sending', 'sent', 'delivered', 'undelivered',
                     'failed', 'receiving', 'received', 'read', 'canceled')),
    -- Inbound: Twilio's I-Twilio-Idempotency-Token. Outbound: the sender's own key
    -- (e.g. 'textback:CA…'), so a retried job never texts twice.
    idempotency_key text UNIQUE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    FOREIGN KEY (thread_id, tenant_id) REFERENCES sms_threads (id, tenant_id) ON DELETE CASCADE
);
CREATE INDEX sms_messages_thread_idx ON sms_messages (thread_id, created_at);

-- ---------------------------------------------------------------------------------------------
-- Leads, knowledge base, screening examples
-- ---------------------------------------------------------------------------------------------

CREATE TABLE leads (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name            text,
    callback_number text,
    reason          text NOT NULL DEFAULT '',
    urgency         text NOT NULL DEFAULT 'normal' CHECK (urgency IN ('low', 'normal', 'high')),
    -- Where the lead came from; both survive the source's deletion by retention as NULL.
    call_id         uuid,
    sms_thread_id   uuid,
    handled_at      timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (call_id, tenant_id) REFERENCES calls (id, tenant_id) ON DELETE SET NULL (call_id),
    FOREIGN KEY (sms_thread_id, tenant_id) REFERENCES sms_threads (id, tenant_id)
        ON DELETE SET NULL (sms_thread_id)
);
CREATE INDEX leads_tenant_idx ON leads (tenant_id, created_at DESC);
CREATE INDEX leads_call_idx ON leads (call_id);

-- Receptionist FAQ. The embedding is computed by a job after each edit (NULL until then);
-- embedding_model says which model made it, so a model change re-embeds instead of mixing spaces.
CREATE TABLE kb_entries (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    question        text NOT NULL CHECK (btrim(question) <> ''),
    answer          text NOT NULL,
    -- real[] rather than pgvector: no extension to install; tenants' KBs are small enough to rank
    -- in the node.
    embedding       real[] CHECK (embedding IS NULL OR array_ndims(embedding) = 1),
    embedding_model text,
    enabled         boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX kb_entries_tenant_idx ON kb_entries (tenant_id);
CREATE TRIGGER kb_entries_updated_at BEFORE UPDATE ON kb_entries
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Labelled caller sentences for the nearest-example classifier. tenant_id NULL: a built-in example
-- every tenant gets; otherwise the tenant's own additions, used on top of the built-ins.
CREATE TABLE screening_examples (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id       uuid REFERENCES tenants (id) ON DELETE CASCADE,
    text            text NOT NULL CHECK (btrim(text) <> ''),
    label           text NOT NULL CHECK (label IN ('legit', 'marketing', 'spam', 'unknown')),
    intent          text NOT NULL DEFAULT '',
    embedding       real[] CHECK (embedding IS NULL OR array_ndims(embedding) = 1),
    embedding_model text,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX screening_examples_tenant_idx ON screening_examples (tenant_id);
-- The same sentence is not added twice (NULLS NOT DISTINCT, Postgres 15: also for the built-ins).
CREATE UNIQUE INDEX screening_examples_text_key ON screening_examples (tenant_id, text) NULLS NOT DISTINCT;

-- ---------------------------------------------------------------------------------------------
-- Recordings
-- ---------------------------------------------------------------------------------------------

CREATE TABLE recordings (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    recording_sid text NOT NULL UNIQUE CHECK (recording_sid <> ''),
    tenant_id     uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    -- SET NULL, not CASCADE: the row outlives its call so the retention job still knows the media
    -- at Twilio must be deleted (then sets deleted_at).
    call_id       uuid,
    url           text,
    duration_s    integer CHECK (duration_s >= 0),
    status        text NOT NULL DEFAULT 'in_progress' CHECK (status IN
                  ('in_progress', 'paused', 'stopped', 'processing', 'completed', 'absent', 'failed')),
    deleted_at    timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (call_id, tenant_id) REFERENCES calls (id, tenant_id) ON DELETE SET NULL (call_id)
);
CREATE INDEX recordings_call_idx ON recordings (call_id);
CREATE INDEX recordings_pending_delete_idx ON recordings (tenant_id, created_at) WHERE deleted_at IS NULL;

-- ---------------------------------------------------------------------------------------------
-- Job queue and outbound deliveries
-- ---------------------------------------------------------------------------------------------

-- Polled with
--   SELECT … FROM jobs WHERE queue = $1 AND status = 'queued' AND run_at <= now()
--   ORDER BY run_at LIMIT $2 FOR UPDATE SKIP LOCKED
-- so any number of nodes can work the queue without a coordinator.
CREATE TABLE jobs (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- NULL for system jobs (retention sweep, session expiry).
    tenant_id       uuid REFERENCES tenants (id) ON DELETE CASCADE,
    queue           text NOT NULL DEFAULT 'default',
    kind            text NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_.]*$'),
    payload         jsonb NOT NULL DEFAULT '{}',
    -- dead: attempts exhausted; kept for the operator.
    status          text NOT NULL DEFAULT 'queued'
                    CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'dead')),
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts    integer NOT NULL DEFAULT 5 CHECK (max_attempts > 0),
    run_at          timestamptz NOT NULL DEFAULT now(),
    -- Which node holds it and since when; a running job whose lock is stale (node died) is requeued.
    locked_by       text,
    locked_at       timestamptz,
    last_error      text,
    -- Enqueue with ON CONFLICT (idempotency_key) DO NOTHING: e.g. 'summary:<call id>'.
    idempotency_key text UNIQUE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    CHECK (status <> 'running' OR (locked_by IS NOT NULL AND locked_at IS NOT NULL))
);
-- The poll above: partial, so finished jobs (the vast majority over time) do not bloat it.
CREATE INDEX jobs_poll_idx ON jobs (queue, run_at) WHERE status = 'queued';
-- Stale-lock recovery.
CREATE INDEX jobs_running_idx ON jobs (locked_at) WHERE status = 'running';
CREATE TRIGGER jobs_updated_at BEFORE UPDATE ON jobs
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- One row per SMS or e-mail callgate sends on its own initiative (text-back, summaries, lead alerts).
-- The sender claims the key first (INSERT … ON CONFLICT DO NOTHING) and only sends if it got the row,
-- so job retries and two nodes racing never deliver twice.
CREATE TABLE outbound_deliveries (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    channel         text NOT NULL CHECK (channel IN ('sms', 'email')),
    idempotency_key text NOT NULL UNIQUE,
    recipient       text NOT NULL,
    -- undeliverable: no way to send at all (e.g. SMTP_URL unset); kept so it can be sent later.
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'sent', 'failed', 'undeliverable')),
    -- Twilio MessageSid or the SMTP Message-ID.
    provider_id     text,
    job_id          uuid REFERENCES jobs (id) ON DELETE SET NULL,
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz
);
CREATE INDEX outbound_deliveries_tenant_idx ON outbound_deliveries (tenant_id, created_at DESC);

-- ---------------------------------------------------------------------------------------------
-- Audit log and per-tenant AI providers
-- ---------------------------------------------------------------------------------------------

-- Who changed what. Rows outlive their tenant and user (SET NULL) so the record stays.
CREATE TABLE audit_log (
    id        uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id uuid REFERENCES tenants (id) ON DELETE SET NULL,
    user_id   uuid REFERENCES users (id) ON DELETE SET NULL,
    action    text NOT NULL,
    target    text,
    details   jsonb NOT NULL DEFAULT '{}',
    ip        inet,
    at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_tenant_idx ON audit_log (tenant_id, at DESC);

-- A tenant's choice of cloud provider per pipeline stage; no row = the offline default.
CREATE TABLE tenant_provider_settings (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id         uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    kind              text NOT NULL CHECK (kind IN ('stt', 'tts', 'llm')),
    provider          text NOT NULL,
    base_url          text,
    -- Sealed by the node with a key from its environment; the plaintext key never reaches the
    -- database, its dumps or the dashboard API.
    api_key_encrypted bytea,
    model             text,
    settings          jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(settings) = 'object'),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, kind)
);
CREATE TRIGGER tenant_provider_settings_updated_at BEFORE UPDATE ON tenant_provider_settings
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
