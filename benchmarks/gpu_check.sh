#!/usr/bin/env bash
# GPU checks of the training layer (and friends), under 5 minutes on one GPU.
#
#   bash benchmarks/gpu_check.sh            # results in runs/gpu-check/ (and a summary table)
#   GPU_CHECK_MODEL=/path/to/SmolLM2-135M-Instruct GPU_CHECK_OUT=/tmp/gc bash benchmarks/gpu_check.sh
#
# 1. bf16 LoRA SFT of SmolLM2-135M for a few steps      (prefkit train sft --bf16)
# 2. bf16 LoRA DPO from that SFT run (merged reference)   (prefkit train dpo --bf16)
# 3. a 4-bit QLoRA load and training step                 (prefkit train sft --load-in-4bit)
# 4. batched generation with the hf backend               (prefkit generate --backend hf --batch-size 16)
# 5. prefkit nppl train on CUDA                           (prefkit nppl train --device cuda)
#
# Without CUDA (CI, laptops) it prints one line and exits 0. A step whose optional dependency is
# missing (bitsandbytes for 3) is reported as skipped; any other failure makes the script exit 1.
# Each step's wall time and key metrics go to $OUT/gpu_check.json.
set -uo pipefail

PY=${PYTHON:-python}
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    echo "gpu_check: no CUDA device; skipped"
    exit 0
fi

MODEL=${GPU_CHECK_MODEL:-HuggingFaceTB/SmolLM2-135M-Instruct}
OUT=${GPU_CHECK_OUT:-runs/gpu-check}
STEPS=${GPU_CHECK_STEPS:-20}
mkdir -p "$OUT"
export PREFKIT_RUNS_DIR="$OUT/runs"

"$PY" - "$OUT" <<'PYEOF'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
topics = ["the ocean", "a city at night", "learning to cook", "a rainy day", "mountains", "trains", "coffee",
          "a library", "winter", "gardening", "the moon", "bicycles", "a market", "music", "the desert", "birds"]
sft = [{"prompt": f"Write two sentences about {t}.", "completion": f"Here are two sentences about {t}. "
        f"It is worth a closer look, and {t} rewards patience."} for t in topics]
pref = [{"prompt": f"Describe {t} briefly.", "chosen": f"{t.capitalize()} in one vivid, accurate sentence.",
         "rejected": "I don't know."} for t in topics]
prompts = [{"prompt": f"Tell me one fact about {t}."} for t in topics * 2]
for name, rows in (("sft", sft * 4), ("pref", pref * 4), ("prompts", prompts)):
    (out / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
PYEOF

declare -A STATUS TIME
FAILED=0
step() {  # step NAME COMMAND...
    local name=$1; shift
    local t0=$(date +%s%N)
    echo "== $name: $*"
    if "$@" > "$OUT/$name.json" 2> "$OUT/$name.log"; then
        STATUS[$name]=ok
    elif grep -q "needs bitsandbytes" "$OUT/$name.log"; then
        STATUS[$name]=skipped
    else
        STATUS[$name]=FAILED; FAILED=1; tail -20 "$OUT/$name.log"
    fi
    local ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    TIME[$name]=$(( ms / 1000 )).$(printf "%03d" $(( ms % 1000 )))
    echo "   ${STATUS[$name]} in ${TIME[$name]} s"
}

COMMON=(--max-steps "$STEPS" --batch-size 8 --logging-steps 5 --save-steps 1000 --max-length 256 --bf16 --json)
step sft    prefkit train sft --model "$MODEL" --dataset "$OUT/sft.jsonl" "${COMMON[@]}" -o "$OUT/sft" --fresh
step dpo    prefkit train dpo --model "$OUT/sft" --dataset "$OUT/pref.jsonl" --eval-dataset "$OUT/pref.jsonl" \
                --eval-limit 16 "${COMMON[@]}" -o "$OUT/dpo" --fresh
step qlora  prefkit train sft --model "$MODEL" --dataset "$OUT/sft.jsonl" --max-steps 2 --batch-size 4 \
                --load-in-4bit --no-merge --max-length 256 --json -o "$OUT/qlora" --fresh
step generate prefkit generate --backend hf --model "$OUT/dpo/merged" --input "$OUT/prompts.jsonl" \
                --batch-size 16 --max-tokens 32 --temperature 0 --no-cache --json -o "$OUT/generate" --fresh
step nppl   prefkit nppl train --data synthetic --steps 200 --device cuda --json -o "$OUT/nppl" --fresh

"$PY" - "$OUT" "${STATUS[sft]}:${TIME[sft]}" "${STATUS[dpo]}:${TIME[dpo]}" "${STATUS[qlora]}:${TIME[qlora]}" \
    "${STATUS[generate]}:${TIME[generate]}" "${STATUS[nppl]}:${TIME[nppl]}" <<'PYEOF'
import json, sys
from pathlib import Path
import torch
out = Path(sys.argv[1])
names = ["sft", "dpo", "qlora", "generate", "nppl"]
summary = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "steps": {}}
for name, st in zip(names, sys.argv[2:]):
    status, secs = st.split(":")
    entry = {"status": status, "wall_s": round(float(secs or 0), 1)}
    try:
        text = (out / f"{name}.json").read_text()
        data = json.loads(text[text.index("{"):])
        m = data.get("metrics", data)
        for k in ("train_loss", "eval_loss", "eval_rewards/accuracies", "global_step", "train_runtime",
                  "world_size", "done", "failed", "completion_tokens"):
            if isinstance(m, dict) and k in m:
                entry[k] = m[k]
    except (OSError, ValueError):
        pass
    summary["steps"][name] = entry
(out / "gpu_check.json").write_text(json.dumps(summary, indent=2))
print(f"\n{'step':10} {'status':8} {'wall s':>8}  metrics")
for name, e in summary["steps"].items():
    extra = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in e.items()
                      if k not in ("status", "wall_s") and v is not None)
    print(f"{name:10} {e['status']:8} {e['wall_s']:8.1f}  {extra}")
print(f"\n{summary['device']} · torch {summary['torch']} · details in {out}/gpu_check.json")
PYEOF
exit $FAILED
