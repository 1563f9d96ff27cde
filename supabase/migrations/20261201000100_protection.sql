-- Protection (issue 21): the public functions a user can call straight through the Data API
-- (`POST /rest/v1/rpc/...`) enforce the api's own limits; sequences and future objects in `public`
-- get none of hosted Supabase's default grants to anon/authenticated; the service role (a backend
-- with the service key) can write leads, agents and working sets with every trigger applied.
--
-- Custom SQLSTATE of this file: LA400 = an argument outside the api's limits (the api's 400
-- VALIDATION_ERROR). The api validates first, so only a direct caller ever meets it.

-- ---------------------------------------------------------------------------------------------
-- The limits, in one SQL place
-- ---------------------------------------------------------------------------------------------

/** The api's limits as SQL enforces them: the same numbers as LIMITS in shared/limits.ts
    (tests/caps-catalog.test.ts reads this and fails when they differ). */
create or replace function private.api_limits() returns jsonb
language sql immutable parallel safe
set search_path = ''
as $$
  select '{"pageSize": 100, "offset": 10000, "batch": 100, "searchTerm": 200, "agentId": 100,
           "shortText": 200}'::jsonb
$$;

/** One limit by its name in LIMITS; an unknown name is a bug, not a silent "no limit". */
create or replace function private.api_limit(p_name text) returns integer
language plpgsql immutable parallel safe
set search_path = ''
as $$
declare
  v integer := (private.api_limits() ->> p_name)::integer;
begin
  if v is null then
    raise exception 'unknown api limit %', p_name;
  end if;
  return v;
end
$$;

/** Refuses an argument with LA400 (400 VALIDATION_ERROR), naming it in `column`. */
create or replace function private.refuse_argument(p_argument text, p_rule text) returns void
language plpgsql immutable
set search_path = ''
as $$
begin
  raise exception '% %', p_argument, p_rule using errcode = 'LA400', column = p_argument;
end
$$;

/** The caps of the list filters (lead_page, lead_totals, lead_stats): at most `batch` agent ids of
    at most `agentId` characters, a search term of at most `searchTerm`, status and priority of at
    most `shortText`. Checked before any row is read. */
create or replace function private.check_lead_filters(
  p_agent_ids text[], p_status text, p_priority text, p_search text
) returns void
language plpgsql immutable
set search_path = ''
as $$
begin
  if cardinality(p_agent_ids) > private.api_limit('batch') then
    perform private.refuse_argument('p_agent_ids', format('must hold at most %s agent ids', private.api_limit('batch')));
  end if;
  if exists (select 1 from unnest(p_agent_ids) a where length(a) > private.api_limit('agentId')) then
    perform private.refuse_argument('p_agent_ids',
      format('must hold agent ids of at most %s characters', private.api_limit('agentId')));
  end if;
  if length(p_search) > private.api_limit('searchTerm') then
    perform private.refuse_argument('p_search', format('must be at most %s characters', private.api_limit('searchTerm')));
  end if;
  if length(p_status) > private.api_limit('shortText') then
    perform private.refuse_argument('p_status', format('must be at most %s characters', private.api_limit('shortText')));
  end if;
  if length(p_priority) > private.api_limit('shortText') then
    perform private.refuse_argument('p_priority', format('must be at most %s characters', private.api_limit('shortText')));
  end if;
end
$$;

revoke all on function private.api_limits(), private.api_limit(text), private.refuse_argument(text, text),
  private.check_lead_filters(text[], text, text, text) from public, anon, authenticated;
-- Called (as the caller) from the public functions below.
grant execute on function private.api_limits(), private.api_limit(text), private.refuse_argument(text, text),
  private.check_lead_filters(text[], text, text, text) to authenticated;

-- ---------------------------------------------------------------------------------------------
-- Caps in the public functions. Bodies as before (20261123000100_lead_rollups.sql,
-- 20261122000200_working_leads.sql) with the checks first; `create or replace` keeps the grants.
-- ---------------------------------------------------------------------------------------------

/** `{ total, by_status }` of the leads the caller can see that match the filters (see
    20261123000100_lead_rollups.sql), the filters capped by check_lead_filters. */
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
  perform private.check_lead_filters(p_agent_ids, p_status, p_priority, p_search);
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

/** One page of the leads the caller can see (see 20261123000100_lead_rollups.sql), within the
    api's caps: p_limit 1..pageSize + 1 (the api asks one row more, to know whether a next page
    exists), p_offset 0..offset, the filters as check_lead_filters. A null limit would be LIMIT
    ALL: refused like any other value out of range. */
