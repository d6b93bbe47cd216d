"""Reference side of benches/smollm2_decode.rs: one process per reference, kept alive so that
the bench alternates them with our runs. Each line read on stdin is one timed greedy run; each
answer is one JSON line {"seconds": s, "tokens": [new tokens]}.

  python smollm2_decode_ref.py transformers GGUF THREADS NEW_TOKENS PROMPT_JSON
      transformers' own GGUF loader (`from_pretrained(dir, gguf_file=..., dtype=float32)`),
      `generate` greedy (default SDPA attention), the venv of .ci/reference;
  python smollm2_decode_ref.py llama.cpp GGUF THREADS NEW_TOKENS PROMPT_JSON
      llama-cpp-python on the same file: the prompt evaluated, then one token at a time, each
      the argmax of the last logits (no sampler), in a venv with llama-cpp-python.
Prints {"ready": ...} once loaded and warmed up."""
import json
import sys
import time
from pathlib import Path


def transformers_side(gguf, threads, new_tokens, prompt):
    import torch
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(threads)
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    ).eval()
    ids = torch.tensor([prompt])

    def run(n):
        with torch.no_grad():
            out = model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=n,
                min_new_tokens=n,
                do_sample=False,
                eos_token_id=None,
                pad_token_id=0,
            )
        return out[0, len(prompt):].tolist()

    return run, f"torch {torch.__version__}"


def llama_cpp_side(gguf, threads, new_tokens, prompt):
    import llama_cpp
    import numpy as np
    from llama_cpp import Llama

    llm = Llama(
        model_path=str(gguf),
        n_ctx=len(prompt) + new_tokens + 8,
        n_threads=threads,
        n_threads_batch=threads,
        n_batch=512,
        verbose=False,
    )

    def run(n):
        llm.reset()
        llm.eval(prompt)
        tokens = []
        for _ in range(n):
            t = int(np.argmax(llm.scores[llm.n_tokens - 1]))
            tokens.append(t)
            llm.eval([t])
        return tokens

    return run, f"llama-cpp-python {llama_cpp.__version__}"


def main():
    side, gguf, threads, new_tokens, prompt = sys.argv[1:6]
    gguf, threads, new_tokens = Path(gguf), int(threads), int(new_tokens)
    prompt = json.loads(prompt)
    make = {"transformers": transformers_side, "llama.cpp": llama_cpp_side}[side]
    run, version = make(gguf, threads, new_tokens, prompt)
    run(4)  # warm-up
    print(json.dumps({"ready": version}), flush=True)
    for _ in sys.stdin:
        t0 = time.perf_counter()
        tokens = run(new_tokens)
        seconds = time.perf_counter() - t0
        print(json.dumps({"seconds": seconds, "tokens": tokens}), flush=True)


if __name__ == "__main__":
    main()
