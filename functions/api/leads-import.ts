/**
 * `leads/import`: a CSV or JSON file of up to 10,000 leads in one transaction. Parsing, column
 * mapping and each row's field checks (the same schema as `create`) happen here; duplicate
 * matching, the agent check and the writes are one set-based call, private.import_leads.
 */
import type { ActionParams } from '../../shared/schemas.ts';
import { IMPORT_FIELDS, ImportRowFields, LIMITS } from '../../shared/schemas.ts';
import { LEAD_STATUSES } from '../../shared/rules.ts';
import { parseCsv } from '../../shared/csv.ts';
import { ApiError, validationError } from '../../shared/errors.ts';
import type { Tx } from '../../shared/db.ts';
import type { Reply, Req } from './context.ts';
import { allowBulkStatement } from './leads-bulk.ts';

type Params = ActionParams<'leads', 'import'>;
type Field = (typeof IMPORT_FIELDS)[number];

export interface RowResult {
  row: number;
  leadId: number | null;
  outcome: 'created' | 'updated' | 'skipped' | 'failed';
  code?: string;
  message?: string;
  field?: string;
}

/** A row that passed the field checks, as private.import_leads takes it. */
interface ValidRow {
  row: number;
  fields: Record<string, unknown>;
}

const FIELDS = new Set<string>(IMPORT_FIELDS);
const INTEGER_FIELDS = new Set(['conversation_id', 'primary_lead_id']);
const JSON_FIELDS = new Set(['address', 'metadata']);
const BOOLEANS: Record<string, boolean> = { true: true, yes: true, '1': true, false: false, no: false, '0': false };

/**
 * Which field each column feeds: the mapping's, else the field the column is named after (any
 * case), else none. A mapping that names an unknown field, or a column the file does not have,
 * is a 400 naming it; so are two columns feeding one field.
 */
function columnFields(
  columns: string[],
  mapping: Params['mapping'],
  checkColumns: boolean,
): { fieldOf: (column: string) => Field | null; ignored: Set<string> } {
  const mapped = mapping ?? {};
  for (const [column, field] of Object.entries(mapped)) {
    if (field !== null && !FIELDS.has(field)) {
      throw validationError(`Unknown field "${field}" in mapping`, [
        { path: `data.mapping.${column}`, message: `unknown field "${field}"; fields: ${IMPORT_FIELDS.join(', ')}` },
      ]);
    }
    if (checkColumns && !columns.includes(column)) {
      throw validationError(`No column "${column}" in the file`, [
        { path: `data.mapping.${column}`, message: `the header has no column "${column}"` },
      ]);
    }
  }
  const cache = new Map<string, Field | null>();
  const ignored = new Set<string>();
  const fieldOf = (column: string): Field | null => {
    let field = cache.get(column);
    if (field === undefined) {
      const own = Object.hasOwn(mapped, column) ? mapped[column] : column.trim().toLowerCase();
      field = own !== null && FIELDS.has(own) ? own as Field : null;
      cache.set(column, field);
      if (field === null) ignored.add(column);
    }
    return field;
  };
  if (checkColumns) {
    const feeding = new Map<Field, string>();
    for (const column of columns) {
      const field = fieldOf(column);
      if (field === null) continue;
      const before = feeding.get(field);
      if (before !== undefined) {
        throw validationError(`Columns "${before}" and "${column}" both map to ${field}`, [
          { path: `data.mapping.${column}`, message: `"${before}" already maps to ${field}` },
        ]);
      }
      feeding.set(field, column);
    }
  }
  return { fieldOf, ignored };
}

/** A CSV cell as the field's type: empty is "not given"; what does not convert is left for the check to refuse. */
function cellValue(field: Field, cell: string): unknown {
  if (INTEGER_FIELDS.has(field)) return /^\s*\d{1,16}\s*$/.test(cell) ? Number(cell) : cell;
  if (field === 'is_decision_maker') return BOOLEANS[cell.trim().toLowerCase()] ?? cell;
  if (JSON_FIELDS.has(field)) {
    try {
      return JSON.parse(cell);
    } catch {
      return cell;
    }
  }
  return cell;
}

interface Table {
  columns: string[];
  ignored: Set<string>;
  rows: { row: number; values: Record<string, unknown> }[];
}

