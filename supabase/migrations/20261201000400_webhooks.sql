-- Webhooks (issue 20): endpoints a user subscribes, and an outbox of deliveries written in the same
-- transaction as the change. The outbox is fed by a trigger on lead_events, which the history
-- triggers write for every path (api, Data API, SQL, imports): a rolled-back change leaves no event
-- and so no delivery; a committed one always has both. The dispatcher (shared/webhook-dispatcher.ts) claims due
-- deliveries with `for update skip locked`, signs them (Standard Webhooks) and records each attempt.

-- ---------------------------------------------------------------------------------------------
-- Event types
-- ---------------------------------------------------------------------------------------------

/** The event type a lead_events kind is delivered as. One definition of the mapping; the TS list
    WEBHOOK_EVENT_TYPES (shared/schemas.ts) must name the same types (tests/webhooks-sql.test.ts). */
create or replace function private.webhook_event_type(p_kind text) returns text
language sql immutable parallel safe
set search_path = ''
as $$
  select case p_kind
    when 'created' then 'lead.created'
    when 'updated' then 'lead.updated'
    when 'deleted' then 'lead.deleted'
    when 'working_added' then 'working_lead.added'
    when 'working_removed' then 'working_lead.removed'
    when 'muted' then 'working_lead.muted'
    when 'unmuted' then 'working_lead.unmuted'
  end
$$;

/** Every event type an endpoint may subscribe to. */
create or replace function private.webhook_event_types() returns text[]
language sql immutable parallel safe
set search_path = ''
as $$
  select array['lead.created', 'lead.updated', 'lead.deleted', 'working_lead.added', 'working_lead.removed',
               'working_lead.muted', 'working_lead.unmuted']
$$;

revoke all on function private.webhook_event_type(text) from public, anon;
revoke all on function private.webhook_event_types() from public, anon;
-- Evaluated by the endpoints' check constraint, so by whoever writes an endpoint.
grant execute on function private.webhook_event_types() to authenticated;

-- ---------------------------------------------------------------------------------------------
-- Endpoints
-- ---------------------------------------------------------------------------------------------

/** A receiver of one user's lead events (or, created by an internal admin in admin mode with
    `all_users`, of everyone's). `secret` signs deliveries; after a rotation `previous_secret` signs
    beside it until `previous_secret_expires_at`. Neither secret column is readable by users. */
create table if not exists public.webhook_endpoints (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null default auth.uid() references auth.users (id) on delete cascade,
  url text not null check (length(url) <= 2000 and url ~ '^https?://[^/?#@[:space:]]+'),
  events text[] not null check (cardinality(events) between 1 and 7 and events <@ private.webhook_event_types()),
  description text check (length(description) <= 200),
  all_users boolean not null default false,
  enabled boolean not null default true,
  -- Why the endpoint was disabled (410, the last retry failed, its owner): shown to the owner.
  disabled_reason text check (length(disabled_reason) <= 500),
  secret text not null check (secret ~ '^whsec_[A-Za-z0-9+/]{32,}={0,2}$'),
  previous_secret text check (previous_secret ~ '^whsec_[A-Za-z0-9+/]{32,}={0,2}$'),
  previous_secret_expires_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz
);
-- The fan-out: a lead event looks up its owner's enabled endpoints, and the all-users ones.
create index if not exists webhook_endpoints_user_idx on public.webhook_endpoints (user_id) where enabled;
create index if not exists webhook_endpoints_all_users_idx on public.webhook_endpoints (id) where enabled and all_users;

/** At most this many endpoints per user (every one of them multiplies each event). */
create or replace function private.webhook_max_endpoints() returns integer
language sql immutable parallel safe
set search_path = ''
as $$ select 20 $$;

/** Keeps the bookkeeping of an endpoint whoever writes it: a new secret moves the old one to
    `previous_secret` for 24 hours (both sign meanwhile); re-enabling clears the reason it was
    disabled; the per-user cap holds for Data API inserts too (LW409). */
