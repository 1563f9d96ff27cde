/**
 * The api's limits, defined once. The SQL functions users may call through the Data API enforce
 * the same numbers, read from `private.api_limits()` (supabase/migrations/*_protection.sql);
 * tests/caps-catalog.test.ts fails when the two disagree.
 */
export const LIMITS = {
  shortText: 200,
  email: 320,
  phone: 50,
  notes: 10_000,
  searchTerm: 200,
  agentId: 100,
  jsonBytes: 16_384,
  jsonDepth: 10,
  batch: 100,
  pageSize: 100,
  /** Deeper than this, a page by offset reads every row it skips: page by `cursor` instead. */
  offset: 10_000,
  /** leads/import: rows per file, and the body limit of that one action (every other: 1 MiB). */
  importRows: 10_000,
  importBodyBytes: 5 * 1024 * 1024,
  /** leads/bulk-update and bulk-delete: ids per request, and leads a filter selection may reach. */
  bulkIds: 1_000,
  bulkMatches: 10_000,
  /** leads/export: leads per keyset chunk (one short read-only transaction each). */
  exportChunk: 5_000,
} as const;
