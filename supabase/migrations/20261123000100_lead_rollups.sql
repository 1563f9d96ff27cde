-- Lead counts kept as rollups, so `stats` and a list's exact `count` cost the same at 1k or 1M
-- leads (docs/api.md, paging and counts), and the one definition of the list filters.
--
-- Design: every write to `leads`, by any path, appends signed delta rows (+1 / -1 per group) to
-- `private.lead_rollup` from statement-level triggers. Appending never updates a shared row, so
-- concurrent creates on one agent do not queue behind each other's locks. A read sums the deltas;
-- a small fraction of writes also compacts the deltas of the keys they touched (delete them and
-- insert their sum, in the writer's own transaction), which keeps reads short without a cron.

-- ---------------------------------------------------------------------------------------------
-- The rollup table
-- ---------------------------------------------------------------------------------------------

/** Signed lead counts at four levels, told apart by which key columns are null:
    per agent (`day` null), per agent and UTC day, all agents (`agent_id`, `user_id`, `day` null),
    all agents per day (`agent_id`, `user_id` null). `status` is one of the four known statuses or
    'other' (null and unknown statuses); `priority` one of the three known ones or 'other'. Rows are
    deltas: the count of a group is sum(n) over its rows. Only triggers and compaction write here. */
create table if not exists private.lead_rollup (
  id bigint generated always as identity primary key,
  agent_id text,
  user_id uuid,
  day date,
  status text not null,
  priority text not null,
  n bigint not null
);
-- Every read and every compaction selects by agent (or all agents) and a day range (or all time).
create index if not exists lead_rollup_key_idx on private.lead_rollup (agent_id, day)
  include (user_id, status, priority, n);

alter table private.lead_rollup enable row level security;
revoke all on private.lead_rollup from public, anon, authenticated;

/** The rollup key of a status: the four the stats report, everything else (null included) 'other'. */
create or replace function private.status_key(p_status text) returns text
language sql immutable parallel safe
set search_path = ''
as $$
  select case when p_status in ('new', 'contacted', 'qualified', 'converted') then p_status else 'other' end
$$;

/** The rollup key of a priority: the three the API filters on, everything else 'other'. */
create or replace function private.priority_key(p_priority text) returns text
language sql immutable parallel safe
set search_path = ''
as $$
  select case when p_priority in ('low', 'medium', 'high') then p_priority else 'other' end
$$;

/** The UTC day bucket of a creation time. */
create or replace function private.day_key(p_at timestamptz) returns date
language sql immutable parallel safe
set search_path = ''
as $$
  select (p_at at time zone 'UTC')::date
$$;

-- ---------------------------------------------------------------------------------------------
-- Writing: deltas from triggers, bounded compaction
-- ---------------------------------------------------------------------------------------------

/** Merges the delta rows of one (agent or all agents, day or all time) key into one row per group.
    Exact under concurrency: each delta row is deleted by exactly one transaction, which inserts
    its sum in the same transaction. A try-lock per key means two compactions never wait on each
    other (nor deadlock); a writer that finds the key busy just skips compacting. Runs only under
    read committed, where deleting a row a concurrent compaction already removed simply skips it. */
create or replace function private.lead_rollup_compact(p_agent_id text, p_day date) returns void
language plpgsql security definer
set search_path = ''
as $$
begin
  if current_setting('transaction_isolation') <> 'read committed'
     or not pg_try_advisory_xact_lock(hashtext('lead_rollup'),
                                      hashtext(coalesce(p_agent_id, '*') || '/' || coalesce(p_day::text, '*'))) then
    return;
  end if;
  -- Four spellings of one key, so each is a plain index condition (`is not distinct from` is not).
  if p_agent_id is null and p_day is null then
    with gone as (delete from private.lead_rollup r where r.agent_id is null and r.day is null returning r.*)
    insert into private.lead_rollup (agent_id, user_id, day, status, priority, n)
      select null, null, null, g.status, g.priority, sum(g.n) from gone g group by g.status, g.priority
      having sum(g.n) <> 0;
  elsif p_agent_id is null then
    with gone as (delete from private.lead_rollup r where r.agent_id is null and r.day = p_day returning r.*)
    insert into private.lead_rollup (agent_id, user_id, day, status, priority, n)
      select null, null, p_day, g.status, g.priority, sum(g.n) from gone g group by g.status, g.priority
      having sum(g.n) <> 0;
  elsif p_day is null then
    with gone as (delete from private.lead_rollup r where r.agent_id = p_agent_id and r.day is null returning r.*)
    insert into private.lead_rollup (agent_id, user_id, day, status, priority, n)
      select p_agent_id, g.user_id, null, g.status, g.priority, sum(g.n) from gone g
      group by g.user_id, g.status, g.priority having sum(g.n) <> 0;
  else
    with gone as (delete from private.lead_rollup r where r.agent_id = p_agent_id and r.day = p_day returning r.*)
    insert into private.lead_rollup (agent_id, user_id, day, status, priority, n)
      select p_agent_id, g.user_id, p_day, g.status, g.priority, sum(g.n) from gone g
      group by g.user_id, g.status, g.priority having sum(g.n) <> 0;
  end if;
end
$$;

/** One changed lead as the rollup sees it: its key and +1 (now counted) or -1 (no longer). */
do $$ begin
  create type private.lead_rollup_change as (agent_id text, user_id uuid, status text, priority text, day date, n int);
exception when duplicate_object then null;
end $$;

/** Appends the deltas of a statement's changes at all four levels, one row per group whose count
    changed, and compacts about one key in 16 of those it appended to, chosen at random: no
    shared counter to contend on, and (unlike `id % 16`, which always lands on the same level
    when every statement appends the same number of rows) every key gets its turn. */
create or replace function private.lead_rollup_record(p_changes private.lead_rollup_change[]) returns void
language plpgsql security definer
set search_path = ''
as $$
declare
  r record;
begin
  for r in
    with appended as (
      insert into private.lead_rollup (agent_id, user_id, day, status, priority, n)
      select c.agent_id, c.user_id, c.day, c.status, c.priority, sum(c.n)
      from unnest(p_changes) c
      group by grouping sets ((c.agent_id, c.user_id, c.status, c.priority),
                              (c.agent_id, c.user_id, c.day, c.status, c.priority),
                              (c.status, c.priority), (c.day, c.status, c.priority))
      having sum(c.n) <> 0
      returning agent_id, day
    )
    select distinct a.agent_id, a.day from appended a where random() < 1.0 / 16
  loop
    perform private.lead_rollup_compact(r.agent_id, r.day);
  end loop;
end
$$;

/** Statement-level trigger on leads: the rows a statement inserted, updated or deleted, from its
    transition tables (one trigger per event: a trigger with transition tables takes one event).
    Security definer: the caller (the Data API included) cannot write the rollup, only this can. */
create or replace function private.leads_rollup_trigger() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if tg_op = 'INSERT' then
    perform private.lead_rollup_record(array(
      select (n.agent_id, n.user_id, private.status_key(n.status), private.priority_key(n.priority),
              private.day_key(n.created_at), 1)::private.lead_rollup_change
      from new_rows n));
  elsif tg_op = 'DELETE' then
    perform private.lead_rollup_record(array(
      select (o.agent_id, o.user_id, private.status_key(o.status), private.priority_key(o.priority),
              private.day_key(o.created_at), -1)::private.lead_rollup_change
      from old_rows o));
  else
    -- Updates that leave every key column alone cancel out (-1 +1) and append nothing.
    perform private.lead_rollup_record(array(
      select (o.agent_id, o.user_id, private.status_key(o.status), private.priority_key(o.priority),
              private.day_key(o.created_at), -1)::private.lead_rollup_change
      from old_rows o
      union all
      select (n.agent_id, n.user_id, private.status_key(n.status), private.priority_key(n.priority),
              private.day_key(n.created_at), 1)::private.lead_rollup_change
      from new_rows n));
  end if;
  return null;
end
$$;

drop trigger if exists leads_rollup_insert on public.leads;
create trigger leads_rollup_insert after insert on public.leads
  referencing new table as new_rows for each statement execute function private.leads_rollup_trigger();
drop trigger if exists leads_rollup_update on public.leads;
create trigger leads_rollup_update after update on public.leads
  referencing old table as old_rows new table as new_rows for each statement
  execute function private.leads_rollup_trigger();
drop trigger if exists leads_rollup_delete on public.leads;
create trigger leads_rollup_delete after delete on public.leads
  referencing old table as old_rows for each statement execute function private.leads_rollup_trigger();

/** Recomputes the whole rollup from `leads`: for data loaded with triggers off (the benchmark's
    bulk load) and for this migration on a database that already has leads. */
create or replace function private.lead_rollup_rebuild() returns void
language plpgsql security definer
set search_path = ''
as $$
begin
  lock table public.leads in share mode;
  delete from private.lead_rollup;
  insert into private.lead_rollup (agent_id, user_id, day, status, priority, n)
    select l.agent_id, l.user_id, private.day_key(l.created_at), private.status_key(l.status),
           private.priority_key(l.priority), count(*)
    from public.leads l
    group by grouping sets (
      (l.agent_id, l.user_id, private.status_key(l.status), private.priority_key(l.priority)),
      (l.agent_id, l.user_id, private.day_key(l.created_at), private.status_key(l.status),
       private.priority_key(l.priority)),
      (private.status_key(l.status), private.priority_key(l.priority)),
      (private.day_key(l.created_at), private.status_key(l.status), private.priority_key(l.priority)));
end
$$;

select private.lead_rollup_rebuild();

-- ---------------------------------------------------------------------------------------------
-- Reading: counts for stats and for a list's exact count
-- ---------------------------------------------------------------------------------------------

/** The agents a count or page covers: those the caller may use, narrowed to p_agent_ids when
    given and to the agents owned by p_user_id when given (a lead's user_id is its agent's owner).
    Null means every agent (an admin in admin mode naming neither), which has its own rollup. */
create or replace function private.lead_scope_agents(p_agent_ids text[], p_user_id uuid) returns text[]
language sql stable security definer
set search_path = ''
as $$
  -- Two branches, not `user_id = auth.uid() or admin_mode()`: an OR of the two plans as a
  -- sequential scan of every agent, each branch alone as an index scan.
  select case
    when p_agent_ids is null and p_user_id is null and (select private.admin_mode()) then null
    else array(
      select a.id from public.agents a
      where not (select private.admin_mode()) and a.user_id = (select auth.uid())
        and (p_agent_ids is null or a.id = any (p_agent_ids)) and (p_user_id is null or a.user_id = p_user_id)
      union all
      select a.id from public.agents a
      where (select private.admin_mode())
        and (p_agent_ids is null or a.id = any (p_agent_ids)) and (p_user_id is null or a.user_id = p_user_id))
  end
$$;

/** `{ total, by_status }` of the leads the caller may use that match the filters, from the
    rollup: whole UTC days from the per-day rows, and the boundary day exact to the microsecond
    from an index range scan of `leads` over the smaller part of it: either the leads from p_since
    to the day's end are added, or the whole day is taken from the rollup and the leads from the
    day's start to p_since subtracted. Security definer: it applies the caller's agents itself
    (lead_scope_agents), so the rollup stays unreadable to users. Static statements, one per
    index path, so their plans are cached; the optional filters are plain row filters. */
create or replace function private.lead_rollup_counts(
  p_agent_ids text[], p_status text, p_priority text, p_since timestamptz, p_user_id uuid
) returns jsonb
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_agents text[] := private.lead_scope_agents(p_agent_ids, p_user_id);
  v_day date := private.day_key(p_since);
  v_day_start timestamptz := v_day::timestamp at time zone 'UTC';
  -- Before noon UTC the part of the day before p_since is the smaller one to scan.
  v_subtract boolean := p_since - v_day_start < interval '12 hours';
  v_from date := case when v_subtract then v_day else v_day + 1 end;
  v_lo timestamptz := case when v_subtract then v_day_start else p_since end;
  v_hi timestamptz := case when v_subtract then p_since else v_day_start + interval '1 day' end;
  v_sign int := case when v_subtract then -1 else 1 end;
  v_status text[];
  v_n bigint[];
begin
  if p_since is null and v_agents is null then
    select array_agg(r.status), array_agg(r.n) into v_status, v_n from private.lead_rollup r
    where r.agent_id is null and r.day is null
      and (p_priority is null or r.priority = p_priority) and (p_status is null or r.status = p_status);
  elsif p_since is null then
    select array_agg(r.status), array_agg(r.n) into v_status, v_n from private.lead_rollup r
    where r.agent_id = any (v_agents) and r.day is null and (p_user_id is null or r.user_id = p_user_id)
      and (p_priority is null or r.priority = p_priority) and (p_status is null or r.status = p_status);
  elsif v_agents is null then
    select array_agg(c.status), array_agg(c.n) into v_status, v_n from (
      select r.status, r.n from private.lead_rollup r
      where r.agent_id is null and r.day >= v_from
        and (p_priority is null or r.priority = p_priority) and (p_status is null or r.status = p_status)
      union all
      select private.status_key(l.status), v_sign from public.leads l
      where l.created_at >= v_lo and l.created_at < v_hi
        and (p_priority is null or l.priority = p_priority)
        and (p_status is null or private.status_key(l.status) = p_status)) c;
  else
    select array_agg(c.status), array_agg(c.n) into v_status, v_n from (
      select r.status, r.n from private.lead_rollup r
      where r.agent_id = any (v_agents) and r.day >= v_from and (p_user_id is null or r.user_id = p_user_id)
        and (p_priority is null or r.priority = p_priority) and (p_status is null or r.status = p_status)
      union all
      select private.status_key(l.status), v_sign from public.leads l
      where l.agent_id = any (v_agents) and l.created_at >= v_lo and l.created_at < v_hi
        and (p_user_id is null or l.user_id = p_user_id)
        and (p_priority is null or l.priority = p_priority)
        and (p_status is null or private.status_key(l.status) = p_status)) c;
  end if;
  return (
    select jsonb_build_object('total', coalesce(sum(m.n), 0), 'by_status', jsonb_build_object(
      'new', coalesce(sum(m.n) filter (where m.status = 'new'), 0),
      'contacted', coalesce(sum(m.n) filter (where m.status = 'contacted'), 0),
      'qualified', coalesce(sum(m.n) filter (where m.status = 'qualified'), 0),
      'converted', coalesce(sum(m.n) filter (where m.status = 'converted'), 0)))
    from unnest(v_status, v_n) m(status, n));
end
$$;

-- ---------------------------------------------------------------------------------------------
-- The list filters, defined once
-- ---------------------------------------------------------------------------------------------

/** The WHERE clause of a lead list or count over `public.leads l`, as SQL text over the bound
    parameters $1 agent ids, $2 status, $3 priority, $4 the ids a search matched (bigint[], from
    private.search_lead_ids: run once by the caller, shared by the count and the page), $5 since,
    $6 user id: only the predicates asked for, so each call plans for its own filters. The one
    definition of the filters: lead_page and lead_totals both use it. */
create or replace function private.lead_predicate(
  p_agent_ids text[], p_status text, p_priority text, p_search text, p_since timestamptz, p_user_id uuid
) returns text
language sql immutable
set search_path = ''
as $$
  select 'true'
    || case when p_agent_ids is not null then ' and l.agent_id = any ($1)' else '' end
    || case when p_status is not null then ' and l.status = $2' else '' end
    || case when p_priority is not null then ' and l.priority = $3' else '' end
    || case when p_search is not null then ' and l.id = any ($4)' else '' end
    || case when p_since is not null then ' and l.created_at >= $5' else '' end
    || case when p_user_id is not null then ' and l.user_id = $6' else '' end
$$;

/** `{ total, by_status }` of the leads the caller can see that match the filters. Without a
    search the rollup answers; a search counts its (trigram-indexed) matches. Security invoker:
    RLS decides the rows of a search, lead_rollup_counts applies the same rule itself. */
create or replace function public.lead_totals(
  p_agent_ids text[] default null,
  p_status text default null,
  p_priority text default null,
  p_search text default null,
  p_since timestamptz default null,
  p_user_id uuid default null
) returns jsonb
language plpgsql stable security invoker
set search_path = ''
as $$
declare
  v_result jsonb;
begin
  if p_search is null then
    return private.lead_rollup_counts(p_agent_ids, p_status, p_priority, p_since, p_user_id);
  end if;
  execute 'select jsonb_build_object(''total'', count(*), ''by_status'', jsonb_build_object('
    '''new'', count(*) filter (where l.status = ''new''), '
    '''contacted'', count(*) filter (where l.status = ''contacted''), '
    '''qualified'', count(*) filter (where l.status = ''qualified''), '
    '''converted'', count(*) filter (where l.status = ''converted''))) from public.leads l where '
    || private.lead_predicate(p_agent_ids, p_status, p_priority, p_search, p_since, p_user_id)
    into v_result using p_agent_ids, p_status, p_priority,
      array(select private.search_lead_ids(p_search, p_agent_ids)), p_since, p_user_id;
  return v_result;
