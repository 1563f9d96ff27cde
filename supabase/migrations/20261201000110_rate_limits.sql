-- Rate limits shared by every function instance (issue 21): one token bucket per (user, budget)
-- in Postgres. The api takes a token in an autocommit statement pipelined in the same round trip
-- before its request's BEGIN (shared/db.ts `before`), so no row lock outlives that one statement
-- and a user's concurrent requests never queue behind each other's transactions.

/** One budget of one user: `tokens` left at `at` (refilled continuously at the budget per
    minute, up to the budget), and whether the last take was allowed. Unlogged: a crash forgets
    the buckets (everyone starts full), and a take writes no WAL, so its commit waits for no
    flush. Written only by the api's own connection role through private.rate_limit_take. */
create unlogged table if not exists private.rate_limits (
  user_id text not null,
  budget text not null,
  tokens double precision not null,
  at timestamptz not null,
  allowed boolean not null,
  primary key (user_id, budget)
);
alter table private.rate_limits enable row level security;
revoke all on private.rate_limits from public, anon, authenticated, service_role;

/** Takes one token from `p_user`'s `p_budget` bucket of `p_per_minute` (>= 1) tokens, refilled
    at p_per_minute per 60 s: a user may burst the whole budget, then goes on at its rate. A
    refused take consumes nothing. Returns whether it was allowed, the whole tokens left, the
    seconds until a token is available (0 when allowed) and until the bucket is full again. One
    upsert: the row lock lasts this statement only. */
create or replace function private.rate_limit_take(p_user text, p_budget text, p_per_minute integer)
returns table (allowed boolean, remaining integer, retry_after integer, reset integer)
language sql volatile
set search_path = ''
as $$
  with taken as (
    insert into private.rate_limits as r (user_id, budget, tokens, at, allowed)
    values (p_user, p_budget, p_per_minute - 1, now(), true)
    on conflict (user_id, budget) do update set
      tokens = least(p_per_minute, r.tokens + greatest(extract(epoch from now() - r.at), 0) * p_per_minute / 60.0)
               - case when least(p_per_minute, r.tokens + greatest(extract(epoch from now() - r.at), 0)
                                                            * p_per_minute / 60.0) >= 1 then 1 else 0 end,
      allowed = least(p_per_minute, r.tokens + greatest(extract(epoch from now() - r.at), 0) * p_per_minute / 60.0) >= 1,
      at = greatest(now(), r.at)
    returning r.tokens, r.allowed
  )
  select t.allowed, greatest(floor(t.tokens), 0)::integer,
         case when t.allowed then 0 else ceil((1 - t.tokens) * 60.0 / p_per_minute)::integer end,
         ceil((p_per_minute - t.tokens) * 60.0 / p_per_minute)::integer
  from taken t
$$;

-- Only the api's connection role (the owner) takes tokens: no client role may spend or refill
-- anyone's budget.
revoke all on function private.rate_limit_take(text, text, integer) from public, anon, authenticated, service_role;
