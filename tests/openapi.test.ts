// docs/openapi.json: up to date, valid OpenAPI 3.1, and its examples valid against their schemas.
import { readFileSync } from 'node:fs';
import { Validator } from '@seriousme/openapi-schema-validator';
import Ajv2020 from 'ajv/dist/2020.js';
import { describe, expect, it } from 'vitest';
import { buildOpenApi, EXAMPLES } from '../shared/openapi.ts';
import { ACTIONS, LeadIdInput } from '../shared/schemas.ts';

const checkedIn = JSON.parse(readFileSync(new URL('../docs/openapi.json', import.meta.url), 'utf8'));

describe('docs/openapi.json', () => {
  it('is what `npm run docs` generates from the current schemas', () => {
    expect(checkedIn).toEqual(buildOpenApi());
  });

  it('validates as OpenAPI 3.1', async () => {
    const validator = new Validator();
    const result = await validator.validate(structuredClone(checkedIn));
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(validator.version).toBe('3.1');
  });

  it('documents one request per resource/action and every error code', () => {
    const post = checkedIn.paths['/api'].post;
    const count = Object.values(ACTIONS).reduce((n, a) => n + Object.keys(a).length, 0);
    expect(post.requestBody.content['application/json'].schema.oneOf).toHaveLength(count);
    expect(Object.keys(post.responses).sort()).toEqual([
      '200',
      '201',
      '400',
      '401',
      '403',
      '404',
      '405',
      '409',
      '413',
      '422',
      '429',
      '500',
      '503',
    ]);
    // Writes take an Idempotency-Key; every answer may say it was replayed.
    expect(post.parameters).toEqual([expect.objectContaining({ name: 'Idempotency-Key', in: 'header' })]);
    expect(post.parameters[0].description).toContain('leads/create');
    expect(post.responses['201'].headers).toHaveProperty('Idempotent-Replayed');
    expect(post.responses['409'].headers).toHaveProperty('Idempotent-Replayed');
  });

  it('has examples that validate against their JSON Schema, exactly one request schema, and zod', () => {
    const ajv = new Ajv2020({ strict: false, allErrors: true });
    const schemas = checkedIn.components.schemas;
    for (const [name, schema] of Object.entries(schemas)) {
      ajv.addSchema(schema as object, `#/components/schemas/${name}`);
    }
    const examples = checkedIn.paths['/api'].post.requestBody.content['application/json'].examples;
    expect(Object.keys(examples)).toHaveLength(Object.values(ACTIONS).reduce((n, a) => n + Object.keys(a).length, 0));
    for (const [name, { value }] of Object.entries(examples) as [string, { value: Record<string, unknown> }][]) {
      const own = ajv.getSchema(`#/components/schemas/${name}Request`)!;
      expect(own(value), `${name}: ${JSON.stringify(own.errors)}`).toBe(true);
      const matching = Object.keys(schemas).filter((s) =>
        s.endsWith('Request') && ajv.getSchema(`#/components/schemas/${s}`)!(value)
      );
      expect(matching, name).toEqual([`${name}Request`]);
      const spec =
        (ACTIONS as Record<string, Record<string, { data: { safeParse(v: unknown): { success: boolean } } }>>)[
          value.resource as string
        ][value.action as string];
      expect(spec.data.safeParse(value.data ?? {}).success, name).toBe(true);
      if ('id' in value) expect(LeadIdInput.safeParse(value.id).success).toBe(true);
    }
    expect(Object.keys(EXAMPLES.leads)).toEqual(Object.keys(ACTIONS.leads));
  });

  it('rejects what the function rejects: an unknown field in create', () => {
    const ajv = new Ajv2020({ strict: false });
    const validate = ajv.compile(checkedIn.components.schemas.LeadsCreateRequest);
    expect(validate({ resource: 'leads', action: 'create', data: { agent_id: 'a', nickname: 'x' } })).toBe(false);
    expect(validate({ resource: 'leads', action: 'create', data: { agent_id: 'a', status: 'won' } })).toBe(false);
    expect(
      validate({
        resource: 'leads',
        action: 'create',
        data: { agent_id: 'a', userId: '0c9e3a4e-1b2c-4d5e-8f90-a1b2c3d4e5f6' },
      }),
    )
      .toBe(true);
  });
});