end
$$;

/** One page of the leads the caller can see that match the filters, newest first
    (`created_at desc, id desc`), after the keyset (p_after_created, p_after_id) when given, then
    skipping p_offset; each row with `total`, the number of all matches when p_count (else null).
    An empty page is one row with a null lead, so the total still arrives. A search runs once,
    for the count and the page. Security invoker: RLS decides the rows. The plan depends on the scope:
    - a user's agents (no search, no user scope): each agent's newest rows from its index, merged,
      so the page costs limit rows per agent however many leads match or how deep the cursor is;
    - every agent (admin mode) or one user's leads: one walk down a (created_at, id) index;
    - a search: its few trigram matches, sorted. */
create or replace function public.lead_page(
  p_agent_ids text[], p_status text, p_priority text, p_search text, p_since timestamptz, p_user_id uuid,
  p_after_created timestamptz, p_after_id bigint, p_limit integer, p_offset integer, p_count boolean
) returns table (total bigint, lead public.leads)
language plpgsql stable security invoker
set search_path = ''
as $$
declare
  v_filter text := private.lead_predicate(p_agent_ids, p_status, p_priority, p_search, p_since, p_user_id);
  -- The keyset, spelled so `created_at <= $7` is an index condition (the row comparison
  -- `(created_at, id) < ($7, $8)` is not one on the descending index) and ties filter by id.
  v_where text := v_filter
    || case when p_after_id is not null then ' and l.created_at <= $7 and (l.created_at < $7 or l.id < $8)'
            else '' end;
  v_ids bigint[];
  v_total bigint;
