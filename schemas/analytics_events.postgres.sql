-- analytics_events: the server side of the supabase transport's wire contract.
--
-- Paste into the SQL editor of a Supabase project (it runs as the postgres
-- role) and run. Running it again is harmless, and it is also the upgrade
-- path: on a table made by an earlier version of this file it brings the
-- constraints, indexes, policies and privileges to this definition
-- (constraints are added NOT VALID: they hold for every new row, and rows
-- stored before are not re-checked). The transport then sends
--   POST {url}/rest/v1/analytics_events?on_conflict=event_id
--   Prefer: return=minimal, resolution=ignore-duplicates
-- which PostgREST turns into
--   INSERT ... ON CONFLICT (event_id) DO NOTHING
-- so a batch sent again after a crash or a lost reply stores nothing twice.
--
-- Access: the anon role (the publishable key the app ships) may INSERT the
-- five client columns and nothing else: it cannot UPDATE or DELETE, cannot
-- read any stored row, and cannot touch the id sequence, so a leaked app key
-- cannot read or change anyone's events. Read the table with the service
-- role (dashboard, server-side jobs).
--
-- Bounds, so that the public key cannot store anything: properties is a JSON
-- object of at most 16 KiB (as jsonb text), event_type 1..200 characters,
-- user_id at most 200, created_at finite, from 2000-01-01 to one day ahead of
-- the server's clock. The transport's encoder (wep::transport::RowEncoder)
-- sends nothing these refuse: it replaces U+0000 (which jsonb and text
-- refuse, SQLSTATE 22P05) with U+FFFD and keeps properties under 12 KiB.
--
-- Why anon still holds a (useless) SELECT: Postgres treats the conflict
-- target of ON CONFLICT (event_id) as a read of event_id. It needs the SELECT
-- privilege on that column, and with row-level security the row being
-- inserted must pass a SELECT policy (otherwise: "new row violates row-level
-- security policy"). The SELECT policy below passes only for rows inserted by
-- the current transaction (received_at is the transaction's now(), and anon
-- cannot set received_at), so a read by anon in any request sees no stored
-- row -- and even then only the event_id column. return=minimal keeps
-- PostgREST from reading anything else back. received_at is indexed, so that
-- policy never makes a request scan the table.

create table if not exists public.analytics_events (
  id          bigint generated always as identity primary key,
  event_id    uuid        not null unique,          -- client-generated; the de-duplication key
  event_type  text        not null,
  properties  jsonb,
  user_id     text,                                  -- pseudonymous id, never an auth id
  created_at  timestamptz not null,                 -- when the event happened (client clock, UTC)
  received_at timestamptz not null default now()    -- when the server stored it
);

comment on table public.analytics_events is
  'Pseudonymous analytics events sent by the wep supabase transport; insert-only for anon.';

-- Constraints by name, dropped and added again, so every run leaves exactly
-- these (the *_check names are those an earlier version created inline).
alter table public.analytics_events drop constraint if exists analytics_events_event_type_check;
alter table public.analytics_events drop constraint if exists analytics_events_properties_check;
alter table public.analytics_events drop constraint if exists analytics_events_user_id_check;
alter table public.analytics_events drop constraint if exists analytics_events_created_at_check;

alter table public.analytics_events add constraint analytics_events_event_type_check
  check (length(event_type) between 1 and 200) not valid;
alter table public.analytics_events add constraint analytics_events_properties_check
  check (properties is null
         or (jsonb_typeof(properties) = 'object' and octet_length(properties::text) <= 16384)) not valid;
alter table public.analytics_events add constraint analytics_events_user_id_check
  check (user_id is null or length(user_id) <= 200) not valid;
alter table public.analytics_events add constraint analytics_events_created_at_check
  check (isfinite(created_at)
         and created_at >= timestamptz '2000-01-01 00:00:00+00'
         and created_at <= now() + interval '1 day') not valid;

create index if not exists analytics_events_created_at_idx on public.analytics_events (created_at);
create index if not exists analytics_events_event_type_idx on public.analytics_events (event_type, created_at);
create index if not exists analytics_events_received_at_idx on public.analytics_events (received_at);

-- Row-level security: with RLS on and only the policies below, anon can
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

-- Privileges: Supabase grants every privilege on new public tables and
-- sequences to anon and authenticated by default; take them back, then grant
-- exactly INSERT on the client columns (id and received_at stay server-made;
-- an identity column needs no privilege on its sequence).
revoke all on table public.analytics_events from anon, authenticated;
grant insert (event_id, event_type, properties, user_id, created_at) on table public.analytics_events to anon;
grant select (event_id) on table public.analytics_events to anon;  -- the ON CONFLICT target, see the top

do $$
declare
  id_sequence text := pg_get_serial_sequence('public.analytics_events', 'id');
begin
  execute format('revoke all on sequence %s from anon, authenticated', id_sequence);
end
$$;
