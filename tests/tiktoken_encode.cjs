// Reference encoder for tokenizer_test: encodes each file named in a manifest (one path a line)
// with the npm package tiktoken's GPT-2 ranks, special tokens treated as ordinary text, and
// writes per file: uint32 count, then count uint32 ids (little-endian).
// Usage: node tiktoken_encode.cjs NPM_DIR MANIFEST OUT
const fs = require("fs");
const path = require("path");
const [npmDir, manifest, out] = process.argv.slice(2);
const { get_encoding } = require(path.join(npmDir, "node_modules", "tiktoken"));
const enc = get_encoding("gpt2");
const chunks = [];
for (const file of fs.readFileSync(manifest, "utf8").split("\n").filter((l) => l.length)) {
  const ids = enc.encode(fs.readFileSync(file, "utf8"), [], []);
  const buf = Buffer.alloc(4 + 4 * ids.length);
  buf.writeUInt32LE(ids.length, 0);
  for (let i = 0; i < ids.length; ++i) buf.writeUInt32LE(ids[i], 4 + 4 * i);
  chunks.push(buf);
}
fs.writeFileSync(out, Buffer.concat(chunks));
enc.free();
