-- Search and every read flat at any size (issue 18).
--
-- 1. One trigram index over one combined expression of name, email and phone, keyed by the owner
--    (btree_gin), instead of three per-agent indexes: a search of a whole account is one index
--    scan, not three per agent, and an admin-wide search uses the same index without the key.
-- 2. The count of a search is exact up to 10,000 matches; above that lead_page says so
--    (`total_capped`), so a search costs at most 10,001 matches however large the account.
-- 3. Terms without a trigram (one or two characters, or no run of three letters or digits) match
--    many leads: they walk the newest-first index and stop when the page is full.
-- 4. The helpers every statement calls are cheap per statement: the caller's agents by an index
--    scan (no scan of every agent for the `or admin_mode()`), and PL/pgSQL so their plans are
--    cached per connection (an SQL function with `set search_path` is never inlined and is planned
--    again on every call).
-- 5. The protection caps of lead_page stay as 20261201000100_protection.sql defines them
--    (private.api_limit, private.check_lead_filters; SQLSTATE LA400).
--
-- Custom SQLSTATE used here: LA400, through private.refuse_argument (an argument outside the api's limits).

-- ---------------------------------------------------------------------------------------------
-- The text a search matches, and its index
-- ---------------------------------------------------------------------------------------------

/** The searchable text of a lead: name, email and phone joined by a line break. A term without a
    line break matches it exactly when it matches one of the fields; for a term with one, the
    search adds `name ilike p or email ilike p or phone ilike p`. No `set search_path`, so
    the planner inlines it (a function with one is called row by row); every operator is
    qualified with pg_catalog, so no caller's search_path can change its meaning. */
create or replace function private.lead_search_text(p_name text, p_email text, p_phone text) returns text
language sql immutable parallel safe
as $$
  select coalesce(p_name, '') operator(pg_catalog.||) E'\n'
    operator(pg_catalog.||) coalesce(p_email, '') operator(pg_catalog.||) E'\n'
    operator(pg_catalog.||) coalesce(p_phone, '')
$$;

-- fastupdate off, as for the indexes it replaces: a pending list is rescanned by every search.
create index if not exists leads_owner_search_trgm_idx on public.leads
  using gin (user_id, private.lead_search_text(name, email, phone) extensions.gin_trgm_ops)
  with (fastupdate = off);
drop index if exists public.leads_agent_name_trgm_idx;
drop index if exists public.leads_agent_email_trgm_idx;
drop index if exists public.leads_agent_phone_trgm_idx;

-- ---------------------------------------------------------------------------------------------
-- Helpers the policies call once per statement
-- ---------------------------------------------------------------------------------------------

/** True when the verified token says internal admin AND the request asked for admin mode
    (unchanged rule; PL/pgSQL so the expression is prepared once per connection). */
create or replace function private.admin_mode() returns boolean
language plpgsql stable
set search_path = ''
as $$
begin
  return coalesce(auth.jwt() -> 'app_metadata' ->> 'role' = 'internal_admin', false)
     and coalesce(nullif(current_setting('app.admin_mode', true), ''), 'off') = 'on';
end
$$;

/** Ids of the agents the current request may use (unchanged rule). Two statements, not
    `user_id = auth.uid() or admin_mode()`: that OR plans as a scan of every agent for every
    statement of every user; a user's agents are an index scan of agents_user_id_created_idx. */
create or replace function private.usable_agent_ids() returns setof text
language plpgsql stable security definer
set search_path = ''
as $$
begin
  if private.admin_mode() then
    return query select a.id from public.agents a;
  else
    return query select a.id from public.agents a
      where a.user_id = auth.uid();
  end if;
end
$$;

/** The agents a count or page covers (unchanged rule: see 20261123000100_lead_rollups.sql);
    PL/pgSQL so each branch's plan is cached. Null means every agent (admin mode, no filter). */
create or replace function private.lead_scope_agents(p_agent_ids text[], p_user_id uuid) returns text[]
language plpgsql stable security definer
set search_path = ''
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

-- ---------------------------------------------------------------------------------------------
-- Search
-- ---------------------------------------------------------------------------------------------

/** True when p_term can be served by the trigram index: pg_trgm extracts trigrams from runs of
    three letters or digits; a term without one (`ab`, `a.b`, `@@`) would make the index read
    every entry, so such terms walk the newest-first index instead. */
create or replace function private.search_has_trigram(p_term text) returns boolean
language sql immutable strict parallel safe
as $$
  select p_term operator(pg_catalog.~) '[[:alnum:]]{3}'
$$;

/** The search behind lead_page: the ids of one page of the leads the caller may use whose name,
    email or phone contains p_search (case-insensitive, `%`, `_` and `\` literal), newest first,
    after the keyset, skipping p_offset; and the number of all matches (when p_count), counted up
    to 10,001: `capped` says there are more than 10,000 and `total` is then 10,000.
    - a term with a trigram: one scan of leads_owner_search_trgm_idx per owner in scope (one for a
      user's own account), its matches' (created_at, id) collected once for the count and the page;
    - more than 10,000 matches, or a term without a trigram: the page walks the newest-first index
      (per owner, or over every lead for an admin-wide search) until it is full; matches are
      dense there, so the walk is short.
    Security definer on purpose: under RLS, ILIKE (not leakproof) cannot be an index condition. It
    applies the caller's agents itself (lead_scope_agents, the rule of the policies), explicitly in
    every statement; lead_page then reads the page's rows under RLS. */
create or replace function private.lead_search_page(
  p_agent_ids text[], p_status text, p_priority text, p_search text, p_since timestamptz, p_user_id uuid,
  p_after_created timestamptz, p_after_id bigint, p_limit integer, p_offset integer, p_count boolean
) returns table (total bigint, capped boolean, ids bigint[])
language plpgsql stable security definer
set search_path = ''
as $$
declare
  c_cap constant int := 10000;
  v_pattern text := private.substring_pattern(p_search);
  v_agents text[] := private.lead_scope_agents(p_agent_ids, p_user_id);
  v_owners uuid[];
  -- A term without a line break cannot match across the breaks that join the fields, so the
  -- index's own recheck on the joined text is already the exact test.
  v_one_field boolean := strpos(p_search, E'\n') = 0;
  v_n bigint;
  v_ids bigint[];
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
      return query select case when p_count then v_n end, false, coalesce(v_ids, '{}');
      return;
    end if;
  elsif p_count then
    -- No trigram: count by reading the scope's leads until the cap.
    if v_agents is null then
      select count(*) into v_n from (
        select from public.leads l
        where (l.name ilike v_pattern or l.email ilike v_pattern or l.phone ilike v_pattern)
          and (p_status is null or l.status = p_status) and (p_priority is null or l.priority = p_priority)
          and (p_since is null or l.created_at >= p_since)
        limit c_cap + 1) m;
    else
      select count(*) into v_n from (
        select from public.leads l
        where l.user_id = any (v_owners) and l.agent_id = any (v_agents)
          and (l.name ilike v_pattern or l.email ilike v_pattern or l.phone ilike v_pattern)
          and (p_status is null or l.status = p_status) and (p_priority is null or l.priority = p_priority)
          and (p_since is null or l.created_at >= p_since)
        limit c_cap + 1) m;
    end if;
  end if;
  -- Many matches (or a term without a trigram): walk newest first until the page is full.
  if v_agents is null then
    v_ids := array(
      select l.id from public.leads l
      where (l.name ilike v_pattern or l.email ilike v_pattern or l.phone ilike v_pattern)
        and (p_status is null or l.status = p_status) and (p_priority is null or l.priority = p_priority)
        and (p_since is null or l.created_at >= p_since)
        and (p_after_id is null or (l.created_at <= p_after_created and (l.created_at < p_after_created or l.id < p_after_id)))
      order by l.created_at desc, l.id desc limit p_limit offset p_offset);
  else
    v_ids := array(
      select m.id from unnest(v_owners) o(user_id) cross join lateral (
        select l.id, l.created_at from public.leads l
        where l.user_id = o.user_id and l.agent_id = any (v_agents)
          and (l.name ilike v_pattern or l.email ilike v_pattern or l.phone ilike v_pattern)
          and (p_status is null or l.status = p_status) and (p_priority is null or l.priority = p_priority)
          and (p_since is null or l.created_at >= p_since)
          and (p_after_id is null or (l.created_at <= p_after_created and (l.created_at < p_after_created or l.id < p_after_id)))
        order by l.created_at desc, l.id desc limit p_limit + p_offset) m
      order by m.created_at desc, m.id desc limit p_limit offset p_offset);
  end if;
  return query select case when p_count then least(v_n, c_cap) end, p_count and v_n > c_cap, v_ids;
end
$$;

/** Ids of the leads the caller may use whose name, email or phone contains p_term, among
    p_agent_ids when given (lead_totals' search count: exact, every match). Unchanged rule, now
    one scan of the combined index per owner instead of three per agent. */
create or replace function private.search_lead_ids(p_term text, p_agent_ids text[] default null)
returns setof bigint
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_pattern text := private.substring_pattern(p_term);
  v_agents text[] := private.lead_scope_agents(p_agent_ids, null);
begin
  if v_agents is null then
    return query select l.id from public.leads l
      where private.lead_search_text(l.name, l.email, l.phone) ilike v_pattern
        and (l.name ilike v_pattern or l.email ilike v_pattern or l.phone ilike v_pattern);
    return;
  end if;
  return query select l.id from public.leads l
    where l.user_id = any (array(select distinct a.user_id from public.agents a where a.id = any (v_agents)))
      and private.lead_search_text(l.name, l.email, l.phone) ilike v_pattern
      and l.agent_id = any (v_agents)
      and (l.name ilike v_pattern or l.email ilike v_pattern or l.phone ilike v_pattern);
end
$$;

-- ---------------------------------------------------------------------------------------------
-- lead_page: the list action's one call
-- ---------------------------------------------------------------------------------------------

-- The return type gains total_capped: it cannot be replaced in place.
drop function if exists public.lead_page(text[], text, text, text, timestamptz, uuid, timestamptz, bigint, integer, integer, boolean);

/** One page of the leads the caller can see that match the filters, newest first
    (`created_at desc, id desc`), after the keyset (p_after_created, p_after_id) when given, then
    skipping p_offset; each row with `total` (when p_count) and `total_capped`. Without a search
    the total is exact (the rollups); with one it is exact up to 10,000, and above that 10,000
    with total_capped true. An empty page is one row with a null lead, so the total still arrives.
    Security invoker: RLS decides the rows. The plan depends on the scope:
    - a search: private.lead_search_page finds the page's ids, this reads their rows;
    - a user's own account, no agent filter: one walk down leads_user_created_idx;
    - an agent filter: each agent's newest rows from its index, merged, so the page costs limit
      rows per agent however many leads match or how deep the cursor is;
    - every agent (admin mode) or one user's leads: one walk down a (created_at, id) index.
    Refuses (LA400) arguments outside the api's caps (private.api_limits), for callers through
    the Data API too. */
create function public.lead_page(
  p_agent_ids text[], p_status text, p_priority text, p_search text, p_since timestamptz, p_user_id uuid,
  p_after_created timestamptz, p_after_id bigint, p_limit integer, p_offset integer, p_count boolean
) returns table (total bigint, total_capped boolean, lead public.leads)
language plpgsql stable security invoker
set search_path = ''
as $$
declare
  v_filter text;
  v_where text;
  v_ids bigint[];
  v_total bigint;
  v_capped boolean := false;
  v_own boolean;
begin
  -- The caps as 20261201000100_protection.sql defines them (private.api_limits, one place).
  if p_limit is null or p_limit < 1 or p_limit > private.api_limit('pageSize') + 1 then
    perform private.refuse_argument('p_limit', format('must be between 1 and %s', private.api_limit('pageSize') + 1));
  end if;
  if p_offset is null or p_offset < 0 or p_offset > private.api_limit('offset') then
    perform private.refuse_argument('p_offset', format('must be between 0 and %s', private.api_limit('offset')));
  end if;
  perform private.check_lead_filters(p_agent_ids, p_status, p_priority, p_search);
  if p_search is not null then
    select s.total, s.capped, s.ids into v_total, v_capped, v_ids
    from private.lead_search_page(p_agent_ids, p_status, p_priority, p_search, p_since, p_user_id,
                                  p_after_created, p_after_id, p_limit, p_offset, p_count) s;
    return query select v_total, v_capped, l from public.leads l where l.id = any (v_ids)
      order by l.created_at desc, l.id desc;
    if not found then
      return query select v_total, v_capped, null::public.leads;
    end if;
    return;
  end if;
  if p_count then
    v_total := (private.lead_rollup_counts(p_agent_ids, p_status, p_priority, p_since, p_user_id) ->> 'total')::bigint;
  end if;
  -- A user's own account without an agent filter: one walk down leads_user_created_idx (limit
  -- rows, not limit rows per agent). A lead's user_id is its agent's owner (leads_before_write),
  -- so these are exactly the leads of the caller's agents; RLS still decides every row.
  v_own := p_agent_ids is null and p_user_id is null and not private.admin_mode();
  v_filter := private.lead_predicate(p_agent_ids, p_status, p_priority, null, p_since,
                                     case when v_own then auth.uid() else p_user_id end);
  -- The keyset, spelled so `created_at <= $7` is an index condition (the row comparison
  -- `(created_at, id) < ($7, $8)` is not one on the descending index) and ties filter by id.
  v_where := v_filter
    || case when p_after_id is not null then ' and l.created_at <= $7 and (l.created_at < $7 or l.id < $8)'
            else '' end;
  if p_user_id is null and p_agent_ids is not null then
    return query execute
      'select $12, false, row(l.*)::public.leads from unnest($11::text[]) as usable(agent_id) cross join lateral (
         select l.* from public.leads l where l.agent_id = usable.agent_id and ' || v_where || '
         order by l.created_at desc, l.id desc limit $9 + $10) l
       order by l.created_at desc, l.id desc limit $9 offset $10'
      using p_agent_ids, p_status, p_priority, null::bigint[], p_since, p_user_id, p_after_created, p_after_id,
            p_limit, p_offset, private.lead_scope_agents(p_agent_ids, null), v_total;
  else
    return query execute
      'select $12, false, l from public.leads l where ' || v_where || '
       order by l.created_at desc, l.id desc limit $9 offset $10'
      using p_agent_ids, p_status, p_priority, null::bigint[], p_since,
            case when v_own then auth.uid() else p_user_id end, p_after_created, p_after_id,
            p_limit, p_offset, null::text[], v_total;
  end if;
  if not found then
    return query select v_total, false, null::public.leads;
  end if;
end
$$;

-- ---------------------------------------------------------------------------------------------
-- Grants
-- ---------------------------------------------------------------------------------------------

revoke execute on function private.lead_search_text(text, text, text), private.search_has_trigram(text),
  private.lead_search_page(text[], text, text, text, timestamptz, uuid, timestamptz, bigint, integer, integer, boolean),
  public.lead_page(text[], text, text, text, timestamptz, uuid, timestamptz, bigint, integer, integer, boolean)
  from public, anon;
-- lead_search_text is in an index expression, evaluated as whoever writes a lead (as
-- private.lead_email_key is); the caller of lead_page needs the search helper, which checks its
-- rights itself; search_has_trigram runs inside that definer only.
grant execute on function private.lead_search_text(text, text, text),
  private.lead_search_page(text[], text, text, text, timestamptz, uuid, timestamptz, bigint, integer, integer, boolean),
  public.lead_page(text[], text, text, text, timestamptz, uuid, timestamptz, bigint, integer, integer, boolean)
  to authenticated;
-- A backend with the service key writes leads too (20261201000100_protection.sql): the index
-- expression is evaluated as the writer.
grant execute on function private.lead_search_text(text, text, text) to service_role;
