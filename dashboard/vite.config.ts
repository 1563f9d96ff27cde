import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

// Built into dashboard/dist and served by scripts/dashboard.mjs (npm start) or any static host.
export default defineConfig({
  root: import.meta.dirname,
  plugins: [react()],
  build: { outDir: 'dist', emptyOutDir: true, chunkSizeWarningLimit: 1024 },
});