create or replace function private.webhook_endpoints_before_write() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if tg_op = 'INSERT' then
    perform pg_advisory_xact_lock(hashtextextended('webhook_endpoints:' || new.user_id, 0));
    if (select count(*) from public.webhook_endpoints e where e.user_id = new.user_id)
       >= private.webhook_max_endpoints() then
      raise exception 'at most % webhook endpoints per user', private.webhook_max_endpoints()
        using errcode = 'LW409';
    end if;
    new.previous_secret := null;
    new.previous_secret_expires_at := null;
    return new;
  end if;
  new.updated_at := now();
  if new.secret is distinct from old.secret then
    new.previous_secret := old.secret;
    new.previous_secret_expires_at := now() + interval '24 hours';
  else
    new.previous_secret := old.previous_secret;
    new.previous_secret_expires_at := old.previous_secret_expires_at;
  end if;
  if new.enabled and not old.enabled then
    new.disabled_reason := null;
  elsif not new.enabled and old.enabled and new.disabled_reason is null then
    new.disabled_reason := 'disabled by its owner';
  end if;
  return new;
end
$$;

revoke all on function private.webhook_endpoints_before_write() from public, anon, authenticated;
revoke all on function private.webhook_max_endpoints() from public, anon, authenticated;

drop trigger if exists webhook_endpoints_before_write on public.webhook_endpoints;
create trigger webhook_endpoints_before_write before insert or update on public.webhook_endpoints
  for each row execute function private.webhook_endpoints_before_write();

