-- Tables owned by cognito-hasura-sync. Apps join to them; the worker alone writes them.

-- Row guard shared by the mirrored tables. It keeps writes monotonic (a state read
-- from Cognito earlier never replaces one read later, whatever order backfill pages,
-- reconcile and events land in) and quiet (rewriting the same state changes nothing,
-- so PostgreSQL reports no update and the row keeps its synced_at).
CREATE FUNCTION public.cognito_guard_newer_state() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.observed_at < OLD.observed_at THEN
        RETURN NULL;
    END IF;
    IF NEW.content_hash IS NOT DISTINCT FROM OLD.content_hash
       AND NEW.deleted_at IS NOT DISTINCT FROM OLD.deleted_at THEN
        RETURN NULL;
    END IF;
    NEW.synced_at := now();
    RETURN NEW;
END;
$$;

CREATE TABLE public.cognito_users (
    id                 uuid        NOT NULL,
    user_pool_id       text        NOT NULL,
    username           text        NOT NULL,
    email              text,
    email_verified     boolean,
    phone_number       text,
    given_name         text,
    family_name        text,
    name               text,
    enabled            boolean     NOT NULL DEFAULT true,
    status             text        NOT NULL,
    attributes         jsonb       NOT NULL DEFAULT '{}'::jsonb,
    groups             jsonb       NOT NULL DEFAULT '[]'::jsonb,
    cognito_created_at timestamptz,
    cognito_updated_at timestamptz,
    observed_at        timestamptz NOT NULL,
    content_hash       text        NOT NULL,
    deleted_at         timestamptz,
    synced_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT cognito_users_pkey PRIMARY KEY (id)
);
COMMENT ON TABLE public.cognito_users IS 'Mirror of Cognito users, keyed by sub. Written only by cognito-hasura-sync.';
COMMENT ON COLUMN public.cognito_users.username IS 'Not unique: a deleted username can come back with a new sub.';
COMMENT ON COLUMN public.cognito_users.observed_at IS 'When the worker read this state from Cognito; older states never overwrite newer ones.';
COMMENT ON COLUMN public.cognito_users.deleted_at IS 'Tombstone: set when Cognito no longer has the user.';
-- Reconcile pages through one pool by key; lookups by username serve events and apps.
CREATE INDEX cognito_users_pool_id_idx ON public.cognito_users (user_pool_id, id);
CREATE INDEX cognito_users_pool_username_idx ON public.cognito_users (user_pool_id, username);
CREATE INDEX cognito_users_email_idx ON public.cognito_users (email);
CREATE TRIGGER cognito_users_guard BEFORE UPDATE ON public.cognito_users
    FOR EACH ROW EXECUTE FUNCTION public.cognito_guard_newer_state();

CREATE TABLE public.cognito_groups (
    user_pool_id       text        NOT NULL,
    name               text        NOT NULL,
    description        text,
    precedence         integer,
    role_arn           text,
    cognito_created_at timestamptz,
    cognito_updated_at timestamptz,
    observed_at        timestamptz NOT NULL,
    content_hash       text        NOT NULL,
    deleted_at         timestamptz,
    synced_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT cognito_groups_pkey PRIMARY KEY (user_pool_id, name)
);
COMMENT ON TABLE public.cognito_groups IS 'Mirror of Cognito groups. Written only by cognito-hasura-sync.';
CREATE TRIGGER cognito_groups_guard BEFORE UPDATE ON public.cognito_groups
    FOR EACH ROW EXECUTE FUNCTION public.cognito_guard_newer_state();

CREATE TABLE public.cognito_sync_runs (
    id           uuid        NOT NULL DEFAULT gen_random_uuid(),
    kind         text        NOT NULL CHECK (kind IN ('backfill', 'reconcile')),
    user_pool_id text        NOT NULL,
    status       text        NOT NULL DEFAULT 'running'
                             CHECK (status IN ('running', 'succeeded', 'failed', 'aborted')),
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    checkpoint   jsonb       NOT NULL DEFAULT '{}'::jsonb,
    counters     jsonb       NOT NULL DEFAULT '{}'::jsonb,
    error        text,
    CONSTRAINT cognito_sync_runs_pkey PRIMARY KEY (id)
);
COMMENT ON TABLE public.cognito_sync_runs IS 'One row per backfill or reconcile run: progress, checkpoint for resume, counters.';
CREATE INDEX cognito_sync_runs_pool_kind_started_idx
    ON public.cognito_sync_runs (user_pool_id, kind, started_at DESC);

CREATE TABLE public.cognito_sync_leases (
    name        text        NOT NULL,
    holder      text        NOT NULL,
    acquired_at timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    CONSTRAINT cognito_sync_leases_pkey PRIMARY KEY (name)
);
COMMENT ON TABLE public.cognito_sync_leases IS 'Who may run the scheduled reconcile: taken over only once expired, renewed by heartbeat.';
