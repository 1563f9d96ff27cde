-- Every read flat per request (issue 18, item 3): lead_page's common pages without EXECUTE.
--
-- Profiled at 2,010,000 leads (EXPLAIN (ANALYZE, BUFFERS) and pgbench of the api's own statements
-- at c=1): a first list page cost about four `get`s in SQL, and most of it was planning the
-- dynamic statement lead_page built and EXECUTEd on every call (planning `leads`, with its eight
-- indexes and the RLS policy, reads hundreds of catalog buffers and takes one to two
-- milliseconds on this machine; executing the page takes a fraction of that). Static statements
-- in PL/pgSQL are planned once per connection and then reused, so a page without the optional
-- filters (status, priority, since: the list as it opens, and every cursor page after it) is now
-- one static statement per scope and keyset shape. Each keeps its index condition in the generic
-- plan (the owner or agent, and `created_at <= $after`). A page with optional filters keeps the
-- statement built for exactly those filters and planned for their values.
--
-- Unchanged: the signature, the result (total, total_capped, lead), the caps (private.api_limit,
-- private.check_lead_filters; SQLSTATE LA400 through private.refuse_argument), the search path
-- (private.lead_search_page), the exact count from the rollups, the filters' one definition
-- (private.lead_predicate) and RLS deciding every row (security invoker). `create or replace`
-- keeps the grants of 20261201000200_search_speed.sql.

/** One page of the leads the caller can see that match the filters, newest first
    (`created_at desc, id desc`), after the keyset (p_after_created, p_after_id) when given, then
    skipping p_offset; each row with `total` (when p_count) and `total_capped`. Without a search
    the total is exact (the rollups); with one it is exact up to 10,000, and above that 10,000
    with total_capped true. An empty page is one row with a null lead, so the total still arrives.
    Security invoker: RLS decides the rows. One static statement per scope (plans cached per
    connection):
    - a search: private.lead_search_page finds the page's ids, this reads their rows;
    - one user's leads (the caller's own account, or p_user_id): one walk down leads_user_created_idx;
    - an agent filter: each agent's newest rows from leads_agent_created_idx, merged, so the page
      costs limit rows per agent however many leads match or how deep the cursor is;
    - every agent (admin mode, no filter): one walk down leads_created_idx.
    Refuses (LA400) arguments outside the api's caps (private.api_limits), for callers through
    the Data API too. */
