/**
 * The small amount of XML an S3 endpoint needs: rendering responses and reading the few request
 * documents S3 accepts (CompleteMultipartUpload, Delete, ServerSideEncryptionConfiguration). The
 * reader accepts no DTD, entity declaration or processing instruction beyond the XML declaration.
 *
 * @since 0.1.0
 */

/**
 * Escapes text for an element or an attribute.
 *
 * @since 0.1.0
 * @category rendering
 */
export const escape = (s: string): string =>
  s.replace(/[&<>"']/g, (c) => (c === "&" ? "&amp;" : c === "<" ? "&lt;" : c === ">" ? "&gt;" : c === '"' ? "&quot;" : "&apos;"))

/**
 * An element: text children are escaped, array children are already-rendered elements.
 *
 * @since 0.1.0
 * @category rendering
 */
export const el = (name: string, children: string | number | boolean | ReadonlyArray<string>, attributes?: string): string =>
  `<${name}${attributes === undefined ? "" : ` ${attributes}`}>${
    typeof children === "string" ? escape(children) : typeof children === "object" ? children.join("") : String(children)
  }</${name}>`

/**
 * The S3 namespace attribute.
 *
 * @since 0.1.0
 * @category rendering
 */
export const S3_NS = `xmlns="http://s3.amazonaws.com/doc/2006-03-01/"`

/**
 * Prepends the XML declaration.
 *
 * @since 0.1.0
 * @category rendering
 */
export const document = (root: string): string => `<?xml version="1.0" encoding="UTF-8"?>\n${root}`

/**
 * A parsed element.
 *
 * @since 0.1.0
 * @category models
 */
export interface Node {
  readonly name: string
  readonly children: ReadonlyArray<Node>
  readonly text: string
}

const unescape = (s: string): string | undefined => {
  let bad = false
  const out = s.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-z]+);|&/g, (m, ent: string | undefined) => {
    if (ent === undefined) {
      bad = true
      return m
    }
    if (ent.startsWith("#x")) return String.fromCodePoint(parseInt(ent.slice(2), 16))
    if (ent.startsWith("#")) return String.fromCodePoint(parseInt(ent.slice(1), 10))
    const named: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" }
    const v = named[ent]
    if (v === undefined) bad = true
    return v ?? m
  })
  return bad ? undefined : out
}

/**
 * Parses a document into its root element; `undefined` when it is not well-formed XML of the
 * subset S3 request bodies use (elements, text, CDATA-free, no DTD).
 *
 * @since 0.1.0
 * @category parsing
 */
export const parse = (input: string): Node | undefined => {
  try {
    let s = input.replace(/^\uFEFF/, "")
    s = s.replace(/^\s*<\?xml[^?]*\?>/, "")
    if (/<!|<\?/.test(s)) return undefined
    const token = /<\/?([A-Za-z_][\w.:-]*)((?:\s+[\w.:-]+\s*=\s*(?:"[^"]*"|'[^']*'))*)\s*(\/?)>|([^<]+)/gy
    const stack: Array<{ name: string; children: Array<Node>; text: string }> = [{ name: "", children: [], text: "" }]
    let pos = 0
    let depth = 0
    while (pos < s.length) {
      token.lastIndex = pos
      const m = token.exec(s)
      if (m === null) return undefined
      pos = token.lastIndex
      const [whole, name, , selfClose, text] = m
      const top = stack[stack.length - 1]!
      if (text !== undefined) {
        const t = unescape(text)
        if (t === undefined) return undefined
        top.text += t
      } else if (whole.startsWith("</")) {
        if (top.name !== name || stack.length === 1) return undefined
        stack.pop()
        depth--
        stack[stack.length - 1]!.children.push({ name: top.name, children: top.children, text: top.text })
      } else if (selfClose === "/") {
        top.children.push({ name: name!, children: [], text: "" })
      } else {
        if (++depth > 32) return undefined
        stack.push({ name: name!, children: [], text: "" })
      }
    }
    if (stack.length !== 1) return undefined
    const roots = stack[0]!.children
    if (roots.length !== 1 || stack[0]!.text.trim() !== "") return undefined
    return roots[0]
  } catch {
    return undefined
  }
}

const local = (name: string) => name.slice(name.indexOf(":") + 1)

/**
 * Children named `name` (namespace prefix ignored).
 *
 * @since 0.1.0
 * @category parsing
 */
export const children = (node: Node, name: string): ReadonlyArray<Node> => node.children.filter((c) => local(c.name) === name)

/**
 * The text of the first child named `name`.
 *
 * @since 0.1.0
 * @category parsing
 */
export const childText = (node: Node, name: string): string | undefined => children(node, name)[0]?.text

/**
 * The element's local name (prefix dropped).
 *
 * @since 0.1.0
 * @category parsing
 */
export const localName = (node: Node): string => local(node.name)
