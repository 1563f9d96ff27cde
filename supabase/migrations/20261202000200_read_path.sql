-- Reads bounded per request (issue 18, items 2 and 3).
--
-- 1. A search that has to walk the newest-first index (a term with no trigram, such as one or two
--    characters, or a term with more than 10,000 matches) examines at most
--    private.search_walk_rows() leads per walk. Before, a rare short term read the whole account
--    (23 s at 1M leads, a 503 at c=32). When the walk stops before the page is full, the page
--    answers what it found with a continuation keyset (lead_page's resume_created_at and
--    resume_id; the api turns it into nextCursor), and the count is the lower bound found so far
--    with total_capped true ("at least this many", as a count capped at 10,000 already says).
--    A trigram search's count stays exact up to 10,000 (unchanged), and so does a walk's when it
--    covers the whole scope or finds 10,001 matches.
-- 2. The plan choice is explicit, in this file only: each function that reads `leads` for a page
--    says in its own definition whether bitmap scans may be used (lead_page and the walk: no, so
--    only the newest-first indexes are left; the trigram search: yes, GIN is read by bitmap only).
--    Before, lead_page turned them off and 20261201000500_read_speed.sql turned them back on for
--    lead_search_page with an ALTER FUNCTION that any later `create or replace` would have dropped.
--    tests/read-plan.test.ts reads the settings back and EXPLAINs the statements.
--
-- lead_page's result gains resume_created_at and resume_id, so it is dropped and created again
-- (grants restated below); its arguments, caps (private.api_limit, private.check_lead_filters,
-- SQLSTATE LA400 through private.refuse_argument) and every other branch are as in
-- 20261201000500_read_speed.sql.

-- ---------------------------------------------------------------------------------------------
-- The walk
-- ---------------------------------------------------------------------------------------------

-- The walk reads leads_user_created_idx (20261122000100_leads.sql) in order and visits each
-- examined lead's heap row. A covering index (the searched fields in INCLUDE) made the walk
-- index-only, but measured 105-120 ms against 128 ms per 20,000-lead walk at 1M for an index
-- three times the size (97 to 294 MB at 2M leads), paid by every write, and a B-tree entry limit
-- (about 2.7 kB) on name, email and phone together that Data API writers could hit: not worth it.

/** How many leads one newest-first search walk may examine: 20,000 (about 40 ms on the bench
    machine), or fewer (at least 1) when the transaction sets `app.search_walk_rows` lower (tests
    do, to reach the bound without 20,000 leads); never more, so no caller can lift the bound, and
    a setting that is not a number is ignored. */
create or replace function private.search_walk_rows() returns integer
language plpgsql stable
set search_path = ''
as $$
declare
  v text := current_setting('app.search_walk_rows', true);
begin
  if v ~ '^[0-9]{1,5}$' then
    return greatest(1, least(v::integer, 20000));
  end if;
  return 20000;
end
$$;

/** One newest-first walk over the leads of p_owners (every lead when null), among p_agents when
    given, after the keyset when given, from p_since on: examines at most p_budget leads, counts
    those whose name, email or phone matches p_pattern (ILIKE) and the status/priority filters,
    keeps the ids of matches p_skip + 1 .. p_skip + p_take, and stops at p_stop_hits matches.
    `resume_*` is the keyset of the last lead examined when the budget ran out with leads left
    (null when the walk reached the end of the scope or p_stop_hits). Two set-based statements per scope: the walk
    (which stops reading as soon as it has p_stop_hits matches), and, only when it found fewer,
    where the budget ends (an index-only scan of the same newest-first index). Bitmap scans off:
    the only plans left walk leads_created_idx or leads_user_created_idx in order. The keyset and
    the date range are index conditions in every statement (coalesce to ±infinity), so one static
    statement serves first and later pages. Runs inside private.lead_search_page (security
    definer, which applies the caller's scope). */
