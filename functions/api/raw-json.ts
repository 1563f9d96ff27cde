/**
 * A reply's `data` that is already JSON text (built once by Postgres): handler.ts splices it into
 * the envelope as it is, so a page of leads is neither parsed by postgres.js nor stringified again.
 */
export class RawJson {
  constructor(readonly text: string) {}

  /** Anything that stringifies a reply some other way still gets the same JSON. */
  toJSON(): unknown {
    return JSON.parse(this.text);
  }
}
