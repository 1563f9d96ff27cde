import { useQuery } from '@tanstack/react-query';
import { Select } from '../components.tsx';
import { scopeOf, useSession } from '../session.tsx';

/** The agents the caller may use (sales-agents/list, scoped like leads in admin mode). */
export function useAgents() {
  const s = useSession();
  const scope = scopeOf(s);
  return useQuery({ queryKey: ['agents', scope], queryFn: () => s.api.salesAgents.list(scope) });
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
      {allowAll && <option value="">All agents</option>}
      {!allowAll && !value && <option value="">Choose an agent</option>}
      {agents.data?.agents.map((a) => <option key={a.id} value={a.id}>{a.name}</option>)}
    </Select>
  );
}
