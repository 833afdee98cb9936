#!/usr/bin/env python3
"""Writes the decode_fuzz seed corpus (fuzz/corpus/decode) from the BFCL ground truth in
data/bfcl/possible_answer: single call strings, whole turns in prompting format, FC-mode JSON and
envtuning replies. Deterministic; run from anywhere."""
import hashlib, json, os, re

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
out = os.path.join(root, "fuzz", "corpus", "decode")
os.makedirs(out, exist_ok=True)
seeds = set()
ans_dir = os.path.join(root, "data", "bfcl", "possible_answer")
for name in sorted(os.listdir(ans_dir)):
    for line in open(os.path.join(ans_dir, name)):
        for turn in json.loads(line)["ground_truth"]:
            if not turn:
                continue
            seeds.add(turn[0])
            seeds.add("[" + ", ".join(turn) + "]")
            calls = []
            for c in turn:
                m = re.match(r"(\w+)\((.*)\)$", c)
                if m:
                    calls.append({"name": m.group(1), "arguments": {}})
            seeds.add(json.dumps([{c["name"]: "{}"} for c in calls]))
            seeds.add("<think>plan</think>\n<tool_call>" + json.dumps(calls) + "</tool_call>")
seeds.add("<think>done</think><answer>ok</answer>")
for s in sorted(seeds)[:600]:
    h = hashlib.sha1(s.encode()).hexdigest()[:16]
    with open(os.path.join(out, h), "w") as f:
        f.write(s)
print(len(os.listdir(out)), "seeds in", out)
