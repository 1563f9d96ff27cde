-- Leads in bulk (import, export, bulk update and delete): the set-based import, one duplicate
-- lock per owner that imports and single creates agree on, the import id on history events, and
-- the CSV cell an export writes. Bulk update and delete are plain statements on public.leads
-- from the function, so the usual triggers (versions, history, rollups, working sets) apply.

-- ---------------------------------------------------------------------------------------------
-- One duplicate lock per owner, shared by creates and exclusive for imports
-- ---------------------------------------------------------------------------------------------

/** The advisory lock key that stands for all of an owner's duplicate keys at once. A single create
    with a duplicate check holds it shared (beside its per-key locks); an import holds it
    exclusive, so an import of 10,000 rows takes one lock instead of 20,000 (Postgres's lock table
    holds about max_locks_per_transaction × max_connections entries in all), and still waits for,
    and is waited on by, every concurrent create of the same owner. */
create or replace function private.lead_owner_lock_key(p_owner uuid) returns bigint
language sql immutable strict parallel safe
set search_path = ''
as $$
  select hashtextextended('leads.owner:' || p_owner::text, 0)
$$;

revoke all on function private.lead_owner_lock_key(uuid) from public, anon;
-- An import (security invoker) computes its owners' keys as the caller.
grant execute on function private.lead_owner_lock_key(uuid) to authenticated;

/** As in 20261123000200_lead_history.sql, plus the owner's lock taken shared before the per-key
    locks: creates of one owner still only queue on the same key, and an import of that owner
    (which takes the owner lock exclusive) waits for them, or they for it. Lock order is always
    owner, email, phone, so creates and imports cannot deadlock. */
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

/** For each (owner, email key, phone key) of p_owner, p_email_key, p_phone_key (same length), the
    oldest lead of that owner with that email or phone key among the leads the caller may use:
    find_duplicate_lead for a whole import in one statement (one pair of index probes per row).
    Security definer for the same reason as find_duplicate_lead; it applies usable_agent_ids itself. */
create or replace function private.find_duplicate_leads(p_owner uuid[], p_email_key text[], p_phone_key text[])
returns table (ord integer, lead_id bigint)
language sql stable security definer
set search_path = ''
as $$
  select k.ord::integer, min(m.id)
  from unnest(p_owner, p_email_key, p_phone_key) with ordinality k(owner, email_key, phone_key, ord)
  cross join lateral (
    select l.id, l.agent_id from public.leads l
    where k.email_key is not null and l.user_id = k.owner and private.lead_email_key(l.email) = k.email_key
    union all
    select l.id, l.agent_id from public.leads l
    where k.phone_key is not null and l.user_id = k.owner and private.lead_phone_key(l.phone) = k.phone_key
  ) m
  where (select auth.uid()) is null or m.agent_id = any (array(select private.usable_agent_ids()))
  group by k.ord
$$;

revoke all on function private.find_duplicate_leads(uuid[], text[], text[]) from public, anon;
grant execute on function private.find_duplicate_leads(uuid[], text[], text[]) to authenticated;

-- ---------------------------------------------------------------------------------------------
-- The import id on history events
-- ---------------------------------------------------------------------------------------------

/** The import that wrote the event (`leads/import` sets `app.import_id` while it writes); null
    for every other change. */
alter table public.lead_events add column if not exists import_id uuid;

/** As in 20261123000200_lead_history.sql, plus the import id of an import's events. */
create or replace function private.append_lead_event(p_lead_id bigint, p_kind text, p_changes jsonb) returns void
language sql volatile
set search_path = ''
as $$
  insert into public.lead_events (lead_id, actor_id, admin_mode, request_id, kind, changes, import_id)
  values (p_lead_id, (select auth.uid()), (select private.admin_mode()),
          nullif(current_setting('app.request_id', true), ''), p_kind, p_changes,
          nullif(current_setting('app.import_id', true), '')::uuid)
$$;

