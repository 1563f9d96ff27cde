-- Rate limits at a lower cost (issue 21, item 4): a take may lease several tokens at once, so a
-- function instance serving one user fast spends them locally and asks the shared bucket about
-- once a second instead of once a request (functions/api/rate-limit.ts); and the take is plpgsql,
-- whose plan is cached per connection (a SQL function with `set search_path` is never inlined and
-- plans its body on every call: measured 2,151 -> 3,327 takes/s at c=32 with pgbench).

/** How many tokens the last take granted (0: refused). Replaces `allowed`, which said only
    whether it was more than none. */
alter table private.rate_limits add column if not exists granted integer not null default 0;
alter table private.rate_limits drop column if exists allowed;

drop function if exists private.rate_limit_take(text, text, integer);

/** Takes up to `p_want` (>= 1) tokens from `p_user`'s `p_budget` bucket of `p_per_minute` (>= 1)
    tokens, refilled at p_per_minute per 60 s: a user may burst the whole budget, then goes on at
    its rate. Grants as many whole tokens as there are, up to p_want; a refused take (0 granted)
    consumes nothing. Returns the tokens granted, the whole tokens left, the seconds until a token
    is available (0 when granted) and until the bucket is full again, and `allowed` (granted > 0)
    for instances still running the code before leases during a rollout (they call it with three
    arguments and read `allowed`). One upsert: the row lock lasts this statement only. */
create or replace function private.rate_limit_take(
  p_user text, p_budget text, p_per_minute integer, p_want integer default 1
)
returns table (granted integer, remaining integer, retry_after integer, reset integer, allowed boolean)
language plpgsql volatile
set search_path = ''
as $$
declare
  v_tokens double precision;
  v_granted integer;
begin
  if p_per_minute is null or p_per_minute < 1 or p_want is null or p_want < 1 then
    raise exception 'rate_limit_take: p_per_minute and p_want must be >= 1' using errcode = '22023';
  end if;
  -- `level` (the bucket refilled up to now, capped at the budget) is written out three times: an
  -- upsert's SET cannot name a value computed once.
  insert into private.rate_limits as r (user_id, budget, tokens, at, granted)
  values (p_user, p_budget, p_per_minute - least(p_want, p_per_minute), now(), least(p_want, p_per_minute))
  on conflict (user_id, budget) do update set
    tokens = least(p_per_minute, r.tokens + greatest(extract(epoch from now() - r.at), 0) * p_per_minute / 60.0)
             - least(p_want, floor(least(p_per_minute, r.tokens + greatest(extract(epoch from now() - r.at), 0)
                                                         * p_per_minute / 60.0)))::integer,
    granted = least(p_want, floor(least(p_per_minute, r.tokens + greatest(extract(epoch from now() - r.at), 0)
                                                        * p_per_minute / 60.0)))::integer,
    at = greatest(now(), r.at)
  returning r.tokens, r.granted into v_tokens, v_granted;
  granted := v_granted;
  remaining := greatest(floor(v_tokens), 0)::integer;
  retry_after := case when v_granted > 0 then 0 else ceil((1 - v_tokens) * 60.0 / p_per_minute)::integer end;
  reset := ceil((p_per_minute - v_tokens) * 60.0 / p_per_minute)::integer;
  allowed := v_granted > 0;
  return next;
end
$$;

-- Only the api's connection role (the owner) takes tokens: no client role may spend or refill
-- anyone's budget.
revoke all on function private.rate_limit_take(text, text, integer, integer)
  from public, anon, authenticated, service_role;
