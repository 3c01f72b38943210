// bench/serve_load.cjs: a load generator for `wafer serve`, used by bench/serve.sh.
//   node bench/serve_load.cjs PORT STREAMS PROMPT_TOKENS MAX_TOKENS
// Starts STREAMS streaming completions at once (prompts of random token ids, greedy), and prints
// one JSON line: aggregate tokens/s (completion tokens / wall time), decode tokens/s (tokens
// after each stream's first, over the span from the median first token to the last token), and
// time to first token and inter-token latency percentiles (between SSE events, one per token).
const http = require("http");

const [port, streams, promptTokens, maxTokens] = process.argv.slice(2).map(Number);

function one(i) {
  return new Promise((resolve, reject) => {
    let seed = 12345 + i * 7919;
    const prompt = [];
    for (let k = 0; k < promptTokens; ++k) {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      prompt.push(seed % 50000);
    }
    const body = JSON.stringify({ prompt, max_tokens: maxTokens, temperature: 0, stream: true,
                                  stream_options: { include_usage: true } });
    const t0 = process.hrtime.bigint();
    const times = [];
    let usage = null, buf = "";
    const req = http.request({ host: "127.0.0.1", port, path: "/v1/completions", method: "POST",
                               headers: { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) } },
      (res) => {
        res.setEncoding("utf8");
        res.on("data", (d) => {
          buf += d;
          let at;
          while ((at = buf.indexOf("\n\n")) >= 0) {
            const ev = buf.slice(0, at);
            buf = buf.slice(at + 2);
            if (!ev.startsWith("data: ") || ev === "data: [DONE]") continue;
            const j = JSON.parse(ev.slice(6));
            if (j.usage) usage = j.usage;
            if (j.choices.length) times.push(Number(process.hrtime.bigint() - t0) / 1e9);
          }
        });
        res.on("end", () => resolve({ t0, times, tokens: usage ? usage.completion_tokens : times.length }));
      });
    req.on("error", reject);
    req.end(body);
  });
}

function pct(a, p) {
  if (!a.length) return NaN;
  const s = [...a].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))];
}

(async () => {
  const start = process.hrtime.bigint();
  const res = await Promise.all(Array.from({ length: streams }, (_, i) => one(i)));
  const wall = Number(process.hrtime.bigint() - start) / 1e9;
  const ttft = [], itl = [], firsts = [];
  let tokens = 0, last = 0, after_first = 0;
  for (const r of res) {
    tokens += r.tokens;
    const off = Number(r.t0 - start) / 1e9;
    if (r.times.length) ttft.push(r.times[0]), firsts.push(off + r.times[0]);
    for (let k = 1; k < r.times.length; ++k) itl.push(r.times[k] - r.times[k - 1]);
    if (r.times.length) last = Math.max(last, off + r.times[r.times.length - 1]);
    after_first += Math.max(0, r.tokens - 1);
  }
  const decode_span = last - pct(firsts, 0.5);
  console.log(JSON.stringify({
    streams, tokens, wall_s: wall, aggregate_tok_s: tokens / wall,
    decode_tok_s: decode_span > 0 ? after_first / decode_span : NaN,
    ttft_p50: pct(ttft, 0.5), ttft_p99: pct(ttft, 0.99), itl_p50: pct(itl, 0.5), itl_p99: pct(itl, 0.99),
  }));
})().catch((e) => { console.error(e); process.exit(1); });
