-- Safe writes on leads (docs/api.md, safe writes): a version the database keeps, duplicate
-- detection for creates, and an append-only history of every change to a lead. All three live in
-- triggers, so they hold for the api function and for a user's own Data API writes alike.

-- ---------------------------------------------------------------------------------------------
-- Versions
-- ---------------------------------------------------------------------------------------------

alter table public.leads add column if not exists version integer not null default 1;

/** Keeps `leads.version`: 1 on insert, the old version + 1 on every update, whatever the
    statement said, so `ifVersion` can trust it. Only a superuser (a restore, an import) may
    insert another version. */
create or replace function private.leads_keep_version() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if tg_op = 'UPDATE' then
    new.version := old.version + 1;
  elsif coalesce(current_setting('is_superuser', true), 'off') <> 'on' then
    new.version := 1;
  end if;
  return new;
end
$$;

revoke all on function private.leads_keep_version() from public, anon, authenticated;

drop trigger if exists leads_keep_version on public.leads;
create trigger leads_keep_version before insert or update on public.leads
  for each row execute function private.leads_keep_version();

-- ---------------------------------------------------------------------------------------------
-- Duplicates
-- ---------------------------------------------------------------------------------------------

/** The email as the duplicate check compares it: trimmed and lower-cased; null when empty. */
create or replace function private.lead_email_key(p_email text) returns text
language sql immutable strict parallel safe
set search_path = ''
as $$
  select nullif(lower(btrim(p_email, E' \t\r\n')), '')
$$;

/** The phone as the duplicate check compares it: its last 10 digits. A phone with fewer than 10
    digits has no key (an extension, a fragment or a placeholder would match far too much). */
create or replace function private.lead_phone_key(p_phone text) returns text
language sql immutable strict parallel safe
set search_path = ''
as $$
  select case when length(d) >= 10 then right(d, 10) end
  from (select regexp_replace(p_phone, '\D', '', 'g') as d) digits
$$;

revoke all on function private.lead_email_key(text) from public, anon;
revoke all on function private.lead_phone_key(text) from public, anon;
-- Evaluated on every write to leads (index expressions), by whoever writes.
grant execute on function private.lead_email_key(text) to authenticated;
grant execute on function private.lead_phone_key(text) to authenticated;

-- One index probe per key, per owner. Partial: leads without an email (or a usable phone) cost
-- nothing here.
create index if not exists leads_owner_email_key_idx on public.leads (user_id, private.lead_email_key(email))
  where private.lead_email_key(email) is not null;
create index if not exists leads_owner_phone_key_idx on public.leads (user_id, private.lead_phone_key(phone))
  where private.lead_phone_key(phone) is not null;

/** The oldest lead of p_owner whose email or phone key equals the given ones, among the leads the
    caller may use (the same rule as the leads policies; a superuser, with no uid, sees all), or
    null. Security definer so that the index on (user_id, key) serves it: under RLS the policy's
    agent condition would come first. Its only caller (leads_check_duplicate) has checked that the
    caller may use the new lead's agent. */
create or replace function private.find_duplicate_lead(p_owner uuid, p_email_key text, p_phone_key text)
returns bigint
language sql stable security definer
set search_path = ''
as $$
  select min(id) from (
    select l.id, l.agent_id from public.leads l
    where p_email_key is not null and l.user_id = p_owner and private.lead_email_key(l.email) = p_email_key
    union all
    select l.id, l.agent_id from public.leads l
    where p_phone_key is not null and l.user_id = p_owner and private.lead_phone_key(l.phone) = p_phone_key
  ) matches
  where (select auth.uid()) is null or matches.agent_id = any (array(select private.usable_agent_ids()))
$$;

revoke all on function private.find_duplicate_lead(uuid, text, text) from public, anon, authenticated;

