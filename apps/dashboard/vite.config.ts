import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

// Built into dist/, which the controller serves at /ui (IBEX_UI_DIR). Hashed file names under
// assets/ let the controller cache them for a year.
export default defineConfig({
  base: '/ui/',
  plugins: [react()],
  build: { outDir: 'dist', emptyOutDir: true, sourcemap: false, chunkSizeWarningLimit: 600 },
  // `npm run dev:ui` against a controller on :8080 (API calls go through Vite's proxy).
  server: { proxy: { '/api': 'http://127.0.0.1:8080' } },
});
