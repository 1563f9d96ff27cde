// `npm run docs`: writes docs/openapi.json from the zod schemas, and the generated blocks of
// docs/api.md (the action reference, shapes, value sets, limits, error codes) between their markers.
import { buildOpenApi } from '../shared/openapi.ts';
import { renderApiDoc } from './api-reference.ts';

await Deno.mkdir('docs', { recursive: true });
await Deno.writeTextFile('docs/openapi.json', JSON.stringify(buildOpenApi(), null, 2) + '\n');
console.log('wrote docs/openapi.json');
await Deno.writeTextFile('docs/api.md', renderApiDoc(await Deno.readTextFile('docs/api.md')));
console.log('wrote the generated blocks of docs/api.md');
