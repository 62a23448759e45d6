import { defineConfig } from 'vite';
import { svelte } from '@sveltejs/vite-plugin-svelte';

// Tauri serves the built files from ui/dist; the dev server is for `tauri dev`.
export default defineConfig({
  plugins: [svelte()],
  // Component tests mount into jsdom, so they need Svelte's browser build, not its server one
  // (the setting the Svelte docs give for Vitest).
  resolve: process.env.VITEST ? { conditions: ['browser'] } : undefined,
  clearScreen: false,
  server: { port: 5173, strictPort: true },
  build: {
    target: 'safari15',
    outDir: 'dist',
    emptyOutDir: true,
    // No inline scripts or styles: the CSP allows only files served by the app.
    assetsInlineLimit: 0,
  },
  test: {
    environment: 'jsdom',
    include: ['src/**/*.test.ts'],
  },
});
