import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    globalSetup: ['tests/global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // supabase-js needs a global WebSocket, which Node 20 has only behind this flag.
    execArgv: ['--experimental-websocket'],
  },
});
