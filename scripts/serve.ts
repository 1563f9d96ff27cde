// Serves the api locally at /functions/v1/api, the path the Supabase gateway gives it, so
// `supabase.functions.invoke('api')` works against http://127.0.0.1:54321 unchanged.
import { createHandler } from '../functions/api/handler.ts';
import { depsFromEnv } from '../functions/api/config.ts';

const handler = createHandler(depsFromEnv(Deno.env.toObject()));
const port = Number(Deno.env.get('PORT') ?? 54321);

Deno.serve({
  port,
  hostname: Deno.env.get('HOST') ?? '127.0.0.1',
  onListen: ({ port }) => console.log(`api listening on http://127.0.0.1:${port}/functions/v1/api`),
}, (req) => {
  const { pathname } = new URL(req.url);
  if (pathname === '/functions/v1/api' || pathname === '/functions/v1/api/') return handler(req);
  return Response.json(
    { success: false, error: { code: 'NOT_FOUND', message: `No function at ${pathname}` } },
    { status: 404 },
  );
});
