#!/usr/bin/env bash
# Trains the shipped models, one heavy job at a time, resumably: rerun it after any interruption and it
# continues where it stopped (every stage skips finished outputs; VQGAN and chain runs resume from their
# checkpoints). Work goes under runs/ (not in git); `imagebart chain export` + `chain card` make the
# release copies under models/ once a chain is judged good by its curves.
#
#   scripts/train-models.sh [mnist|fashion-mnist|emoji|mnist-uncond|fashion-mnist-uncond ...]
#   (default: the three conditional chains, in that order)
set -euo pipefail
cd "$(dirname "$0")/.."
ib() { node dist/src/cli/main.js "$@"; }
say() { echo "[train-models $(date -u +%H:%M)] $*" >&2; }

# First stage: a 32×32 → 8×8 VQGAN (no adversarial phase: at this size it wrecked reconstructions),
# its codebook shrunk to the codes used on 10 000 training images (the test split stays unseen).
vqgan() { # data dir steps [extra train flags…]
  local data=$1 dir=$2 steps=$3; shift 3
  if [ ! -f "$dir/vqgan.safetensors" ]; then
    ib vqgan train --data "$data" --out "$dir/vqgan-run" --steps "$steps" --disc-start 1000000000 --autocast "$@"
    ib vqgan shrink --model "$dir/vqgan-run/model.safetensors" --data "$data" --split train --max-images 10000 --out "$dir/vqgan.safetensors"
  fi
}

tokens() { # data dir vqgan
  local data=$1 dir=$2 vq=$3
  for split in train test; do
    [ -f "$dir/tokens-$split.safetensors" ] || ib vqgan encode --model "$vq" --data "$data" --split "$split" --out "$dir/tokens-$split.safetensors"
  done
}

# The chains: ResidualScaled encoder-decoders of 4 + 2 layers at width 192 (WIDTH overrides), batch 64,
# a 256-sample quality check every 1000 steps. ResidualScaled (the official FFHQ/ImageNet T = 4 choice) came
# after the shipped conditional chains were trained: in the MNIST ablation it lowered a T = 4 chain's NLL
# bound from 5.63 to 4.84 bits/token at equal steps.
chain() { # data dir out vqgan T gpt-depth steps flags…   (quality checks by the kept bench/classifiers/<data>)
  local data=$1 dir=$2 out=$3 vq=$4 T=$5 gpt=$6 steps=$7; shift 7
  [ -f "$out/chain.json" ] && return 0
  ib chain train --all --jobs "$T" --tokens "$dir/tokens-train.safetensors" --out "$out" --vqgan "$vq" --T "$T" --residual "$@" \
    --width "${WIDTH:-192}" --enc-depth 4 --dec-depth 2 --gpt-depth "$gpt" --batch-size 64 --lr 6e-4 --steps "${STEPS:-$steps}" \
    --eval-every 250 --autocast --classifier "bench/classifiers/$data.safetensors" --quality-every 1000
}
# Conditional: T = 3 with a 6-layer GPT, conditions dropped 10% of the time so one chain samples
# conditionally, unconditionally and with guidance (≈ 3M parameters per scale).
conditional() { chain "$1" "$2" "$2/chain" "$3" 3 6 6000 --warmup 300 --cond-dropout 0.1 "${@:4}"; }
# Unconditional: T = 2 with an 8-layer GPT, 10 000 steps (at equal parameters and steps the ablation's
# unconditional samples got worse with T, and its chains had not converged at 3000 steps).
unconditional() { chain "$1" "$2" "$2/uncond" "$3" 2 8 10000 --warmup 500; }
# Its autoguidance: a small chain of the same process (width 64, encoder 2 + decoder 1 layers, a 4-layer
# GPT: about 0.2M parameters per scale) trained briefly (3000 steps, a few minutes), which the release
# ships as the default guide (chain export --guide runs/models/<data>/guide/chain.json --guidance S).
guide() { # dir vqgan
  [ -f "$1/guide/chain.json" ] && return 0
  ib chain train --all --tokens "$1/tokens-train.safetensors" --out "$1/guide" --vqgan "$2" --T 2 --residual \
    --width 64 --enc-depth 2 --dec-depth 1 --gpt-depth 4 --batch-size 64 --lr 1e-3 --warmup 200 --steps 3000 --eval-every 500 --autocast
}

for arg in "${@:-mnist fashion-mnist emoji}"; do
  for d in $arg; do
    # an unconditional chain (-uncond) shares its dataset's VQGAN and tokens
    data=${d%-uncond} dir=runs/models/${d%-uncond}
    vq=$dir/vqgan.safetensors vqsteps=
    case $d in
      mnist|mnist-uncond) vq=models/mnist/vqgan.safetensors ;;   # the shipped MNIST VQGAN (26.1 dB test PSNR)
      # the shipped class chain's VQGAN, whose tokens are kept apart from a retrained one's
      fashion-mnist-uncond) vq=models/fashion-mnist-class/vqgan.safetensors dir=$dir/shipped-vqgan ;;
      fashion-mnist) vqsteps=4000 ;;
      emoji) vqsteps=3500 ;;
      *) echo "unknown dataset $d (mnist, fashion-mnist, emoji; mnist-uncond, fashion-mnist-uncond)" >&2; exit 2 ;;
    esac
    mkdir -p "$dir"
    say "$d"
    [ -z "$vqsteps" ] || vqgan "$data" "$dir" "$vqsteps"
    tokens "$data" "$dir" "$vq"
    case $d in
      mnist|fashion-mnist) conditional "$data" "$dir" "$vq" --classes 10 ;;
      *-uncond) unconditional "$data" "$dir" "$vq"; guide "$dir" "$vq" ;;
      # 3786 × 2 images: a width-128 chain (6.3M parameters over its three scales) fits the size budget
      # and is not starved of data the way a wider one would be; 2500 steps as models/emoji-text
      emoji) WIDTH=${WIDTH:-128} STEPS=${STEPS:-2500} conditional emoji "$dir" "$vq" --caption-length 32 ;;
    esac
  done
done
say done
