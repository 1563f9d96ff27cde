/**
 * Reading an import's CSV (RFC 4180: a header row, quoted fields with `""` escapes and embedded
 * newlines, `,` or `;` between fields, UTF-8 with or without a BOM) with csv-parse, and telling a
 * person which line of their file is wrong. Every failure is a 400 naming the line.
 */
import { parse } from 'csv-parse/sync';
import { validationError } from './errors.ts';

/** One record of the file: the line it starts on (as an editor numbers them) and its cells. */
export interface CsvRecord {
  line: number;
  cells: string[];
}

export interface CsvTable {
  header: string[];
  records: CsvRecord[];
}

const malformed = (line: number, message: string) =>
  validationError(`Malformed CSV at line ${line}: ${message}`, [{
    path: 'data.csv',
    message: `line ${line}: ${message}`,
  }]);

const lineAt = (text: string, index: number): number => {
  let line = 1;
  for (let i = text.indexOf('\n'); i !== -1 && i < index; i = text.indexOf('\n', i + 1)) line++;
  return line;
};

/**
 * A JSON string can carry what no UTF-8 file holds (a lone surrogate), and a file decoded as UTF-8
 * when it was not shows U+FFFD where its bytes were: both mean the file was not UTF-8.
 */
function refuseNonUtf8(text: string): void {
  const bad = /[\uFFFD]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.exec(text);
  if (bad) throw malformed(lineAt(text, bad.index), 'the file is not UTF-8 text (save it as CSV UTF-8)');
}

/** Where the quote that is never closed opens (csv-parse reports the end of the file). */
function unclosedQuote(text: string): number {
  let open = -1;
  for (let i = text.indexOf('"'); i !== -1; i = text.indexOf('"', i + 1)) open = open === -1 ? i : -1;
  return Math.max(open, 0);
}

/** `;` when the header line has more semicolons than commas outside quotes, else `,`. */
function delimiterOf(text: string): ',' | ';' {
  let commas = 0;
  let semicolons = 0;
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') quoted = !quoted;
    else if (!quoted && (c === '\n' || c === '\r')) break;
    else if (!quoted && c === ',') commas++;
    else if (!quoted && c === ';') semicolons++;
  }
  return semicolons > commas ? ';' : ',';
}

const NEWLINES = /\r\n|\n|\r/g;
const newlinesIn = (cells: string[]) => cells.reduce((n, c) => n + (c.match(NEWLINES)?.length ?? 0), 0);

/** Parses the whole file; the first record is the header (blank lines are skipped). */
export function parseCsv(text: string): CsvTable {
  refuseNonUtf8(text);
  let parsed: { record: string[]; info: { lines: number } }[];
  try {
    parsed = parse(text, {
      bom: true,
      delimiter: delimiterOf(text.replace(/^\uFEFF/, '')),
      record_delimiter: ['\r\n', '\n', '\r'],
      skip_empty_lines: true,
      info: true,
    }) as unknown as typeof parsed;
  } catch (err) {
    const e = err as { lines?: number; code?: string; message?: string };
    const line = e.code === 'CSV_QUOTE_NOT_CLOSED'
      ? lineAt(text, unclosedQuote(text))
      : typeof e.lines === 'number'
      ? e.lines
      : 1;
    throw malformed(line, csvProblem(e.code, e.message));
  }
  if (parsed.length === 0) throw malformed(1, 'the file is empty: the first line must be a header row');
  // csv-parse counts a record at the line where it ends; people count from where it starts.
  const records = parsed.map(({ record, info }) => ({ line: info.lines - newlinesIn(record), cells: record }));
  const [first, ...rest] = records;
  const header = first.cells.map((c) => c.trim());
  const seen = new Set<string>();
  for (const name of header) {
    if (name === '') throw malformed(first.line, 'the header row has an empty column name');
    if (seen.has(name.toLowerCase())) throw malformed(first.line, `the header row names "${name}" twice`);
    seen.add(name.toLowerCase());
  }
  return { header, records: rest };
}

/** What went wrong, in words that do not depend on csv-parse's wording. */
function csvProblem(code: string | undefined, message: string | undefined): string {
  switch (code) {
    case 'CSV_QUOTE_NOT_CLOSED':
      return 'a quoted field is never closed (unbalanced ")';
    case 'CSV_INVALID_CLOSING_QUOTE':
      return 'a closing quote is followed by something other than a separator or the end of the line';
    case 'INVALID_OPENING_QUOTE':
      return 'a quote appears inside an unquoted field (quote the whole field and double the quote)';
    case 'CSV_RECORD_INCONSISTENT_FIELDS_LENGTH':
      return `the row has a different number of fields than the header (${
        /expect (\d+), got (\d+)/.exec(message ?? '')?.slice(1).join(' expected, ') ?? '?'
      } found)`;
    default:
      return 'the file is not valid CSV';
  }
}
