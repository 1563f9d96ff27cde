-- Agents and their leads: tables, row-level security and the stats RPC.
-- Access rule (docs/api.md): a user may use an agent they own; an internal admin may use every
-- agent, but only inside a request that switched admin mode on. Everything else follows from it.

create extension if not exists pg_trgm with schema extensions;
-- Lets one GIN index hold agent_id next to trigrams, so a search touches only the caller's leads.
create extension if not exists btree_gin with schema extensions;

create schema if not exists private;
grant usage on schema private to authenticated;
-- Functions are executable by PUBLIC (so by anon) unless revoked. Nothing here is for everyone:
-- each function is granted below, one at a time, to the roles that call it.
alter default privileges in schema private revoke execute on functions from public;
alter default privileges in schema public revoke execute on functions from public;

-- ---------------------------------------------------------------------------------------------
-- Tables
-- ---------------------------------------------------------------------------------------------

/** An AI sales agent, owned by one user. Its quota caps its working set. */
create table if not exists public.agents (
  id text primary key,
  user_id uuid not null references auth.users (id) on delete cascade,
  name text not null,
  email text,
  phone text,
  role text not null default 'sales_agent',
  max_working_leads integer not null default 50 check (max_working_leads >= 0),
  created_at timestamptz not null default now(),
  updated_at timestamptz
);
-- Serves the policies (owner lookup) and "primary agent" (earliest created, ties by id).
create index if not exists agents_user_id_created_idx on public.agents (user_id, created_at, id);

/** A lead captured by an agent. `status`/`priority` accept any text (imported data); the API only
    writes the documented values. */
create table if not exists public.leads (
  -- `always`: nobody picks an id ahead of the sequence, so the api's next create cannot collide.
  id bigint generated always as identity primary key,
  agent_id text not null references public.agents (id) on delete cascade,
  user_id uuid not null,
  name text,
  email text,
  phone text,
  status text,
  priority text,
  budget text,
  timeline text,
  address jsonb,
  notes text,
  assigned_to text,
  conversation_id bigint,
  primary_lead_id bigint references public.leads (id) on delete set null,
  is_decision_maker boolean,
  preferred_contact_method text,
  preferred_contact_time text,
  metadata jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz
);
-- A user's list pages (each usable agent's newest rows, merged), the policy's agent_id = any(...),
-- and the partial-day count of a dateRange (index-only, with status and priority included).
create index if not exists leads_agent_created_idx on public.leads (agent_id, created_at desc, id desc)
  include (status, priority);
-- An admin's list pages over every agent, and the partial-day count of an admin-wide dateRange.
create index if not exists leads_created_idx on public.leads (created_at desc, id desc) include (status, priority);
-- An admin's list pages scoped to one user (userId).
create index if not exists leads_user_created_idx on public.leads (user_id, created_at desc, id desc);
-- The foreign key's `on delete set null` when a primary lead is deleted.
create index if not exists leads_primary_lead_idx on public.leads (primary_lead_id) where primary_lead_id is not null;
-- Substring search on name, email and phone (searchTerm), per agent: see private.search_lead_ids.
-- fastupdate off: with the default pending list, every search rescans up to 4 MB of recent
-- inserts until vacuum merges them (measured: see BENCHMARKS.md, "Indexes").
create index if not exists leads_agent_name_trgm_idx on public.leads
  using gin (agent_id, name extensions.gin_trgm_ops) with (fastupdate = off);
create index if not exists leads_agent_email_trgm_idx on public.leads
  using gin (agent_id, email extensions.gin_trgm_ops) with (fastupdate = off);
create index if not exists leads_agent_phone_trgm_idx on public.leads
  using gin (agent_id, phone extensions.gin_trgm_ops) with (fastupdate = off);

-- ---------------------------------------------------------------------------------------------
-- Helpers. Security-definer ones run with an empty search_path so a caller cannot shadow names.
-- ---------------------------------------------------------------------------------------------

/** True when the verified token says internal admin AND the request asked for admin mode.
    `app_metadata` is set by Supabase Auth only, and `app.admin_mode` cannot be set through the
    Data API, so neither half alone grants anything. */
