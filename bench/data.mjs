// Benchmark data, set-based: 1,000 users with ~900 leads each on one agent, one large account
// with 100,000 leads over 5 agents, and for the scale curve a 10k account (2 agents) and a 1M
// account (10 agents): 2,010,000 leads. Names, emails, statuses, priorities and created_at
// spread over a year. Idempotent: does nothing when the large account already exists.
import postgres from 'postgres';

export const BIG_USER = 'b0000000-0000-4000-8000-000000000000';
export const BIG_AGENTS = [1, 2, 3, 4, 5].map((i) => `big-agent-${i}`);
export const USERS = 1000;
export const LEADS_PER_USER = 900;
export const BIG_LEADS = 100_000;
/** The scale curve's other accounts: 10k leads over 2 agents and 1M leads over 10 agents. */
export const SMALL_USER = 'c0000000-0000-4000-8000-000000000010';
export const SMALL_AGENTS = [1, 2].map((i) => `small-agent-${i}`);
export const SMALL_LEADS = 10_000;
export const HUGE_USER = 'c0000000-0000-4000-8000-000000000011';
export const HUGE_AGENTS = Array.from({ length: 10 }, (_, i) => `huge-agent-${i + 1}`);
export const HUGE_LEADS = 1_000_000;

const FIRST = `array['James','Mary','Robert','Patricia','John','Jennifer','Michael','Linda','David','Elizabeth',
  'William','Barbara','Richard','Susan','Joseph','Jessica','Thomas','Sarah','Carlos','Maria','Wei','Aisha',
  'Kenji','Fatima','Lucas','Sofia','Noah','Elena','Omar','Priya']`;
const LAST = `array['Smith','Johnson','Williams','Brown','Jones','Garcia','Miller','Davis','Rodriguez','Martinez',
  'Hernandez','Lopez','Gonzalez','Wilson','Anderson','Thomas','Taylor','Moore','Jackson','Martin','Chen',
  'Khan','Silva','Rossi','Sato','Ali','Novak','Kowalski','Nguyen','Patel']`;

/** The columns of one generated lead numbered g; `agent` and `owner` are SQL expressions of g. */
const leadSelect = (agent, owner) => `
  select ${agent}, ${owner}, f || ' ' || l,
    lower(f) || '.' || lower(l) || g || '@' || (array['gmail.com','yahoo.com','outlook.com','example.com'])[1 + g % 4],
    '+1 ' || (200 + g % 800) || ' 555 ' || lpad((g % 10000)::text, 4, '0'),
    (array['new','new','new','contacted','contacted','qualified','converted', null])[1 + (hashint % 8)],
    (array['low','medium','medium','high'])[1 + (hashint / 8) % 4],
    now() - ((hashint % 525600) * interval '1 minute')
  from (select g, abs(hashtext(g::text)) as hashint,
               (${FIRST})[1 + abs(hashtext('f' || g)) % 30] as f,
               (${LAST})[1 + abs(hashtext('l' || g)) % 30] as l
        from generate_series(1, $n) g) s`;

export async function loadBenchData(url, log = console.log) {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    const [{ loaded }] = await sql`select exists (select 1 from public.agents where id = ${BIG_AGENTS[0]}) as loaded`;
    if (loaded) return false;
    const t0 = Date.now();
    await sql.begin(async (tx) => {
      // Building indexes once over the loaded rows is several times faster than maintaining them
      // row by row; the definitions are read back from the catalog, so they stay the migrations'.
      await tx`set local maintenance_work_mem = '512MB'`;
      // A bulk import: no per-row triggers (a million history events, duplicate checks). The
      // rows carry their user_id and version 1 themselves.
      // The rollups are rebuilt in one pass at the end.
      await tx`set local session_replication_role = replica`;
      const indexes = await tx`select indexrelid::regclass::text as name, pg_get_indexdef(indexrelid) as def
                               from pg_index where indrelid = 'public.leads'::regclass and not indisprimary`;
      for (const { name } of indexes) await tx.unsafe(`drop index ${name}`);
      await tx`insert into auth.users (id, email)
               select ('b0000000-0000-4000-8000-' || lpad(g::text, 12, '0'))::uuid, 'bench' || g || '@bench.test'
               from generate_series(0, ${USERS}) g`;
      await tx`insert into public.agents (id, user_id, name, email, created_at)
               select 'bench-agent-' || g, ('b0000000-0000-4000-8000-' || lpad(g::text, 12, '0'))::uuid,
                      'Bench agent ' || g, 'agent' || g || '@bench.test', now() - interval '400 days'
               from generate_series(1, ${USERS}) g`;
      await tx`insert into public.agents (id, user_id, name, email, max_working_leads, created_at)
               select 'big-agent-' || g, ${BIG_USER}, 'Big agent ' || g, 'big' || g || '@bench.test',
                      1000, now() - interval '400 days' + g * interval '1 day'
               from generate_series(1, 5) g`;
      // Large account first, so its lead ids form one range.
      await tx.unsafe(
        `insert into public.leads (agent_id, user_id, name, email, phone, status, priority, created_at)
         ${leadSelect(`'big-agent-' || (1 + g % 5)`, `'${BIG_USER}'::uuid`).replace('$n', String(BIG_LEADS))}`,
      );
      await tx.unsafe(
        `insert into public.leads (agent_id, user_id, name, email, phone, status, priority, created_at)
         ${
          leadSelect(
            `'bench-agent-' || (1 + g % ${USERS})`,
            `('b0000000-0000-4000-8000-' || lpad((1 + g % ${USERS})::text, 12, '0'))::uuid`,
          )
            .replace('$n', String(USERS * LEADS_PER_USER))
        }`,
      );
      await tx`insert into auth.users (id, email) values (${SMALL_USER}, 'small@bench.test'), (${HUGE_USER}, 'huge@bench.test')`;
      for (const [user, agents, n] of [[SMALL_USER, SMALL_AGENTS, SMALL_LEADS], [HUGE_USER, HUGE_AGENTS, HUGE_LEADS]]) {
        const prefix = agents[0].replace(/1$/, '');
        await tx`insert into public.agents (id, user_id, name, email, created_at)
                 select ${prefix} || g, ${user}, 'Agent ' || g, ${prefix} || g || '@bench.test', now() - interval '400 days'
                 from generate_series(1, ${agents.length}) g`;
        await tx.unsafe(
          `insert into public.leads (agent_id, user_id, name, email, phone, status, priority, created_at)
           ${leadSelect(`'${prefix}' || (1 + g % ${agents.length})`, `'${user}'::uuid`).replace('$n', String(n))}`,
        );
      }
      for (const { def } of indexes) await tx.unsafe(def);
      // The same rollup the triggers would have kept, built in one pass.
      // (Guarded so the same loader serves a checkout from before the rollups, for the baseline.)
      const [{ rollups }] = await tx`select to_regproc('private.lead_rollup_rebuild') is not null as rollups`;
      if (rollups) await tx`select private.lead_rollup_rebuild()`;
    });
    await sql`analyze`;
    log(
      `loaded ${USERS * LEADS_PER_USER + BIG_LEADS + SMALL_LEADS + HUGE_LEADS} leads in ${
        ((Date.now() - t0) / 1000).toFixed(1)
      } s`,
    );
    return true;
  } finally {
    await sql.end();
  }
}
