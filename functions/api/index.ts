import { createHandler } from './handler.ts';
import { depsFromEnv } from './config.ts';

Deno.serve(createHandler(depsFromEnv(Deno.env.toObject())));
