-- The cost of a create's triggers (issue 18 target 3: a create with every trigger at >= 85% of
-- the same insert without the rollup, history and duplicate triggers). Measured on the bench
-- database (2,010,000 leads; pgbench of the api's create transaction, each trigger toggled alone;
-- track_functions = all; auto_explain of the nested statements): per create the rollup trigger
-- and the created-event trigger each cost about 0.45-0.55 ms of Postgres CPU, the duplicate
-- trigger in 'allow' mode about 0.02 ms. In the rollup, half of it was compaction: one call of
-- lead_rollup_compact_group every other create, each ~0.4 ms whatever the number of deltas it
-- merges. Nothing here changes what is written, refused or answered: the same events, the same
-- rollup sums (reads are sums of deltas, exact at any compaction rate), the same duplicate locks.

-- ---------------------------------------------------------------------------------------------
-- The rollup: no row id, compaction less often
-- ---------------------------------------------------------------------------------------------

-- Nothing reads or keys on lead_rollup.id: reads and compactions select by
-- lead_rollup_key_idx, a compaction deletes a group's rows by key. The identity cost a sequence
-- step and a B-tree insert for each of the 4 delta rows of every create (and 22 MB of index at
-- 2M leads). The table is a private delta log that only triggers write.
alter table private.lead_rollup drop column if exists id;

/** The share of appended rollup rows whose group is compacted right away: one in 32 (was 8). The
    one place the rate is said; an immutable SQL constant, so it folds into the statements that
    use it. */
create or replace function private.rollup_compact_chance() returns double precision
language sql immutable parallel safe
as $$ select 1.0 / 32 $$;

/** As in 20261202000300_write_path.sql (the deltas of a statement's changes at all four levels,
    from the transition tables, one statement per event), with one appended row in 32 (was 8)
    chosen to have its group compacted. A compaction's cost is mostly fixed (the call, the
    try-lock, the index descent, the summed row), so merging ~32 deltas at once costs about what
    merging 8 did; a read of a hot group sums a few more rows. Reads stay exact: they sum
    whatever deltas are there. Used by the update and delete triggers only: inserts go through
    leads_after_insert below, so this no longer has an insert branch. */
create or replace function private.leads_rollup_trigger() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  r record;
begin
  if tg_op = 'DELETE' then
    for r in
      with appended as (
        insert into private.lead_rollup (agent_id, user_id, day, status, priority, n)
        select c.agent_id, c.user_id, c.day, c.status, c.priority, -count(*)
        from (select o.agent_id, o.user_id, private.day_key(o.created_at) as day,
                     private.status_key(o.status) as status, private.priority_key(o.priority) as priority
              from old_rows o) c
        group by grouping sets ((c.agent_id, c.user_id, c.status, c.priority),
                                (c.agent_id, c.user_id, c.day, c.status, c.priority),
                                (c.status, c.priority), (c.day, c.status, c.priority))
        returning agent_id, day, user_id, status, priority
      )
      select a.* from appended a where random() < private.rollup_compact_chance()
    loop
      perform private.lead_rollup_compact_group(r.agent_id, r.day, r.user_id, r.status, r.priority);
    end loop;
  else
    -- Updates that leave every key column alone cancel out (-1 +1) and append nothing.
    for r in
      with appended as (
        insert into private.lead_rollup (agent_id, user_id, day, status, priority, n)
        select c.agent_id, c.user_id, c.day, c.status, c.priority, sum(c.n)
        from (select o.agent_id, o.user_id, private.day_key(o.created_at) as day,
                     private.status_key(o.status) as status, private.priority_key(o.priority) as priority, -1 as n
              from old_rows o
              union all
              select n.agent_id, n.user_id, private.day_key(n.created_at), private.status_key(n.status),
                     private.priority_key(n.priority), 1
              from new_rows n) c
        group by grouping sets ((c.agent_id, c.user_id, c.status, c.priority),
                                (c.agent_id, c.user_id, c.day, c.status, c.priority),
                                (c.status, c.priority), (c.day, c.status, c.priority))
        having sum(c.n) <> 0
        returning agent_id, day, user_id, status, priority
      )
      select a.* from appended a where random() < private.rollup_compact_chance()
    loop
      perform private.lead_rollup_compact_group(r.agent_id, r.day, r.user_id, r.status, r.priority);
    end loop;
  end if;
  return null;
