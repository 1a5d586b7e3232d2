"""torchrun script (one rank): vLLM agrees with transformers on a real-vocabulary HF dir.

args: CASES_JSON, an object with
  "tokenizers": [{"dir", "texts", "ids"}]: vLLM's tokenizer of each dir (AutoTokenizer
      underneath, with vLLM's own loading rules) encodes each text to the ids the test's
      tokenizer gave, and decodes those ids back to the text;
  "model": {"dir", "prompts"}: prompt token ids for the project's RolloutEngine (vLLM on
      CPU, fp32, the dir's own weights). Its greedy continuations are transformers' argmax
      at every step, and transformers' log-probs of the greedy and of seeded temperature-1
      samples equal vLLM's.
Prints "HF_VLLM_OK" and the log-prob mismatch statistics.
"""

import json
import sys
from pathlib import Path

import torch

NEW_TOKENS = 8
SAMPLES = 2
MAX_LOGP_DIFF = 1e-3  # fp32 on both sides; a wrong tensor or vocab row gives >> 0.1


def check_tokenizers(cases: list[dict]) -> None:
    from vllm.tokenizers import get_tokenizer

    for case in cases:
        tok = get_tokenizer(case["dir"])
        for text, ids in zip(case["texts"], case["ids"], strict=True):
            assert tok.encode(text, add_special_tokens=False) == ids, (case["dir"], text)
            assert tok.decode(ids) == text, (case["dir"], text)
        print(f"TOKENIZER {type(tok).__name__} {case['dir']}: {len(case['texts'])} texts agree")


def hf_next_token_logits(hf, prompt: list[int], response: list[int]) -> torch.Tensor:
    """[len(response), vocab]: transformers' logits for each response position."""
    with torch.no_grad():
        return hf(torch.tensor([prompt + response])).logits[0, len(prompt) - 1 : -1].float()


def hf_logprobs(hf, batch, check_argmax: bool) -> torch.Tensor:
    """transformers' log-prob of each response token, laid out like ``padded_responses``;
    with ``check_argmax`` every response token must also be transformers' argmax."""
    _, _, mask = batch.padded_responses()
    out = torch.zeros(mask.shape)
    for i, (prompt, response) in enumerate(zip(batch.prompt_ids, batch.response_ids, strict=True)):
        logits = hf_next_token_logits(hf, prompt, response)
        if check_argmax:
            assert logits.argmax(-1).tolist() == response, (prompt, response)
        logp = torch.log_softmax(logits, dim=-1)
        out[i, : len(response)] = logp.gather(-1, torch.tensor(response)[:, None])[:, 0]
    return out


def check_model(case: dict) -> dict:
    from transformers import AutoModelForCausalLM

    from prime_megatron.resharding.verify import logprob_mismatch
    from prime_megatron.rollout import RolloutConfig, RolloutEngine

    prompts = case["prompts"]
    cfg = RolloutConfig(max_prompt_len=max(map(len, prompts)), max_response_len=NEW_TOKENS,
                        kv_cache_gib=0.25, dtype="float32", load_format="auto")  # fmt: skip
    engine = RolloutEngine(Path(case["dir"]), cfg, seed=0)
    hf = AutoModelForCausalLM.from_pretrained(case["dir"], dtype=torch.float32).eval()
    report = {}
    for kind, batch in (("greedy", engine.greedy(prompts, NEW_TOKENS)),
                        ("sampled", engine.generate(prompts, SAMPLES, seed=0))):  # fmt: skip
        _, vllm_logp, mask = batch.padded_responses()
        hf_logp = hf_logprobs(hf, batch, check_argmax=kind == "greedy")
        report[kind] = logprob_mismatch(vllm_logp, hf_logp, mask)
        assert report[kind]["n_tokens"] > 0 and report[kind]["abs_max"] < MAX_LOGP_DIFF, report
    return report


def main() -> None:
    cases = json.loads(Path(sys.argv[1]).read_text())
    check_tokenizers(cases["tokenizers"])
    report = check_model(cases["model"])
    print("HF_VLLM_OK", json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