begin
  if p_search is not null then
    v_ids := array(select private.search_lead_ids(p_search, p_agent_ids));
  end if;
  if not p_count then
    v_total := null;
  elsif p_search is null then
    v_total := (private.lead_rollup_counts(p_agent_ids, p_status, p_priority, p_since, p_user_id) ->> 'total')::bigint;
  else
    execute 'select count(*) from public.leads l where ' || v_filter into v_total
      using p_agent_ids, p_status, p_priority, v_ids, p_since, p_user_id;
  end if;
  if p_search is null and p_user_id is null
     and (p_agent_ids is not null or not (select private.admin_mode())) then
    return query execute
      'select $12, row(l.*)::public.leads from unnest($11::text[]) as usable(agent_id) cross join lateral (
         select l.* from public.leads l where l.agent_id = usable.agent_id and ' || v_where || '
         order by l.created_at desc, l.id desc limit $9 + $10) l
       order by l.created_at desc, l.id desc limit $9 offset $10'
      using p_agent_ids, p_status, p_priority, v_ids, p_since, p_user_id, p_after_created, p_after_id,
            p_limit, p_offset, private.lead_scope_agents(p_agent_ids, null), v_total;
  else
    return query execute
      'select $12, l from public.leads l where ' || v_where || '
       order by l.created_at desc, l.id desc limit $9 offset $10'
      using p_agent_ids, p_status, p_priority, v_ids, p_since, p_user_id, p_after_created, p_after_id,
            p_limit, p_offset, null::text[], v_total;
  end if;
  if not found then
    return query select v_total, null::public.leads;
  end if;
