#!/usr/bin/env bash
# The notebooks' kernel, ready, in one command (docs/getting-started.md):
#
#   scripts/notebook-setup.sh
#
# 1. evcxr_jupyter 0.22.0 when it is missing (`cargo install --locked`, a release build:
#    25-28 minutes on two cores, once; evcxr's prebuilt release binaries are the fast way, see
#    getting-started.md, and this step is skipped once `evcxr_jupyter` is on the PATH). Not
#    CI's opt-level-1 build: the kernel runs rust-analyzer in-process on every new kernel's
#    first cells, and the release build does that faster (docs/notebooks.md, "The first `:dep`");
# 2. the kernel's build folder warmed: notebook 01's first cell (`:dep massivetext …`) run
#    once, headless, into EVCXR_TMPDIR (default ~/.cache/massivetext-evcxr/kernel), so the
#    first cell of a notebook then takes seconds instead of minutes (6 on two free cores);
# 3. the `rust` kernel registered with your Jupyter (`evcxr_jupyter --install`).
#
# Then start Jupyter with the same EVCXR_TMPDIR and the loader path this prints.
set -euo pipefail
cd "$(dirname "$0")/.."
export EVCXR_TMPDIR="${EVCXR_TMPDIR:-$HOME/.cache/massivetext-evcxr/kernel}"
mkdir -p "$EVCXR_TMPDIR"
# .ci/notebooks --prepare installs evcxr_jupyter when missing and runs the first notebook's
# `:dep` cell in the build folder it is given
MASSIVETEXT_EVCXR_OPT=3 MASSIVETEXT_EVCXR_TMPDIR="$EVCXR_TMPDIR" .ci/notebooks --prepare
command -v evcxr_jupyter >/dev/null || export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
evcxr_jupyter --install >/dev/null
HOST="$(rustc -vV | sed -n 's/^host: //p')"
cat <<MSG
notebook-setup: the kernel \`rust\` is registered and its build folder is warm.
Start Jupyter with:
  export EVCXR_TMPDIR="$EVCXR_TMPDIR"
  export LD_LIBRARY_PATH="$(rustc --print sysroot)/lib/rustlib/$HOST/lib"
  jupyter lab notebooks/
MSG