revoke all on function private.append_lead_event(bigint, text, jsonb) from public, anon, authenticated;

/** `created` events of a whole statement's inserts at once (an import inserts 10,000 rows in one
    statement; a row trigger ran one INSERT into lead_events per lead). Same columns and stamps as
    append_lead_event, in id order; updates and deletes keep their row trigger
    (private.leads_record_event), whose INSERT branch no trigger calls any more. */
create or replace function private.leads_record_created() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  insert into public.lead_events (lead_id, actor_id, admin_mode, request_id, kind, changes, import_id)
  select n.id, (select auth.uid()), (select private.admin_mode()),
         nullif(current_setting('app.request_id', true), ''), 'created', private.lead_changes(null, to_jsonb(n)),
         nullif(current_setting('app.import_id', true), '')::uuid
  from new_rows n
  order by n.id;
  return null;
end
$$;

revoke all on function private.leads_record_created() from public, anon, authenticated;

drop trigger if exists leads_record_event on public.leads;
create trigger leads_record_event after update or delete on public.leads
  for each row execute function private.leads_record_event();
drop trigger if exists leads_record_created on public.leads;
create trigger leads_record_created after insert on public.leads
  referencing new table as new_rows for each statement execute function private.leads_record_created();

-- ---------------------------------------------------------------------------------------------
-- Import
-- ---------------------------------------------------------------------------------------------

/** Writes an import's rows in one set-based pass, as the caller (security invoker: RLS, the
    triggers, history and rollups apply as for single writes). p_rows is a jsonb array of
    `{ "row": <row number in the file>, "fields": { <lead column>: value } }`, already validated by
    the function (types, enums, lengths); every row has `agent_id`. p_on_duplicate:
    - 'create': every row becomes a lead;
    - 'skip' / 'update': a row whose owner has a lead with the same email or phone key (the
      duplicate keys of creates) is that lead: skipped, or updated with the row's fields (not its
      agent; an update that changes nothing is reported skipped). Rows of one file match each
      other the same way: a later row is the lead of the earliest row it shares a key with.
    The owners' locks are taken exclusive (sorted, so two imports cannot deadlock) before the
    match, so a concurrent create or import of the same person makes one lead.
    A created lead without a status gets p_default_status (what `create` gives: shared/rules.ts).
    p_dry_run only reports leadId null for created rows: the function writes as usual, and the
    api runs a dry run inside a savepoint it rolls back (triggers included, nothing stays).
    Returns a jsonb array of `{ row, leadId, outcome, code?, message?, field? }` in input order. */
create or replace function private.import_leads(p_rows jsonb, p_on_duplicate text, p_import_id uuid,
                                                p_dry_run boolean, p_default_status text)
returns jsonb
language plpgsql volatile security invoker
set search_path = ''
-- The CTEs below are estimated at a row or so each; a nested loop over two of them is quadratic
-- in the file's rows. Hash joins keep every step linear (the index probes are lateral: unaffected).
set enable_nestloop = off
as $$
declare
  v_usable text[] := array(select private.usable_agent_ids());
  v_prepared jsonb;
  v_result jsonb;