end
$$;

/** Total and per-status counts of the leads the caller can see (the `stats` action), in one
    call: lead_totals without a status filter. */
create or replace function public.lead_stats(
  p_agent_ids text[] default null,
  p_priority text default null,
  p_search text default null,
  p_since timestamptz default null,
  p_user_id uuid default null
) returns jsonb
language sql stable security invoker
set search_path = ''
as $$
  select public.lead_totals(p_agent_ids, null, p_priority, p_search, p_since, p_user_id)
$$;

-- ---------------------------------------------------------------------------------------------
-- Grants: nobody but the roles that need a function may run it.
-- ---------------------------------------------------------------------------------------------

revoke execute on function private.status_key(text), private.priority_key(text), private.day_key(timestamptz),
  private.lead_rollup_compact(text, date), private.lead_rollup_record(private.lead_rollup_change[]),
  private.leads_rollup_trigger(), private.lead_rollup_rebuild(), private.lead_scope_agents(text[], uuid),
  private.lead_rollup_counts(text[], text, text, timestamptz, uuid),
  private.lead_predicate(text[], text, text, text, timestamptz, uuid)
  from public, anon, authenticated;
revoke execute on function public.lead_stats(text[], text, text, timestamptz, uuid),
  public.lead_totals(text[], text, text, text, timestamptz, uuid),
  public.lead_page(text[], text, text, text, timestamptz, uuid, timestamptz, bigint, integer, integer, boolean)
  from public, anon;
-- Triggers run their function as the definer whatever the caller's grants; the caller needs
-- only what the read functions call on its behalf.
grant execute on function private.lead_scope_agents(text[], uuid),
  private.lead_rollup_counts(text[], text, text, timestamptz, uuid),
  private.lead_predicate(text[], text, text, text, timestamptz, uuid)
  to authenticated;
grant execute on function public.lead_stats(text[], text, text, timestamptz, uuid),
  public.lead_totals(text[], text, text, text, timestamptz, uuid),
  public.lead_page(text[], text, text, text, timestamptz, uuid, timestamptz, bigint, integer, integer, boolean)
  to authenticated;
