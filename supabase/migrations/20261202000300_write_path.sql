-- The write path (issue 18 target 3, issue 19's import speed): the same facts on every write to
-- leads (versions, user_id, history with actor and import id, rollups, duplicate locks), at a
-- lower cost per statement. Measured with EXPLAIN ANALYZE of single creates (trigger times) and
-- of a 10,000-row import, and pg_stat_user_functions (track_functions = all): per create the
-- rollup trigger and the created-event trigger each cost about as much as the insert itself,
-- mostly in helpers Postgres plans anew on every call (SQL functions with `set search_path` are
-- never inlined) and in compactions that rewrote every group of a key; per import row, the
-- search index's GIN insert, the created-event diff and two agent_owner calls. Nothing here
-- changes what is written, refused or answered.

-- ---------------------------------------------------------------------------------------------
-- Rollup keys the planner can inline
-- ---------------------------------------------------------------------------------------------

/** As in 20261201000050_rules.sql (a known status itself, everything else, null included,
    'other'), written so the planner inlines it: no `set search_path`, every operator qualified,
    so no caller's search_path can change its meaning. lead_status_keys() still holds the list
    (an immutable call without arguments: folded to a constant when a query is planned). */
create or replace function private.status_key(p_status text) returns text
language sql immutable parallel safe
as $$
  select case when p_status operator(pg_catalog.=) any (private.lead_status_keys()) then p_status else 'other' end
$$;

/** As in 20261201000050_rules.sql, inlinable for the same reason as status_key. */
create or replace function private.priority_key(p_priority text) returns text
language sql immutable parallel safe
as $$
  select case when p_priority operator(pg_catalog.=) any (private.lead_priority_keys()) then p_priority else 'other' end
$$;

/** As in 20261123000100_lead_rollups.sql (the UTC day of a creation time), inlinable. */
create or replace function private.day_key(p_at timestamptz) returns date
language sql immutable parallel safe
as $$
  select pg_catalog.timezone('UTC', p_at)::pg_catalog.date
$$;

-- ---------------------------------------------------------------------------------------------
-- Rollups: one statement per trigger call, compaction of the groups a statement touched
-- ---------------------------------------------------------------------------------------------

/** Merges the delta rows of one group (status × priority, and user for an agent's keys) of one
    key (agent or all agents, day or all time) into one row. The same exactness argument as
    lead_rollup_compact (20261123000100_lead_rollups.sql), whose try-lock per key it shares: each
    delta row is deleted by exactly one transaction, which inserts its sum in the same statement;
    rows a concurrent writer appends after this statement's snapshot stay deltas. Only that group's rows
    are rewritten, never those of the key's other groups (as the whole-key compaction did).
    A plain index scan, not a bitmap scan: the hot keys (all agents, today) hold many dead rows
    between vacuums, and only a plain index scan marks their index entries dead, so the next
    compaction (and the next read) skips them instead of visiting each one's heap page again. */
create or replace function private.lead_rollup_compact_group(
  p_agent_id text, p_day date, p_user_id uuid, p_status text, p_priority text
) returns void
language plpgsql security definer
set search_path = ''
set enable_bitmapscan = off
as $$
begin
  if current_setting('transaction_isolation') <> 'read committed'
     or not pg_try_advisory_xact_lock(hashtext('lead_rollup'),
                                      hashtext(coalesce(p_agent_id, '*') || '/' || coalesce(p_day::text, '*'))) then
    return;
  end if;
  -- Four spellings of one key, so each is a plain index condition (`is not distinct from` is not).
  if p_agent_id is null and p_day is null then
    with gone as (delete from private.lead_rollup r where r.agent_id is null and r.day is null
                    and r.status = p_status and r.priority = p_priority returning r.n)
    insert into private.lead_rollup (agent_id, user_id, day, status, priority, n)
      select null, null, null, p_status, p_priority, s.n from (select sum(g.n) as n from gone g) s where s.n <> 0;
  elsif p_agent_id is null then
    with gone as (delete from private.lead_rollup r where r.agent_id is null and r.day = p_day
                    and r.status = p_status and r.priority = p_priority returning r.n)
    insert into private.lead_rollup (agent_id, user_id, day, status, priority, n)
      select null, null, p_day, p_status, p_priority, s.n from (select sum(g.n) as n from gone g) s where s.n <> 0;
  elsif p_day is null then
    with gone as (delete from private.lead_rollup r where r.agent_id = p_agent_id and r.day is null
                    and r.user_id is not distinct from p_user_id and r.status = p_status and r.priority = p_priority
                  returning r.n)
    insert into private.lead_rollup (agent_id, user_id, day, status, priority, n)
      select p_agent_id, p_user_id, null, p_status, p_priority, s.n from (select sum(g.n) as n from gone g) s
      where s.n <> 0;
  else
    with gone as (delete from private.lead_rollup r where r.agent_id = p_agent_id and r.day = p_day
                    and r.user_id is not distinct from p_user_id and r.status = p_status and r.priority = p_priority
                  returning r.n)
    insert into private.lead_rollup (agent_id, user_id, day, status, priority, n)
      select p_agent_id, p_user_id, p_day, p_status, p_priority, s.n from (select sum(g.n) as n from gone g) s
      where s.n <> 0;
  end if;
end
$$;

/** As in 20261123000100_lead_rollups.sql (the deltas of a statement's changes at all four levels,
    one row per group whose count changed, from the transition tables), in one statement per
    event with the keys inlined, instead of an array of composites handed to a second function.
    About one appended row in 8, chosen at random, has its group compacted (lead_rollup_compact_group):
    a single create compacts one group of one key about every other statement, where a whole key
    (every group of it) was rewritten one time in four before. */
create or replace function private.leads_rollup_trigger() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  r record;
begin
  if tg_op = 'INSERT' then
    for r in
      with appended as (
        insert into private.lead_rollup (agent_id, user_id, day, status, priority, n)
        select c.agent_id, c.user_id, c.day, c.status, c.priority, count(*)
        from (select n.agent_id, n.user_id, private.day_key(n.created_at) as day,
                     private.status_key(n.status) as status, private.priority_key(n.priority) as priority
              from new_rows n) c
        group by grouping sets ((c.agent_id, c.user_id, c.status, c.priority),
                                (c.agent_id, c.user_id, c.day, c.status, c.priority),
                                (c.status, c.priority), (c.day, c.status, c.priority))
        returning agent_id, day, user_id, status, priority
      )
      select a.* from appended a where random() < 1.0 / 8
    loop
      perform private.lead_rollup_compact_group(r.agent_id, r.day, r.user_id, r.status, r.priority);
    end loop;
  elsif tg_op = 'DELETE' then
    for r in
      with appended as (
        insert into private.lead_rollup (agent_id, user_id, day, status, priority, n)
        select c.agent_id, c.user_id, c.day, c.status, c.priority, -count(*)
        from (select o.agent_id, o.user_id, private.day_key(o.created_at) as day,
                     private.status_key(o.status) as status, private.priority_key(o.priority) as priority
              from old_rows o) c
        group by grouping sets ((c.agent_id, c.user_id, c.status, c.priority),
                                (c.agent_id, c.user_id, c.day, c.status, c.priority),
                                (c.status, c.priority), (c.day, c.status, c.priority))
        returning agent_id, day, user_id, status, priority
      )
      select a.* from appended a where random() < 1.0 / 8
    loop
      perform private.lead_rollup_compact_group(r.agent_id, r.day, r.user_id, r.status, r.priority);
    end loop;
  else
    -- Updates that leave every key column alone cancel out (-1 +1) and append nothing.
    for r in
      with appended as (
        insert into private.lead_rollup (agent_id, user_id, day, status, priority, n)
        select c.agent_id, c.user_id, c.day, c.status, c.priority, sum(c.n)
        from (select o.agent_id, o.user_id, private.day_key(o.created_at) as day,
                     private.status_key(o.status) as status, private.priority_key(o.priority) as priority, -1 as n
              from old_rows o
              union all
              select n.agent_id, n.user_id, private.day_key(n.created_at), private.status_key(n.status),
                     private.priority_key(n.priority), 1
              from new_rows n) c
        group by grouping sets ((c.agent_id, c.user_id, c.status, c.priority),
                                (c.agent_id, c.user_id, c.day, c.status, c.priority),
                                (c.status, c.priority), (c.day, c.status, c.priority))
        having sum(c.n) <> 0
        returning agent_id, day, user_id, status, priority
      )
      select a.* from appended a where random() < 1.0 / 8
    loop
      perform private.lead_rollup_compact_group(r.agent_id, r.day, r.user_id, r.status, r.priority);
    end loop;
  end if;
  return null;
end
$$;

revoke all on function private.lead_rollup_compact_group(text, date, uuid, text, text) from public, anon, authenticated;

-- Every delta row is deleted again by a compaction, so the rollup makes dead rows as fast as
-- leads are written: vacuum it by a fixed number of dead rows, not a fraction of a table that
-- stays small.
alter table private.lead_rollup set (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000);
revoke all on function private.leads_rollup_trigger() from public, anon, authenticated;

-- ---------------------------------------------------------------------------------------------
-- Created events with the diff computed in the statement
-- ---------------------------------------------------------------------------------------------

/** As in 20261201000300_bulk.sql (one `created` event per inserted lead, in id order, stamped
    with actor, admin mode, request id and import id), with the event's changes computed in the
    statement instead of one private.lead_changes(null, row) call per lead, which Postgres
    planned anew for every row: the lead's fields that are not null, each as [null, value],
    without the bookkeeping columns. private.lead_changes stays the definition of a diff;
    tests/history.test.ts checks that this expression and lead_changes(null, row) agree. */
create or replace function private.leads_record_created() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  insert into public.lead_events (lead_id, actor_id, admin_mode, request_id, kind, changes, import_id)
  select n.id, (select auth.uid()), (select private.admin_mode()),
         nullif(current_setting('app.request_id', true), ''), 'created',
         (select coalesce(jsonb_object_agg(e.key, jsonb_build_array(null, e.value)), '{}')
          from jsonb_each(to_jsonb(n) - '{id,created_at,updated_at,version}'::text[]) e
          where e.value <> 'null'::jsonb),
         nullif(current_setting('app.import_id', true), '')::uuid
  from new_rows n
  order by n.id;
  return null;
end
$$;

revoke all on function private.leads_record_created() from public, anon, authenticated;

-- ---------------------------------------------------------------------------------------------
-- The search index: batched GIN inserts, merged by the import that made them
-- ---------------------------------------------------------------------------------------------

-- The owner-scoped trigram index took about 0.6 ms per inserted lead (fastupdate off: every
-- insert walks the GIN tree once per trigram). With fastupdate on, new entries go to a pending
-- list and are merged in sorted batches, which costs a fraction of that; the list is kept short
-- (gin_pending_list_limit 256 kB: the insert that overflows it merges it), so a search never
-- rescans more than 256 kB of recent entries, and an import merges its own entries before it
-- commits (private.leads_flush_search_index). Only storage parameters: the index itself (owned
-- by the read path) is not rebuilt. Every GIN index on leads, read from the catalog, so a later
-- rename or replacement of the index cannot break this migration.
do $$
declare
  v_index regclass;
begin
  for v_index in
    select i.indexrelid::regclass from pg_catalog.pg_index i
    join pg_catalog.pg_class c on c.oid = i.indexrelid
    join pg_catalog.pg_am am on am.oid = c.relam
    where i.indrelid = 'public.leads'::regclass and am.amname = 'gin'
  loop
    execute format('alter index %s set (fastupdate = on, gin_pending_list_limit = 256)', v_index);
  end loop;
end
$$;

/** Merges the pending lists of leads' GIN indexes into the indexes (gin_clean_pending_list),
    in the caller's transaction: an import calls it after its insert, so its rows' index work is
    done, and paid, by the import. Security definer: only an index's owner may clean it. Work is
    bounded by what is pending (256 kB a list between merges, plus the caller's own inserts). */
create or replace function private.leads_flush_search_index() returns void
language plpgsql volatile security definer
set search_path = ''
as $$
begin
  perform pg_catalog.gin_clean_pending_list(i.indexrelid::regclass)
  from pg_catalog.pg_index i
  join pg_catalog.pg_class c on c.oid = i.indexrelid
  join pg_catalog.pg_am am on am.oid = c.relam
  where i.indrelid = 'public.leads'::regclass and am.amname = 'gin';
end
$$;

revoke all on function private.leads_flush_search_index() from public, anon;
-- import_leads is security invoker: the caller runs the flush (as its definer).
grant execute on function private.leads_flush_search_index() to authenticated;

-- ---------------------------------------------------------------------------------------------
-- Import: the owner once per agent, the search index merged before commit
-- ---------------------------------------------------------------------------------------------

/** As in 20261201000300_bulk.sql (unchanged rules and answer), with each agent's owner read once
    per agent instead of once per row, and the search index's pending list merged at the end.
    Writes an import's rows in one set-based pass, as the caller (security invoker: RLS, the
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
  from (select e.ord::integer as ord, (e.v ->> 'row')::integer as row_no, e.v -> 'fields' as fields, o.owner
        from jsonb_array_elements(p_rows) with ordinality e(v, ord)
        -- The owner once per agent named, not once per row.
        left join (select a.agent_id, private.agent_owner(a.agent_id) as owner
                   from (select distinct r.v -> 'fields' ->> 'agent_id' as agent_id
                         from jsonb_array_elements(p_rows) r(v)) a
                   where a.agent_id is not null) o
          on o.agent_id = e.v -> 'fields' ->> 'agent_id') i;

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
  -- The search index's new entries went to its pending list (fastupdate, below): merge them now,
  -- in this transaction, so the import pays for its own index work and no search after it scans
  -- a long pending list.
  perform private.leads_flush_search_index();
  return coalesce(v_result, '[]');
end
$$;

revoke all on function private.import_leads(jsonb, text, uuid, boolean, text) from public, anon;
grant execute on function private.import_leads(jsonb, text, uuid, boolean, text) to authenticated;

revoke execute on all functions in schema private from public, anon;
