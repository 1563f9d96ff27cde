/**
 * The generated parts of docs/api.md: the action reference (one block per entry of ACTIONS: its
 * `id`, success status, whether it is a write, every `data` field with its type and bounds, the
 * answer's shape and an example), the value sets of shared/rules.ts, the size limits and the error
 * codes. `npm run docs` writes them between `<!-- generated:NAME -->` markers; tests/docs.test.ts
 * fails when the checked-in page differs. The prose around them is written by hand.
 */
import { z } from 'zod';
import { ERROR_STATUS } from '../shared/errors.ts';
import { MAX_OPAQUE_LENGTH } from '../shared/opaque.ts';
import { EXAMPLES } from '../shared/openapi.ts';
import * as rules from '../shared/rules.ts';
import * as S from '../shared/schemas.ts';

type Json = Record<string, unknown> & {
  type?: string | string[];
  properties?: Record<string, Json>;
  required?: string[];
  items?: Json;
  anyOf?: Json[];
  oneOf?: Json[];
  enum?: unknown[];
  const?: unknown;
  default?: unknown;
  description?: string;
  additionalProperties?: unknown;
};

const toJson = (schema: z.ZodType, io: 'input' | 'output'): Json => {
  const { $schema: _, ...rest } = z.toJSONSchema(schema, { io, target: 'draft-2020-12', unrepresentable: 'any' });
  return rest as Json;
};

/** Shapes that answers share: shown by name in the reference and described once under "Shapes". */
const SHAPES: [string, z.ZodType][] = [
  ['Lead', S.Lead],
  ['LeadSummary', S.LeadSummary],
  ['WorkingLead', S.WorkingLead],
  ['LeadEvent', S.LeadEvent],
  ['Agent', S.Agent],
  ['Quota', S.Quota],
  ['UserSummary', S.UserSummary],
  ['AuditEntry', S.AuditEntry],
];
const shapeNames = new Map(SHAPES.map(([n, s]) => [JSON.stringify(toJson(s, 'output')), n]));

const cell = (s: string) => s.replaceAll('|', '\\|').replaceAll('\n', ' ');
const code = (s: string) => '`' + s + '`';

/** A short type text for a JSON schema: `string`, `integer[]`, `"a" | "b"`, `Lead`, `{ a, b }`. */
function typeText(s: Json, named = true): string {
  if (named) {
    const name = shapeNames.get(JSON.stringify(s));
    if (name) return name;
  }
  if ('const' in s) return JSON.stringify(s.const);
  if (s.enum) return s.enum.map((v) => JSON.stringify(v)).join(' | ');
  const alts = s.anyOf ?? s.oneOf;
  if (alts) return alts.map((a) => typeText(a)).join(' | ');
  const t = s.type;
  if (Array.isArray(t)) return t.join(' | ');
  if (t === 'array') return s.items ? `${wrap(typeText(s.items))}[]` : 'array';
  if (t === 'object') {
    if (!s.properties) return 'object';
    const req = new Set(s.required ?? []);
    return `{ ${
      Object.entries(s.properties).map(([k, v]) => `${k}${req.has(k) ? '' : '?'}: ${typeText(v)}`).join(', ')
    } }`;
  }
  if (t === 'string' && s.format === 'date-time') return 'timestamp';
  return t ?? 'any';
}
const wrap = (t: string) => (t.includes(' | ') ? `(${t})` : t);

/** Bounds and notes of one input field, from its JSON schema. */
function notes(s: Json): string {
  const parts: string[] = [];
  const alts = s.anyOf ?? s.oneOf;
  const base = alts?.find((a) => a.type !== 'null') ?? s;
  const n = (k: string) => base[k] as number | undefined;
  if (n('minimum') !== undefined && n('maximum') !== undefined) parts.push(`${n('minimum')}..${n('maximum')}`);
  else if (n('minimum') !== undefined) parts.push(`≥ ${n('minimum')}`);
  else if (n('maximum') !== undefined) parts.push(`≤ ${n('maximum')}`);
  if (n('exclusiveMinimum') !== undefined) parts.push(`> ${n('exclusiveMinimum')}`);
  if (n('minLength') === 1) parts.push('not empty');
  else if (n('minLength') !== undefined && n('minLength')! > 1) parts.push(`at least ${n('minLength')} characters`);
  if (n('maxLength') !== undefined) parts.push(`at most ${n('maxLength')} characters`);
  if (n('minItems') !== undefined) parts.push(`at least ${n('minItems')} items`);
  if (n('maxItems') !== undefined) parts.push(`at most ${n('maxItems')} items`);
  if (base.format && base.format !== 'date-time') parts.push(String(base.format));
  if (s.default !== undefined) parts.push(`default ${code(JSON.stringify(s.default))}`);
  if (s.description) parts.push(s.description);
  return parts.join('; ');
}

/** One row per `data` field; an object field (`filters`) adds a row per member. */
function fieldRows(s: Json, prefix = ''): string[] {
  const req = new Set(s.required ?? []);
  return Object.entries(s.properties ?? {}).flatMap(([k, v]) => {
    const name = prefix + k;
    const row = `| ${code(name)} | ${cell(v.properties ? 'object' : typeText(v, false))} | ${
      req.has(k) ? 'yes' : ''
    } | ${cell(notes(v))} |`;
    return v.properties ? [row, ...fieldRows(v, `${name}.`)] : [row];
  });
}

