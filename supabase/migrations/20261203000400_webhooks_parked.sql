-- Webhooks (issue 20): a disabled endpoint's backlog no longer sits at the head of the claim's
-- index. Deliveries of a disabled endpoint stay pending (kept for a re-enable), with next_at in
-- the past, so every claim (20 a second from one idle dispatcher) walked over them and probed
-- their endpoint: 55 ms per claim for 10,000 such rows (EXPLAIN ANALYZE on the bench database),
-- a database core kept busy for as long as the endpoint stays disabled. Now disabling an endpoint
-- parks its pending deliveries at next_at = 'infinity' (the end of webhook_deliveries_due_idx,
-- never due) and enabling it again makes them due at once; a replay of a disabled endpoint's
-- deliveries parks them too. The delivery log shows no next attempt for a parked delivery.

/** Parks a disabled endpoint's pending deliveries (next_at = 'infinity': never due, at the end
    of the claim's index) and brings them back, due at once, when it is enabled again. */
create or replace function private.webhook_endpoints_after_enabled() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if new.enabled then
    update private.webhook_deliveries d set next_at = now()
    where d.endpoint_id = new.id and d.status = 'pending' and d.next_at = 'infinity';
  else
    update private.webhook_deliveries d set next_at = 'infinity'
    where d.endpoint_id = new.id and d.status = 'pending' and d.next_at <> 'infinity';
  end if;
  return null;
end
$$;

revoke all on function private.webhook_endpoints_after_enabled() from public, anon, authenticated;

drop trigger if exists webhook_endpoints_after_enabled on public.webhook_endpoints;
create trigger webhook_endpoints_after_enabled after update of enabled on public.webhook_endpoints
  for each row when (old.enabled is distinct from new.enabled)
  execute function private.webhook_endpoints_after_enabled();

-- The backlog of endpoints disabled before this migration.
update private.webhook_deliveries d set next_at = 'infinity'
from public.webhook_endpoints e
where e.id = d.endpoint_id and not e.enabled and d.status = 'pending' and d.next_at <> 'infinity';

/** An endpoint's deliveries, newest first, `p_limit` of them before delivery `p_before` (null: from
    the newest), as JSON: what the owner sees of the outbox. Never the payload: an old event's
    personal data stays with the lead (erased on delete), not in a log. Null when the endpoint is
    not the caller's to see. A parked delivery (its endpoint disabled) has no next attempt. */
create or replace function private.webhook_delivery_log(p_endpoint uuid, p_before bigint, p_limit integer)
returns json
language sql stable security definer
set search_path = ''
as $$
  select case when private.webhook_endpoint_visible(p_endpoint) then
    coalesce((select json_agg(j order by id desc) from (
      select d.id, json_build_object(
        'id', d.id, 'webhookId', case when d.event_id is null then 'ping_' || d.id else 'msg_' || d.event_id end,
        'type', d.type, 'leadId', d.lead_id, 'status', d.status, 'attempts', d.attempts,
        'createdAt', d.created_at, 'lastAttemptAt', d.last_attempt_at, 'lastStatus', d.last_status,
        'latencyMs', d.last_latency_ms, 'error', d.last_error, 'response', d.last_response,
        'nextAttemptAt', case when d.status = 'pending' and d.next_at <> 'infinity' then d.next_at end,
        'deliveredAt', d.delivered_at) as j
      from private.webhook_deliveries d
      where d.endpoint_id = p_endpoint and (p_before is null or d.id < p_before)
      order by d.id desc
      limit least(greatest(p_limit, 1), 101)) page), '[]'::json)
  end
$$;

/** Sends one delivery of an endpoint again (`p_delivery`), or every delivery of it created at or
    after `p_since` (at most 10,000 per call): due now (parked until a re-enable when the endpoint
    is disabled), attempts counted afresh, the same webhook-id and body. Returns how many, or null
    when the endpoint is not the caller's. */
create or replace function private.webhook_replay(p_endpoint uuid, p_delivery bigint, p_since timestamptz)
returns integer
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_count integer;
  v_enabled boolean;
begin
  if not private.webhook_endpoint_visible(p_endpoint) then
    return null;
  end if;
  select e.enabled into v_enabled from public.webhook_endpoints e where e.id = p_endpoint;
  with picked as (
    select d.id from private.webhook_deliveries d
    where d.endpoint_id = p_endpoint
      and (p_delivery is null or d.id = p_delivery)
      and (p_since is null or d.created_at >= p_since)
      and d.event_id is not null
    order by d.id
    limit 10000
  )
  update private.webhook_deliveries d
  set status = 'pending', attempts = 0, next_at = case when v_enabled then now() else 'infinity' end,
      delivered_at = null
  from picked where d.id = picked.id;
  get diagnostics v_count = row_count;
  return v_count;
end
$$;

revoke all on function private.webhook_delivery_log(uuid, bigint, integer) from public, anon;
revoke all on function private.webhook_replay(uuid, bigint, timestamptz) from public, anon;
grant execute on function private.webhook_delivery_log(uuid, bigint, integer) to authenticated;
grant execute on function private.webhook_replay(uuid, bigint, timestamptz) to authenticated;
