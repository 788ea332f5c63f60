-- Requests for an early pool-wide reconcile, recorded by the daemon in the same transaction
-- as the batch that carried the pool-wide event, so that the message is deleted only once its
-- request is durable. Whichever replica holds the pool's lease serves them.
CREATE TABLE public.cognito_sync_requests (
    id           uuid        NOT NULL DEFAULT gen_random_uuid(),
    user_pool_id text        NOT NULL,
    reason       text        NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT now(),
    served_at    timestamptz,
    served_by    uuid,
    CONSTRAINT cognito_sync_requests_pkey PRIMARY KEY (id)
);
COMMENT ON TABLE public.cognito_sync_requests IS 'Early reconcile requests from pool-wide events; served_by is the reconcile run that served them.';
-- The scheduler's poll: a pool's unserved requests, oldest first.
CREATE INDEX cognito_sync_requests_pending_idx
    ON public.cognito_sync_requests (user_pool_id, requested_at)
    WHERE served_at IS NULL;
