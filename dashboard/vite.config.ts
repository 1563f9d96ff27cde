import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

// Built into dashboard/dist and served by scripts/dashboard.mjs (npm start) or any static host.
export default defineConfig({
  root: import.meta.dirname,
  plugins: [react()],
  // shared/csv.ts (the import's parser, also run here to read a file's header) imports csv-parse's
  // Node build, which uses Buffer; its browser build is the same parser bundled without Node.
  resolve: { alias: [{ find: /^csv-parse\/sync$/, replacement: 'csv-parse/browser/esm/sync' }] },
  build: { outDir: 'dist', emptyOutDir: true, chunkSizeWarningLimit: 1024 },
});
