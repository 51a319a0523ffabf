import nx from "@nx/eslint-plugin"

export default [
  ...nx.configs["flat/base"],
  ...nx.configs["flat/typescript"],
  { ignores: ["**/dist", "**/out-tsc", "**/node_modules", "**/vitest.config.*.timestamp*"] },
  {
    files: ["**/*.ts", "**/*.mts"],
    rules: {
      // The arrows of shared/ARCHITECTURE.md: an import only ever points down.
      "@nx/enforce-module-boundaries": [
        "error",
        {
          enforceBuildableLibDependency: true,
          allow: [],
          depConstraints: [
            { sourceTag: "type:core", onlyDependOnLibsWithTags: [] },
            { sourceTag: "type:keys", onlyDependOnLibsWithTags: ["type:core", "type:test-kit"] },
            { sourceTag: "type:driver", onlyDependOnLibsWithTags: ["type:core", "type:test-kit"] },
            { sourceTag: "type:test-kit", onlyDependOnLibsWithTags: ["type:core"] },
            { sourceTag: "type:app", onlyDependOnLibsWithTags: ["type:core", "type:keys", "type:driver", "type:test-kit"] },
            { sourceTag: "type:tool", onlyDependOnLibsWithTags: ["type:core", "type:keys", "type:driver", "type:app", "type:test-kit"] }
          ]
        }
      ],
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/no-explicit-any": "off"
    }
  },
  {
    // test-kit (servers, contract suites) is for tests only: no shipped source may import it.
    files: ["packages/*/src/**/*.ts", "apps/*/src/**/*.ts", "**/src/**/*.ts"],
    ignores: ["tools/**"],
    rules: {
      "no-restricted-imports": ["error", { patterns: [{ group: ["@objcrypt/test-kit", "@objcrypt/test-kit/*"], message: "test-kit is for tests only" }] }]
    }
  },
  {
    // Per-project vitest configs extend the workspace's shared one.
    files: ["**/vitest.config.ts"],
    rules: { "@nx/enforce-module-boundaries": "off" }
  }
]
