-- Working sets: the leads an agent is actively pursuing, capped by the agent's quota.
-- The quota holds in the database itself, for the api function and for direct Data API inserts
-- alike: every insert takes a lock on the agent row, then counts (see enforce_working_lead_rules).

/** One lead in one agent's working set. Muted leads stay in the set and count against the quota. */
create table if not exists public.working_leads (
  agent_id text not null references public.agents (id) on delete cascade,
  lead_id bigint not null references public.leads (id) on delete cascade,
  muted boolean not null default false,
  added_at timestamptz not null default now(),
  primary key (agent_id, lead_id)
);
-- "Which agents work this lead" and the lead-delete cascade.
create index if not exists working_leads_lead_idx on public.working_leads (lead_id);
-- The queue order: unmuted first, newest added first.
create index if not exists working_leads_queue_idx on public.working_leads (agent_id, muted, added_at desc, lead_id desc);

/** Locks the agent row for the rest of the transaction and returns its quota, or null when the
    agent is not usable by the caller. The lock (FOR NO KEY UPDATE: it does not block foreign-key
    checks from inserts elsewhere) serialises every add on one agent, so two transactions can never
    both see "one slot left". Security definer because users have no UPDATE right on agents. */
create or replace function private.lock_agent_quota(p_agent_id text) returns integer
language sql volatile security definer
set search_path = ''
as $$
  select a.max_working_leads from public.agents a
  where a.id = p_agent_id
    and (a.user_id = (select auth.uid()) or (select private.admin_mode()) or (select auth.uid()) is null)
  for no key update
$$;

/** Current size of an agent's working set (the caller already holds the agent lock). */
create or replace function private.working_set_size(p_agent_id text) returns integer
language sql stable security definer
set search_path = ''
as $$
  select count(*)::integer from public.working_leads w where w.agent_id = p_agent_id
$$;

/** True when the lead belongs to an agent with the same owner as p_agent_id. */
create or replace function private.lead_fits_agent(p_lead_id bigint, p_agent_id text) returns boolean
language sql stable security definer
set search_path = ''
as $$
  select exists (
    select 1 from public.leads l
    join public.agents la on la.id = l.agent_id
    join public.agents wa on wa.id = p_agent_id
    where l.id = p_lead_id and la.user_id = wa.user_id
  )
$$;

/** The rules every insert into working_leads obeys, whoever inserts: the lead belongs to the same
    owner as the agent, and the set stays within max_working_leads, counted under the agent lock. */
create or replace function private.enforce_working_lead_rules() returns trigger
language plpgsql
set search_path = ''
as $$
declare
  v_max integer;
  v_size integer;
begin
  v_max := private.lock_agent_quota(new.agent_id);
  if v_max is null then
    raise exception 'agent not found' using errcode = 'LA404';
  end if;
  if not private.lead_fits_agent(new.lead_id, new.agent_id) then
    raise exception 'lead not found' using errcode = 'LA404';
  end if;
  v_size := private.working_set_size(new.agent_id);
  if v_size >= v_max then
    raise exception 'working set is full'
      using errcode = 'LA409',
            detail = jsonb_build_object('maxWorkingLeads', v_max, 'currentWorkingLeads', v_size,
                                        'remainingWorkingLeads', 0)::text;
  end if;
  return new;
end
$$;

-- Called by the insert trigger and add_working_leads as the requesting user; the trigger
-- functions themselves need no grant (Postgres checks EXECUTE when the trigger is created).
revoke execute on function private.lock_agent_quota(text), private.working_set_size(text),
  private.lead_fits_agent(bigint, text) from public, anon;
grant execute on function private.lock_agent_quota(text), private.working_set_size(text),
  private.lead_fits_agent(bigint, text) to authenticated;

drop trigger if exists working_leads_enforce_rules on public.working_leads;
create trigger working_leads_enforce_rules before insert on public.working_leads
  for each row execute function private.enforce_working_lead_rules();

/** A lead moved to an agent of another owner leaves the old owner's working sets: a working lead
    always belongs to the agent's owner. */
create or replace function private.leads_after_agent_change() returns trigger
language plpgsql security definer
set search_path = ''
as $$
begin
  delete from public.working_leads w
  using public.agents a
  where w.lead_id = new.id and a.id = w.agent_id
    and a.user_id is distinct from private.agent_owner(new.agent_id);
  return null;
