import preact from '@preact/preset-vite';
import { defineConfig } from 'vite';

/**
 * The console's build: `vite build web` (root = this folder) writes dist/web/index.html and
 * hashed files under dist/web/assets/, which the API serves at `/`. Its CSP allows only scripts
 * and styles of its own origin, so nothing may be inlined into index.html: no module-preload
 * polyfill, no inline assets but images (img-src allows data:).
 */
export default defineConfig({
  plugins: [preact()],
  base: '/',
  build: {
    outDir: '../dist/web',
    emptyOutDir: true,
    assetsDir: 'assets',
    modulePreload: { polyfill: false },
    sourcemap: true,
    target: 'es2022',
  },
});
