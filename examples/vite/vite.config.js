import { defineConfig } from "vite";

// `top-level await` in main.js needs an es2022 target.
export default defineConfig({
  build: { target: "es2022" },
});