function actionBlock(resource: string, action: string, spec: S.ActionSpec): string {
  const input = toJson(spec.data, 'input');
  const answer = toJson(spec.response, 'output');
  const example = (EXAMPLES as Record<string, Record<string, object>>)[resource][action];
  const rows = fieldRows(input);
  const lines = [
    `### ${code(resource)} / ${code(action)}`,
    '',
    `${spec.summary}.`,
    '',
    `- top-level \`id\`: ${spec.id === 'required' ? 'required (a lead id)' : 'none (an `id` is a 400)'}`,
    `- success: ${spec.status}`,
    `- ${
      spec.write
        ? spec.tx === 'none'
          ? 'a write in short transactions of its own: an `Idempotency-Key` is ignored'
          : 'a write, in one read-write transaction: takes an `Idempotency-Key` (see Safe writes)'
        : 'a read, in one read-only transaction: an `Idempotency-Key` is ignored'
    }`,
    ...(spec.acts === 'agent'
      ? ["- acts as one agent: `agentId`, else the caller's earliest-created agent; required in admin mode"]
      : []),
    '',
    ...(rows.length
      ? ['| `data` field | type | required | notes |', '|---|---|---|---|', ...rows]
      : ['`data`: nothing (`{}` or omitted).']),
    '',
    `Answer \`data\`: ${code(typeText(answer))}`,
    '',
    '```json',
    JSON.stringify({ resource, action, ...example }),
    '```',
  ];
  return lines.join('\n');
}

/** What each entry of LIMITS bounds (an entry missing here is still listed, by its key). */
const LIMIT_LABELS: Record<string, [string, string]> = {
  shortText: [
    'short text fields (`name`, `budget`, `timeline`, `assigned_to`, `preferred_contact_time`)',
    ' characters',
  ],
  email: ['`email`', ' characters'],
  phone: ['`phone`', ' characters'],
  notes: ['`notes`', ' characters'],
  searchTerm: ['`searchTerm`', ' characters'],
  agentId: ['an agent id', ' characters'],
  jsonBytes: ['`address`, `metadata` as JSON', ' bytes'],
  jsonDepth: ['`address`, `metadata` nesting', ' levels'],
  batch: ['a batch (`leadIds`, `agentIds`)', ' items'],
  pageSize: ['a page (`limit`, `pageSize`)', ' items'],
  offset: ['`offset`', ' (deeper: page by `cursor`)'],
};

/** Every block the page has, by marker name. */
export function generatedSections(): Record<string, string> {
  const actions = Object.entries(S.ACTIONS).flatMap(([r, as]) =>
    Object.entries(as).map(([a, spec]) => actionBlock(r, a, spec as S.ActionSpec))
  );
  const shapes = SHAPES.map(([name, schema]) => {
    const s = toJson(schema, 'output');
    const req = new Set(s.required ?? []);
    const rows = Object.entries(s.properties ?? {}).map(([k, v]) =>
      `| ${code(k)} | ${cell(typeText(v))}${req.has(k) ? '' : ' (may be absent)'} | ${cell(v.description ?? '')} |`
    );
    return [`### ${name}`, '', '| field | type | notes |', '|---|---|---|', ...rows].join('\n');
  });
  const list = (v: readonly string[]) => v.map(code).join(', ');
  const valueSets = [
    '| set | values | where |',
    '|---|---|---|',
    `| lead status | ${
      list(rules.LEAD_STATUSES)
    } | \`status\` of a lead and of the filters; \`stats.by_status\` has one count per value |`,
    `| lead priority | ${list(rules.LEAD_PRIORITIES)} | \`priority\` of a lead and of the filters |`,
    `| contact method | ${list(rules.CONTACT_METHODS)} | \`preferred_contact_method\` |`,
    `| date range | ${
      rules.DATE_RANGES.map((r) =>
        `${code(r)} (${rules.DATE_RANGE_DAYS[r] === null ? 'every lead' : `${rules.DATE_RANGE_DAYS[r]} days`})`
      ).join(', ')
    } | \`filters.dateRange\`: created in the last N × 24 hours |`,
    `| duplicate mode | ${list(rules.DUPLICATE_MODES)} | \`onDuplicate\` of \`leads\` / \`create\` |`,
    `| history event kind | ${list(rules.LEAD_EVENT_KINDS)} | \`kind\` of a \`LeadEvent\` |`,
    `| personal fields | ${list(rules.LEAD_PERSONAL_FIELDS)} | erased from a lead's history when it is deleted |`,
  ].join('\n');
  const limitRows = Object.entries(S.LIMITS).map(([k, v]) => {
    const [what, unit] = LIMIT_LABELS[k] ?? [code(`LIMITS.${k}`), ''];
    return `| ${what} | ${v}${unit} |`;
  });
  const limits = [
    '| what | limit |',
    '|---|---|',
    '| request body | 1 MiB (413 `PAYLOAD_TOO_LARGE`) |',
    ...limitRows,
    `| a \`cursor\` | ${MAX_OPAQUE_LENGTH} characters |`,
  ].join('\n');
  const errors = [
    '| status | code |',
    '|---|---|',
    ...Object.entries(ERROR_STATUS).map(([c, s]) => `| ${s} | ${code(c)} |`),
  ].join('\n');
  return { actions: actions.join('\n\n'), shapes: shapes.join('\n\n'), 'value-sets': valueSets, limits, errors };
}

const marker = (name: string) => new RegExp(`(<!-- generated:${name} -->\\n)[\\s\\S]*?(<!-- /generated:${name} -->)`);

/** The page with every generated block replaced; throws when a marker pair is missing. */
export function renderApiDoc(page: string): string {
  let out = page;
  for (const [name, body] of Object.entries(generatedSections())) {
    if (!marker(name).test(out)) throw new Error(`docs/api.md has no <!-- generated:${name} --> block`);
    out = out.replace(
      marker(name),
      (_, open, close) => `${open}<!-- written by npm run docs -->\n\n${body}\n\n${close}`,
    );
  }
  return out;
}