create or replace function private.lead_search_walk(
  p_owners uuid[], p_agents text[], p_pattern text, p_status text, p_priority text, p_since timestamptz,
  p_after_created timestamptz, p_after_id bigint, p_skip integer, p_take integer, p_stop_hits integer,
  p_budget integer
) returns table (hits integer, ids bigint[], resume_created_at timestamptz, resume_id bigint)
language plpgsql stable security definer
set search_path = ''
set enable_bitmapscan = off
as $$
declare
  -- One ILIKE over the joined fields instead of three (ILIKE is most of a walk's cost per lead);
  -- a pattern without a line break cannot match across the breaks that join them (as in
  -- private.lead_search_page), so it is the same test.
  v_one_field boolean := strpos(p_pattern, E'\n') = 0;
  v_lo timestamptz := coalesce(p_since, '-infinity');
  v_hi timestamptz := coalesce(p_after_created, 'infinity');
  v_hits integer;
  v_ids bigint[];
  -- The last lead the budget allows and the one after it: a resume point only when both exist.
  v_edge_created timestamptz[];
  v_edge_id bigint[];
begin
  if p_owners is null then
    select count(*)::integer, array_agg(h.id order by h.rn) filter (where h.rn > p_skip and h.rn <= p_skip + p_take)
      into v_hits, v_ids
    from (select w.id, row_number() over () as rn from (
            select l.id,
              (private.lead_search_text(l.name, l.email, l.phone) ilike p_pattern
               and (v_one_field or l.name ilike p_pattern or l.email ilike p_pattern or l.phone ilike p_pattern))
              and (p_status is null or l.status = p_status) and (p_priority is null or l.priority = p_priority)
              and (p_agents is null or l.agent_id = any (p_agents)) as hit
            from public.leads l
            where l.created_at >= v_lo and l.created_at <= v_hi
              and (p_after_id is null or l.created_at < p_after_created or l.id < p_after_id)
            order by l.created_at desc, l.id desc limit p_budget) w
          where w.hit limit p_stop_hits) h;
    if v_hits < p_stop_hits then
      select array_agg(e.created_at order by e.created_at desc, e.id desc), array_agg(e.id order by e.created_at desc, e.id desc)
        into v_edge_created, v_edge_id from (
        select l.created_at, l.id from public.leads l
        where l.created_at >= v_lo and l.created_at <= v_hi
          and (p_after_id is null or l.created_at < p_after_created or l.id < p_after_id)
        order by l.created_at desc, l.id desc offset p_budget - 1 limit 2) e;
    end if;
  elsif cardinality(p_owners) = 1 then
    select count(*)::integer, array_agg(h.id order by h.rn) filter (where h.rn > p_skip and h.rn <= p_skip + p_take)
      into v_hits, v_ids
    from (select w.id, row_number() over () as rn from (
            select l.id,
              (private.lead_search_text(l.name, l.email, l.phone) ilike p_pattern
               and (v_one_field or l.name ilike p_pattern or l.email ilike p_pattern or l.phone ilike p_pattern))
              and (p_status is null or l.status = p_status) and (p_priority is null or l.priority = p_priority)
              and (p_agents is null or l.agent_id = any (p_agents)) as hit
            from public.leads l
            where l.user_id = p_owners[1] and l.created_at >= v_lo and l.created_at <= v_hi
              and (p_after_id is null or l.created_at < p_after_created or l.id < p_after_id)
            order by l.created_at desc, l.id desc limit p_budget) w
          where w.hit limit p_stop_hits) h;
    if v_hits < p_stop_hits then
      select array_agg(e.created_at order by e.created_at desc, e.id desc), array_agg(e.id order by e.created_at desc, e.id desc)
        into v_edge_created, v_edge_id from (
        select l.created_at, l.id from public.leads l
        where l.user_id = p_owners[1] and l.created_at >= v_lo and l.created_at <= v_hi
          and (p_after_id is null or l.created_at < p_after_created or l.id < p_after_id)
        order by l.created_at desc, l.id desc offset p_budget - 1 limit 2) e;
    end if;
  else
    -- Several owners (admin mode, agents of several users): each owner's newest p_budget merged.
    select count(*)::integer, array_agg(h.id order by h.rn) filter (where h.rn > p_skip and h.rn <= p_skip + p_take)
      into v_hits, v_ids
    from (select w.id, row_number() over () as rn from (
            select m.id, m.hit from unnest(p_owners) o(user_id) cross join lateral (
              select l.id, l.created_at,
                (private.lead_search_text(l.name, l.email, l.phone) ilike p_pattern
               and (v_one_field or l.name ilike p_pattern or l.email ilike p_pattern or l.phone ilike p_pattern))
                and (p_status is null or l.status = p_status) and (p_priority is null or l.priority = p_priority)
                and (p_agents is null or l.agent_id = any (p_agents)) as hit
              from public.leads l
              where l.user_id = o.user_id and l.created_at >= v_lo and l.created_at <= v_hi
                and (p_after_id is null or l.created_at < p_after_created or l.id < p_after_id)
              order by l.created_at desc, l.id desc limit p_budget) m
            order by m.created_at desc, m.id desc limit p_budget) w
          where w.hit limit p_stop_hits) h;
    if v_hits < p_stop_hits then
      select array_agg(e.created_at order by e.created_at desc, e.id desc), array_agg(e.id order by e.created_at desc, e.id desc)
        into v_edge_created, v_edge_id from (
        select m.created_at, m.id from unnest(p_owners) o(user_id) cross join lateral (
          select l.created_at, l.id from public.leads l
          where l.user_id = o.user_id and l.created_at >= v_lo and l.created_at <= v_hi
            and (p_after_id is null or l.created_at < p_after_created or l.id < p_after_id)
          order by l.created_at desc, l.id desc limit p_budget + 1) m
        order by m.created_at desc, m.id desc offset p_budget - 1 limit 2) e;
    end if;
  end if;
  if cardinality(v_edge_id) = 2 then
    return query select v_hits, coalesce(v_ids, '{}'), v_edge_created[1], v_edge_id[1];
  else
    return query select v_hits, coalesce(v_ids, '{}'), null::timestamptz, null::bigint;
  end if;
end
$$;

-- ---------------------------------------------------------------------------------------------
-- Search
-- ---------------------------------------------------------------------------------------------

-- The result gains resume_created_at and resume_id: it cannot be replaced in place.
drop function if exists private.lead_search_page(text[], text, text, text, timestamptz, uuid, timestamptz, bigint, integer, integer, boolean);

/** The search behind lead_page: the ids of one page of the leads the caller may use whose name,
    email or phone contains p_search (case-insensitive, `%`, `_` and `\` literal), newest first,
    after the keyset, skipping p_offset; and the number of all matches (when p_count).
    - a term with a trigram: one scan of leads_owner_search_trgm_idx per owner in scope, its
      matches collected once for the count (exact up to 10,000; above, 10,000 and `capped`) and
      the page. Bitmap scans on: a GIN index is read by bitmap only.
    - more than 10,000 matches, or a term without a trigram: private.lead_search_walk, at most
      private.search_walk_rows() leads per walk. The first page's count and page are one walk
      (from the newest lead: exact when it reaches the end of the scope, 10,000 and `capped` when
      it finds 10,001 matches, else the matches found so far and `capped`, a lower bound). A page
      the walk could not fill answers the matches found and resume_* (where the next walk starts).
    Security definer on purpose: under RLS, ILIKE (not leakproof) cannot be an index condition. It
    applies the caller's agents itself (lead_scope_agents, the rule of the policies), explicitly in
    every statement; lead_page then reads the page's rows under RLS. */
create function private.lead_search_page(
  p_agent_ids text[], p_status text, p_priority text, p_search text, p_since timestamptz, p_user_id uuid,
  p_after_created timestamptz, p_after_id bigint, p_limit integer, p_offset integer, p_count boolean
) returns table (total bigint, capped boolean, ids bigint[], resume_created_at timestamptz, resume_id bigint)
language plpgsql stable security definer
set search_path = ''
set enable_bitmapscan = on
as $$
declare
  c_cap constant int := 10000;
  v_pattern text := private.substring_pattern(p_search);
  v_agents text[] := private.lead_scope_agents(p_agent_ids, p_user_id);
  v_owners uuid[];
  -- A term without a line break cannot match across the breaks that join the fields, so the
  -- index's own recheck on the joined text is already the exact test.
  v_one_field boolean := strpos(p_search, E'\n') = 0;
  v_budget integer := private.search_walk_rows();
  v_n bigint;
  v_capped boolean := false;
  v_ids bigint[];
  w record;
begin
  -- The owners in scope: the index key. A lead's user_id is its agent's owner (leads_before_write).
  if v_agents is not null then
    v_owners := case
      when not private.admin_mode() then array[auth.uid()]
      when p_user_id is not null then array[p_user_id]
      else array(select distinct a.user_id from public.agents a where a.id = any (v_agents)) end;
  end if;
  if private.search_has_trigram(p_search) then
    if v_agents is null then
      select count(*), (array_agg(m.id order by m.created_at desc, m.id desc)
                          filter (where p_after_id is null or (m.created_at, m.id) < (p_after_created, p_after_id))
                       )[p_offset + 1 : p_offset + p_limit]
        into v_n, v_ids
      from (select l.id, l.created_at from public.leads l
            where private.lead_search_text(l.name, l.email, l.phone) ilike v_pattern
              and (v_one_field or l.name ilike v_pattern or l.email ilike v_pattern or l.phone ilike v_pattern)
              and (p_status is null or l.status = p_status) and (p_priority is null or l.priority = p_priority)
              and (p_since is null or l.created_at >= p_since)
            limit c_cap + 1) m;
    else
      select count(*), (array_agg(m.id order by m.created_at desc, m.id desc)
                          filter (where p_after_id is null or (m.created_at, m.id) < (p_after_created, p_after_id))
                       )[p_offset + 1 : p_offset + p_limit]
        into v_n, v_ids
      from (select l.id, l.created_at from public.leads l
            where l.user_id = any (v_owners)
              and private.lead_search_text(l.name, l.email, l.phone) ilike v_pattern
              and l.agent_id = any (v_agents)
              and (v_one_field or l.name ilike v_pattern or l.email ilike v_pattern or l.phone ilike v_pattern)
              and (p_status is null or l.status = p_status) and (p_priority is null or l.priority = p_priority)
              and (p_since is null or l.created_at >= p_since)
            limit c_cap + 1) m;
    end if;
    if v_n <= c_cap then
      return query select case when p_count then v_n end, false, coalesce(v_ids, '{}'), null::timestamptz,
        null::bigint;
      return;
    end if;
    -- Over 10,000 matches: the count is capped; the page is a walk (matches are dense there).
    select * into w from private.lead_search_walk(v_owners, v_agents, v_pattern, p_status, p_priority, p_since,
      p_after_created, p_after_id, p_offset, p_limit, p_offset + p_limit, v_budget);
    return query select case when p_count then c_cap::bigint end, p_count, w.ids, w.resume_created_at, w.resume_id;
    return;
  end if;
  -- No trigram: walks of the newest-first index.
  if p_count and p_after_id is null then
    -- The first page: its count and its page are one walk from the newest lead.
    select * into w from private.lead_search_walk(v_owners, v_agents, v_pattern, p_status, p_priority, p_since,
      null, null, p_offset, p_limit, c_cap + 1, v_budget);
    v_n := w.hits;
    v_capped := w.hits > c_cap or w.resume_created_at is not null;
  else
    if p_count then
      select * into w from private.lead_search_walk(v_owners, v_agents, v_pattern, p_status, p_priority, p_since,
        null, null, 0, 0, c_cap + 1, v_budget);
      v_n := w.hits;
      v_capped := w.hits > c_cap or w.resume_created_at is not null;
    end if;
    select * into w from private.lead_search_walk(v_owners, v_agents, v_pattern, p_status, p_priority, p_since,
      p_after_created, p_after_id, p_offset, p_limit, p_offset + p_limit, v_budget);
  end if;
  return query select case when p_count then least(v_n, c_cap) end, v_capped, w.ids,
    -- A full page needs no resume point: the api pages on from its last row.
    case when cardinality(w.ids) < p_limit then w.resume_created_at end,
    case when cardinality(w.ids) < p_limit then w.resume_id end;
end
$$;

-- ---------------------------------------------------------------------------------------------
-- lead_page
-- ---------------------------------------------------------------------------------------------

drop function if exists public.lead_page(text[], text, text, text, timestamptz, uuid, timestamptz, bigint, integer, integer, boolean);

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
create function public.lead_page(
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

-- ---------------------------------------------------------------------------------------------
-- Grants (as 20261201000200_search_speed.sql gave them)
-- ---------------------------------------------------------------------------------------------

revoke execute on function private.search_walk_rows(),
  private.lead_search_walk(uuid[], text[], text, text, text, timestamptz, timestamptz, bigint, integer, integer, integer, integer),
  private.lead_search_page(text[], text, text, text, timestamptz, uuid, timestamptz, bigint, integer, integer, boolean),
  public.lead_page(text[], text, text, text, timestamptz, uuid, timestamptz, bigint, integer, integer, boolean)
  from public, anon;
-- The caller of lead_page needs the search helper, which checks its rights itself; the walk and
-- its bound run inside that definer only.
revoke execute on function private.search_walk_rows(),
  private.lead_search_walk(uuid[], text[], text, text, text, timestamptz, timestamptz, bigint, integer, integer, integer, integer)
  from authenticated;
grant execute on function
  private.lead_search_page(text[], text, text, text, timestamptz, uuid, timestamptz, bigint, integer, integer, boolean),
  public.lead_page(text[], text, text, text, timestamptz, uuid, timestamptz, bigint, integer, integer, boolean)
  to authenticated;

-- ---------------------------------------------------------------------------------------------
-- Stats and the exact count of a list: the rollup grouped before it is shaped
-- ---------------------------------------------------------------------------------------------
-- Profiled at the 1M-lead account (auto_explain, pgbench at c=1): stats cost about four gets, and
-- most of it was status_counts_json over the rollup's raw rows (150 for ten agents: one per agent,
-- status and priority), an SQL function with `set search_path` (never inlined, so planned again
-- on every call) that sums the arrays once per status. The rows are now summed per status key in
-- the rollup read itself (at most five rows reach the shaping), and the shaping is PL/pgSQL, so
-- its one statement's plan is cached per connection. Same answers, same signatures: `create or
-- replace` keeps the grants of 20261201000050_rules.sql.
-- Then, profiled with pg_stat_user_functions (track_functions = all) over 2,000 pgbench calls at
-- the 100k account (lead_totals ~400 µs: rollup read ~200, status_counts_json ~90,
-- lead_scope_agents + admin_mode ~70, check_lead_filters ~15 with no filter at all): the shaping
-- uses PL/pgSQL expressions only (no statement to start per call); lead_totals and lead_page call
-- check_lead_filters only when a filter is given (it checks nothing otherwise); lead_rollup_counts
-- computes the boundary day only with p_since. lead_totals is otherwise as in
-- 20261201000260_rules_totals.sql.

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


-- ---------------------------------------------------------------------------------------------
-- The filter caps: only the filters given are checked
-- ---------------------------------------------------------------------------------------------

/** The caps of the list filters (lead_page, lead_totals, lead_stats): at most `batch` agent ids of
    at most `agentId` characters, a search term of at most `searchTerm`, status and priority of at
    most `shortText`. Checked before any row is read. Same rule as 20261201000100_protection.sql;
    a filter not given (null, the common case) costs no check, so a plain page or stats call
    reads no limit at all. */
create or replace function private.check_lead_filters(
  p_agent_ids text[], p_status text, p_priority text, p_search text
) returns void
language plpgsql immutable
set search_path = ''
as $$
begin
  if p_agent_ids is not null then
    if cardinality(p_agent_ids) > private.api_limit('batch') then
      perform private.refuse_argument('p_agent_ids', format('must hold at most %s agent ids', private.api_limit('batch')));
    end if;
    if exists (select 1 from unnest(p_agent_ids) a where length(a) > private.api_limit('agentId')) then
      perform private.refuse_argument('p_agent_ids',
        format('must hold agent ids of at most %s characters', private.api_limit('agentId')));
    end if;
  end if;
  if p_search is not null and length(p_search) > private.api_limit('searchTerm') then
    perform private.refuse_argument('p_search', format('must be at most %s characters', private.api_limit('searchTerm')));
  end if;
  if p_status is not null and length(p_status) > private.api_limit('shortText') then
    perform private.refuse_argument('p_status', format('must be at most %s characters', private.api_limit('shortText')));
  end if;
  if p_priority is not null and length(p_priority) > private.api_limit('shortText') then
    perform private.refuse_argument('p_priority', format('must be at most %s characters', private.api_limit('shortText')));
  end if;
end
$$;
