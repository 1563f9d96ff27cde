import { useEffect, useState } from 'react';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import type { Api } from '../api.ts';
import { ErrorBox, Select } from '../components.tsx';
import { adminOf, useSession } from '../session.tsx';
import { parseCsv } from '../../../shared/csv.ts';
import { IMPORT_DUPLICATE_MODES, IMPORT_FIELDS } from '../../../shared/schemas.ts';
import { AgentSelect } from './AgentSelect.tsx';

type ImportInput = Parameters<Api['leads']['import']>[0];
type ImportOutput = Awaited<ReturnType<Api['leads']['import']>>;

/** The file as read in the browser: its text, and its header and row count from the api's own parser. */
interface Picked {
  name: string;
  text: string;
  header: string[];
  rows: number;
}

/** The words for each of the api's duplicate modes (a mode added there fails to compile here). */
const DUPLICATE_CHOICES: Record<(typeof IMPORT_DUPLICATE_MODES)[number], string> = {
  skip: 'skip the row',
  update: 'update that lead',
  create: 'create another lead',
};

/** What a column maps to before anyone changes it: the api's own rule (a field's name, any case). */
const defaultField = (column: string): string => {
  const own = column.trim().toLowerCase();
  return (IMPORT_FIELDS as readonly string[]).includes(own) ? own : '';
};

/**
 * The import wizard: a CSV file, its columns mapped to lead fields, a dry run listing every row
 * that would fail, then the import itself. The header is read with shared/csv.ts, the parser the
 * api runs, so the columns offered and a malformed file's line number are the ones the api sees.
 */
