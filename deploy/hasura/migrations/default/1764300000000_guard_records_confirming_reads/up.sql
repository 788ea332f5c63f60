-- The row guard records a newer read that confirms the stored state: only observed_at
-- moves (content, synced_at and every other column stay). Without it an older read still
-- in flight could land after the newer one it never saw (A read at 1 stored, A read at 3
-- dropped as unchanged, B read at 2 applied: B, though A was read last). Scans never send
-- an unchanged user (they compare with the mirror first), so they stay quiet.
CREATE OR REPLACE FUNCTION public.cognito_guard_newer_state() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
    confirmed_at timestamptz;
BEGIN
    IF NEW.observed_at < OLD.observed_at THEN
        RETURN NULL;
    END IF;
    IF NEW.content_hash IS NOT DISTINCT FROM OLD.content_hash
       AND NEW.deleted_at IS NOT DISTINCT FROM OLD.deleted_at THEN
        IF NEW.observed_at = OLD.observed_at THEN
            RETURN NULL;
        END IF;
        confirmed_at := NEW.observed_at;
        NEW := OLD;
        NEW.observed_at := confirmed_at;
        RETURN NEW;
    END IF;
    NEW.synced_at := now();
    RETURN NEW;
END;
$$;
