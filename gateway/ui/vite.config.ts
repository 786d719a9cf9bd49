/// <reference types="vitest/config" />
import { defineConfig, loadEnv } from 'vite';
import react from '@vitejs/plugin-react';

export default defineConfig(({ mode }) => {
  // `npm run dev` serves the UI with hot reload and forwards the gateway's own paths to a gateway
  // on its default address, or the one in AGENTIC_GATEWAY_URL.
  const gateway = loadEnv(mode, '.', 'AGENTIC_').AGENTIC_GATEWAY_URL || 'http://127.0.0.1:8080';
  return {
    plugins: [react()],
    build: { outDir: 'dist', emptyOutDir: true },
    server: {
      proxy: {
        '/api': gateway,
        '/healthz': gateway,
        '/metrics': gateway,
        '/ws': { target: gateway, ws: true },
      },
    },
    test: {
      // Pure modules run in node; component tests opt into jsdom with a file comment.
      environment: 'node',
      include: ['src/**/*.test.{ts,tsx}'],
    },
  };
});
