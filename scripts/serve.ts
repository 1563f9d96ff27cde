// `npm run serve`: only the api, configured from its environment alone (how extra instances run
// against one database). Served at /functions/v1/api, the path the Supabase gateway gives it, so
// `supabase.functions.invoke('api')` works against http://127.0.0.1:54321 unchanged.
import { createHandler, type HandlerDeps } from '../functions/api/handler.ts';
import { depsFromEnv } from '../functions/api/config.ts';

let deps: HandlerDeps;
try {
  deps = depsFromEnv(Deno.env.toObject());
} catch (err) {
  console.error(`api not started: ${(err as Error).message}`);
  Deno.exit(1);
}
const handler = createHandler(deps);
const port = Number(Deno.env.get('PORT') ?? 54321);

Deno.serve({
  port,
  hostname: Deno.env.get('HOST') ?? '127.0.0.1',
  onListen: ({ port }) => console.log(`api listening on http://127.0.0.1:${port}/functions/v1/api`),
}, (req) => {
  const { pathname } = new URL(req.url);
  // Like the gateway: everything under the function's URL reaches it (the REST door is at /v2.0/...).
  if (pathname === '/functions/v1/api' || pathname.startsWith('/functions/v1/api/')) return handler(req);
  return Response.json(
    { success: false, error: { code: 'NOT_FOUND', message: `No function at ${pathname}` } },
    { status: 404 },
  );
});
