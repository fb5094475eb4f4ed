-- analytics_events: the server side of the supabase transport's wire contract.
--
-- Paste into the SQL editor of a Supabase project (it runs as the postgres
-- role) and run once; running it again is harmless. The transport then sends
--   POST {url}/rest/v1/analytics_events?on_conflict=event_id
--   Prefer: return=minimal, resolution=ignore-duplicates
-- which PostgREST turns into
--   INSERT ... ON CONFLICT (event_id) DO NOTHING
-- so a batch sent again after a crash or a lost reply stores nothing twice.
--
-- Access: the anon role (the publishable key the app ships) may INSERT the
-- five client columns and nothing else: it cannot UPDATE or DELETE, and it
-- cannot read any stored row, so a leaked app key cannot read or change
-- anyone's events. Read the table with the service role (dashboard,
-- server-side jobs).
--
-- Why anon still holds a (useless) SELECT: Postgres treats the conflict
-- target of ON CONFLICT (event_id) as a read of event_id. It needs the SELECT
-- privilege on that column, and with row-level security the row being
-- inserted must pass a SELECT policy (otherwise: "new row violates row-level
-- security policy"). The SELECT policy below passes only for rows inserted by
-- the current transaction (received_at is the transaction's now(), and anon
-- cannot set received_at), so a read by anon in any request sees no stored
-- row -- and even then only the event_id column. return=minimal keeps
-- PostgREST from reading anything else back.

create table if not exists public.analytics_events (
  id          bigint generated always as identity primary key,
  event_id    uuid        not null unique,          -- client-generated; the de-duplication key
  event_type  text        not null check (length(event_type) between 1 and 200),
  properties  jsonb       check (properties is null or jsonb_typeof(properties) = 'object'),
  user_id     text        check (user_id is null or length(user_id) <= 200),  -- pseudonymous id, never an auth id
  created_at  timestamptz not null,                 -- when the event happened (client clock, UTC)
  received_at timestamptz not null default now()    -- when the server stored it
);

comment on table public.analytics_events is
  'Pseudonymous analytics events sent by the wep supabase transport; insert-only for anon.';

create index if not exists analytics_events_created_at_idx on public.analytics_events (created_at);
create index if not exists analytics_events_event_type_idx on public.analytics_events (event_type, created_at);

-- Row-level security: with RLS on and only the policy below, anon can
-- insert and every other command finds no policy and is refused.
alter table public.analytics_events enable row level security;

drop policy if exists analytics_events_anon_insert on public.analytics_events;
create policy analytics_events_anon_insert on public.analytics_events
  as permissive
  for insert
  to anon
  with check (true);

-- Only for the ON CONFLICT (event_id) check (see the top): a row is visible
-- to anon only inside the transaction that inserted it.
drop policy if exists analytics_events_anon_conflict_check on public.analytics_events;
create policy analytics_events_anon_conflict_check on public.analytics_events
  as permissive
  for select
  to anon
  using (received_at = now());

-- Privileges: Supabase grants every privilege on new public tables to anon
-- and authenticated by default; take them back, then grant exactly INSERT on
-- the client columns (id and received_at stay server-made).
revoke all on table public.analytics_events from anon, authenticated;
grant insert (event_id, event_type, properties, user_id, created_at) on table public.analytics_events to anon;
grant select (event_id) on table public.analytics_events to anon;  -- the ON CONFLICT target, see the top
