-- The exact counts of lists and stats without re-planning per call (issue 18, target 3:
-- per-request cost).
--
-- Profiled with pg_stat_user_functions (track_functions = all, 2,000 pgbench calls at the 100k
-- account, c=1), before this file:
-- - lead_page took 584 µs a call, and 367 µs of it was private.lead_rollup_counts: the whole
--   `{ total, by_status }` of the stats answer (the rollup summed per status, then
--   status_counts_json, then `->> 'total'`) for one number;
-- - lead_rollup_counts spent 245 µs in itself, and auto_explain showed why: its rollup read ran
--   a custom plan on every call (the array of agents as a literal). plpgsql's plan cache keeps
--   planning per call when the generic plan's estimate (an array of unknown length, the optional
--   filters) looks dearer than the custom one, so each call paid the planner for a 75-row index
--   read. lead_scope_agents (55 µs self) is the same story.
-- Now:
-- - private.lead_rollup_total: the exact number without a date range, a plain sum of the rollup
--   rows (no per-status grouping, no shaping), for lead_page's count;
-- - private.lead_rollup_now: `{ total, by_status }` without a date range (the statements that
--   were lead_rollup_counts' first two branches, which now call it), for lead_totals directly;
-- - both, and lead_scope_agents, say `plan_cache_mode = force_generic_plan` in their own
--   definitions: their statements have one good plan whatever the arguments (the rollup key
--   index by agent, or the agents of one user), so they are planned once per connection. The
--   setting also holds for what they call (admin_mode, status_counts_json: no statements).
--   lead_rollup_counts keeps the planner's choice: its date-range statements read `leads` over
--   a range whose width the custom plan sees.
-- The rows lead_rollup_total sums are the rows lead_rollup_now groups (same scope, same filters
-- on the rollup's own keys); tests/read-speed.test.ts checks they agree for every scope and filter.
--
-- lead_page is restated from 20261202000200_read_path.sql with its count changed, lead_totals and
-- lead_rollup_counts with their date-less path changed, lead_scope_agents with the setting
-- added (`create or replace`, same signatures: grants stay).

/** The agents a count or page covers (unchanged rule: see 20261123000100_lead_rollups.sql), as
    20261201000200_search_speed.sql wrote it, planned once per connection (see above). Null
    means every agent (admin mode, no filter). */
create or replace function private.lead_scope_agents(p_agent_ids text[], p_user_id uuid) returns text[]
language plpgsql stable security definer
set search_path = ''
set plan_cache_mode = force_generic_plan
as $$
begin
  if private.admin_mode() then
    if p_agent_ids is null and p_user_id is null then
      return null;
    end if;
    return array(select a.id from public.agents a
                 where (p_agent_ids is null or a.id = any (p_agent_ids)) and (p_user_id is null or a.user_id = p_user_id));
  end if;
  return array(select a.id from public.agents a
               where a.user_id = auth.uid()
                 and (p_agent_ids is null or a.id = any (p_agent_ids)) and (p_user_id is null or a.user_id = p_user_id));
end
$$;

/** The exact number of leads the caller may use that match the filters, without a date range:
    the sum of the rollup's whole-time rows, what `lead_rollup_now(…) ->> 'total'` answers
    without grouping or shaping. Security definer for the same reason as lead_rollup_counts (the
    rollup is unreadable to users; lead_scope_agents applies the caller's agents). */
create or replace function private.lead_rollup_total(
  p_agent_ids text[], p_status text, p_priority text, p_user_id uuid
) returns bigint
language plpgsql stable security definer
set search_path = ''
set plan_cache_mode = force_generic_plan
as $$
declare
  v_agents text[] := private.lead_scope_agents(p_agent_ids, p_user_id);
begin
  if v_agents is null then
    return (select coalesce(sum(r.n), 0)::bigint from private.lead_rollup r
            where r.agent_id is null and r.day is null
              and (p_priority is null or r.priority = p_priority) and (p_status is null or r.status = p_status));
  end if;
  return (select coalesce(sum(r.n), 0)::bigint from private.lead_rollup r
          where r.agent_id = any (v_agents) and r.day is null and (p_user_id is null or r.user_id = p_user_id)
            and (p_priority is null or r.priority = p_priority) and (p_status is null or r.status = p_status));
end
$$;

/** `{ total, by_status }` of the leads the caller may use that match the filters, without a date
    range: the rollup's whole-time rows summed per status key, shaped by status_counts_json. */
create or replace function private.lead_rollup_now(
  p_agent_ids text[], p_status text, p_priority text, p_user_id uuid
) returns jsonb
language plpgsql stable security definer
set search_path = ''
set plan_cache_mode = force_generic_plan
as $$
declare
  v_agents text[] := private.lead_scope_agents(p_agent_ids, p_user_id);
  v_status text[];
  v_n bigint[];
begin
  if v_agents is null then
    select array_agg(g.status), array_agg(g.n) into v_status, v_n from (
      select r.status, sum(r.n)::bigint as n from private.lead_rollup r
      where r.agent_id is null and r.day is null
        and (p_priority is null or r.priority = p_priority) and (p_status is null or r.status = p_status)
      group by r.status) g;
  else
    select array_agg(g.status), array_agg(g.n) into v_status, v_n from (
      select r.status, sum(r.n)::bigint as n from private.lead_rollup r
      where r.agent_id = any (v_agents) and r.day is null and (p_user_id is null or r.user_id = p_user_id)
        and (p_priority is null or r.priority = p_priority) and (p_status is null or r.status = p_status)
      group by r.status) g;
  end if;
  return private.status_counts_json(v_status, v_n);
end
$$;

revoke execute on function private.lead_rollup_total(text[], text, text, uuid),
  private.lead_rollup_now(text[], text, text, uuid) from public, anon;
grant execute on function private.lead_rollup_total(text[], text, text, uuid),
  private.lead_rollup_now(text[], text, text, uuid) to authenticated;

-- ---------------------------------------------------------------------------------------------
-- Stats: lead_rollup_counts and lead_totals, restated from 20261202000200_read_path.sql with
-- their date-less path through lead_rollup_now
-- ---------------------------------------------------------------------------------------------

/** `{ total, by_status }` of the leads the caller may use that match the filters, from the
    rollup: whole UTC days from the per-day rows, and the boundary day exact to the microsecond
    from an index range scan of `leads` over the smaller part of it: either the leads from p_since
    to the day's end are added, or the whole day is taken from the rollup and the leads from the
    day's start to p_since subtracted (without p_since, lead_rollup_now answers). Security
    definer: it applies the caller's agents itself (lead_scope_agents), so the rollup stays unreadable to users. Static statements, one per
    index path, so their plans are cached; the optional filters are plain row filters; the rows
    are summed per status key before status_counts_json shapes them. */
create or replace function private.lead_rollup_counts(
  p_agent_ids text[], p_status text, p_priority text, p_since timestamptz, p_user_id uuid
) returns jsonb
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_agents text[];
  v_day date;
  v_day_start timestamptz;
  v_subtract boolean;
  v_from date;
  v_lo timestamptz;
  v_hi timestamptz;
  v_sign int;
  v_status text[];
  v_n bigint[];
begin
  if p_since is null then
    return private.lead_rollup_now(p_agent_ids, p_status, p_priority, p_user_id);
  end if;
  v_agents := private.lead_scope_agents(p_agent_ids, p_user_id);
  -- The boundary day.
    v_day := private.day_key(p_since);
    v_day_start := v_day::timestamp at time zone 'UTC';
    -- Before noon UTC the part of the day before p_since is the smaller one to scan.
    v_subtract := p_since - v_day_start < interval '12 hours';
    v_from := case when v_subtract then v_day else v_day + 1 end;
    v_lo := case when v_subtract then v_day_start else p_since end;
    v_hi := case when v_subtract then p_since else v_day_start + interval '1 day' end;
    v_sign := case when v_subtract then -1 else 1 end;
  if v_agents is null then
    select array_agg(g.status), array_agg(g.n) into v_status, v_n from (
      select c.status, sum(c.n)::bigint as n from (
        select r.status, r.n from private.lead_rollup r
        where r.agent_id is null and r.day >= v_from
          and (p_priority is null or r.priority = p_priority) and (p_status is null or r.status = p_status)
        union all
        select private.status_key(l.status), v_sign from public.leads l
        where l.created_at >= v_lo and l.created_at < v_hi
          and (p_priority is null or l.priority = p_priority)
          and (p_status is null or private.status_key(l.status) = p_status)) c
      group by c.status) g;
  else
    select array_agg(g.status), array_agg(g.n) into v_status, v_n from (
      select c.status, sum(c.n)::bigint as n from (
        select r.status, r.n from private.lead_rollup r
        where r.agent_id = any (v_agents) and r.day >= v_from and (p_user_id is null or r.user_id = p_user_id)
          and (p_priority is null or r.priority = p_priority) and (p_status is null or r.status = p_status)
        union all
        select private.status_key(l.status), v_sign from public.leads l
        where l.agent_id = any (v_agents) and l.created_at >= v_lo and l.created_at < v_hi
          and (p_user_id is null or l.user_id = p_user_id)
          and (p_priority is null or l.priority = p_priority)
          and (p_status is null or private.status_key(l.status) = p_status)) c
      group by c.status) g;
  end if;
  return private.status_counts_json(v_status, v_n);
end
$$;

/** `{ total, by_status }` of the leads the caller can see that match the filters (see
    20261123000100_lead_rollups.sql), the filters capped by check_lead_filters. Without a search
    the rollup answers; a search counts its matches per status key. */
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
  v_status text[];
  v_n bigint[];
begin
  if p_agent_ids is not null or p_status is not null or p_priority is not null or p_search is not null then
    perform private.check_lead_filters(p_agent_ids, p_status, p_priority, p_search);
  end if;
  if p_search is null and p_since is null then
    return private.lead_rollup_now(p_agent_ids, p_status, p_priority, p_user_id);
  elsif p_search is null then
    return private.lead_rollup_counts(p_agent_ids, p_status, p_priority, p_since, p_user_id);
  end if;
  execute 'select array_agg(g.status), array_agg(g.n) from (select private.status_key(l.status) status, count(*) n '
    'from public.leads l where '
    || private.lead_predicate(p_agent_ids, p_status, p_priority, p_search, p_since, p_user_id)
    || ' group by 1) g'
    into v_status, v_n using p_agent_ids, p_status, p_priority,
      array(select private.search_lead_ids(p_search, p_agent_ids)), p_since, p_user_id;
  return private.status_counts_json(v_status, v_n);
end
$$;


-- ---------------------------------------------------------------------------------------------
-- lead_page, restated from 20261202000200_read_path.sql with its count from lead_rollup_total
-- ---------------------------------------------------------------------------------------------

/** One page of the leads the caller can see that match the filters, newest first
    (`created_at desc, id desc`), after the keyset (p_after_created, p_after_id) when given, then
    skipping p_offset; each row with `total` (when p_count) and `total_capped`. Without a search
    the total is exact (the rollups); with one it is exact up to 10,000, and above that 10,000
    with total_capped true; total_capped also marks the lower bound of a search walk that stopped
    at its bound (private.lead_search_page). resume_created_at and resume_id, when not null, are
    the keyset the next page starts after, for a search page the walk could not fill (it may hold
    fewer than p_limit leads, or none, and still not be the last). An empty page is one row with
    a null lead, so the total still arrives. Security invoker: RLS decides the rows. One static
    statement per scope (plans cached per connection):
    - a search: private.lead_search_page finds the page's ids, this reads their rows;
    - one user's leads (the caller's own account, or p_user_id): one walk down leads_user_created_idx;
    - an agent filter: each agent's newest rows from leads_agent_created_idx, merged, so the page
      costs limit rows per agent however many leads match or how deep the cursor is;
    - every agent (admin mode, no filter): one walk down leads_created_idx.
    Bitmap scans off: the static statements' cached generic plans otherwise pair the owner's GIN
    entries (btree_gin) with an agent bitmap and sort every lead of the account (estimated: four
    rows); without them the only plans left walk the newest-first indexes.
    Refuses (LA400) arguments outside the api's caps (private.api_limits), for callers through
    the Data API too. */
create or replace function public.lead_page(
  p_agent_ids text[], p_status text, p_priority text, p_search text, p_since timestamptz, p_user_id uuid,
  p_after_created timestamptz, p_after_id bigint, p_limit integer, p_offset integer, p_count boolean
) returns table (total bigint, total_capped boolean, lead public.leads, resume_created_at timestamptz,
                 resume_id bigint)
language plpgsql stable security invoker
set search_path = ''
set enable_bitmapscan = off
as $$
declare
  v_where text;
  v_total bigint;
  v_owner uuid;
  v_agents text[];
  v_first boolean := p_after_id is null;
  s record;
begin
  -- The caps as 20261201000100_protection.sql defines them (private.api_limits, one place).
  if p_limit is null or p_limit < 1 or p_limit > private.api_limit('pageSize') + 1 then
    perform private.refuse_argument('p_limit', format('must be between 1 and %s', private.api_limit('pageSize') + 1));
  end if;
  if p_offset is null or p_offset < 0 or p_offset > private.api_limit('offset') then
    perform private.refuse_argument('p_offset', format('must be between 0 and %s', private.api_limit('offset')));
  end if;
  if p_agent_ids is not null or p_status is not null or p_priority is not null or p_search is not null then
    perform private.check_lead_filters(p_agent_ids, p_status, p_priority, p_search);
  end if;
  if p_search is not null then
    select * into s from private.lead_search_page(p_agent_ids, p_status, p_priority, p_search, p_since, p_user_id,
                                  p_after_created, p_after_id, p_limit, p_offset, p_count);
    return query select s.total, s.capped, l, s.resume_created_at, s.resume_id from public.leads l
      where l.id = any (s.ids)
      order by l.created_at desc, l.id desc;
    if not found then
      return query select s.total, s.capped, null::public.leads, s.resume_created_at, s.resume_id;
    end if;
    return;
  end if;
  if p_count then
    v_total := case when p_since is null
                    then private.lead_rollup_total(p_agent_ids, p_status, p_priority, p_user_id)
                    else (private.lead_rollup_counts(p_agent_ids, p_status, p_priority, p_since, p_user_id) ->> 'total')::bigint
               end;
  end if;

  if p_status is not null or p_priority is not null or p_since is not null then
    -- A filtered page: one statement built for exactly the filters given and planned for its
    -- values. A cached generic plan of `(p is null or l.status = p)` filters misjudges how many
    -- rows pass and sorts them all.
    v_owner := case when p_agent_ids is null and p_user_id is null and not private.admin_mode() then auth.uid()
                    else p_user_id end;
    v_where := private.lead_predicate(p_agent_ids, p_status, p_priority, null, p_since, v_owner)
      || case when p_after_id is not null then ' and l.created_at <= $7 and (l.created_at < $7 or l.id < $8)'
              else '' end;
    if p_user_id is null and p_agent_ids is not null then
      return query execute
        'select $12, false, row(l.*)::public.leads, null::timestamptz, null::bigint
         from unnest($11::text[]) as usable(agent_id) cross join lateral (
           select l.* from public.leads l where l.agent_id = usable.agent_id and ' || v_where || '
           order by l.created_at desc, l.id desc limit $9 + $10) l
         order by l.created_at desc, l.id desc limit $9 offset $10'
        using p_agent_ids, p_status, p_priority, null::bigint[], p_since, p_user_id, p_after_created, p_after_id,
              p_limit, p_offset, private.lead_scope_agents(p_agent_ids, null), v_total;
    else
      return query execute
        'select $12, false, l, null::timestamptz, null::bigint from public.leads l where ' || v_where || '
         order by l.created_at desc, l.id desc limit $9 offset $10'
        using p_agent_ids, p_status, p_priority, null::bigint[], p_since, v_owner, p_after_created, p_after_id,
              p_limit, p_offset, null::text[], v_total;
    end if;
  elsif p_agent_ids is not null then
    -- The agents named that the caller may use (and p_user_id owns, when given): each one's
    -- newest rows after the keyset, limit + offset of them, merged.
    v_agents := private.lead_scope_agents(p_agent_ids, p_user_id);
    if v_first then
      return query select v_total, false, row(l.*)::public.leads, null::timestamptz, null::bigint
        from unnest(v_agents) as usable(agent_id)
        cross join lateral (
          select l.* from public.leads l
          where l.agent_id = usable.agent_id
          order by l.created_at desc, l.id desc limit p_limit + p_offset) l
        order by l.created_at desc, l.id desc limit p_limit offset p_offset;
    else
      -- The keyset spelled so `created_at <= p_after_created` is an index condition (the row
      -- comparison `(created_at, id) < (…)` is not one on the descending index); ties by id.
      return query select v_total, false, row(l.*)::public.leads, null::timestamptz, null::bigint
        from unnest(v_agents) as usable(agent_id)
        cross join lateral (
          select l.* from public.leads l
          where l.agent_id = usable.agent_id
            and l.created_at <= p_after_created and (l.created_at < p_after_created or l.id < p_after_id)
          order by l.created_at desc, l.id desc limit p_limit + p_offset) l
        order by l.created_at desc, l.id desc limit p_limit offset p_offset;
    end if;
  elsif p_user_id is not null or not private.admin_mode() then
    -- One user's leads: p_user_id, or the caller's own account. A lead's user_id is its agent's
    -- owner (leads_before_write), so the caller's own are exactly the leads of their agents; RLS
    -- still decides every row.
    v_owner := coalesce(p_user_id, auth.uid());
    if v_first then
      return query select v_total, false, l, null::timestamptz, null::bigint from public.leads l
        where l.user_id = v_owner
        order by l.created_at desc, l.id desc limit p_limit offset p_offset;
    else
      return query select v_total, false, l, null::timestamptz, null::bigint from public.leads l
        where l.user_id = v_owner
          and l.created_at <= p_after_created and (l.created_at < p_after_created or l.id < p_after_id)
        order by l.created_at desc, l.id desc limit p_limit offset p_offset;
    end if;
  else
    -- Admin mode over every agent.
    if v_first then
      return query select v_total, false, l, null::timestamptz, null::bigint from public.leads l
        order by l.created_at desc, l.id desc limit p_limit offset p_offset;
    else
      return query select v_total, false, l, null::timestamptz, null::bigint from public.leads l
        where l.created_at <= p_after_created and (l.created_at < p_after_created or l.id < p_after_id)
        order by l.created_at desc, l.id desc limit p_limit offset p_offset;
    end if;
  end if;
  if not found then
    return query select v_total, false, null::public.leads, null::timestamptz, null::bigint;
  end if;
end
$$;

