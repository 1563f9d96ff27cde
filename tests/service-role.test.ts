// The service key works: a backend connected as `service_role` (which bypasses RLS, as Supabase sets
// it up) inserts, updates and deletes leads and agents and adds working leads, with every trigger
// still applied: user_id stamped from the agent, version, history with a null actor, rollups, quota.
import type postgres from 'postgres';
import { beforeAll, describe, expect, it } from 'vitest';
import { adminSql, createUser, type TestUser } from './helpers.ts';

let owner: TestUser;
beforeAll(async () => {
  owner = await createUser();
});

/** Runs `fn` as service_role with the claims PostgREST sets for the service key, and commits. */
const asService = <T>(fn: (sql: postgres.TransactionSql) => Promise<T>) =>
  adminSql.begin(async (sql) => {
    await sql`select set_config('role', 'service_role', true),
                     set_config('request.jwt.claims', '{"role":"service_role"}', true)`;
    return await fn(sql);
  }) as Promise<T>;

const totalOf = async (agent: string) => {
  const [{ t }] = await adminSql`select coalesce(sum(n), 0)::int as t from private.lead_rollup
                                 where agent_id = ${agent} and day is null`;
  return t;
};

describe('service_role', () => {
  it('writes agents and leads with every trigger applied', async () => {
    const agent = `svc-${owner.id.slice(0, 8)}`;
    await asService((sql) =>
      sql`insert into public.agents (id, user_id, name, max_working_leads) values (${agent}, ${owner.id}, 'Svc', 1)`
    );
    const [lead] = await asService((sql) =>
      sql`insert into public.leads (agent_id, name, status, version) values (${agent}, 'Imported', 'new', 42)
          returning id, user_id, version`
    );
    expect([lead.user_id, lead.version]).toEqual([owner.id, 1]);
    const [updated] = await asService((sql) =>
      sql`update public.leads set status = 'qualified' where id = ${lead.id} returning version`
    );
    expect(updated.version).toBe(2);
    expect(await totalOf(agent)).toBe(1);

    const [second] = await asService((sql) =>
      sql`insert into public.leads (agent_id, name) values (${agent}, 'Second') returning id`
    );
    const [{ result }] = await asService((sql) =>
      sql`select public.add_working_leads(${agent}, ${
        sql.array([Number(lead.id), Number(second.id)])
      }::bigint[]) as result`
    );
    expect(result.added).toEqual([Number(lead.id)]);
    expect(result.failed).toEqual([{
      leadId: Number(second.id),
      code: 'QUOTA_EXCEEDED',
      message: 'Working set is full',
    }]);
    // The quota trigger holds for a plain insert too.
    const direct = await asService((sql) =>
      sql`insert into public.working_leads (agent_id, lead_id) values (${agent}, ${second.id})`
    ).then(() => 'ok', (e) => e.code);
    expect(direct).toBe('LA409');

    const events = await adminSql`select kind, actor_id from public.lead_events where lead_id = ${lead.id} order by id`;
    expect(events.map((e) => [e.kind, e.actor_id])).toEqual([
      ['created', null],
      ['updated', null],
      ['working_added', null],
    ]);
    await asService((sql) => sql`update public.agents set name = 'Renamed' where id = ${agent}`);
    await asService((sql) => sql`delete from public.leads where agent_id = ${agent}`);
    expect(await totalOf(agent)).toBe(0);
    // Deleting an agent as the service role keeps the cascade (no user session: no LC409).
    await asService((sql) => sql`delete from public.agents where id = ${agent}`);
    const [{ n }] = await adminSql`select count(*)::int as n from public.agents where id = ${agent}`;
    expect(n).toBe(0);
  });

  it('cannot forge history or truncate past the triggers', async () => {
    const forge = await asService((sql) => sql`insert into public.lead_events (lead_id, kind) values (1, 'created')`)
      .then(() => 'ok', (e) => e.code);
    expect(forge).toBe('42501');
    const truncate = await asService((sql) => sql`truncate public.leads`).then(() => 'ok', (e) => e.code);
    expect(truncate).toBe('42501');
  });
});
