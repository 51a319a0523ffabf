// Lets plain Node 24 run the workspace's TypeScript sources (child gateways in tests): a relative
// `./X.js` import whose `.js` file does not exist resolves to `./X.ts`.
import * as fs from "node:fs"
import * as module from "node:module"

module.registerHooks({
  resolve: (specifier, context, next) => {
    if ((specifier.startsWith("./") || specifier.startsWith("../")) && specifier.endsWith(".js") && context.parentURL !== undefined) {
      const js = new URL(specifier, context.parentURL)
      if (!fs.existsSync(js) && fs.existsSync(new URL(specifier.slice(0, -3) + ".ts", context.parentURL))) {
        return next(specifier.slice(0, -3) + ".ts", context)
      }
    }
    return next(specifier, context)
  }
})
