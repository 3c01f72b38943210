// The tokenizer competitors for bench/run.sh: tiktoken (WebAssembly) and gpt-3-encoder (pure
// JavaScript, on the file's first 64 KiB) encoding one text file, best of 3; prints one JSON object with MB/s for each.
// Usage: node js_tokenizer.cjs NPM_DIR TEXT_FILE
const fs = require("fs");
const path = require("path");
const [npmDir, file] = process.argv.slice(2);
const text = fs.readFileSync(file, "utf8");
const bytes = Buffer.byteLength(text, "utf8");
function best(fn) {
  let b = Infinity;
  for (let r = 0; r < 3; ++r) {
    const t0 = process.hrtime.bigint();
    fn();
    b = Math.min(b, Number(process.hrtime.bigint() - t0) / 1e9);
  }
  return b;
}
const { get_encoding } = require(path.resolve(npmDir, "node_modules", "tiktoken"));
const enc = get_encoding("gpt2");
const out = { bytes };
const t = best(() => enc.encode(text, [], []));
out.tiktoken = { seconds: t, mb_per_s: bytes / 1e6 / t };
// gpt-3-encoder slows down badly on multi-megabyte strings: time it on the first 64 KiB.
const g3 = require(path.resolve(npmDir, "node_modules", "gpt-3-encoder"));
const slice = text.slice(0, 65536);
const g = best(() => g3.encode(slice));
out["gpt-3-encoder"] = { seconds: g, bytes: Buffer.byteLength(slice, "utf8"), mb_per_s: Buffer.byteLength(slice, "utf8") / 1e6 / g };
enc.free();
console.log(JSON.stringify(out));
