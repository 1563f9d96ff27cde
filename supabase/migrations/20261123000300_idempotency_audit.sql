-- Idempotency keys and the admin audit log (docs/api.md, safe writes and the admin tools).
-- Neither table is granted to anon or authenticated: requests reach them only through the
-- security-definer functions below, which take the user from the verified claims, so nobody can
-- read another user's keys, forge a replay for someone else, or read or write audit entries.

/** One Idempotency-Key of one user: the request's hash and the answer it got. Written once, with
    its answer, in the same transaction as the write (just before COMMIT), so a committed row always
    holds an answer and a rolled-back request (5xx) leaves none. Rows older than 24 hours are
    ignored, taken over by a new use of the key, and purged a few at a time by later writes. */
create table if not exists private.idempotency_keys (
  user_id uuid not null,
  key text not null check (length(key) between 1 and 255),
  request_hash text not null,
  status integer not null,
  body json not null,
  created_at timestamptz not null default now(),
  primary key (user_id, key)
);
-- Serves the bounded purge of expired keys.
create index if not exists idempotency_keys_created_idx on private.idempotency_keys (created_at);
alter table private.idempotency_keys enable row level security;
revoke all on private.idempotency_keys from public, anon, authenticated;

/** Claims `p_key` for the calling user for the rest of the transaction, or reports what it already
    answered. The transaction-scoped advisory lock makes concurrent repeats of a key queue behind the
    first until it commits (or rolls back); the read after it, a new statement, then sees the answer
    the first committed. Returns claimed = true (go ahead and write), or the stored status/body and
    whether the stored hash matches `p_hash` (false: the key was used for a different request, and
    the stored answer is not returned). */
create or replace function private.idempotency_claim(p_key text, p_hash text)
returns table (claimed boolean, same_request boolean, status integer, body json)
language plpgsql volatile security definer
set search_path = ''
as $$
declare
  v_user uuid := (select auth.uid());
begin
  if v_user is null then
    raise exception 'idempotency keys need a user' using errcode = '42501';
  end if;
  perform pg_advisory_xact_lock(hashtextextended(v_user::text || '/' || p_key, 0));
  return query
    select false, k.request_hash = p_hash, k.status, case when k.request_hash = p_hash then k.body end
    from private.idempotency_keys k
    where k.user_id = v_user and k.key = p_key and k.created_at >= now() - interval '24 hours';
  if not found then
    return query select true, true, null::integer, null::json;
  end if;
end;
$$;

/** Stores the answer of the key this transaction claimed: one insert (an expired row of the same
    key is taken over). A live answer is never rewritten, so nobody can change a stored response,
    and the user is the caller's, so nobody can write one for someone else. Also purges up to 20
    expired keys of anyone, so the table stays bounded without a cron job. */
create or replace function private.idempotency_store(p_key text, p_hash text, p_status integer, p_body json)
returns void
language plpgsql volatile security definer
set search_path = ''
as $$
begin
  if (select auth.uid()) is null then
    raise exception 'idempotency keys need a user' using errcode = '42501';
  end if;
  insert into private.idempotency_keys as k (user_id, key, request_hash, status, body)
  values ((select auth.uid()), p_key, p_hash, p_status, p_body)
  on conflict (user_id, key) do update
    set request_hash = excluded.request_hash, status = excluded.status, body = excluded.body, created_at = now()
    where k.created_at < now() - interval '24 hours';
  delete from private.idempotency_keys k
  where k.ctid = any (array(
    select e.ctid from private.idempotency_keys e
    where e.created_at < now() - interval '24 hours'
    limit 20 for update skip locked));
end;
$$;

/** One request that sent `adminMode: true`, allowed or denied: who, when, what, and the answer. */
create table if not exists private.admin_audit (
  id bigint generated always as identity primary key,
  at timestamptz not null default now(),
  actor_id uuid not null,
  resource text not null,
  action text not null,
  target_id text,
  user_id text,
  outcome text not null,
  request_id text
);
-- Newest first, optionally for one actor (audit/list's keyset pages).
create index if not exists admin_audit_at_idx on private.admin_audit (at desc, id desc);
create index if not exists admin_audit_actor_at_idx on private.admin_audit (actor_id, at desc, id desc);
alter table private.admin_audit enable row level security;
revoke all on private.admin_audit from public, anon, authenticated;

/** Appends an audit entry. The actor and the request id come from the transaction's verified
    claims and settings, never from parameters, so an entry cannot be written in someone else's
    name. The api calls it in a transaction of its own, so a denied request's entry survives the
    rollback of the request. */
create or replace function private.audit_record(
  p_resource text, p_action text, p_target_id text, p_user_id text, p_outcome text
) returns void
language plpgsql volatile security definer
set search_path = ''
as $$
begin
  if (select auth.uid()) is null then
    raise exception 'audit entries need an actor' using errcode = '42501';
  end if;
  insert into private.admin_audit (actor_id, resource, action, target_id, user_id, outcome, request_id)
  values ((select auth.uid()), left(p_resource, 100), left(p_action, 100), left(p_target_id, 200),
          left(p_user_id, 200), left(p_outcome, 100),
          nullif(current_setting('app.request_id', true), ''));
end;
$$;

/** A page of audit entries, newest first, after the keyset cursor (`p_before_at`, `p_before_id`).
    Internal admins in admin mode only (LA403 otherwise). */
create or replace function private.audit_list(
  p_actor_id uuid, p_limit integer, p_before_at timestamptz, p_before_id bigint
) returns setof private.admin_audit
language plpgsql stable security definer
set search_path = ''
as $$
begin
  if not (select private.admin_mode()) then
    raise exception 'audit/list is for internal admins in admin mode' using errcode = 'LA403';
  end if;
  return query
    select * from private.admin_audit a
    where (p_actor_id is null or a.actor_id = p_actor_id)
      and (p_before_at is null or (a.at, a.id) < (p_before_at, p_before_id))
    order by a.at desc, a.id desc
    limit least(greatest(p_limit, 1), 101);
end;
$$;

revoke execute on function private.idempotency_claim(text, text) from public, anon;
revoke execute on function private.idempotency_store(text, text, integer, json) from public, anon;
revoke execute on function private.audit_record(text, text, text, text, text) from public, anon;
revoke execute on function private.audit_list(uuid, integer, timestamptz, bigint) from public, anon;
grant execute on function private.idempotency_claim(text, text) to authenticated;
grant execute on function private.idempotency_store(text, text, integer, json) to authenticated;
grant execute on function private.audit_record(text, text, text, text, text) to authenticated;
grant execute on function private.audit_list(uuid, integer, timestamptz, bigint) to authenticated;
