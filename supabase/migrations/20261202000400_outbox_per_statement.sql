-- The webhooks outbox fan-out once per statement (issue 20's create cost with subscriptions,
-- issue 19's import speed). 20261201000400_webhooks.sql fans each lead event out in a row-level
-- trigger: one plpgsql call, one owner lookup and one insert per event, even when nobody has an
-- endpoint (measured at about 0.2 ms per create, and 0.6 s of a 10,000-row import). Here one
-- statement-level trigger reads the statement's new events from its transition table: when no
-- endpoint is enabled anywhere it returns after one probe of webhook_endpoints_user_idx;
-- otherwise one insert writes every delivery. Same rows as before: the same event types, the same
-- owner rule (the owner after the change; for a delete, the owner it had), the same endpoints,
-- and deliveries numbered in event order (then endpoint), so per-endpoint order per lead holds.

/** Fans the events one INSERT into lead_events wrote out to the outbox (private.webhook_deliveries):
    one delivery per event and enabled endpoint subscribed to its type whose owner owns the lead,
    and per enabled all-users endpoint. Runs inside the transaction that wrote the change, so a
    rolled-back change leaves no delivery and a committed one always has its deliveries. */
create or replace function private.webhook_fan_out_statement() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  if not exists (select 1 from public.webhook_endpoints e where e.enabled) then
    return null;
  end if;
  insert into private.webhook_deliveries (endpoint_id, event_id, lead_id, type, created_at)
  select e.id, n.id, n.lead_id, t.type, n.at
  from new_events n
  cross join lateral (select private.webhook_event_type(n.kind) as type) t
  cross join lateral (
    select coalesce(nullif(n.changes -> 'user_id' ->> 1, '')::uuid,
                    (select l.user_id from public.leads l where l.id = n.lead_id),
                    nullif(n.changes -> 'user_id' ->> 0, '')::uuid) as owner
  ) o
  join public.webhook_endpoints e
    on e.enabled and (e.user_id = o.owner or e.all_users) and t.type = any (e.events)
  where t.type is not null
  order by n.id, e.id;
  return null;
end
$$;

revoke all on function private.webhook_fan_out_statement() from public, anon, authenticated;

drop trigger if exists lead_events_webhooks on public.lead_events;
create trigger lead_events_webhooks after insert on public.lead_events
  referencing new table as new_events
  for each statement execute function private.webhook_fan_out_statement();

-- The row-level fan-out is no longer called by anything.
drop function if exists private.webhook_fan_out();