create or replace function public.lead_page(
  p_agent_ids text[], p_status text, p_priority text, p_search text, p_since timestamptz, p_user_id uuid,
  p_after_created timestamptz, p_after_id bigint, p_limit integer, p_offset integer, p_count boolean
) returns table (total bigint, lead public.leads)
language plpgsql stable security invoker
set search_path = ''
as $$
declare
  v_filter text;
  v_where text;
  v_ids bigint[];
  v_total bigint;
begin
  if p_limit is null or p_limit < 1 or p_limit > private.api_limit('pageSize') + 1 then
    perform private.refuse_argument('p_limit', format('must be between 1 and %s', private.api_limit('pageSize') + 1));
  end if;
  if p_offset is null or p_offset < 0 or p_offset > private.api_limit('offset') then
    perform private.refuse_argument('p_offset', format('must be between 0 and %s', private.api_limit('offset')));
  end if;
  perform private.check_lead_filters(p_agent_ids, p_status, p_priority, p_search);
  v_filter := private.lead_predicate(p_agent_ids, p_status, p_priority, p_search, p_since, p_user_id);
  -- The keyset, spelled so `created_at <= $7` is an index condition (the row comparison
  -- `(created_at, id) < ($7, $8)` is not one on the descending index) and ties filter by id.
  v_where := v_filter
    || case when p_after_id is not null then ' and l.created_at <= $7 and (l.created_at < $7 or l.id < $8)'
            else '' end;
  if p_search is not null then
    v_ids := array(select private.search_lead_ids(p_search, p_agent_ids));
  end if;
  if not coalesce(p_count, false) then
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

/** The quota of an agent the caller may use, as the API shows it; null if not usable. An agent
    id longer than the api allows is refused (LA400) before the lookup. */
create or replace function public.agent_quota(p_agent_id text) returns jsonb
language plpgsql stable security invoker
set search_path = ''
as $$
begin
  if length(p_agent_id) > private.api_limit('agentId') then
    perform private.refuse_argument('p_agent_id', format('must be at most %s characters', private.api_limit('agentId')));
  end if;
  return (
    select jsonb_build_object(
      'maxWorkingLeads', a.max_working_leads,
      'currentWorkingLeads', s.n,
      'remainingWorkingLeads', greatest(a.max_working_leads - s.n, 0))
    from public.agents a
    cross join lateral (select count(*)::integer as n from public.working_leads w where w.agent_id = a.id) s
    where a.id = p_agent_id);
end
$$;

/** Adds leads to an agent's working set, in the order given, within its quota (contract and
    result as in 20261122000200_working_leads.sql). 1..batch ids (LA400 otherwise, before the
    agent lock is taken). Linear in the batch: every id is classified in one statement (first
    occurrence only; already working, not usable, or a candidate), the candidates that fit in the
    free slots are inserted in one statement (the insert trigger still checks each row, under
    the agent lock this function holds), and the answer's arrays are built once at the end. */
create or replace function public.add_working_leads(p_agent_id text, p_lead_ids bigint[]) returns jsonb
language plpgsql volatile security invoker
set search_path = ''
as $$
declare
  v_max integer;
  v_size integer;
  v_ids bigint[];
  v_states text[];
  v_added bigint[];
  v_already bigint[];
  v_failed jsonb;
