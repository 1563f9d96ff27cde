// Type tests: the client's types come from the zod schemas, so a wrong payload or a misspelled
// filter does not compile. tests/typecheck.test.ts (and `npm run check`) run tsc, which fails on
// any expect-error directive below that is not an error; the expectTypeOf lines pin the shapes.
import { describe, expectTypeOf, it } from 'vitest';
import type { ApiClient } from '../shared/client.ts';

// Never called: these functions exist to be type-checked.
declare const client: ApiClient;

function wrongPayloads() {
  // @ts-expect-error misspelled filter
  client.leads.list({ filters: { serchTerm: 'x' } });
  // @ts-expect-error status is not a stats filter
  client.leads.stats({ filters: { status: 'new' } });
  // @ts-expect-error not a status
  client.leads.list({ filters: { status: 'won' } });
  // @ts-expect-error limit is a number
  client.leads.list({ limit: '25' });
  // @ts-expect-error count is "exact" or "none"
  client.leads.list({ count: 'estimated' });
  // @ts-expect-error agent_id is required to create
  client.leads.create({ name: 'x' });
  // @ts-expect-error unknown lead field
  client.leads.update(1, { nickname: 'x' });
  // @ts-expect-error muted is required
  client.workingLeads.mute({ leadId: 1 });
  // @ts-expect-error leadId and leadIds together
  client.workingLeads.add({ leadId: 1, leadIds: [2] });
  // @ts-expect-error by-lead needs a leadId
  client.salesAgents.byLead({});
  // @ts-expect-error an agent needs a name
  client.salesAgents.create({ email: 'a@b.c' });
  // @ts-expect-error update names the agent
  client.salesAgents.update({ name: 'x' });
  // @ts-expect-error maxWorkingLeads is a number
  client.salesAgents.update({ agentId: 'a', maxWorkingLeads: '5' });
  // @ts-expect-error users/list limit is a number
  client.users.list({ limit: '5' });
  // @ts-expect-error not a duplicate mode
  client.leads.create({ agent_id: 'a', onDuplicate: 'merge' });
  // @ts-expect-error ifVersion is a number
  client.leads.update(1, { name: 'x', ifVersion: '3' });
  // @ts-expect-error a cursor is the string nextCursor
  client.leads.history(1, { cursor: 3 });
  // @ts-expect-error no such action
  client.invoke('leads', 'archive');
  // @ts-expect-error no such resource
  client.invoke('deals', 'list');
}

describe('client types', () => {
  it('infers request and response shapes from the schemas', () => {
    expectTypeOf(wrongPayloads).toBeFunction();
    expectTypeOf<ApiClient['leads']['get']>().returns.resolves.toHaveProperty('lead');
    expectTypeOf<Awaited<ReturnType<ApiClient['leads']['get']>>['lead']['id']>().toEqualTypeOf<number>();
    expectTypeOf<Awaited<ReturnType<ApiClient['leads']['list']>>['leads'][number]>().not.toHaveProperty('agent');
    expectTypeOf<Awaited<ReturnType<ApiClient['leads']['list']>>['nextCursor']>().toEqualTypeOf<string | null>();
    expectTypeOf<Awaited<ReturnType<ApiClient['leads']['all']>>['count']>().toEqualTypeOf<number | null>();
    expectTypeOf<Awaited<ReturnType<ApiClient['leads']['all']>>['leads'][number]['agent']['id']>()
      .toEqualTypeOf<string>();
    expectTypeOf<Awaited<ReturnType<ApiClient['salesAgents']['quota']>>>().toEqualTypeOf<
      { maxWorkingLeads: number; currentWorkingLeads: number; remainingWorkingLeads: number }
    >();
    expectTypeOf<Awaited<ReturnType<ApiClient['salesAgents']['create']>>['agent']['max_working_leads']>()
      .toEqualTypeOf<number>();
    expectTypeOf<Awaited<ReturnType<ApiClient['salesAgents']['delete']>>>().toEqualTypeOf<
      { agentId: string; deleted: true }
    >();
    expectTypeOf<Awaited<ReturnType<ApiClient['users']['list']>>>().toEqualTypeOf<{
      users: { id: string; email: string | null; agentCount: number; leadCount: number }[];
      nextCursor: string | null;
    }>();
    type Add = ApiClient['workingLeads']['add'];
    const one = (add: Add) => add({ leadId: 1 });
    const many = (add: Add) => add({ leadIds: [1] });
    expectTypeOf(one).returns.resolves.toHaveProperty('workingLead');
    expectTypeOf(many).returns.resolves.toHaveProperty('alreadyWorking');
    expectTypeOf<Awaited<ReturnType<ApiClient['leads']['get']>>['lead']['version']>().toEqualTypeOf<number>();
    expectTypeOf<Awaited<ReturnType<ApiClient['leads']['list']>>['leads'][number]['version']>()
      .toEqualTypeOf<number>();
    type History = Awaited<ReturnType<ApiClient['leads']['history']>>;
    expectTypeOf<History['nextCursor']>().toEqualTypeOf<string | null>();
    expectTypeOf<History['events'][number]['kind']>().toEqualTypeOf<
      'created' | 'updated' | 'deleted' | 'working_added' | 'working_removed' | 'muted' | 'unmuted'
    >();
    // A create answers a new lead, or under onDuplicate "return" the existing one and duplicate: true.
    expectTypeOf<Awaited<ReturnType<ApiClient['leads']['create']>>>().toEqualTypeOf<
      { lead: Awaited<ReturnType<ApiClient['leads']['get']>>['lead'] } | {
        lead: Awaited<ReturnType<ApiClient['leads']['get']>>['lead'];
        duplicate: true;
      }
    >();
    expectTypeOf<Parameters<ApiClient['leads']['list']>[0]>().toEqualTypeOf<
      Parameters<ApiClient['leads']['all']>[0]
    >();
  });
});