begin
  if p_on_duplicate not in ('create', 'skip', 'update') then
    raise exception 'unknown onDuplicate mode' using errcode = '22023';
  end if;
  -- Each row's owner and keys, and the rows that fail on what only the database knows.
  select coalesce(jsonb_agg(jsonb_build_object(
           'ord', i.ord, 'row', i.row_no, 'fields', i.fields, 'owner', i.owner,
           'email_key', private.lead_email_key(i.fields ->> 'email'),
           'phone_key', private.lead_phone_key(i.fields ->> 'phone'),
           'error', case
             when not (i.fields ->> 'agent_id') = any (v_usable) then
               jsonb_build_object('code', 'FORBIDDEN', 'message', 'Not allowed to use this agent', 'field', 'agent_id')
             when i.fields ? 'primary_lead_id' and i.fields -> 'primary_lead_id' <> 'null'
                  and not exists (select 1 from public.leads l where l.id = (i.fields ->> 'primary_lead_id')::bigint) then
               jsonb_build_object('code', 'VALIDATION_ERROR', 'message', 'primary_lead_id does not name a visible lead',
                                  'field', 'primary_lead_id')
           end) order by i.ord), '[]')
    into v_prepared
  from (select e.ord::integer as ord, (e.v ->> 'row')::integer as row_no, e.v -> 'fields' as fields,
               private.agent_owner(e.v -> 'fields' ->> 'agent_id') as owner
        from jsonb_array_elements(p_rows) with ordinality e(v, ord)) i;

  perform set_config('app.on_duplicate', 'allow', true);
  perform set_config('app.import_id', p_import_id::text, true);
  if p_on_duplicate <> 'create' then
    perform pg_advisory_xact_lock(k) from (
      select distinct private.lead_owner_lock_key((p ->> 'owner')::uuid) as k
      from jsonb_array_elements(v_prepared) p where p -> 'error' = 'null' order by 1) owners;
  end if;

  with recursive prepared as (
    select (p ->> 'ord')::integer as ord, (p ->> 'row')::integer as row_no, p -> 'fields' as fields,
           (p ->> 'owner')::uuid as owner, p ->> 'email_key' as email_key, p ->> 'phone_key' as phone_key,
           p -> 'error' as error
    from jsonb_array_elements(v_prepared) p
  ),
  valid as (select * from prepared where error = 'null'),
  -- The lead each row already has (never in 'create' mode).
  existing as (
    select d.ord as k, d.lead_id from private.find_duplicate_leads(
      array(select v.owner from valid v order by v.ord),
      array(select v.email_key from valid v order by v.ord),
      array(select v.phone_key from valid v order by v.ord)) d
    where p_on_duplicate <> 'create'
  ),
  keyed as (
    select v.*, x.lead_id as existing_id,
           case when p_on_duplicate <> 'create' and v.email_key is not null
                then min(v.ord) over (partition by v.owner, v.email_key) end as email_first,
           case when p_on_duplicate <> 'create' and v.phone_key is not null
                then min(v.ord) over (partition by v.owner, v.phone_key) end as phone_first
    from (select v.*, row_number() over (order by v.ord) as k from valid v) v
    left join existing x on x.k = v.k
  ),
  -- A row without a lead of its own is the lead of the earliest row it shares a key with.
  linked as (
    select k.*, case when k.existing_id is null and least(k.email_first, k.phone_first) < k.ord
                     then least(k.email_first, k.phone_first) end as parent
    from keyed k
  ),
  tree as (
    select l.ord, l.ord as root from linked l where l.parent is null
    union all
    select l.ord, t.root from linked l join tree t on l.parent = t.ord
  ),
  grouped as (
    select l.*, t.root, r.existing_id as target_id,
           -- the row that makes a new lead (none when the group has a lead already)
           (r.existing_id is null and l.ord = t.root) as creates,
           coalesce(r.existing_id::text, 'new:' || t.root) as grp
    from linked l join tree t on t.ord = l.ord join linked r on r.ord = t.root
  ),
  -- 'update': the group's fields merged in file order (a later row's value wins).
  merged as (
    select g.grp, jsonb_object_agg(f.key, f.value order by g.ord) as fields
    from grouped g cross join lateral jsonb_each(g.fields) f
    where p_on_duplicate = 'update'
    group by g.grp
  ),
  creates as (
    select g.ord, g.grp, case when p_on_duplicate = 'update' then m.fields || jsonb_build_object('agent_id', g.fields -> 'agent_id')
                              else g.fields end as fields
    from grouped g left join merged m on m.grp = g.grp
    where g.creates
  ),
  -- Ids follow the order rows are inserted in (the sort below feeds the insert; nextval is
  -- monotonic within a session), so the n-th smallest new id is the n-th row by `ord`.
  inserted as (
    insert into public.leads (agent_id, name, email, phone, status, priority, budget, timeline, address, notes,
                              assigned_to, conversation_id, primary_lead_id, is_decision_maker,
                              preferred_contact_method, preferred_contact_time, metadata)
    select r.agent_id, r.name, r.email, r.phone, coalesce(r.status, p_default_status), r.priority, r.budget, r.timeline,
           r.address, r.notes, r.assigned_to, r.conversation_id, r.primary_lead_id, r.is_decision_maker,
           r.preferred_contact_method, r.preferred_contact_time, r.metadata
    from (select c.ord, c.fields from creates c order by c.ord) c
    cross join lateral jsonb_populate_record(null::public.leads, c.fields) r
    order by c.ord
    returning id
  ),
  new_ids as (
    select z.grp, z.id
    from unnest(array(select c.grp from creates c order by c.ord), array(select i.id from inserted i order by i.id))
      z(grp, id)
  ),
  updates as (
    select distinct on (g.grp) g.grp, g.target_id, m.fields - 'agent_id' as fields
    from grouped g join merged m on m.grp = g.grp
    where g.target_id is not null
  ),
  updated as (
    update public.leads l set
      name = case when u.fields ? 'name' then r.name else l.name end,
      email = case when u.fields ? 'email' then r.email else l.email end,
      phone = case when u.fields ? 'phone' then r.phone else l.phone end,
      status = case when u.fields ? 'status' then r.status else l.status end,
      priority = case when u.fields ? 'priority' then r.priority else l.priority end,
      budget = case when u.fields ? 'budget' then r.budget else l.budget end,
      timeline = case when u.fields ? 'timeline' then r.timeline else l.timeline end,
      address = case when u.fields ? 'address' then r.address else l.address end,
      notes = case when u.fields ? 'notes' then r.notes else l.notes end,
      assigned_to = case when u.fields ? 'assigned_to' then r.assigned_to else l.assigned_to end,
      conversation_id = case when u.fields ? 'conversation_id' then r.conversation_id else l.conversation_id end,
      primary_lead_id = case when u.fields ? 'primary_lead_id' then r.primary_lead_id else l.primary_lead_id end,
      is_decision_maker = case when u.fields ? 'is_decision_maker' then r.is_decision_maker
                               else l.is_decision_maker end,
      preferred_contact_method = case when u.fields ? 'preferred_contact_method' then r.preferred_contact_method
                                      else l.preferred_contact_method end,
      preferred_contact_time = case when u.fields ? 'preferred_contact_time' then r.preferred_contact_time
                                    else l.preferred_contact_time end,
      metadata = case when u.fields ? 'metadata' then r.metadata else l.metadata end
    from updates u cross join lateral jsonb_populate_record(null::public.leads, u.fields) r
    where l.id = u.target_id
      -- An update that would change nothing is skipped (no version bump, no event).
      and exists (select 1 from jsonb_each(u.fields) f where f.value is distinct from coalesce(to_jsonb(l) -> f.key, 'null'))
    returning l.id
  )
  select jsonb_agg(o.j order by o.ord) into v_result from (
    select p.ord, jsonb_build_object('row', p.row_no, 'leadId', null, 'outcome', 'failed') || p.error as j
    from prepared p where p.error <> 'null'
    union all
    select g.ord, jsonb_build_object(
      'row', g.row_no,
      'leadId', case when p_dry_run and g.target_id is null then null else coalesce(g.target_id, n.id) end,
      'outcome', case
        when g.creates then 'created'
        when p_on_duplicate = 'update' and g.target_id is null then 'updated'
        when p_on_duplicate = 'update' and g.target_id in (select u.id from updated u) then 'updated'
        else 'skipped' end)
    from grouped g left join new_ids n on n.grp = g.grp
  ) o;

  perform set_config('app.import_id', '', true);
  perform set_config('app.on_duplicate', '', true);
  return coalesce(v_result, '[]');
