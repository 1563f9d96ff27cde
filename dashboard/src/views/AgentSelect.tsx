import { useQuery } from '@tanstack/react-query';
import { Select } from '../components.tsx';
import { scopeOf, useSession } from '../session.tsx';

/**
 * The agents the caller may use (sales-agents/list, scoped like leads in admin mode). The list has
 * no paging, so in admin mode it waits for a picked user rather than load every agent there is.
 */
export function useAgents() {
  const s = useSession();
  const scope = scopeOf(s);
  const waitsForUser = s.adminMode && !s.asUserId;
  const query = useQuery({
    queryKey: ['agents', scope],
    queryFn: () => s.api.salesAgents.list(scope),
    enabled: !waitsForUser,
  });
  return { ...query, waitsForUser };
}

export function AgentSelect(
  { label, value, onChange, allowAll = true }: {
    label: string;
    value: string;
    onChange: (v: string) => void;
    allowAll?: boolean;
  },
) {
  const agents = useAgents();
  return (
    <Select label={label} value={value} onChange={onChange} disabled={agents.isLoading}>
      {agents.waitsForUser && <option value="">Pick a user to list agents</option>}
      {allowAll && !agents.waitsForUser && <option value="">All agents</option>}
      {!allowAll && !value && !agents.waitsForUser && <option value="">Choose an agent</option>}
      {agents.data?.agents.map((a) => <option key={a.id} value={a.id}>{a.name}</option>)}
    </Select>
  );
}
