-- Search keyed by owner and trigram together (issue 18, target 1).
--
-- The trigram index of 20261201000200_search_speed.sql is a two-column GIN (user_id, trigrams). A
-- multi-column GIN indexes each column on its own: the key `user_id = X` has one posting list (all
-- of X's leads), and each trigram has one posting list over every lead of every owner. A search
-- intersects them, so it reads the trigram lists over the whole span of heap positions where X's
-- leads lie. That is cheap only while an account's leads sit together in the heap: in the bench's
-- 10k account (loaded as one block) 'maria gar' read 82 index buffers in 1.5 ms, in its 100k account
-- (whose 18,166 later creates went into free space all over the heap) 531 buffers in 25-80 ms, the
-- same as an admin-wide search. A real account grows among every other account's writes, so its
-- leads are spread over the heap like that. How the index was built (CREATE INDEX, or grown through
-- fastupdate's pending list) did not matter: a fresh CREATE INDEX on the same heap measured the same.
--
-- Here every key is one owner's trigram: `<8 hex of hashtext(user_id)><trigram>`, as lexemes of a
-- tsvector (GIN tsvector_ops compares lexemes bytewise: cheaper to maintain than text[] keys, which
-- compare by collation), so a search reads only its own account's posting lists, wherever the rows
-- are. Two owners whose tags collide share lists (cost, not correctness: every statement also says
-- `user_id = X` and rechecks the pattern with ILIKE).
--
-- An admin-wide search (every owner) keeps leads_owner_search_trgm_idx, read without its owner
-- column as before. One scan of the new index per owner measured 330-960 ms against 34-520 ms there
-- (1,003 owners at 2M leads: every owner's entry-tree descents), and unowned keys in the new index
-- would cost as much to maintain as keeping the old one. The price is a second GIN index on every
-- write: an import of 10,000 rows took 4,064-4,666 ms with both against 3,462-4,156 ms with the
-- old one alone and 3,819-3,843 ms with the new one alone (SQL, alternated, load 5-6).
--
-- Semantics are unchanged: a term still matches by ILIKE on name, email or phone; the keys only
-- choose the candidates. Terms without a run of three letters or digits still walk.

-- ---------------------------------------------------------------------------------------------
-- Keys
-- ---------------------------------------------------------------------------------------------

/** The owner half of a search key: 8 hex digits of a hash of the owner's id. */
create or replace function private.search_owner_tag(p_user_id uuid) returns text
language sql immutable parallel safe
as $$
  select pg_catalog.lpad(pg_catalog.to_hex(pg_catalog.hashtext(p_user_id::text)), 8, '0')
$$;

/** A lead's search keys: every pg_trgm trigram of its searchable text (private.lead_search_text,
    padded word ends included, as pg_trgm makes them), each prefixed with the owner's tag. The
    index expression of leads_owner_search_keys_idx. PL/pgSQL of simple expressions only (no
    query), so it costs about one show_trgm per written lead. */
create or replace function private.lead_search_vector(p_user_id uuid, p_name text, p_email text, p_phone text)
returns tsvector
language plpgsql immutable parallel safe
set search_path = ''
as $$
declare
  v_trgm text[] := extensions.show_trgm(private.lead_search_text(p_name, p_email, p_phone));
  v_tag text := private.search_owner_tag(p_user_id);
begin
  if pg_catalog.cardinality(v_trgm) = 0 then
    return ''::pg_catalog.tsvector;
  end if;
  -- Trigrams hold letters, digits and spaces (or `0x` and hex digits when pg_trgm hashed them),
  -- never a comma: joining and splitting on commas maps the tag over the array without a query.
  return pg_catalog.array_to_tsvector(pg_catalog.string_to_array(
    v_tag operator(pg_catalog.||) pg_catalog.array_to_string(v_trgm, ',' operator(pg_catalog.||) v_tag), ','));
end
$$;

/** The trigrams every lead containing p_term (case-insensitive) has: pg_trgm's trigrams of the
    term, less those that say where a word begins or ends at the term's own two ends (the text
    around a substring may continue the word). They are the trigrams of the term's first and
    last two characters (padded as pg_trgm pads them); removing a few more than needed only widens
    the candidates, which ILIKE rechecks. A trigram with a quote or a backslash is left out too
    (pg_trgm keeps only letters and digits, so none should), so each one is a safe tsquery
    literal. Empty when none is left (then the term walks). */
create or replace function private.search_trigrams(p_term text) returns text[]
language sql immutable strict parallel safe
as $$
  select coalesce(pg_catalog.array_agg(t.t order by t.t), '{}')
  from pg_catalog.unnest(extensions.show_trgm(p_term)) t(t)
  where t.t operator(pg_catalog.<>) all (extensions.show_trgm(pg_catalog.left(p_term, 2)))
    and t.t operator(pg_catalog.<>) all (extensions.show_trgm(pg_catalog.right(p_term, 2)))
    and pg_catalog.strpos(t.t, '''') = 0 and pg_catalog.strpos(t.t, '\') = 0
$$;

/** The index query of one owner's leads holding every one of p_trigrams (private.search_trigrams):
    `'<tag>t1' & '<tag>t2' & …`. Null when p_trigrams is empty. */
create or replace function private.lead_search_query(p_user_id uuid, p_trigrams text[]) returns tsquery
language plpgsql immutable parallel safe
set search_path = ''
as $$
declare
  v_tag text := private.search_owner_tag(p_user_id);
begin
  if coalesce(pg_catalog.cardinality(p_trigrams), 0) = 0 then
    return null;
  end if;
  return ('''' operator(pg_catalog.||) v_tag
    operator(pg_catalog.||) pg_catalog.array_to_string(p_trigrams, ''' & ''' operator(pg_catalog.||) v_tag)
    operator(pg_catalog.||) '''')::pg_catalog.tsquery;
end
$$;

-- fastupdate and the pending-list limit as 20261202000300_write_path.sql set them for the trigram
-- index (the import merges its own entries: private.leads_flush_search_index reads every GIN
-- index of leads from the catalog, so it covers this one).
create index if not exists leads_owner_search_keys_idx on public.leads
  using gin (private.lead_search_vector(user_id, name, email, phone))
  with (fastupdate = on, gin_pending_list_limit = 256);

-- ---------------------------------------------------------------------------------------------
-- Search
-- ---------------------------------------------------------------------------------------------

/** As in 20261202000200_read_path.sql (same arguments, answer, counts and walks), with the trigram
    path of a scope with owners on leads_owner_search_keys_idx: one index scan per owner in scope,
    each `keys @@ X's query and user_id = X` (owners whose tags collide share keys), then ILIKE on
    the row. An admin-wide search (every owner) reads leads_owner_search_trgm_idx as before. (For an account of a few dozen leads the planner may rather
    read them by leads_user_created_idx or leads_agent_created_idx: as cheap there.)
    - a term with a trigram: its matches collected once for the count (exact up to 10,000;
      above, 10,000 and `capped`) and the page. Bitmap scans on: a GIN index is read by bitmap only.
    - more than 10,000 matches, or a term without a trigram: private.lead_search_walk, at most
      private.search_walk_rows() leads per walk (unchanged).
    Security definer on purpose: under RLS, ILIKE (not leakproof) cannot be an index condition. It
    applies the caller's agents itself (lead_scope_agents, the rule of the policies), explicitly in
    every statement; lead_page then reads the page's rows under RLS. */
create or replace function private.lead_search_page(
  p_agent_ids text[], p_status text, p_priority text, p_search text, p_since timestamptz, p_user_id uuid,
  p_after_created timestamptz, p_after_id bigint, p_limit integer, p_offset integer, p_count boolean
) returns table (total bigint, capped boolean, ids bigint[], resume_created_at timestamptz, resume_id bigint)
language plpgsql stable security definer
set search_path = ''
set enable_bitmapscan = on
as $$
declare
  c_cap constant int := 10000;
  v_pattern text := private.substring_pattern(p_search);
  v_agents text[] := private.lead_scope_agents(p_agent_ids, p_user_id);
  v_owners uuid[];
  v_trigrams text[];
  -- A term without a line break cannot match across the breaks that join the fields, so ILIKE on
  -- the joined text is already the exact test.
  v_one_field boolean := strpos(p_search, E'\n') = 0;
  v_budget integer := private.search_walk_rows();
  v_n bigint;
  v_capped boolean := false;
  v_ids bigint[];
  w record;
begin
  -- The owners in scope: the index key. A lead's user_id is its agent's owner (leads_before_write).
  if v_agents is not null then
    v_owners := case
      when not private.admin_mode() then array[auth.uid()]
      when p_user_id is not null then array[p_user_id]
      else array(select distinct a.user_id from public.agents a where a.id = any (v_agents)) end;
  end if;
  if private.search_has_trigram(p_search) then
    v_trigrams := private.search_trigrams(p_search);
  end if;
  if cardinality(v_trigrams) > 0 then
    if v_owners is not null and cardinality(v_owners) = 1 then
      select count(*), (array_agg(m.id order by m.created_at desc, m.id desc)
                          filter (where p_after_id is null or (m.created_at, m.id) < (p_after_created, p_after_id))
                       )[p_offset + 1 : p_offset + p_limit]
        into v_n, v_ids
      from (select l.id, l.created_at from public.leads l
            where l.user_id = v_owners[1]
              and private.lead_search_vector(l.user_id, l.name, l.email, l.phone)
                  @@ private.lead_search_query(v_owners[1], v_trigrams)
              and private.lead_search_text(l.name, l.email, l.phone) ilike v_pattern
              and (v_agents is null or l.agent_id = any (v_agents))
              and (v_one_field or l.name ilike v_pattern or l.email ilike v_pattern or l.phone ilike v_pattern)
              and (p_status is null or l.status = p_status) and (p_priority is null or l.priority = p_priority)
              and (p_since is null or l.created_at >= p_since)
            limit c_cap + 1) m;
    elsif v_owners is null then
      -- Every owner (admin-wide): the trigram index without its owner column, as before.
      select count(*), (array_agg(m.id order by m.created_at desc, m.id desc)
                          filter (where p_after_id is null or (m.created_at, m.id) < (p_after_created, p_after_id))
                       )[p_offset + 1 : p_offset + p_limit]
        into v_n, v_ids
      from (select l.id, l.created_at from public.leads l
            where private.lead_search_text(l.name, l.email, l.phone) ilike v_pattern
              and (v_one_field or l.name ilike v_pattern or l.email ilike v_pattern or l.phone ilike v_pattern)
              and (p_status is null or l.status = p_status) and (p_priority is null or l.priority = p_priority)
              and (p_since is null or l.created_at >= p_since)
            limit c_cap + 1) m;
    else
      -- Several owners (admin mode over agents of several users): one index scan per owner.
      select count(*), (array_agg(m.id order by m.created_at desc, m.id desc)
                          filter (where p_after_id is null or (m.created_at, m.id) < (p_after_created, p_after_id))
                       )[p_offset + 1 : p_offset + p_limit]
        into v_n, v_ids
      from (select f.id, f.created_at
            from unnest(v_owners) o(user_id)
            cross join lateral (
              select l.id, l.created_at from public.leads l
              where l.user_id = o.user_id
                and private.lead_search_vector(l.user_id, l.name, l.email, l.phone)
                    @@ private.lead_search_query(o.user_id, v_trigrams)
                and private.lead_search_text(l.name, l.email, l.phone) ilike v_pattern
                and (v_agents is null or l.agent_id = any (v_agents))
                and (v_one_field or l.name ilike v_pattern or l.email ilike v_pattern or l.phone ilike v_pattern)
                and (p_status is null or l.status = p_status) and (p_priority is null or l.priority = p_priority)
                and (p_since is null or l.created_at >= p_since)
              limit c_cap + 1) f
            limit c_cap + 1) m;
    end if;
    if v_n <= c_cap then
      return query select case when p_count then v_n end, false, coalesce(v_ids, '{}'), null::timestamptz,
        null::bigint;
      return;
    end if;
    -- Over 10,000 matches: the count is capped; the page is a walk (matches are dense there).
    select * into w from private.lead_search_walk(v_owners, v_agents, v_pattern, p_status, p_priority, p_since,
      p_after_created, p_after_id, p_offset, p_limit, p_offset + p_limit, v_budget);
    return query select case when p_count then c_cap::bigint end, p_count, w.ids, w.resume_created_at, w.resume_id;
    return;
  end if;
  -- No trigram: walks of the newest-first index.
  if p_count and p_after_id is null then
    -- The first page: its count and its page are one walk from the newest lead.
    select * into w from private.lead_search_walk(v_owners, v_agents, v_pattern, p_status, p_priority, p_since,
      null, null, p_offset, p_limit, c_cap + 1, v_budget);
    v_n := w.hits;
    v_capped := w.hits > c_cap or w.resume_created_at is not null;
  else
    if p_count then
      select * into w from private.lead_search_walk(v_owners, v_agents, v_pattern, p_status, p_priority, p_since,
        null, null, 0, 0, c_cap + 1, v_budget);
      v_n := w.hits;
      v_capped := w.hits > c_cap or w.resume_created_at is not null;
    end if;
    select * into w from private.lead_search_walk(v_owners, v_agents, v_pattern, p_status, p_priority, p_since,
      p_after_created, p_after_id, p_offset, p_limit, p_offset + p_limit, v_budget);
  end if;
  return query select case when p_count then least(v_n, c_cap) end, v_capped, w.ids,
    -- A full page needs no resume point: the api pages on from its last row.
    case when cardinality(w.ids) < p_limit then w.resume_created_at end,
    case when cardinality(w.ids) < p_limit then w.resume_id end;
end
$$;

/** As in 20261201000200_search_speed.sql (every match, uncapped: leads.stats with a searchTerm
    counts them per status), on leads_owner_search_keys_idx, one index scan per owner in scope; an
    admin-wide search, or a term without a usable trigram, as before. */
create or replace function private.search_lead_ids(p_term text, p_agent_ids text[] default null)
returns setof bigint
language plpgsql stable security definer
set search_path = ''
as $$
declare
  v_pattern text := private.substring_pattern(p_term);
  v_agents text[] := private.lead_scope_agents(p_agent_ids, null);
  v_owners uuid[] := case when v_agents is not null then
                            array(select distinct a.user_id from public.agents a where a.id = any (v_agents)) end;
  v_trigrams text[];
begin
  if private.search_has_trigram(p_term) then
    v_trigrams := private.search_trigrams(p_term);
  end if;
  if v_owners is not null and cardinality(v_trigrams) > 0 then
    return query select l.id
      from unnest(v_owners) o(user_id)
      cross join lateral (
        select l.id from public.leads l
        where l.user_id = o.user_id
          and private.lead_search_vector(l.user_id, l.name, l.email, l.phone)
              @@ private.lead_search_query(o.user_id, v_trigrams)
          and private.lead_search_text(l.name, l.email, l.phone) ilike v_pattern
          and (v_agents is null or l.agent_id = any (v_agents))
          and (l.name ilike v_pattern or l.email ilike v_pattern or l.phone ilike v_pattern)) l;
    return;
  end if;
  if v_agents is null then
    return query select l.id from public.leads l
      where private.lead_search_text(l.name, l.email, l.phone) ilike v_pattern
        and (l.name ilike v_pattern or l.email ilike v_pattern or l.phone ilike v_pattern);
    return;
  end if;
  return query select l.id from public.leads l
    where l.user_id = any (v_owners)
      and private.lead_search_text(l.name, l.email, l.phone) ilike v_pattern
      and l.agent_id = any (v_agents)
      and (l.name ilike v_pattern or l.email ilike v_pattern or l.phone ilike v_pattern);
end
$$;

-- The key functions are immutable helpers of the index and of the definer functions above: no
-- one else calls them.
revoke execute on function private.search_owner_tag(uuid),
  private.lead_search_vector(uuid, text, text, text),
  private.search_trigrams(text),
  private.lead_search_query(uuid, text[]) from public, anon;
grant execute on function private.search_owner_tag(uuid),
  private.lead_search_vector(uuid, text, text, text),
  private.search_trigrams(text),
  private.lead_search_query(uuid, text[]) to authenticated, service_role;
