import { useState } from 'react';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import type { AgentT } from '../api.ts';
import { Empty, ErrorBox, fmtDate, Loading } from '../components.tsx';
import { adminOf, scopeOf, useSession } from '../session.tsx';
import { useAgents } from './AgentSelect.tsx';

export function Agents() {
  const s = useSession();
  const qc = useQueryClient();
  const agents = useAgents();
  const [name, setName] = useState('');
  const [email, setEmail] = useState('');
  const create = useMutation({
    mutationFn: () =>
      s.api.salesAgents.create({ name: name.trim(), ...(email.trim() ? { email: email.trim() } : {}), ...scopeOf(s) }),
    onSuccess: () => {
      setName('');
      setEmail('');
      qc.invalidateQueries({ queryKey: ['agents'] });
    },
  });

  return (
    <section aria-labelledby="agents-h">
      <h1 id="agents-h">Agents</h1>
      <form
            className="filters"
            aria-label="New agent"
            onSubmit={(e) => {
              e.preventDefault();
              create.mutate();
            }}
          >
            <label>Agent name <input value={name} onChange={(e) => setName(e.target.value)} required maxLength={200} /></label>
            <label>Agent email <input type="email" value={email} onChange={(e) => setEmail(e.target.value)} /></label>
            <button type="submit" disabled={create.isPending || !name.trim()}>Create agent</button>
          </form>
      <ErrorBox error={create.error} title="Could not create the agent" />
      <ErrorBox error={agents.error} title="Could not load agents" />
      {agents.isLoading && <Loading what="agents" />}
      {agents.waitsForUser && <Empty>Pick a user (next to Admin mode) to list their agents.</Empty>}
      {agents.data && agents.data.agents.length === 0 && <Empty>No agents yet.</Empty>}
      {agents.data && agents.data.agents.length > 0 && (
        <table aria-label="Agents">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Id</th>
              <th scope="col">Email</th>
              <th scope="col">Quota</th>
              <th scope="col">Created</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {agents.data.agents.map((a) => <AgentRow key={a.id} agent={a} />)}
          </tbody>
        </table>
      )}
    </section>
  );
}

function AgentRow({ agent }: { agent: AgentT }) {
  const s = useSession();
  const qc = useQueryClient();
  const [editing, setEditing] = useState(false);
  const [name, setName] = useState(agent.name);
  const [quota, setQuota] = useState(String(agent.max_working_leads));
  const save = useMutation({
    mutationFn: (d: { name?: string; maxWorkingLeads?: number }) =>
      s.api.salesAgents.update({ agentId: agent.id, ...adminOf(s), ...d }),
    onSuccess: () => {
      setEditing(false);
      qc.invalidateQueries({ queryKey: ['agents'] });
      qc.invalidateQueries({ queryKey: ['working'] });
    },
  });
  // Quotas are an admin's call (the api answers 403 otherwise), so only admin mode offers it.
  const canSetQuota = s.adminMode;
  return (
    <tr>
      <td>
        {editing
          ? (
            <form
              className="inline"
              onSubmit={(e) => {
                e.preventDefault();
                save.mutate({ name: name.trim() });
              }}
            >
              <label>
                New name for {agent.name}{' '}
                <input value={name} onChange={(e) => setName(e.target.value)} required maxLength={200} />
              </label>
              <button type="submit" disabled={save.isPending || !name.trim()}>Save name</button>
              <button type="button" onClick={() => setEditing(false)}>Cancel</button>
            </form>
          )
          : agent.name}
        <ErrorBox error={save.error} title="Could not save the agent" />
      </td>
      <td><code>{agent.id}</code></td>
      <td>{agent.email ?? '—'}</td>
      <td>
        {canSetQuota
          ? (
            <form
              className="inline"
              onSubmit={(e) => {
                e.preventDefault();
                save.mutate({ maxWorkingLeads: Number(quota) });
              }}
            >
              <label>
                Quota of {agent.name}{' '}
                <input type="number" min={0} max={10000} value={quota} onChange={(e) => setQuota(e.target.value)} />
              </label>
              <button type="submit" disabled={save.isPending}>Set quota</button>
            </form>
          )
          : agent.max_working_leads}
      </td>
      <td>{fmtDate(agent.created_at)}</td>
      <td>
        {!editing && <button onClick={() => setEditing(true)} aria-label={`Rename ${agent.name}`}>Rename</button>}
      </td>
    </tr>
  );
}
