// `npm run docs`: writes docs/openapi.json from the zod schemas.
import { buildOpenApi } from '../shared/openapi.ts';

await Deno.mkdir('docs', { recursive: true });
await Deno.writeTextFile('docs/openapi.json', JSON.stringify(buildOpenApi(), null, 2) + '\n');
console.log('wrote docs/openapi.json');
