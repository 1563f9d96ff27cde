-- Stats and the list's exact count cost less per request (issue 18, target 3).
--
-- Profiled with pg_stat_user_functions (track_functions = all) over 2,000 pgbench calls of the
-- bench's own stats statement at the 100k account: of lead_totals' ~400 µs, the rollup read was
-- ~200, status_counts_json ~90 (two statements with a subquery per status, for at most five
-- rows), lead_scope_agents + admin_mode ~70, check_lead_filters ~15 for no filter at all; lead_get
-- in all was ~180. A list page with its exact count pays the same chain once more through
-- lead_page. Here:
-- - status_counts_json shapes its (at most a handful of) rows with PL/pgSQL expressions only, no
--   SQL statement, so no executor start per call. Same answer: every known status present (0
--   when absent), 'other' counted toward the total only; same signature, so the grants stay.
-- - lead_totals and lead_page call check_lead_filters only when a filter is given (it checks
--   nothing otherwise: the caps are on given filters only, 20261202000200_read_path.sql).
-- - lead_rollup_counts computes the boundary day's variables only when p_since is given.
-- Every other line of lead_totals (20261201000260_rules_totals.sql), lead_rollup_counts and
-- lead_page (20261202000200_read_path.sql) is as there; `create or replace` with the same
-- signatures keeps their grants and settings.

/** `{ total, by_status }` from parallel arrays of status keys and counts (a key may repeat):
    every known status present, 0 when it has no rows; 'other' counts toward the total only. The
    one place the stats answer's shape is built. Expressions only (no statement to start per
    call): the inputs are the few rows already summed per status key. */
create or replace function private.status_counts_json(p_status text[], p_n bigint[]) returns jsonb
language plpgsql immutable parallel safe
set search_path = ''
as $$
declare
  v_keys text[] := private.lead_status_keys();
  v_counts bigint[] := pg_catalog.array_fill(0::bigint, array[pg_catalog.cardinality(v_keys)]);
  v_total bigint := 0;
  v_by jsonb := '{}';
  i integer;
  j integer;
begin
  for i in 1 .. coalesce(pg_catalog.cardinality(p_status), 0) loop
    v_total := v_total + coalesce(p_n[i], 0);
    j := pg_catalog.array_position(v_keys, p_status[i]);
    if j is not null then
      v_counts[j] := v_counts[j] + coalesce(p_n[i], 0);
    end if;
  end loop;
  for j in 1 .. pg_catalog.cardinality(v_keys) loop
    v_by := v_by || pg_catalog.jsonb_build_object(v_keys[j], v_counts[j]);
  end loop;
  return pg_catalog.jsonb_build_object('total', v_total, 'by_status', v_by);
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
  if p_search is null then
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

/** `{ total, by_status }` of the leads the caller may use that match the filters, from the
    rollup: whole UTC days from the per-day rows, and the boundary day exact to the microsecond
    from an index range scan of `leads` over the smaller part of it: either the leads from p_since
    to the day's end are added, or the whole day is taken from the rollup and the leads from the
    day's start to p_since subtracted. Security definer: it applies the caller's agents itself
    (lead_scope_agents), so the rollup stays unreadable to users. Static statements, one per
    index path, so their plans are cached; the optional filters are plain row filters; the rows
    are summed per status key before status_counts_json shapes them. */
create or replace function private.lead_rollup_counts(
  p_agent_ids text[], p_status text, p_priority text, p_since timestamptz, p_user_id uuid
) returns jsonb
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_agents text[] := private.lead_scope_agents(p_agent_ids, p_user_id);
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
  -- The boundary day, only when there is one (each assignment is an expression evaluated per call).
  if p_since is not null then
    v_day := private.day_key(p_since);
    v_day_start := v_day::timestamp at time zone 'UTC';
    -- Before noon UTC the part of the day before p_since is the smaller one to scan.
    v_subtract := p_since - v_day_start < interval '12 hours';
    v_from := case when v_subtract then v_day else v_day + 1 end;
    v_lo := case when v_subtract then v_day_start else p_since end;
    v_hi := case when v_subtract then p_since else v_day_start + interval '1 day' end;
    v_sign := case when v_subtract then -1 else 1 end;
  end if;
  if p_since is null and v_agents is null then
    select array_agg(g.status), array_agg(g.n) into v_status, v_n from (
      select r.status, sum(r.n)::bigint as n from private.lead_rollup r
      where r.agent_id is null and r.day is null
        and (p_priority is null or r.priority = p_priority) and (p_status is null or r.status = p_status)
      group by r.status) g;
  elsif p_since is null then
    select array_agg(g.status), array_agg(g.n) into v_status, v_n from (
      select r.status, sum(r.n)::bigint as n from private.lead_rollup r
      where r.agent_id = any (v_agents) and r.day is null and (p_user_id is null or r.user_id = p_user_id)
        and (p_priority is null or r.priority = p_priority) and (p_status is null or r.status = p_status)
      group by r.status) g;
  elsif v_agents is null then
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
    v_total := (private.lead_rollup_counts(p_agent_ids, p_status, p_priority, p_since, p_user_id) ->> 'total')::bigint;
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
