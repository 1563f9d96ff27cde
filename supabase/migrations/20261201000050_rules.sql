-- The SQL side of the api's closed value sets, each written once (the TypeScript side is
-- shared/rules.ts; tests/rules.test.ts reads both and fails when they drift). Before this file the
-- four lead statuses were spelled out in three function bodies (status_key, lead_rollup_counts,
-- lead_totals) and the three priorities in priority_key; the first two are restated here to read
-- the one definition, with the same signatures, security and grants (`create or replace` keeps
-- them). lead_totals, restated since by 20261201000100_protection.sql, is restated after it in
-- 20261201000260_rules_totals.sql.
-- `lead_events.kind` already has one SQL definition: its check constraint.

/** The lead statuses the api knows, in the order `stats` reports them (shared/rules.ts
    LEAD_STATUSES). Immutable: a call with no arguments folds to a constant when a query is planned. */
create or replace function private.lead_status_keys() returns text[]
language sql immutable parallel safe
set search_path = ''
as $$
  select array['new', 'contacted', 'qualified', 'converted']
$$;

/** The lead priorities the api knows (shared/rules.ts LEAD_PRIORITIES). */
create or replace function private.lead_priority_keys() returns text[]
language sql immutable parallel safe
set search_path = ''
as $$
  select array['low', 'medium', 'high']
$$;

/** The rollup key of a status: a known status itself, everything else (null included) 'other'. */
create or replace function private.status_key(p_status text) returns text
language sql immutable parallel safe
set search_path = ''
as $$
  select case when p_status = any (private.lead_status_keys()) then p_status else 'other' end
$$;

/** The rollup key of a priority: a known priority itself, everything else 'other'. */
create or replace function private.priority_key(p_priority text) returns text
language sql immutable parallel safe
set search_path = ''
as $$
  select case when p_priority = any (private.lead_priority_keys()) then p_priority else 'other' end
$$;

/** `{ total, by_status }` from parallel arrays of status keys and counts (a key may repeat: the
    rollup's delta rows): every known status present, 0 when it has no rows; 'other' counts toward
    the total only. The one place the stats answer's shape is built. */
create or replace function private.status_counts_json(p_status text[], p_n bigint[]) returns jsonb
language sql immutable parallel safe
set search_path = ''
as $$
  select jsonb_build_object(
    'total', (select coalesce(sum(m.n), 0) from unnest(p_status, p_n) m(status, n)),
    'by_status', (select jsonb_object_agg(k.status, (select coalesce(sum(m.n), 0)
                                                     from unnest(p_status, p_n) m(status, n)
                                                     where m.status = k.status))
                  from unnest(private.lead_status_keys()) k(status)))
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
  return private.status_counts_json(v_status, v_n);
end
$$;

-- lead_totals (20261201000260_rules_totals.sql) runs as the caller (security invoker), so
-- authenticated needs status_key and status_counts_json (and lead_status_keys, which they read);
-- lead_rollup_counts and the rollup triggers run them as their definer. Pure functions: calling them reveals nothing.
revoke execute on function private.lead_status_keys(), private.lead_priority_keys(),
  private.status_counts_json(text[], bigint[]) from public, anon;
grant execute on function private.lead_status_keys(), private.status_key(text),
  private.status_counts_json(text[], bigint[]) to authenticated;
