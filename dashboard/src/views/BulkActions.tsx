import { useEffect, useState } from 'react';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { type Api, ApiError } from '../api.ts';
import { ErrorBox, Select } from '../components.tsx';
import { scopeOf, useSession } from '../session.tsx';
import { LEAD_PRIORITIES, LEAD_STATUSES } from '../../../shared/rules.ts';
import { LIMITS } from '../../../shared/schemas.ts';
import { AgentSelect } from './AgentSelect.tsx';

type Filters = NonNullable<Parameters<Api['leads']['list']>[0]>['filters'];
type UpdateSet = Parameters<Api['leads']['bulkUpdate']>[0]['set'];
type Outcome = { verb: string; done: number; failed: { id: number; code: string; message: string }[] };

const n = (k: number) => k.toLocaleString('en-US');
const leads = (k: number) => `${n(k)} lead${k === 1 ? '' : 's'}`;

/**
 * Status, priority, agent or delete for the selected rows, or for every lead matching the filters.
 * "All matching" sends the filters with the count the person saw (expectCount): if the leads
 * changed meanwhile the api answers 409 CONFLICT with the count now, and nothing changes.
 */
export function BulkActions(
  { selected, count, countCapped, filters, onDone }: {
    selected: number[];
    count: number | null;
    countCapped: boolean;
    filters: Filters;
    onDone: () => void;
  },
) {
  const s = useSession();
  const qc = useQueryClient();
  const [target, setTarget] = useState<'selected' | 'matching'>('selected');
  const [status, setStatus] = useState('');
  const [priority, setPriority] = useState('');
  const [agent, setAgent] = useState('');
  const [confirming, setConfirming] = useState(false);
  // "All matching" needs an exact count the api will accept.
  const canMatch = count !== null && !countCapped && count > 0 && count <= LIMITS.bulkMatches;
  useEffect(() => {
    if (target === 'matching' && !canMatch) setTarget('selected');
  }, [target, canMatch]);
  const size = target === 'selected' ? selected.length : count ?? 0;
  type Selection = { ids: number[] } | { filters: Filters; expectCount: number };
  const selection: Selection = target === 'selected' ? { ids: selected } : { filters, expectCount: count ?? 0 };

  const settled = () => {
    for (const key of ['leads', 'stats', 'working']) qc.invalidateQueries({ queryKey: [key] });
  };
  const run = useMutation({
    mutationFn: async ({ what, selection }: { what: { set: UpdateSet } | 'delete'; selection: Selection }) => {
      if (what === 'delete') {
        const r = await s.api.leads.bulkDelete({ ...selection, ...scopeOf(s) });
        return { verb: 'Deleted', done: r.deleted, failed: r.failed } as Outcome;
      }
      const r = await s.api.leads.bulkUpdate({ ...selection, set: what.set, ...scopeOf(s) });
      return { verb: 'Updated', done: r.updated, failed: r.failed } as Outcome;
    },
    onSuccess: () => {
      setConfirming(false);
      onDone();
    },
    // A stale count changed nothing, but the list and its count are worth reading again.
    onSettled: settled,
  });
  const stale = run.error instanceof ApiError && run.error.code === 'CONFLICT'
    ? (run.error.details as { count?: number } | undefined)?.count
    : undefined;
  const busy = run.isPending || size === 0;
  const go = (what: { set: UpdateSet } | 'delete') => run.mutate({ what, selection });
  // The count sent, not the one on screen now: the list is read again after a conflict.
  const sent = run.variables?.selection;
  const sawCount = sent && 'expectCount' in sent ? sent.expectCount : 0;

  return (
    <div className="bulk" aria-label="Bulk actions" role="group">
      <fieldset>
        <legend>Apply to</legend>
        <label>
          <input
            type="radio"
            name="bulk-target"
            checked={target === 'selected'}
            onChange={() => setTarget('selected')}
          />{' '}
          Selected rows ({n(selected.length)})
        </label>
        <label>
          <input
            type="radio"
            name="bulk-target"
            checked={target === 'matching'}
            disabled={!canMatch}
            onChange={() => setTarget('matching')}
          />{' '}
          {count === null ? 'All matching' : `All ${n(count)}${countCapped ? '+' : ''} matching`}
        </label>
      </fieldset>
      <div className="toolbar">
        <Select label="Set status" value={status} onChange={setStatus}>
          <option value="">Choose a status</option>
          {LEAD_STATUSES.map((v) => <option key={v}>{v}</option>)}
        </Select>
        <button disabled={busy || !status} onClick={() => go({ set: { status } as UpdateSet })}>
          Set status of {leads(size)}
        </button>
        <Select label="Set priority" value={priority} onChange={setPriority}>
          <option value="">Choose a priority</option>
          {LEAD_PRIORITIES.map((v) => <option key={v}>{v}</option>)}
        </Select>
        <button disabled={busy || !priority} onClick={() => go({ set: { priority } as UpdateSet })}>
          Set priority of {leads(size)}
        </button>
        <AgentSelect label="Move to agent" value={agent} onChange={setAgent} allowAll={false} />
        <button disabled={busy || !agent} onClick={() => go({ set: { agent_id: agent } })}>
          Move {leads(size)}
        </button>
        <button className="danger-btn" disabled={busy} onClick={() => setConfirming(true)}>
          Delete {leads(size)}…
        </button>
      </div>
      {confirming && (
        <div role="alertdialog" aria-label="Confirm bulk delete" className="confirm">
          <p>
            Delete {leads(size)}
            {target === 'matching' ? ' matching the current filters' : ''}? This cannot be undone.
          </p>
          <button className="danger-btn" disabled={run.isPending} onClick={() => go('delete')}>
            Delete {leads(size)}
          </button>{' '}
          <button onClick={() => setConfirming(false)}>Cancel</button>
        </div>
      )}
      {run.isPending && <p role="status">Working on {leads(size)}…</p>}
      {stale !== undefined && (
        <p role="alert" className="error" data-testid="stale-count">
          <strong>The matching leads changed:</strong> you saw {leads(sawCount)}, {n(stale)} match now. Nothing was
          changed; check the list and try again.
        </p>
      )}
      <ErrorBox error={run.error} title="Bulk action failed" />
      {run.data && (
        <div role="status" className="batch-result">
          {run.data.verb} {leads(run.data.done)}, failed {n(run.data.failed.length)}.
          {run.data.failed.length > 0 && (
            <ul aria-label="Failed leads">
              {run.data.failed.map((f) => (
                <li key={f.id}>
                  Lead {f.id}: <code>{f.code}</code> {f.message}
                </li>
              ))}
            </ul>
          )}
        </div>
      )}
    </div>
  );
}
