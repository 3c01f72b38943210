// tests/serve/openai_client.cjs: `wafer serve` through the official `openai` npm package
// (installed by scripts/setup.sh into third_party/npm). Run by tests/serve_test.cpp:
//   node tests/serve/openai_client.cjs <third_party/npm> http://127.0.0.1:PORT/v1
// Exits non-zero on the first failed check, printing what differed.
const path = require("path");
const assert = require("assert");
const OpenAI = require(path.join(process.argv[2], "node_modules", "openai"));

async function main() {
  const client = new OpenAI({ baseURL: process.argv[3], apiKey: "unused", maxRetries: 0, timeout: 60000 });
  const models = await client.models.list();
  assert.ok(models.data.length === 1 && models.data[0].object === "model");

  // Completions, greedy: the same text twice, usage and finish_reason.
  const c = await client.completions.create({ model: "m", prompt: "The quick brown", max_tokens: 8, temperature: 0 });
  assert.strictEqual(c.object, "text_completion");
  assert.strictEqual(c.choices[0].finish_reason, "length");
  assert.strictEqual(c.usage.completion_tokens, 8);
  const again = await client.completions.create({ model: "m", prompt: "The quick brown", max_tokens: 8, temperature: 0 });
  assert.strictEqual(again.choices[0].text, c.choices[0].text);

  // Streaming: the chunks add up to the same text; usage at the end.
  const stream = await client.completions.create({
    model: "m", prompt: "The quick brown", max_tokens: 8, temperature: 0, stream: true,
    stream_options: { include_usage: true },
  });
  let text = "", usage = null, finish = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const ch of chunk.choices) {
      text += ch.text;
      if (ch.finish_reason) finish = ch.finish_reason;
    }
  }
  assert.strictEqual(text, c.choices[0].text);
  assert.strictEqual(finish, "length");
  assert.strictEqual(usage.completion_tokens, 8);

  // Logprobs and echo scoring (the lm-evaluation-harness request).
  const lp = await client.completions.create({ model: "m", prompt: "Hello world, this is", max_tokens: 0, echo: true,
                                               logprobs: 2, temperature: 0 });
  const l = lp.choices[0].logprobs;
  assert.strictEqual(lp.choices[0].text, "Hello world, this is");
  assert.strictEqual(l.tokens.length, 5);
  assert.strictEqual(l.token_logprobs[0], null);
  assert.ok(l.token_logprobs.slice(1).every((x) => x < 0));
  assert.ok(Object.keys(l.top_logprobs[1]).length >= 1);

  // Chat, plain and streamed.
  const chat = await client.chat.completions.create({ model: "m", max_tokens: 6, temperature: 0,
                                                      messages: [{ role: "user", content: "Hi there" }] });
  assert.strictEqual(chat.choices[0].message.role, "assistant");
  const cs = await client.chat.completions.create({ model: "m", max_tokens: 6, temperature: 0, stream: true,
                                                    messages: [{ role: "user", content: "Hi there" }] });
  let ctext = "";
  for await (const chunk of cs) for (const ch of chunk.choices) ctext += ch.delta.content || "";
  assert.strictEqual(ctext, chat.choices[0].message.content);
  // Chat log-probabilities in the package's shape: content[] of {token, logprob, bytes, top_logprobs}.
  const cl = await client.chat.completions.create({ model: "m", max_tokens: 6, temperature: 0, logprobs: true,
                                                    top_logprobs: 3, messages: [{ role: "user", content: "Hi there" }] });
  const content = cl.choices[0].logprobs.content;
  assert.strictEqual(content.map((t) => t.token).join(""), chat.choices[0].message.content);
  assert.ok(content.every((t) => t.logprob <= 0 && t.top_logprobs.length === 3 && Array.isArray(t.bytes)));
  assert.ok(content.every((t) => t.top_logprobs[0].logprob >= t.logprob));

  // Errors come back as the package's APIError with status and param.
  try {
    await client.completions.create({ model: "m", prompt: "x", max_tokens: 100000 });
    assert.fail("expected a 400");
  } catch (e) {
    assert.ok(e instanceof OpenAI.APIError, String(e));
    assert.strictEqual(e.status, 400);
    assert.strictEqual(e.param, "max_tokens");
    assert.strictEqual(e.type, "invalid_request_error");
  }
  try {
    await client.completions.create({ model: "m", prompt: [1, 2, 1e9] });
    assert.fail("expected a 400");
  } catch (e) {
    assert.strictEqual(e.status, 400);
    assert.strictEqual(e.param, "prompt");
  }
  console.log("openai client: all checks passed");
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