end
$$;

revoke all on function private.leads_rollup_trigger() from public, anon, authenticated;

-- ---------------------------------------------------------------------------------------------
-- One after-insert trigger: created events, then rollup deltas
-- ---------------------------------------------------------------------------------------------

/** The after-insert work of leads_record_created (20261202000300_write_path.sql: one `created`
    event per inserted lead, in id order, stamped with actor, admin mode, request id and import
    id, with the diff computed in the statement) and of leads_rollup_insert (the statement's +1
    deltas at all four levels, one row in 32 compacted), in one trigger call: one function entry
    (security definer, search_path) and one pass of setup per statement instead of two. The
    order is the one the two triggers fired in (by name): the events, then the rollup. */
create or replace function private.leads_after_insert() returns trigger
language plpgsql security definer
set search_path = ''
as $$
declare
  r record;
begin
  insert into public.lead_events (lead_id, actor_id, admin_mode, request_id, kind, changes, import_id)
  select n.id, (select auth.uid()), (select private.admin_mode()),
         nullif(current_setting('app.request_id', true), ''), 'created',
         (select coalesce(jsonb_object_agg(e.key, jsonb_build_array(null, e.value)), '{}')
          from jsonb_each(to_jsonb(n) - '{id,created_at,updated_at,version}'::text[]) e
          where e.value <> 'null'::jsonb),
         nullif(current_setting('app.import_id', true), '')::uuid
  from new_rows n
  order by n.id;

  for r in
    with appended as (
      insert into private.lead_rollup (agent_id, user_id, day, status, priority, n)
      select c.agent_id, c.user_id, c.day, c.status, c.priority, count(*)
      from (select n.agent_id, n.user_id, private.day_key(n.created_at) as day,
                   private.status_key(n.status) as status, private.priority_key(n.priority) as priority
            from new_rows n) c
      group by grouping sets ((c.agent_id, c.user_id, c.status, c.priority),
                              (c.agent_id, c.user_id, c.day, c.status, c.priority),
                              (c.status, c.priority), (c.day, c.status, c.priority))
      returning agent_id, day, user_id, status, priority
    )
    select a.* from appended a where random() < private.rollup_compact_chance()
  loop
    perform private.lead_rollup_compact_group(r.agent_id, r.day, r.user_id, r.status, r.priority);
  end loop;
  return null;
end
$$;

revoke all on function private.leads_after_insert() from public, anon, authenticated;

-- The name stays leads_record_created (what the bench's "without" row and the docs name); it
-- now also keeps the rollup, so leads_rollup_insert goes.
drop trigger if exists leads_rollup_insert on public.leads;
drop trigger if exists leads_record_created on public.leads;
create trigger leads_record_created after insert on public.leads
  referencing new table as new_rows for each statement execute function private.leads_after_insert();

-- The created-event function alone is no longer called by anything.
drop function if exists private.leads_record_created();

-- ---------------------------------------------------------------------------------------------
-- Duplicates: no call at all when there is nothing to check
-- ---------------------------------------------------------------------------------------------

-- leads_check_duplicate (20261201000600_bulk_speed.sql) returns the row untouched in mode
-- 'allow' (every create without onDuplicate, imports, the Data API) and for a lead with neither
-- email nor phone (no key to lock or probe). The WHEN clause says the same before any call:
-- Postgres evaluates it in the executor, so such an insert makes no function call, takes no
-- lock and computes no key. The function is unchanged and still checks both itself.
drop trigger if exists leads_check_duplicate on public.leads;
create trigger leads_check_duplicate before insert on public.leads
  for each row
  when (coalesce(nullif(current_setting('app.on_duplicate', true), ''), 'allow') <> 'allow'
        and (new.email is not null or new.phone is not null))
  execute function private.leads_check_duplicate();

revoke execute on all functions in schema private from public, anon;
