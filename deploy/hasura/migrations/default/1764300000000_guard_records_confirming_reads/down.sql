CREATE OR REPLACE FUNCTION public.cognito_guard_newer_state() RETURNS trigger
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