end
$$;

revoke all on function private.import_leads(jsonb, text, uuid, boolean, text) from public, anon;
grant execute on function private.import_leads(jsonb, text, uuid, boolean, text) to authenticated;

-- ---------------------------------------------------------------------------------------------
-- Export and filter selections
-- ---------------------------------------------------------------------------------------------

/** Up to p_limit leads the caller can see that match the list filters, newest first, after the
    keyset (p_after_created, p_after_id) when given: public.lead_page's rows without its count,
    offset and page-size cap, for the chunks of an export (2,000 a chunk) and the ids of a bulk
    selection (up to 10,001). The filters are the same definition (private.lead_predicate,
    check_lead_filters), and so are the plans: each usable agent's newest rows merged for a user,
    one index walk for an admin or a user scope, the trigram matches for a search. Security
    invoker: RLS decides the rows. In `private`, so the Data API cannot call it. */
create or replace function private.lead_keyset(
  p_agent_ids text[], p_status text, p_priority text, p_search text, p_since timestamptz, p_user_id uuid,
  p_after_created timestamptz, p_after_id bigint, p_limit integer
) returns setof public.leads
language plpgsql stable security invoker
set search_path = ''
as $$
declare
  v_where text;
  v_ids bigint[];
begin
  if p_limit is null or p_limit < 1 or p_limit > 10001 then
    perform private.refuse_argument('p_limit', 'must be between 1 and 10001');
  end if;
  perform private.check_lead_filters(p_agent_ids, p_status, p_priority, p_search);
  v_where := private.lead_predicate(p_agent_ids, p_status, p_priority, p_search, p_since, p_user_id)
    || case when p_after_id is not null then ' and l.created_at <= $7 and (l.created_at < $7 or l.id < $8)'
            else '' end;
  if p_search is not null then
    v_ids := array(select private.search_lead_ids(p_search, p_agent_ids));
  end if;
  if p_search is null and p_user_id is null
     and (p_agent_ids is not null or not (select private.admin_mode())) then
    return query execute
      'select l.* from unnest($10::text[]) as usable(agent_id) cross join lateral (
         select l.* from public.leads l where l.agent_id = usable.agent_id and ' || v_where || '
         order by l.created_at desc, l.id desc limit $9) l
       order by l.created_at desc, l.id desc limit $9'
      using p_agent_ids, p_status, p_priority, v_ids, p_since, p_user_id, p_after_created, p_after_id,
            p_limit, private.lead_scope_agents(p_agent_ids, null);
  else
    return query execute
      'select l.* from public.leads l where ' || v_where || '
       order by l.created_at desc, l.id desc limit $9'
      using p_agent_ids, p_status, p_priority, v_ids, p_since, p_user_id, p_after_created, p_after_id,
            p_limit, null::text[];
  end if;
end
$$;

revoke all on function private.lead_keyset(text[], text, text, text, timestamptz, uuid, timestamptz, bigint, integer)
  from public, anon;
grant execute on function private.lead_keyset(text[], text, text, text, timestamptz, uuid, timestamptz, bigint, integer)
  to authenticated;

/** One CSV cell (RFC 4180): null is an empty cell, any other value is quoted with `"` doubled. A
    value starting with `=`, `+`, `-`, `@`, tab or carriage return gets a leading `'`, so a
    spreadsheet never runs it as a formula (CSV injection). */
create or replace function private.csv_cell(p_value text) returns text
language sql immutable parallel safe
set search_path = ''
as $$
  select case when p_value is null then ''
    else '"' || replace(case when p_value ~ '^[=+\-@\t\r]' then '''' || p_value else p_value end, '"', '""') || '"'
  end
$$;

revoke all on function private.csv_cell(text) from public, anon;
grant execute on function private.csv_cell(text) to authenticated;

revoke execute on all functions in schema private from public, anon;