/** Duplicate detection for the api's `create` with onDuplicate "reject" or "return", which it
    announces in the transaction-local setting `app.on_duplicate` (never set by the Data API,
    so a plain insert pays nothing). Takes a transaction-scoped advisory lock per (owner, key),
    always email before phone so two creates cannot deadlock, then probes: a concurrent create of
    the same person waits for the lock and then sees the first one's committed lead. "reject"
    raises LAD09 (detail: {"leadId"}); "return" skips the insert and names the lead in
    `app.duplicate_of`. Runs after leads_before_write (trigger order is by name), so `user_id`
    is the owner the row will have. */
create or replace function private.leads_check_duplicate() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  v_mode text := coalesce(nullif(current_setting('app.on_duplicate', true), ''), 'allow');
  v_email text := private.lead_email_key(new.email);
  v_phone text := private.lead_phone_key(new.phone);
  v_found bigint;
begin
  if v_mode = 'allow' or (v_email is null and v_phone is null) then
    return new;
  end if;
  -- The policies check the agent only after BEFORE triggers: without this, a probe keyed by
  -- someone else's agent could name their lead before RLS refuses the row.
  if (select auth.uid()) is not null
     and not new.agent_id = any (array(select private.usable_agent_ids())) then
    return new;
  end if;
  if v_email is not null then
    perform pg_advisory_xact_lock(hashtextextended('leads.email:' || new.user_id || ':' || v_email, 0));
  end if;
  if v_phone is not null then
    perform pg_advisory_xact_lock(hashtextextended('leads.phone:' || new.user_id || ':' || v_phone, 0));
  end if;
  v_found := private.find_duplicate_lead(new.user_id, v_email, v_phone);
  if v_found is null then
    return new;
  end if;
  if v_mode = 'reject' then
    raise exception 'a lead with this email or phone already exists'
      using errcode = 'LAD09', detail = jsonb_build_object('leadId', v_found)::text;
  end if;
  perform set_config('app.duplicate_of', v_found::text, true);
  return null;
end
$$;

revoke all on function private.leads_check_duplicate() from public, anon, authenticated;

drop trigger if exists leads_check_duplicate on public.leads;
create trigger leads_check_duplicate before insert on public.leads
  for each row execute function private.leads_check_duplicate();

-- ---------------------------------------------------------------------------------------------
-- History
-- ---------------------------------------------------------------------------------------------

/** One change to a lead, appended by triggers only. `lead_id` has no foreign key: the events
    outlive the lead (with its personal data erased). `changes` is { field: [before, after] };
    for `created` the fields it was created with, for `deleted` the fields it had. */
create table if not exists public.lead_events (
  id bigint generated always as identity primary key,
  lead_id bigint not null,
  at timestamptz not null default now(),
  actor_id uuid,
  admin_mode boolean not null default false,
  request_id text,
  kind text not null check (kind in ('created', 'updated', 'deleted', 'working_added', 'working_removed',
                                     'muted', 'unmuted')),
  changes jsonb not null default '{}'
);
-- A lead's history newest first, and the erasure on delete.
create index if not exists lead_events_lead_idx on public.lead_events (lead_id, id desc);

/** { field: [before, after] } for every lead column that differs between two rows (as jsonb;
    either may be null: a create, a delete), without the bookkeeping columns. A field that is
    null on both sides is no change, so a create lists only the fields it set. */
create or replace function private.lead_changes(p_old jsonb, p_new jsonb) returns jsonb
language sql immutable parallel safe
set search_path = ''
as $$
  select coalesce(jsonb_object_agg(k, jsonb_build_array(coalesce(p_old -> k, 'null'), coalesce(p_new -> k, 'null'))),
                  '{}')
  from jsonb_object_keys(coalesce(p_new, p_old)) k
  where k not in ('id', 'created_at', 'updated_at', 'version')
    and coalesce(p_old -> k, 'null') is distinct from coalesce(p_new -> k, 'null')
$$;

/** `changes` with the values of a lead's personal fields (docs/api.md: name, email, phone, address,
    notes, metadata) replaced by null: the event still says the field changed, not to what. */
create or replace function private.erase_personal_data(p_changes jsonb) returns jsonb
language sql immutable parallel safe
set search_path = ''
as $$
  select coalesce(jsonb_object_agg(k, case when k in ('name', 'email', 'phone', 'address', 'notes', 'metadata')
                                           then 'null'::jsonb else v end), '{}')
  from jsonb_each(p_changes) e(k, v)
