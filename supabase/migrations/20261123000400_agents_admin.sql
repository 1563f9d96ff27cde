-- Agents become writable by their owners (the api's sales-agents create/update/delete, and the
-- Data API with the user's own token), while the quota, the owner and the id stay out of users'
-- reach; an internal admin in admin mode changes quotas through private.set_agent_quota. Also the
-- admin's user directory (private.list_users): auth.users is not readable by `authenticated`.
--
-- Custom SQLSTATE of this file: LC409 = the agent still has leads (the api's 409 CONFLICT).
-- Distinct from LA409 (working set full, 409 QUOTA_EXCEEDED).

-- ---------------------------------------------------------------------------------------------
-- Defaults, so a user's insert names only what it may write
-- ---------------------------------------------------------------------------------------------

-- Readable and unique without a sequence: 48 random bits ('agent-' and 12 hex digits).
alter table public.agents
  alter column id set default 'agent-' || left(replace(gen_random_uuid()::text, '-', ''), 12);
alter table public.agents alter column user_id set default auth.uid();

-- ---------------------------------------------------------------------------------------------
-- Privileges and policies. Column grants keep max_working_leads, id, role, created_at and
-- updated_at out of every user write; user_id may be written on insert, but the policy only
-- accepts the caller's own id (or any, for an admin in admin mode), and it is never updatable.
-- ---------------------------------------------------------------------------------------------

grant insert (user_id, name, email, phone) on public.agents to authenticated;
grant update (name, email, phone) on public.agents to authenticated;
grant delete on public.agents to authenticated;

drop policy if exists agents_insert on public.agents;
create policy agents_insert on public.agents for insert to authenticated
  with check (user_id = (select auth.uid()) or (select private.admin_mode()));

drop policy if exists agents_update on public.agents;
create policy agents_update on public.agents for update to authenticated
  using (user_id = (select auth.uid()) or (select private.admin_mode()))
  with check (user_id = (select auth.uid()) or (select private.admin_mode()));

drop policy if exists agents_delete on public.agents;
create policy agents_delete on public.agents for delete to authenticated
  using (user_id = (select auth.uid()) or (select private.admin_mode()));

-- ---------------------------------------------------------------------------------------------
-- Deleting an agent that still has leads
-- ---------------------------------------------------------------------------------------------

/** Refuses (LC409) a user's delete of an agent that still has leads: the foreign key from leads
    cascades, so the delete would silently drop them. Security definer so the check sees every
    lead of the agent whatever RLS shows. Sessions without a user (service role, migrations, the
    cascade when Supabase Auth deletes the owner) keep the cascade, like lock_agent_quota.
    The row lock taken before this trigger runs makes a concurrent lead insert on the agent wait
    (its foreign-key check locks the same row), and this check then sees it once committed. */
create or replace function private.agents_before_delete() returns trigger
language plpgsql volatile security definer
set search_path = ''
as $$
begin
  if (select auth.uid()) is not null
     and exists (select 1 from public.leads l where l.agent_id = old.id) then
    raise exception 'agent still has leads' using errcode = 'LC409';
  end if;
  return old;
end
$$;

revoke execute on function private.agents_before_delete() from public, anon;

drop trigger if exists agents_before_delete on public.agents;
create trigger agents_before_delete before delete on public.agents
  for each row execute function private.agents_before_delete();

-- ---------------------------------------------------------------------------------------------
-- Quotas: for an internal admin in admin mode only
-- ---------------------------------------------------------------------------------------------

/** Sets an agent's max_working_leads. Internal admin in admin mode only (LA403 otherwise);
    returns false when there is no such agent. A quota below the current working set is allowed:
    nothing is removed, and the insert trigger on working_leads refuses adds until it drops. The
    update takes the agent row lock that adds take, so it serialises with them. */
create or replace function private.set_agent_quota(p_agent_id text, p_max integer) returns boolean
language plpgsql volatile security definer
set search_path = ''
as $$
begin
  if not (select private.admin_mode()) then
    raise exception 'only an internal admin in admin mode may change a quota' using errcode = 'LA403';
  end if;
  update public.agents set max_working_leads = p_max where id = p_agent_id;
  return found;
end
$$;

revoke execute on function private.set_agent_quota(text, integer) from public, anon;
grant execute on function private.set_agent_quota(text, integer) to authenticated;

-- ---------------------------------------------------------------------------------------------
-- The admin's user directory
-- ---------------------------------------------------------------------------------------------

/** One page of users for an internal admin in admin mode (LA403 otherwise): those whose email
    contains p_search (case-insensitive, literal), ordered by (email, id) with a missing email
    sorting as '', after the keyset (p_after_email, p_after_id) when given, with how many agents
    they own and how many leads carry their user_id. Security definer: auth.users is not readable
    by `authenticated`. The counts are computed for the page's rows only (per user, on
    agents_user_id_created_idx and leads_user_created_idx), never over all leads. */
create or replace function private.list_users(
  p_search text,
  p_after_email text,
  p_after_id uuid,
  p_limit integer
) returns table (id uuid, email text, agent_count integer, lead_count integer)
language plpgsql stable security definer
set search_path = ''
as $$
begin
  if not (select private.admin_mode()) then
    raise exception 'only an internal admin in admin mode may list users' using errcode = 'LA403';
  end if;
  return query
    select page.id, page.email,
           (select count(*)::integer from public.agents a where a.user_id = page.id),
           (select count(*)::integer from public.leads l where l.user_id = page.id)
    from (
      select u.id, u.email::text as email
      from auth.users u
      where (p_search is null or u.email ilike private.substring_pattern(p_search))
        and (p_after_id is null or (coalesce(u.email, ''), u.id) > (coalesce(p_after_email, ''), p_after_id))
      order by coalesce(u.email, ''), u.id
      limit p_limit
    ) page
    order by coalesce(page.email, ''), page.id;
end
$$;

revoke execute on function private.list_users(text, text, uuid, integer) from public, anon;
grant execute on function private.list_users(text, text, uuid, integer) to authenticated;
