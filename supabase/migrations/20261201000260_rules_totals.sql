-- lead_totals reads the one status list (private.lead_status_keys(), 20261201000050_rules.sql)
-- instead of spelling the four statuses out in its search count. Body otherwise as restated by
-- 20261201000100_protection.sql (caps first); same signature, so `create or replace` keeps the
-- grants. tests/rules.test.ts fails when any SQL function spells out a status again.

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
  perform private.check_lead_filters(p_agent_ids, p_status, p_priority, p_search);
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