$$;

/** Appends an event stamped with who acted (auth.uid(), null for superusers and migrations),
    whether in admin mode, and the request id the api put in `app.request_id`. Executable by
    no client role: only the security-definer triggers below (running as the owner) call it. */
create or replace function private.append_lead_event(p_lead_id bigint, p_kind text, p_changes jsonb) returns void
language sql volatile
set search_path = ''
as $$
  insert into public.lead_events (lead_id, actor_id, admin_mode, request_id, kind, changes)
  values (p_lead_id, (select auth.uid()), (select private.admin_mode()),
          nullif(current_setting('app.request_id', true), ''), p_kind, p_changes)
$$;

/** created / updated / deleted events of a lead, whoever writes. An update that changes no field
    (only the bookkeeping ones) is no event. A delete erases the lead's personal data from its
    whole history, this last event included. */
create or replace function private.leads_record_event() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  v_changes jsonb;
begin
  if tg_op = 'INSERT' then
    perform private.append_lead_event(new.id, 'created', private.lead_changes(null, to_jsonb(new)));
  elsif tg_op = 'UPDATE' then
    v_changes := private.lead_changes(to_jsonb(old), to_jsonb(new));
    if v_changes <> '{}'::jsonb then
      perform private.append_lead_event(new.id, 'updated', v_changes);
    end if;
  else
    perform private.append_lead_event(old.id, 'deleted', private.lead_changes(to_jsonb(old), null));
    update public.lead_events e set changes = private.erase_personal_data(e.changes) where e.lead_id = old.id;
  end if;
  return null;
end
$$;

/** working_added / working_removed / muted / unmuted events of the lead. Rows deleted because
    their lead is being deleted (the cascade) are no event: the lead's `deleted` event says it. */
create or replace function private.working_leads_record_event() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if tg_op = 'INSERT' then
    perform private.append_lead_event(new.lead_id, 'working_added',
      jsonb_build_object('agent_id', jsonb_build_array(null, new.agent_id)));
  elsif tg_op = 'DELETE' then
    if exists (select 1 from public.leads l where l.id = old.lead_id) then
      perform private.append_lead_event(old.lead_id, 'working_removed',
        jsonb_build_object('agent_id', jsonb_build_array(old.agent_id, null)));
    end if;
  elsif old.muted is distinct from new.muted then
    perform private.append_lead_event(new.lead_id, case when new.muted then 'muted' else 'unmuted' end,
      jsonb_build_object('muted', jsonb_build_array(old.muted, new.muted),
                         'agent_id', jsonb_build_array(new.agent_id, new.agent_id)));
  end if;
  return null;
end
$$;

revoke all on function private.lead_changes(jsonb, jsonb) from public, anon, authenticated;
revoke all on function private.erase_personal_data(jsonb) from public, anon, authenticated;
revoke all on function private.append_lead_event(bigint, text, jsonb) from public, anon, authenticated;
revoke all on function private.leads_record_event() from public, anon, authenticated;
revoke all on function private.working_leads_record_event() from public, anon, authenticated;

drop trigger if exists leads_record_event on public.leads;
create trigger leads_record_event after insert or update or delete on public.leads
  for each row execute function private.leads_record_event();

drop trigger if exists working_leads_record_event on public.working_leads;
create trigger working_leads_record_event after insert or update or delete on public.working_leads
  for each row execute function private.working_leads_record_event();

-- Read-only to users: no insert, update or delete grant, so nobody forges or edits an event.
-- Readable while the lead is visible (the leads policy decides, through the subquery); once
-- the lead is gone, only to an internal admin in admin mode.
alter table public.lead_events enable row level security;
revoke all on public.lead_events from public, anon, authenticated;
grant select on public.lead_events to authenticated;

drop policy if exists lead_events_select on public.lead_events;
create policy lead_events_select on public.lead_events for select to authenticated
  using ((select private.admin_mode()) or exists (select 1 from public.leads l where l.id = lead_events.lead_id));