begin
  if p_lead_ids is null or cardinality(p_lead_ids) < 1 or cardinality(p_lead_ids) > private.api_limit('batch') then
    perform private.refuse_argument('p_lead_ids', format('must hold 1 to %s lead ids', private.api_limit('batch')));
  end if;
  if length(p_agent_id) > private.api_limit('agentId') then
    perform private.refuse_argument('p_agent_id', format('must be at most %s characters', private.api_limit('agentId')));
  end if;
  v_max := private.lock_agent_quota(p_agent_id);
  if v_max is null then
    return null;
  end if;
  v_size := private.working_set_size(p_agent_id);

  select array_agg(c.id order by c.ord),
         array_agg(case when c.already then 'already'
                        when not c.usable then 'not_found'
                        when c.candidate <= v_max - v_size then 'add'
                        else 'full' end order by c.ord)
  into v_ids, v_states
  from (
    select k.id, k.ord, k.already, k.usable,
           row_number() over (partition by not k.already and k.usable order by k.ord) as candidate
    from (
      select f.id, f.ord,
             exists (select 1 from public.working_leads w where w.agent_id = p_agent_id and w.lead_id = f.id) as already,
             coalesce(exists (select 1 from public.leads l where l.id = f.id)
                      and private.lead_fits_agent(f.id, p_agent_id), false) as usable
      from (
        -- The same id twice in one batch counts once, at its first position.
        select distinct on (u.id) u.id, u.ord from unnest(p_lead_ids) with ordinality u(id, ord)
        order by u.id, u.ord
      ) f
    ) k
  ) c;

  insert into public.working_leads (agent_id, lead_id)
  select p_agent_id, x.id from unnest(v_ids, v_states) with ordinality x(id, state, ord)
  where x.state = 'add' order by x.ord;

  select coalesce(array_agg(x.id order by x.ord) filter (where x.state = 'add'), '{}'),
         coalesce(array_agg(x.id order by x.ord) filter (where x.state = 'already'), '{}'),
         coalesce(jsonb_agg(jsonb_build_object(
                    'leadId', x.id,
                    'code', case when x.state = 'full' then 'QUOTA_EXCEEDED' else 'NOT_FOUND' end,
                    'message', case when x.state = 'full' then 'Working set is full' else 'Lead not found' end)
                  order by x.ord) filter (where x.state in ('full', 'not_found')), '[]')
  into v_added, v_already, v_failed
  from unnest(v_ids, v_states) with ordinality x(id, state, ord);
  v_size := v_size + cardinality(v_added);

  return jsonb_build_object(
    'added', to_jsonb(v_added),
    'alreadyWorking', to_jsonb(v_already),
    'failed', v_failed,
    'quota', jsonb_build_object('maxWorkingLeads', v_max, 'currentWorkingLeads', v_size,
                                'remainingWorkingLeads', greatest(v_max - v_size, 0)),
    -- A single add answers with its row; a batch does not need them.
    'entries', case when cardinality(p_lead_ids) = 1 then (
      select jsonb_agg(jsonb_build_object('leadId', w.lead_id, 'agentId', w.agent_id,
                                          'muted', w.muted, 'addedAt', w.added_at))
      from public.working_leads w
      where w.agent_id = p_agent_id and w.lead_id = any(v_added || v_already)) end);
end
$$;

-- ---------------------------------------------------------------------------------------------
-- Hosted Supabase's default grants in `public`
-- ---------------------------------------------------------------------------------------------

-- Hosted Supabase grants anon and authenticated ALL on every new table, sequence and function
-- the migration role creates in `public`. Every object here is granted explicitly, one at a time,
-- so those defaults only ever add what nobody meant: a sequence anyone may `setval` (and so make
-- the api's next creates collide), a new function anon may run. service_role keeps its defaults.
alter default privileges in schema public revoke all on tables from anon, authenticated;
alter default privileges in schema public revoke all on sequences from anon, authenticated;
alter default privileges in schema public revoke all on functions from anon, authenticated;
-- PUBLIC's EXECUTE on new functions is a global default, which a per-schema statement (as in
-- 20261122000100_leads.sql) cannot take away: revoked globally for the migration role, so a new
-- function anywhere runs only for the roles its migration grants it to.
alter default privileges revoke execute on functions from public;
-- The sequences behind `generated always` identities: inserts through the column grants take the
-- next value without any right on the sequence (tests/caps-catalog.test.ts proves it).
revoke all on all sequences in schema public from public, anon, authenticated;

-- ---------------------------------------------------------------------------------------------
-- The service role
-- ---------------------------------------------------------------------------------------------

-- A backend with the service key (importers, cron jobs) connects as service_role, which bypasses
-- RLS but not grants: it writes leads, agents and working sets like a user would, with every
-- trigger applied (user_id stamped from the agent, version, history with a null actor, rollups,
-- the quota). The non-definer triggers and add_working_leads call these helpers as the caller.
grant usage on schema private to service_role;
grant execute on function private.admin_mode(), private.usable_agent_ids(), private.agent_owner(text),
  private.lock_agent_quota(text), private.working_set_size(text), private.lead_fits_agent(bigint, text),
  private.lead_email_key(text), private.lead_phone_key(text), private.api_limits(), private.api_limit(text),
  private.refuse_argument(text, text) to service_role;
grant select, insert, update, delete on public.agents, public.leads, public.working_leads to service_role;
grant execute on function public.add_working_leads(text, bigint[]), public.agent_quota(text) to service_role;
-- History is written by triggers only, whoever writes: the service role reads it, never forges
-- or edits it. TRUNCATE fires no row or statement triggers, so it would skip the history, the
-- rollups and the cascade's bookkeeping: nobody but the owner may truncate.
grant select on public.lead_events to service_role;
revoke insert, update, delete, truncate on public.lead_events from service_role;
revoke truncate on public.agents, public.leads, public.working_leads from service_role;