end
$$;

drop trigger if exists leads_after_agent_change on public.leads;
create trigger leads_after_agent_change after update of agent_id on public.leads
  for each row when (old.agent_id is distinct from new.agent_id)
  execute function private.leads_after_agent_change();

alter table public.working_leads enable row level security;
revoke all on public.working_leads from anon, authenticated;
grant select, insert, delete on public.working_leads to authenticated;
-- Only `muted` may change: moving a row to another agent would skip the insert-time quota check.
grant update (muted) on public.working_leads to authenticated;

drop policy if exists working_leads_select on public.working_leads;
create policy working_leads_select on public.working_leads for select to authenticated
  using (agent_id = any (array(select private.usable_agent_ids())));

drop policy if exists working_leads_insert on public.working_leads;
create policy working_leads_insert on public.working_leads for insert to authenticated
  with check (agent_id = any (array(select private.usable_agent_ids())));

drop policy if exists working_leads_update on public.working_leads;
create policy working_leads_update on public.working_leads for update to authenticated
  using (agent_id = any (array(select private.usable_agent_ids())))
  with check (agent_id = any (array(select private.usable_agent_ids())));

drop policy if exists working_leads_delete on public.working_leads;
create policy working_leads_delete on public.working_leads for delete to authenticated
  using (agent_id = any (array(select private.usable_agent_ids())));

/** The quota of an agent the caller may use, as the API shows it; null if not usable. */
create or replace function public.agent_quota(p_agent_id text) returns jsonb
language sql stable security invoker
set search_path = ''
as $$
  select jsonb_build_object(
    'maxWorkingLeads', a.max_working_leads,
    'currentWorkingLeads', s.n,
    'remainingWorkingLeads', greatest(a.max_working_leads - s.n, 0))
  from public.agents a
  cross join lateral (select count(*)::integer as n from public.working_leads w where w.agent_id = a.id) s
  where a.id = p_agent_id
$$;

/** Adds leads to an agent's working set, in the order given, within its quota. Security invoker:
    RLS hides leads and agents the caller may not use, and the insert trigger re-checks every
    row. Already-present leads are reported, not re-added; each lead that cannot join is reported
    with a contract error code instead of failing the whole batch. Returns
    { added, alreadyWorking, failed: [{ leadId, code, message }], quota, entries }, where entries
    holds the working-set row of a single-lead call; or null when the agent
    is not usable by the caller. */
create or replace function public.add_working_leads(p_agent_id text, p_lead_ids bigint[]) returns jsonb
language plpgsql volatile security invoker
set search_path = ''
as $$
declare
  v_max integer;
  v_size integer;
  v_lead bigint;
  v_added bigint[] := '{}';
  v_already bigint[] := '{}';
  v_failed jsonb := '[]';
begin
  v_max := private.lock_agent_quota(p_agent_id);
  if v_max is null then
    return null;
  end if;
  v_size := private.working_set_size(p_agent_id);

  foreach v_lead in array p_lead_ids loop
    if v_lead = any(v_added) or v_lead = any(v_already) then
      continue; -- the same id twice in one batch
    elsif exists (select 1 from public.working_leads w where w.agent_id = p_agent_id and w.lead_id = v_lead) then
      v_already := v_already || v_lead;
    elsif not exists (select 1 from public.leads l where l.id = v_lead)
          or not private.lead_fits_agent(v_lead, p_agent_id) then
      v_failed := v_failed || jsonb_build_object('leadId', v_lead, 'code', 'NOT_FOUND',
                                                 'message', 'Lead not found');
    elsif v_size >= v_max then
      v_failed := v_failed || jsonb_build_object('leadId', v_lead, 'code', 'QUOTA_EXCEEDED',
                                                 'message', 'Working set is full');
    else
      insert into public.working_leads (agent_id, lead_id) values (p_agent_id, v_lead);
      v_added := v_added || v_lead;
      v_size := v_size + 1;
    end if;
  end loop;

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

revoke all on function public.add_working_leads(text, bigint[]) from public, anon;
grant execute on function public.add_working_leads(text, bigint[]) to authenticated;
revoke all on function public.agent_quota(text) from public, anon;
grant execute on function public.agent_quota(text) to authenticated;

revoke execute on all functions in schema private from public, anon;
