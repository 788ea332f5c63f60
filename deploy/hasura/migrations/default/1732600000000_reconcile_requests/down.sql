DROP TABLE IF EXISTS public.cognito_sync_requests;