export function Import() {
  const s = useSession();
  const qc = useQueryClient();
  const [picked, setPicked] = useState<Picked | null>(null);
  const [parseError, setParseError] = useState<unknown>(null);
  const [mapping, setMapping] = useState<Record<string, string>>({});
  const [agentId, setAgentId] = useState('');
  const [onDuplicate, setOnDuplicate] = useState<(typeof IMPORT_DUPLICATE_MODES)[number]>('skip');

  const input = (dryRun: boolean): ImportInput => ({
    format: 'csv',
    csv: picked!.text,
    // Every column named: an ignored one is null, so the api maps nothing the person did not see.
    mapping: Object.fromEntries(picked!.header.map((c) => [c, mapping[c] || null])),
    ...(agentId ? { agent_id: agentId } : {}),
    onDuplicate,
    dryRun,
    ...adminOf(s),
  });
  const dry = useMutation({ mutationFn: () => s.api.leads.import(input(true)) });
  const run = useMutation({
    mutationFn: () => s.api.leads.import(input(false)),
    onSuccess: () => {
      qc.invalidateQueries({ queryKey: ['leads'] });
      qc.invalidateQueries({ queryKey: ['stats'] });
    },
  });
  // A dry run answers for the file, mapping and options it ran with: any change asks for a new one.
  const settings = JSON.stringify([picked?.name, picked?.text.length, mapping, agentId, onDuplicate]);
  useEffect(() => {
    dry.reset();
    run.reset();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [settings]);

  const choose = async (file: File | undefined) => {
    setPicked(null);
    setParseError(null);
    if (!file) return;
    const text = await file.text();
    try {
      const table = parseCsv(text);
      setPicked({ name: file.name, text, header: table.header, rows: table.records.length });
      setMapping(Object.fromEntries(table.header.map((c) => [c, defaultField(c)])));
    } catch (err) {
      setParseError(err);
    }
  };

  const mappedCount = picked ? picked.header.filter((c) => mapping[c]).length : 0;
  const fieldTwice = picked && new Set(picked.header.map((c) => mapping[c]).filter(Boolean)).size < mappedCount;

  return (
    <section aria-labelledby="import-h" className="wizard">
      <h1 id="import-h">Import leads</h1>

      <section aria-labelledby="step-file" className="step">
        <h2 id="step-file">1. Choose a CSV file</h2>
        <p className="muted">
          A header row first; fields separated by <code>,</code> or <code>;</code>; UTF-8. Up to 10,000 rows.
        </p>
        <label>
          CSV file <input type="file" accept=".csv,text/csv" onChange={(e) => choose(e.target.files?.[0])} />
        </label>
        <ErrorBox error={parseError} title="The file cannot be imported" />
        {picked && (
          <p role="status">
            {picked.name}: {picked.header.length} columns, {picked.rows.toLocaleString('en-US')} rows.
          </p>
        )}
      </section>

      {picked && (
        <section aria-labelledby="step-map" className="step">
          <h2 id="step-map">2. Map columns to lead fields</h2>
          <table aria-label="Column mapping" className="narrow">
            <thead>
              <tr>
                <th scope="col">Column in the file</th>
                <th scope="col">Lead field</th>
              </tr>
            </thead>
            <tbody>
              {picked.header.map((c) => (
                <tr key={c}>
                  <td>{c}</td>
                  <td>
                    <Select
                      label={`Field for column ${c}`}
                      value={mapping[c] ?? ''}
                      onChange={(v) => setMapping((m) => ({ ...m, [c]: v }))}
                    >
                      <option value="">(ignore)</option>
                      {IMPORT_FIELDS.map((f) => <option key={f} value={f}>{f}</option>)}
                    </Select>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          {fieldTwice && <p role="alert" className="error">Two columns map to the same field: pick one.</p>}
          <div className="filters">
            <AgentSelect label="Agent for rows without one" value={agentId} onChange={setAgentId} allowAll={false} />
            <Select
              label="When the person is already a lead"
              value={onDuplicate}
              onChange={(v) => setOnDuplicate(v as typeof onDuplicate)}
            >
              {IMPORT_DUPLICATE_MODES.map((m) => <option key={m} value={m}>{DUPLICATE_CHOICES[m]}</option>)}
            </Select>
          </div>
        </section>
      )}

      {picked && (
        <section aria-labelledby="step-dry" className="step">
          <h2 id="step-dry">3. Dry run</h2>
          <p className="muted">Checks every row exactly as the import would, and writes nothing.</p>
          <button
            disabled={mappedCount === 0 || Boolean(fieldTwice) || dry.isPending || run.isPending}
            onClick={() => dry.mutate()}
          >
            Dry run
          </button>
          {dry.isPending && <Working what={`Checking ${picked.rows.toLocaleString('en-US')} rows…`} />}
          <ErrorBox error={dry.error} title="Dry run failed" />
          {dry.data && <Report result={dry.data} label="Dry run result" />}
        </section>
      )}

      {dry.data && (
        <section aria-labelledby="step-run" className="step">
          <h2 id="step-run">4. Import</h2>
          <p className="muted">
            {dry.data.failed === 0
              ? 'Every row passed the dry run.'
              : dry.data.failed === 1
              ? 'The failing row is left out; the others go in.'
              : `The ${dry.data.failed.toLocaleString('en-US')} failing rows are left out; the others go in.`}
          </p>
          <button disabled={run.isPending || run.isSuccess} onClick={() => run.mutate()}>
            Import {picked!.rows.toLocaleString('en-US')} rows
          </button>
          {run.isPending && <Working what={`Importing ${picked!.rows.toLocaleString('en-US')} rows…`} />}
          <ErrorBox error={run.error} title="Import failed, nothing was written" />
          {run.data && <Report result={run.data} label="Import summary" />}
        </section>
      )}
    </section>
  );
}

/**
 * An import is one request and one transaction, so there is no row count to report on the way:
 * an indeterminate bar with the time it has taken so far.
 */
function Working({ what }: { what: string }) {
  const [seconds, setSeconds] = useState(0);
  useEffect(() => {
    const t = setInterval(() => setSeconds((n) => n + 1), 1000);
    return () => clearInterval(t);
  }, []);
  return (
    <p role="status" className="gauge">
      <progress aria-label={what} /> {what} {seconds > 0 && `${seconds} s`}
    </p>
  );
}

function Report({ result, label }: { result: ImportOutput; label: string }) {
  const failed = result.rows.filter((r) => r.outcome === 'failed');
  const verb = result.dryRun ? 'would be ' : '';
  return (
    <div className="batch-result" role="region" aria-label={label}>
      <p data-testid={result.dryRun ? 'dry-summary' : 'import-summary'}>
        {result.dryRun ? 'Dry run: ' : 'Imported: '}
        {result.created} {verb}created, {result.updated} {verb}updated, {result.skipped} {verb}skipped,{' '}
        {result.failed} failed.
      </p>
      {result.ignoredColumns.length > 0 && (
        <p className="muted">Ignored columns: {result.ignoredColumns.join(', ')}</p>
      )}
      {failed.length > 0 && (
        <table aria-label={result.dryRun ? 'Rows that would fail' : 'Rows that failed'}>
          <thead>
            <tr>
              <th scope="col">Row</th>
              <th scope="col">Code</th>
              <th scope="col">Field</th>
              <th scope="col">Message</th>
            </tr>
          </thead>
          <tbody>
            {failed.map((r) => (
              <tr key={r.row}>
                <td>{r.row}</td>
                <td><code>{r.code}</code></td>
                <td>{r.field ?? '—'}</td>
                <td>{r.message}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}