create or replace function private.admin_mode() returns boolean
language sql stable
set search_path = ''
as $$
  select coalesce((select auth.jwt()) -> 'app_metadata' ->> 'role' = 'internal_admin', false)
     and coalesce(nullif(current_setting('app.admin_mode', true), ''), 'off') = 'on'
$$;

/** Ids of the agents the current request may use. Security definer so that policies on other
    tables can consult `agents` without recursing into its own policy. */
create or replace function private.usable_agent_ids() returns setof text
language sql stable security definer
set search_path = ''
as $$
  select a.id from public.agents a
  where a.user_id = (select auth.uid()) or (select private.admin_mode())
$$;

/** The owner of an agent, whoever may see it: used to stamp `leads.user_id`. */
create or replace function private.agent_owner(p_agent_id text) returns uuid
language sql stable security definer
set search_path = ''
as $$
  select a.user_id from public.agents a where a.id = p_agent_id
$$;

/** `ILIKE` pattern for a literal substring: `%`, `_` and `\` in the term match themselves. */
create or replace function private.substring_pattern(p_term text) returns text
language sql immutable strict parallel safe
set search_path = ''
as $$
  select '%' || replace(replace(replace(p_term, '\', '\\'), '%', '\%'), '_', '\_') || '%'
$$;

/** Ids of the leads the caller may use whose name, email or phone contains p_term, among
    p_agent_ids when given. Security definer on purpose: under RLS, Postgres may not use an index
    for a non-leakproof operator such as ILIKE, so a search would read every row the policy lets
    through. This function applies the same rule itself (usable_agent_ids), so the trigram
    indexes serve the search and nothing outside the caller's agents is ever matched. */
create or replace function private.search_lead_ids(p_term text, p_agent_ids text[] default null)
returns setof bigint
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_pattern text := private.substring_pattern(p_term);
  v_agents text[];
begin
  if p_agent_ids is null and (select private.admin_mode()) then
    return query select l.id from public.leads l
      where l.name ilike v_pattern or l.email ilike v_pattern or l.phone ilike v_pattern;
    return;
  end if;
  v_agents := array(select u.id from private.usable_agent_ids() u(id)
                    where p_agent_ids is null or u.id = any(p_agent_ids));
  return query select l.id from public.leads l
    where (l.agent_id = any(v_agents) and l.name ilike v_pattern)
       or (l.agent_id = any(v_agents) and l.email ilike v_pattern)
       or (l.agent_id = any(v_agents) and l.phone ilike v_pattern);
end
$$;

-- Called by authenticated requests: in policies (admin_mode, usable_agent_ids), in the leads
-- trigger (agent_owner) and in searches (search_lead_ids). substring_pattern is called only from
-- inside the definer function search_lead_ids, so it needs no grant.
revoke execute on function private.admin_mode(), private.usable_agent_ids(), private.agent_owner(text),
  private.substring_pattern(text), private.search_lead_ids(text, text[]) from public, anon;
grant execute on function private.admin_mode(), private.usable_agent_ids(), private.agent_owner(text),
  private.search_lead_ids(text, text[]) to authenticated;

/** Keeps `updated_at` on every update. */
create or replace function private.set_updated_at() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  new.updated_at := now();
  return new;
end
$$;

/** Keeps `leads.user_id` equal to the owner of the lead's agent, whoever writes (the Data API
    reaches this table too): stamped when not given, moved with the lead to another owner's agent,
    refused when it names anyone else. A non-admin naming another user is a 403, as before. Also
    refuses a `primary_lead_id` the caller cannot see, which the foreign key alone would accept. */
create or replace function private.leads_before_write() returns trigger
language plpgsql
set search_path = ''
as $$
declare
  v_owner uuid := private.agent_owner(new.agent_id);
begin
  -- An agent the caller may not use: RLS refuses the row next, with an answer that does not tell
  -- whose the agent is, so there is nothing to stamp or check here.
  if (select auth.uid()) is not null and not new.agent_id in (select private.usable_agent_ids()) then
    return new;
  end if;
  if new.user_id is null
     or (tg_op = 'UPDATE' and new.agent_id is distinct from old.agent_id and new.user_id = old.user_id) then
    new.user_id := v_owner;
  end if;
  if (select auth.uid()) is not null and not (select private.admin_mode())
     and (tg_op = 'INSERT' or new.user_id is distinct from old.user_id)
     and new.user_id is distinct from (select auth.uid()) then
    raise exception 'user_id may only be set to another user in admin mode'
      using errcode = 'LA403';
  end if;
  -- An agent that does not exist has no owner: the foreign key refuses the row.
  if v_owner is not null and new.user_id is distinct from v_owner then
    raise exception 'user_id must be the owner of the lead''s agent'
      using errcode = 'LA422', column = 'user_id';
  end if;
  if new.primary_lead_id is not null
     and (tg_op = 'INSERT' or new.primary_lead_id is distinct from old.primary_lead_id)
     and (select auth.uid()) is not null
     and not exists (select 1 from public.leads l where l.id = new.primary_lead_id) then
    raise exception 'primary_lead_id does not name a visible lead'
      using errcode = 'LA422', column = 'primary_lead_id';
  end if;
  if tg_op = 'UPDATE' then
    new.updated_at := now();
  end if;
  return new;
end
$$;

drop trigger if exists leads_before_write on public.leads;
create trigger leads_before_write before insert or update on public.leads
  for each row execute function private.leads_before_write();

drop trigger if exists agents_set_updated_at on public.agents;
create trigger agents_set_updated_at before update on public.agents
  for each row execute function private.set_updated_at();

-- ---------------------------------------------------------------------------------------------
-- Row-level security. Policies are `to authenticated`; anon gets nothing at all.
-- ---------------------------------------------------------------------------------------------

-- `agent_id = any (array(select ...))`, not `agent_id in (select ...)`: the array is computed
-- once per statement (an InitPlan) and the condition becomes an index condition on
-- leads_agent_created_idx. The IN form plans as a hashed filter over a sequential scan.

alter table public.agents enable row level security;
alter table public.leads enable row level security;

revoke all on public.agents, public.leads from anon, authenticated;
-- Agents are read-only for users: writing `max_working_leads` would lift the quota.
grant select on public.agents to authenticated;
-- Users write lead fields only: `id` (identity), `created_at` and the trigger-kept columns
-- (`updated_at`, and those later migrations add) can be neither chosen nor changed.
grant select, delete on public.leads to authenticated;
grant insert (agent_id, user_id, name, email, phone, status, priority, budget, timeline, address, notes,
              assigned_to, conversation_id, primary_lead_id, is_decision_maker, preferred_contact_method,
              preferred_contact_time, metadata),
      update (agent_id, user_id, name, email, phone, status, priority, budget, timeline, address, notes,
              assigned_to, conversation_id, primary_lead_id, is_decision_maker, preferred_contact_method,
              preferred_contact_time, metadata)
  on public.leads to authenticated;

drop policy if exists agents_select on public.agents;
create policy agents_select on public.agents for select to authenticated
  using (user_id = (select auth.uid()) or (select private.admin_mode()));

drop policy if exists leads_select on public.leads;
create policy leads_select on public.leads for select to authenticated
  using (agent_id = any (array(select private.usable_agent_ids())));

drop policy if exists leads_insert on public.leads;
create policy leads_insert on public.leads for insert to authenticated
  with check (agent_id = any (array(select private.usable_agent_ids())));

drop policy if exists leads_update on public.leads;
create policy leads_update on public.leads for update to authenticated
  using (agent_id = any (array(select private.usable_agent_ids())))
  with check (agent_id = any (array(select private.usable_agent_ids())));

drop policy if exists leads_delete on public.leads;
create policy leads_delete on public.leads for delete to authenticated
  using (agent_id = any (array(select private.usable_agent_ids())));

-- ---------------------------------------------------------------------------------------------
-- Stats: public.lead_stats is defined with the rollups it reads, in 20261123000100_lead_rollups.sql.
-- ---------------------------------------------------------------------------------------------

-- Whatever default privileges the platform adds to a schema, nothing in `private` runs for anon or
-- for PUBLIC; authenticated keeps the grants given above.
revoke execute on all functions in schema private from public, anon;
