import base from "../../eslint.config.mjs"

// Benchmarks start the test-kit servers (GCS, Azurite, moto) as their baselines: like tests,
// they may import test-kit (the root config's exemption for tools/** is relative to the root,
// which this re-export moves).
export default [...base, { files: ["**/*.ts"], rules: { "no-restricted-imports": "off" } }]