create or replace function public.lead_page(
  p_agent_ids text[], p_status text, p_priority text, p_search text, p_since timestamptz, p_user_id uuid,
  p_after_created timestamptz, p_after_id bigint, p_limit integer, p_offset integer, p_count boolean
) returns table (total bigint, total_capped boolean, lead public.leads)
language plpgsql stable security invoker
set search_path = ''
-- The static statements' cached generic plans otherwise pair the owner's GIN entries (btree_gin)
-- with an agent bitmap and sort every lead of the account (estimated: four rows). Without bitmap
-- scans the only plans left walk the newest-first indexes. lead_search_page turns them back on.
set enable_bitmapscan = off
as $$
declare
  v_where text;
  v_ids bigint[];
  v_total bigint;
  v_capped boolean := false;
  v_owner uuid;
  v_agents text[];
  v_first boolean := p_after_id is null;
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

  if p_status is not null or p_priority is not null or p_since is not null then
    -- A filtered page: one statement built for exactly the filters given and planned for its
    -- values (as 20261201000200_search_speed.sql did for every page). A cached generic plan of
    -- `(p is null or l.status = p)` filters misjudges how many rows pass and sorts them all.
    v_owner := case when p_agent_ids is null and p_user_id is null and not private.admin_mode() then auth.uid()
                    else p_user_id end;
    v_where := private.lead_predicate(p_agent_ids, p_status, p_priority, null, p_since, v_owner)
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
        using p_agent_ids, p_status, p_priority, null::bigint[], p_since, v_owner, p_after_created, p_after_id,
              p_limit, p_offset, null::text[], v_total;
    end if;
  elsif p_agent_ids is not null then
    -- The agents named that the caller may use (and p_user_id owns, when given): each one's
    -- newest rows after the keyset, limit + offset of them, merged.
    v_agents := private.lead_scope_agents(p_agent_ids, p_user_id);
    if v_first then
      return query select v_total, false, row(l.*)::public.leads from unnest(v_agents) as usable(agent_id)
        cross join lateral (
          select l.* from public.leads l
          where l.agent_id = usable.agent_id
          order by l.created_at desc, l.id desc limit p_limit + p_offset) l
        order by l.created_at desc, l.id desc limit p_limit offset p_offset;
    else
      -- The keyset spelled so `created_at <= p_after_created` is an index condition (the row
      -- comparison `(created_at, id) < (…)` is not one on the descending index); ties by id.
      return query select v_total, false, row(l.*)::public.leads from unnest(v_agents) as usable(agent_id)
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
      return query select v_total, false, l from public.leads l
        where l.user_id = v_owner
        order by l.created_at desc, l.id desc limit p_limit offset p_offset;
    else
      return query select v_total, false, l from public.leads l
        where l.user_id = v_owner
          and l.created_at <= p_after_created and (l.created_at < p_after_created or l.id < p_after_id)
        order by l.created_at desc, l.id desc limit p_limit offset p_offset;
    end if;
  else
    -- Admin mode over every agent.
    if v_first then
      return query select v_total, false, l from public.leads l
        order by l.created_at desc, l.id desc limit p_limit offset p_offset;
    else
      return query select v_total, false, l from public.leads l
        where l.created_at <= p_after_created and (l.created_at < p_after_created or l.id < p_after_id)
        order by l.created_at desc, l.id desc limit p_limit offset p_offset;
    end if;
  end if;
  if not found then
    return query select v_total, false, null::public.leads;
  end if;
end
$$;

-- The trigram index is a GIN index, which only bitmap scans can read.
alter function private.lead_search_page(text[], text, text, text, timestamptz, uuid, timestamptz, bigint, integer, integer, boolean)
  set enable_bitmapscan = on;

-- ---------------------------------------------------------------------------------------------
-- get: one function call, so no pooler plans it again
-- ---------------------------------------------------------------------------------------------
-- Behind a transaction pooler (PgBouncer, Supavisor: DB_PREPARE=false) every statement is an
-- unnamed one, planned again on every request. Planning `leads ⋈ agents` under both tables'
-- policies costs far more than running it: pgbench without prepared statements did a third of
-- the gets it did with them (245 against 690 tps at c=1). A PL/pgSQL function's statements are
-- planned once per server connection, which the pooler keeps: `select public.lead_get($1)` is as
-- fast unprepared as prepared (716 against 709 tps).

/** The lead `p_id` as the api's Lead (with its agent's id, name and email), or null when the
    caller cannot see it. The shape is functions/api/projections.ts `leadJson`'s: tests/read-speed
    .test.ts proves a get answers what a create returned. Security invoker: RLS decides. */
create or replace function public.lead_get(p_id bigint) returns json
language plpgsql stable security invoker
set search_path = ''
as $$
begin
  return (
    select json_build_object('id', l.id, 'agent_id', l.agent_id, 'user_id', l.user_id, 'name', l.name,
      'email', l.email, 'phone', l.phone, 'status', l.status, 'priority', l.priority, 'budget', l.budget,
      'timeline', l.timeline, 'address', l.address, 'notes', l.notes, 'assigned_to', l.assigned_to,
      'conversation_id', l.conversation_id, 'primary_lead_id', l.primary_lead_id,
      'is_decision_maker', l.is_decision_maker, 'preferred_contact_method', l.preferred_contact_method,
      'preferred_contact_time', l.preferred_contact_time, 'metadata', l.metadata,
      'created_at', l.created_at, 'updated_at', l.updated_at, 'version', l.version,
      'agent', json_build_object('id', a.id, 'name', a.name, 'email', a.email))
    from public.leads l join public.agents a on a.id = l.agent_id
    where l.id = p_id);
end
$$;

revoke execute on function public.lead_get(bigint) from public, anon;
grant execute on function public.lead_get(bigint) to authenticated;
