import { useId } from 'react';
import { ApiError } from './api.ts';

/** Every failure shows the contract's code, its message and the request id to quote to support. */
export function ErrorBox({ error, title }: { error: unknown; title?: string }) {
  if (!error) return null;
  // Not from the api (Supabase Auth, the demo-session fetch): its own code if it has one.
  const own = (error as { code?: unknown })?.code;
  const e = error instanceof ApiError
    ? error
    : new ApiError(typeof own === 'string' ? own : 'CLIENT_ERROR', String((error as Error)?.message ?? error));
  return (
    <div role="alert" className="error">
      {title && <strong>{title}: </strong>}
      <code className="error-code">{e.code}</code> <span className="error-message">{e.message}</span>
      <div className="error-request">Request id: <code>{e.requestId ?? 'none (no response)'}</code></div>
    </div>
  );
}

export const Loading = ({ what }: { what: string }) => (
  <p role="status" className="muted">Loading {what}…</p>
);

export const Empty = ({ children }: { children: React.ReactNode }) => <p className="empty">{children}</p>;

export const fmtDate = (iso: string | null | undefined) => (iso ? new Date(iso).toLocaleString() : '—');

/**
 * A select with its own label element: a select nested in its label would add the chosen
 * option's text to the label's name ("Agent All agents"), which screen readers read twice.
 */
export function Select(
  { label, value, onChange, children, disabled }: {
    label: string;
    value: string;
    onChange: (v: string) => void;
    children: React.ReactNode;
    disabled?: boolean;
  },
) {
  const id = useId();
  return (
    <span className="field">
      <label htmlFor={id}>{label}</label>{' '}
      <select id={id} value={value} onChange={(e) => onChange(e.target.value)} disabled={disabled}>{children}</select>
    </span>
  );
}

export const fmtDay = (iso: string | null | undefined) => (iso ? new Date(iso).toLocaleDateString() : '—');
