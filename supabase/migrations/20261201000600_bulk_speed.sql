-- Bulk speed (issue 19's targets): the same rules on every write to leads, at a lower cost per
-- row. Measured with EXPLAIN ANALYZE of an import of 10,000 rows and a bulk update of 1,000: most
-- of the time went to SQL helpers called once per row that Postgres plans anew on every call (a
-- SQL function with `set search_path` or `strict` over a non-strict body is never inlined, and
-- before Postgres 18 its plan is not kept between calls), and to history events written one
-- INSERT per row. Nothing here changes what is written or refused.

-- ---------------------------------------------------------------------------------------------
-- Duplicate keys the planner can inline
-- ---------------------------------------------------------------------------------------------

/** As in 20261123000200_lead_history.sql (the email trimmed and lower-cased; null when empty),
    written so that the planner inlines it into the index expressions and the duplicate probes
    (four calls per written row before): no `set search_path` and not strict (the body is null
    for a null email anyway); every function and operator is qualified with pg_catalog, so no
    caller's search_path can change its meaning. The values are the same, so the indexes on it
    stay valid. */
create or replace function private.lead_email_key(p_email text) returns text
language sql immutable parallel safe
as $$
  select case when pg_catalog.lower(pg_catalog.btrim(p_email, E' \t\r\n')) operator(pg_catalog.=) '' then null
              else pg_catalog.lower(pg_catalog.btrim(p_email, E' \t\r\n')) end
$$;

/** As in 20261123000200_lead_history.sql (the last 10 digits; null with fewer than 10), inlinable
    for the same reason as lead_email_key: one expression, no FROM, qualified names. */
create or replace function private.lead_phone_key(p_phone text) returns text
language sql immutable parallel safe
as $$
  select case when pg_catalog.length(pg_catalog.regexp_replace(p_phone, '\D', '', 'g')) operator(pg_catalog.>=) 10
              then pg_catalog.right(pg_catalog.regexp_replace(p_phone, '\D', '', 'g'), 10) end
$$;

/** As in 20261201000300_bulk.sql, inlinable (qualified names, no `set search_path`). */
create or replace function private.lead_owner_lock_key(p_owner uuid) returns bigint
language sql immutable parallel safe
as $$
  select pg_catalog.hashtextextended('leads.owner:' operator(pg_catalog.||) p_owner::pg_catalog.text, 0)
$$;

/** As in 20261122000100_leads.sql (the owner of an agent, whoever may see it), in PL/pgSQL so its
    plan is prepared once per connection rather than on every call (once per written lead). */
create or replace function private.agent_owner(p_agent_id text) returns uuid
language plpgsql stable security definer
set search_path = ''
as $$
begin
  return (select a.user_id from public.agents a where a.id = p_agent_id);
end
$$;

/** As in 20261201000300_bulk.sql (an RFC 4180 cell, `'` before a leading `=`, `+`, `-`, `@`, tab
    or carriage return), inlinable: an export renders about 20 cells per lead, and a function call
    per cell (planned anew each time) cost more than the rest of the chunk's query. */
create or replace function private.csv_cell(p_value text) returns text
language sql immutable parallel safe
as $$
  select case when p_value is null then ''
    else '"' operator(pg_catalog.||) pg_catalog.replace(
           case when p_value operator(pg_catalog.~) '^[=+\-@\t\r]' then '''' operator(pg_catalog.||) p_value
                else p_value end, '"', '""') operator(pg_catalog.||) '"'
  end
$$;

-- ---------------------------------------------------------------------------------------------
-- Row triggers that do less per row
-- ---------------------------------------------------------------------------------------------

/** The rule of 20261122000100_leads.sql, unchanged: user_id stamped from, moved with and checked
    against the owner of the lead's agent; another user only in admin mode; a visible
    primary_lead_id. The agent's owner is read once, and "the caller may use the agent" is
    derived from it (usable_agent_ids is every agent in admin mode, else the caller's own: an
    agent is usable when it exists, agents.user_id being not null, and is the caller's or the
    request is in admin mode) instead of running usable_agent_ids for every row. */
create or replace function private.leads_before_write() returns trigger
language plpgsql
set search_path = ''
as $$
declare
  v_uid uuid := auth.uid();
  v_owner uuid := private.agent_owner(new.agent_id);
  v_admin boolean;
begin
  -- An agent the caller may not use: RLS refuses the row next, with an answer that does not tell
  -- whose the agent is, so there is nothing to stamp or check here. (A null agent_id: no early
  -- return, as before; the checks below and then the not-null constraint refuse it.)
  if v_uid is not null and new.agent_id is not null
     and (v_owner is null or (v_owner is distinct from v_uid and not private.admin_mode())) then
    return new;
  end if;
  if new.user_id is null
     or (tg_op = 'UPDATE' and new.agent_id is distinct from old.agent_id and new.user_id = old.user_id) then
    new.user_id := v_owner;
  end if;
  if v_uid is not null
     and (tg_op = 'INSERT' or new.user_id is distinct from old.user_id)
     and new.user_id is distinct from v_uid then
    v_admin := private.admin_mode();
    if not v_admin then
      raise exception 'user_id may only be set to another user in admin mode'
        using errcode = 'LA403';
    end if;
  end if;
  -- An agent that does not exist has no owner: the foreign key refuses the row.
  if v_owner is not null and new.user_id is distinct from v_owner then
    raise exception 'user_id must be the owner of the lead''s agent'
      using errcode = 'LA422', column = 'user_id';
  end if;
  if new.primary_lead_id is not null
     and (tg_op = 'INSERT' or new.primary_lead_id is distinct from old.primary_lead_id)
     and v_uid is not null
     and not exists (select 1 from public.leads l where l.id = new.primary_lead_id) then
    raise exception 'primary_lead_id does not name a visible lead'
      using errcode = 'LA422', column = 'primary_lead_id';
  end if;
  if tg_op = 'UPDATE' then
    new.updated_at := now();
  end if;
  return new;
end
$$;

/** As in 20261201000300_bulk.sql, with the mode read first: a plain insert (mode 'allow': an
    import, the Data API, a create without a duplicate check) computes no keys at all. */
create or replace function private.leads_check_duplicate() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  v_mode text := coalesce(nullif(current_setting('app.on_duplicate', true), ''), 'allow');
  v_email text;
  v_phone text;
  v_found bigint;
begin
  if v_mode = 'allow' then
    return new;
  end if;
  v_email := private.lead_email_key(new.email);
  v_phone := private.lead_phone_key(new.phone);
  if v_email is null and v_phone is null then
    return new;
  end if;
  -- The policies check the agent only after BEFORE triggers: without this, a probe keyed by
  -- someone else's agent could name their lead before RLS refuses the row.
  if (select auth.uid()) is not null
     and not new.agent_id = any (array(select private.usable_agent_ids())) then
    return new;
  end if;
  perform pg_advisory_xact_lock_shared(private.lead_owner_lock_key(new.user_id));
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

-- ---------------------------------------------------------------------------------------------
-- History events of a whole statement at once
-- ---------------------------------------------------------------------------------------------

/** `updated` events of a whole statement's updates at once (a bulk update or an import's
    'update' mode changes thousands of leads in one statement): one event per lead whose fields
    changed, as the row trigger of 20261123000200_lead_history.sql wrote them, with the stamps of
    append_lead_event (import id included), in id order. */
create or replace function private.leads_record_updated() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  insert into public.lead_events (lead_id, actor_id, admin_mode, request_id, kind, changes, import_id)
  select c.id, (select auth.uid()), (select private.admin_mode()),
         nullif(current_setting('app.request_id', true), ''), 'updated', c.changes,
         nullif(current_setting('app.import_id', true), '')::uuid
  from (select n.id, private.lead_changes(to_jsonb(o), to_jsonb(n)) as changes
        from new_rows n join old_rows o on o.id = n.id) c
  where c.changes <> '{}'::jsonb
  order by c.id;
  return null;
end
$$;

/** `deleted` events of a whole statement's deletes at once, then the personal data of those
    leads erased from their whole history, these events included (as the row trigger did per
    lead). */
create or replace function private.leads_record_deleted() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  insert into public.lead_events (lead_id, actor_id, admin_mode, request_id, kind, changes, import_id)
  select o.id, (select auth.uid()), (select private.admin_mode()),
         nullif(current_setting('app.request_id', true), ''), 'deleted', private.lead_changes(to_jsonb(o), null),
         nullif(current_setting('app.import_id', true), '')::uuid
  from old_rows o
  order by o.id;
  update public.lead_events e set changes = private.erase_personal_data(e.changes)
  where e.lead_id in (select o.id from old_rows o);
  return null;
end
$$;

revoke all on function private.leads_record_updated() from public, anon, authenticated;
revoke all on function private.leads_record_deleted() from public, anon, authenticated;

-- The row trigger leads_record_event (updates and deletes) gives way to these two; the names keep
-- the order of after-triggers (by name): working sets dropped (leads_after_agent_change, a row
-- trigger, which fires first anyway), then the event, then the rollup.
drop trigger if exists leads_record_event on public.leads;
drop trigger if exists leads_record_updated on public.leads;
create trigger leads_record_updated after update on public.leads
  referencing old table as old_rows new table as new_rows for each statement
  execute function private.leads_record_updated();
drop trigger if exists leads_record_deleted on public.leads;
create trigger leads_record_deleted after delete on public.leads
  referencing old table as old_rows for each statement execute function private.leads_record_deleted();

revoke execute on all functions in schema private from public, anon;
