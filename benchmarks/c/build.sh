#!/bin/sh
# Build the C reference TLB loop with the machine's gcc (not needed by the tests).
# usage: benchmarks/c/build.sh [OUTDIR]   (default: /tmp/execbench-c)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-/tmp/execbench-c}
mkdir -p "$out"
${CC:-gcc} -O2 -march=native -Wall -Wextra -o "$out/tlb_ref" "$here/tlb_ref.c"
echo "$out/tlb_ref"