-- Users see and change their own endpoints (an internal admin in admin mode: all), never a secret:
-- they may set one (the api's create and rotate-secret do), not read it back. Only an internal
-- admin in admin mode may create or keep an endpoint that receives everyone's events.
alter table public.webhook_endpoints enable row level security;
revoke all on public.webhook_endpoints from public, anon, authenticated;
grant select (id, user_id, url, events, description, all_users, enabled, disabled_reason,
              previous_secret_expires_at, created_at, updated_at) on public.webhook_endpoints to authenticated;
grant insert (url, events, description, all_users, secret, user_id) on public.webhook_endpoints to authenticated;
grant update (url, events, description, enabled, secret) on public.webhook_endpoints to authenticated;
grant delete on public.webhook_endpoints to authenticated;

drop policy if exists webhook_endpoints_select on public.webhook_endpoints;
create policy webhook_endpoints_select on public.webhook_endpoints for select to authenticated
  using (user_id = (select auth.uid()) or (select private.admin_mode()));
drop policy if exists webhook_endpoints_insert on public.webhook_endpoints;
create policy webhook_endpoints_insert on public.webhook_endpoints for insert to authenticated
  with check ((user_id = (select auth.uid()) and not all_users) or (select private.admin_mode()));
drop policy if exists webhook_endpoints_update on public.webhook_endpoints;
create policy webhook_endpoints_update on public.webhook_endpoints for update to authenticated
  using (user_id = (select auth.uid()) or (select private.admin_mode()))
  with check ((user_id = (select auth.uid()) and not all_users) or (select private.admin_mode()));
drop policy if exists webhook_endpoints_delete on public.webhook_endpoints;
create policy webhook_endpoints_delete on public.webhook_endpoints for delete to authenticated
  using (user_id = (select auth.uid()) or (select private.admin_mode()));

-- ---------------------------------------------------------------------------------------------
-- The outbox
-- ---------------------------------------------------------------------------------------------

/** One event for one endpoint, and the state of its delivery. `payload` is the body, fixed at the
    first attempt so every retry sends the same bytes under the same webhook-id (`msg_<event_id>`,
    or `ping_<id>` for a test ping). `next_at` is when it is due; a dispatcher that claims it
    moves `next_at` a lease ahead, so a dispatcher that dies mid-send leaves it due again. In
    schema private with no grants: users never read or write it (the api reads it through
    private.webhook_delivery_log). */
create table if not exists private.webhook_deliveries (
  id bigint generated always as identity primary key,
  endpoint_id uuid not null references public.webhook_endpoints (id) on delete cascade,
  event_id bigint,
  lead_id bigint,
  type text not null,
  status text not null default 'pending' check (status in ('pending', 'delivered', 'failed')),
  attempts integer not null default 0,
  next_at timestamptz not null default now(),
  created_at timestamptz not null default now(),
  payload text,
  last_attempt_at timestamptz,
  last_status integer,
  last_latency_ms integer,
  last_error text,
  last_response text,
  delivered_at timestamptz
);
-- The claim: due pending rows in order.
create index if not exists webhook_deliveries_due_idx on private.webhook_deliveries (next_at, id)
  where status = 'pending';
-- Per-endpoint order of one lead's events: a delivery waits while an older one of the same lead is pending.
create index if not exists webhook_deliveries_order_idx on private.webhook_deliveries (endpoint_id, lead_id, id)
  where status = 'pending';
-- The delivery log of an endpoint, newest first.
create index if not exists webhook_deliveries_log_idx on private.webhook_deliveries (endpoint_id, id desc);
-- Retention: finished deliveries older than private.webhook_retention() are pruned by the dispatcher.
create index if not exists webhook_deliveries_done_idx on private.webhook_deliveries (created_at)
  where status <> 'pending';

/** How long a finished delivery stays in the log (and can be replayed). */
create or replace function private.webhook_retention() returns interval
language sql immutable parallel safe
set search_path = ''
as $$ select interval '30 days' $$;

revoke all on function private.webhook_retention() from public, anon, authenticated;

revoke all on private.webhook_deliveries from public, anon, authenticated;
alter table private.webhook_deliveries enable row level security;

/** Fans a lead event out to the outbox: one delivery per enabled endpoint subscribed to its type
    whose owner owns the lead (the owner after the change; for a delete, the owner it had), and
    per enabled all-users endpoint. Runs inside the transaction that wrote the change. */
create or replace function private.webhook_fan_out() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  v_type text := private.webhook_event_type(new.kind);
  v_owner uuid;
begin
  if v_type is null then
    return null;
  end if;
  v_owner := coalesce(nullif(new.changes -> 'user_id' ->> 1, '')::uuid,
                      (select l.user_id from public.leads l where l.id = new.lead_id),
                      nullif(new.changes -> 'user_id' ->> 0, '')::uuid);
  insert into private.webhook_deliveries (endpoint_id, event_id, lead_id, type, created_at)
  select e.id, new.id, new.lead_id, v_type, new.at
  from public.webhook_endpoints e
  where e.enabled and (e.user_id = v_owner or e.all_users) and v_type = any (e.events);
  return null;
end
$$;

revoke all on function private.webhook_fan_out() from public, anon, authenticated;

drop trigger if exists lead_events_webhooks on public.lead_events;
create trigger lead_events_webhooks after insert on public.lead_events
  for each row execute function private.webhook_fan_out();

/** Whether the caller may see an endpoint: its owner, or an internal admin in admin mode. */
create or replace function private.webhook_endpoint_visible(p_endpoint uuid) returns boolean
language sql stable security definer
set search_path = ''
as $$
  select exists (select 1 from public.webhook_endpoints e
                 where e.id = p_endpoint and (e.user_id = (select auth.uid()) or (select private.admin_mode())))
$$;

/** An endpoint's deliveries, newest first, `p_limit` of them before delivery `p_before` (null: from
    the newest), as JSON: what the owner sees of the outbox. Never the payload: an old event's
    personal data stays with the lead (erased on delete), not in a log. Null when the endpoint is
    not the caller's to see. */
create or replace function private.webhook_delivery_log(p_endpoint uuid, p_before bigint, p_limit integer)
returns json
language sql stable security definer
set search_path = ''
as $$
  select case when private.webhook_endpoint_visible(p_endpoint) then
    coalesce((select json_agg(j order by id desc) from (
      select d.id, json_build_object(
        'id', d.id, 'webhookId', case when d.event_id is null then 'ping_' || d.id else 'msg_' || d.event_id end,
        'type', d.type, 'leadId', d.lead_id, 'status', d.status, 'attempts', d.attempts,
        'createdAt', d.created_at, 'lastAttemptAt', d.last_attempt_at, 'lastStatus', d.last_status,
        'latencyMs', d.last_latency_ms, 'error', d.last_error, 'response', d.last_response,
        'nextAttemptAt', case when d.status = 'pending' then d.next_at end, 'deliveredAt', d.delivered_at) as j
      from private.webhook_deliveries d
      where d.endpoint_id = p_endpoint and (p_before is null or d.id < p_before)
      order by d.id desc
      limit least(greatest(p_limit, 1), 101)) page), '[]'::json)
  end
$$;

/** Sends one delivery of an endpoint again (`p_delivery`), or every delivery of it created at or
    after `p_since` (at most 10,000 per call): due now, attempts counted afresh, the same
    webhook-id and body. Returns how many, or null when the endpoint is not the caller's. */
create or replace function private.webhook_replay(p_endpoint uuid, p_delivery bigint, p_since timestamptz)
returns integer
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_count integer;
begin
  if not private.webhook_endpoint_visible(p_endpoint) then
    return null;
  end if;
  with picked as (
    select d.id from private.webhook_deliveries d
    where d.endpoint_id = p_endpoint
      and (p_delivery is null or d.id = p_delivery)
      and (p_since is null or d.created_at >= p_since)
      and d.event_id is not null
    order by d.id
    limit 10000
  )
  update private.webhook_deliveries d
  set status = 'pending', attempts = 0, next_at = now(), delivered_at = null
  from picked where d.id = picked.id;
  get diagnostics v_count = row_count;
  return v_count;
end
$$;

revoke all on function private.webhook_endpoint_visible(uuid) from public, anon, authenticated;
revoke all on function private.webhook_delivery_log(uuid, bigint, integer) from public, anon;
revoke all on function private.webhook_replay(uuid, bigint, timestamptz) from public, anon;
grant execute on function private.webhook_delivery_log(uuid, bigint, integer) to authenticated;
grant execute on function private.webhook_replay(uuid, bigint, timestamptz) to authenticated;

-- ---------------------------------------------------------------------------------------------
-- Hosted dispatch: pg_cron calls the function's dispatch entry through pg_net every 5 seconds.
-- A no-op where either extension is missing (local Postgres, the tests). The URL and the secret
-- are read from Vault at each run (names `webhooks_dispatch_url`, `webhooks_dispatch_secret`, and
-- `webhooks_dispatch_anon_key` for the gateway), so no secret is written into this migration;
-- docs/webhooks.md has the `vault.create_secret` calls to make once. Until the URL is in Vault the
-- job does nothing.
-- ---------------------------------------------------------------------------------------------

do $do$
begin
  if exists (select 1 from pg_extension where extname = 'pg_cron')
     and exists (select 1 from pg_extension where extname = 'pg_net')
     and exists (select 1 from pg_namespace where nspname = 'vault') then
    perform cron.schedule('webhooks-dispatch', '5 seconds', $cron$
      select net.http_post(
        url := (select decrypted_secret from vault.decrypted_secrets where name = 'webhooks_dispatch_url'),
        headers := jsonb_strip_nulls(jsonb_build_object(
          'content-type', 'application/json',
          'x-webhooks-dispatch-secret',
          (select decrypted_secret from vault.decrypted_secrets where name = 'webhooks_dispatch_secret'),
          -- For the gateway's JWT check (the function itself reads only the dispatch secret).
          'authorization',
          (select 'Bearer ' || decrypted_secret from vault.decrypted_secrets where name = 'webhooks_dispatch_anon_key'))),
        body := '{"resource":"webhooks","action":"dispatch"}'::jsonb,
        timeout_milliseconds := 30000)
      where exists (select 1 from vault.decrypted_secrets where name = 'webhooks_dispatch_url')
    $cron$);
  end if;
end
$do$;