function csvTable(p: Params): Table {
  const { header, records } = parseCsv(p.csv ?? '');
  if (records.length > LIMITS.importRows) throw tooManyRows(records.length);
  const { fieldOf, ignored } = columnFields(header, p.mapping, true);
  const fields = header.map(fieldOf);
  if (fields.every((f) => f === null)) {
    throw validationError('No column maps to a lead field: the first line must be a header row', [
      { path: 'data.csv', message: `line 1: none of ${header.slice(0, 10).join(', ')} is a field; map them` },
    ]);
  }
  const rows = records.map(({ line, cells }) => {
    const values: Record<string, unknown> = {};
    for (let i = 0; i < cells.length; i++) {
      const field = fields[i];
      if (field !== null && cells[i] !== '') values[field] = cellValue(field, cells[i]);
    }
    return { row: line, values };
  });
  return { columns: header, ignored, rows };
}

function jsonTable(p: Params): Table {
  const input = p.rows ?? [];
  if (input.length > LIMITS.importRows) throw tooManyRows(input.length);
  const { fieldOf, ignored } = columnFields([], p.mapping, false);
  const rows = input.map((object, i) => {
    const values: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(object)) {
      const field = fieldOf(key);
      if (field !== null && value !== undefined) values[field] = value;
    }
    return { row: i + 1, values };
  });
  return { columns: [], ignored, rows };
}

const tooManyRows = (n: number) =>
  new ApiError('PAYLOAD_TOO_LARGE', `The file has ${n} rows; an import takes at most ${LIMITS.importRows}`);

/** Each row checked as `create` checks its fields; the agent defaults to `data.agent_id`. */
function checkRows(table: Table, defaultAgent: string | undefined): { valid: ValidRow[]; failed: RowResult[] } {
  const valid: ValidRow[] = [];
  const failed: RowResult[] = [];
  for (const { row, values } of table.rows) {
    const checked = ImportRowFields.safeParse(values);
    if (!checked.success) {
      const issue = checked.error.issues[0];
      failed.push({
        row,
        leadId: null,
        outcome: 'failed',
        code: 'VALIDATION_ERROR',
        message: issue.message.slice(0, 300),
        field: String(issue.path[0] ?? ''),
      });
      continue;
    }
    const fields: Record<string, unknown> = checked.data;
    fields.agent_id ??= defaultAgent;
    if (fields.agent_id === undefined) {
      failed.push({
        row,
        leadId: null,
        outcome: 'failed',
        code: 'VALIDATION_ERROR',
        message: 'no agent: give an agent_id column or data.agent_id',
        field: 'agent_id',
      });
      continue;
    }
    valid.push({ row, fields });
  }
  return { valid, failed };
}

/** Two lists each ordered by row, as one. */
function byRow(a: RowResult[], b: RowResult[]): RowResult[] {
  const out: RowResult[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (j >= b.length || (i < a.length && a[i].row <= b[j].row)) out.push(a[i++]);
    else out.push(b[j++]);
  }
  return out;
}

export async function importLeads(tx: Tx, p: Params, _req: Req): Promise<Reply> {
  const table = p.format === 'csv' ? csvTable(p) : jsonTable(p);
  const { valid, failed } = checkRows(table, p.agent_id);
  const importId = crypto.randomUUID();
  let written: RowResult[] = [];
  if (valid.length > 0) {
    // The rows travel as one JSON text parameter and come back as one: no per-row round trip
    // and no per-row parsing by the driver.
    await allowBulkStatement(tx);
    // A dry run writes for real (every trigger and check runs) inside a savepoint it then rolls
    // back, so its report is exactly what the import would do.
    if (p.dryRun) await tx`savepoint import_dry_run`;
    const [row] = await tx<{ rows: string }[]>`
      select private.import_leads(${JSON.stringify(valid)}::text::jsonb, ${p.onDuplicate}, ${importId}::uuid,
                                  ${p.dryRun}, ${LEAD_STATUSES[0]})::text as rows`;
    if (p.dryRun) await tx`rollback to savepoint import_dry_run`;
    written = JSON.parse(row.rows);
  }
  const rows = byRow(written, failed);
  const count = (outcome: RowResult['outcome']) => rows.reduce((n, r) => n + (r.outcome === outcome ? 1 : 0), 0);
  return {
    data: {
      importId,
      dryRun: p.dryRun,
      created: count('created'),
      updated: count('updated'),
      skipped: count('skipped'),
      failed: count('failed'),
      columns: table.columns,
      ignoredColumns: [...table.ignored],
      rows,
    },
  };
}
