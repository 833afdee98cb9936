"""envtune's policy against Hugging Face transformers on the same weights, torch and threads.

For each shape, HF builds a randomly initialised Qwen2ForCausalLM (seeded) and saves it with
save_pretrained; envtune's bench_model_bench loads that checkpoint. Both then measure, with the
same batch, prompt length, reply length and torch thread count, in this one run:
  prefill            forward over the prompts, last logits, no grad  prompt tokens/s
  generate           greedy, prefill + new_tokens with a KV cache  generated tokens/s
  decode             the decode steps alone (generate minus a one-token generate)
  forward_backward   loss on the reply tokens, backward            tokens/s
and the table prints envtune/HF ratios (> 1: envtune is faster). HF runs with its default
attention (SDPA); greedy on both sides, no EOS, so both generate exactly new_tokens.

Usage: bench/model-vs-hf [--threads N] [--iters N] [--shapes small,qwen0.5b] [--device cpu]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

SHAPES = {
    # A small fp32 shape (the tiny default's family, a 32k vocabulary).
    "small": dict(
        dtype="float32",
        config=dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                    num_key_value_heads=2, intermediate_size=704, vocab_size=32000),
        batch=8, prompt_len=64, new_tokens=32),
    # Qwen2.5-0.5B's shape in bf16 (random weights; 494M parameters).
    "qwen0.5b": dict(
        dtype="bfloat16",
        config=dict(hidden_size=896, num_hidden_layers=24, num_attention_heads=14,
                    num_key_value_heads=2, intermediate_size=4864, vocab_size=151936),
        batch=2, prompt_len=128, new_tokens=16),
}


def timed(fn, iters, device):
    fn()  # warm-up
    sync(device)
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    sync(device)
    return (time.perf_counter() - start) / iters


def sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def hf_figures(model, shape, iters, device):
    batch, prompt_len, new = shape["batch"], shape["prompt_len"], shape["new_tokens"]
    gen = torch.Generator().manual_seed(7)
    ids = torch.randint(0, model.config.vocab_size, (batch, prompt_len), generator=gen).to(device)
    out = {}
    model.eval()
    with torch.no_grad():
        # Prefill as generation uses it: the last position's logits only (both sides).
        s = timed(lambda: model(ids, use_cache=False, logits_to_keep=1), iters, device)
        out["prefill_tokens_per_s"] = batch * prompt_len / s

        def generate(n):
            return model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                  max_new_tokens=n, min_new_tokens=n, eos_token_id=None,
                                  pad_token_id=0)
        s_new = timed(lambda: generate(new), iters, device)
        s_one = timed(lambda: generate(1), iters, device)
        out["generate_tokens_per_s"] = batch * new / s_new
        if new > 1 and s_new > s_one:
            out["decode_tokens_per_s"] = batch * (new - 1) / (s_new - s_one)
        seqs = generate(new)
    model.train()
    labels = seqs.clone()
    labels[:, :prompt_len] = -100

    def step():
        model.zero_grad(set_to_none=True)
        model(seqs, labels=labels, use_cache=False).loss.backward()
    s = timed(step, iters, device)
    out["forward_backward_tokens_per_s"] = seqs.numel() / s
    return out


def envtune_figures(binary, model_dir, shape, iters, threads, device):
    cmd = [binary, f"--model={model_dir}", f"--dtype={shape['dtype']}", f"--device={device}",
           f"--batch={shape['batch']}", f"--prompt_len={shape['prompt_len']}",
           f"--new_tokens={shape['new_tokens']}", f"--iters={iters}", f"--threads={threads}",
           "--sample=0", "--json=1"]
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"model-vs-hf: {' '.join(cmd)} failed:\n{run.stdout}{run.stderr}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--binary", default="build/bench/bench_model_bench")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--iters", type=int, default=2)
    parser.add_argument("--shapes", default="small,qwen0.5b")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default="", help="also write the table as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    metrics = ["prefill_tokens_per_s", "generate_tokens_per_s", "decode_tokens_per_s",
               "forward_backward_tokens_per_s"]
    rows = []
    print(f"torch {torch.__version__}, {args.threads} thread(s), device {args.device}, "
          f"iters {args.iters}", flush=True)
    for name in args.shapes.split(","):
        shape = SHAPES[name]
        torch.manual_seed(1245)
        config = Qwen2Config(**shape["config"], tie_word_embeddings=True, rope_theta=1e6,
                             max_position_embeddings=32768)
        dtype = getattr(torch, shape["dtype"])
        model = Qwen2ForCausalLM(config).to(dtype)
        params = sum(p.numel() for p in model.parameters())
        print(f"{name}: {params / 1e6:.0f}M parameters, {shape['dtype']}, batch {shape['batch']}, "
              f"prompt {shape['prompt_len']}, new {shape['new_tokens']}", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            model.save_pretrained(tmp)
            ours = envtune_figures(args.binary, tmp, shape, args.iters, args.threads, args.device)
        theirs = hf_figures(model.to(args.device), shape, args.iters, args.device)
        for m in metrics:
            if m in ours and m in theirs:
                rows.append(dict(shape=name, metric=m.replace("_tokens_per_s", ""),
                                 envtune=ours[m], hf=theirs[m], ratio=ours[m] / theirs[m]))
        del model
    print(f"\n{'shape':<10} {'metric':<18} {'envtune tok/s':>14} {'HF tok/s':>12} {'ratio':>7}")
    for r in rows:
        print(f"{r['shape']:<10} {r['metric']:<18} {r['envtune']:>14.1f} {r['hf']:>12.1f} "
              f"{r['ratio']:>7.2f}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
