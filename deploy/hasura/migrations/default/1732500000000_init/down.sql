DROP TABLE IF EXISTS public.cognito_sync_leases;
DROP TABLE IF EXISTS public.cognito_sync_runs;
DROP TABLE IF EXISTS public.cognito_groups;
DROP TABLE IF EXISTS public.cognito_users;
DROP FUNCTION IF EXISTS public.cognito_guard_newer_state();
