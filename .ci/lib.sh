# Shared by the .ci scripts (sourced, not run).

# A banner per step, with the time spent so far, so a slow step shows in the log.
step() { echo; echo "=== $* [$(date +%T), ${SECONDS}s]"; }

fail() { echo "CI: FAILED: $*" >&2; exit 1; }

# The interpreter for Python X.Y without relying on a shell's pyenv init: pyenv's versions
# folder (this kind of machine has 3.11-3.13 there), then the system's. Highest patch wins.
find_python() {
  local want=$1 candidate
  for candidate in $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$want".*/bin/python"$want" 2>/dev/null | sort -rV) \
                   /usr/local/bin/python"$want" /usr/bin/python"$want"; do
    if [ -x "$candidate" ] && "$candidate" -c 'import ensurepip, venv' 2>/dev/null; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

# pip, quietly: the machine's pip config names local indexes that may not exist, and their
# warnings are noise. Keeps pip's exit status (a pipe into grep would hide it).
quiet_pip() {
  local status=0 log
  log=$(mktemp)
  "$@" >"$log" 2>&1 || status=$?
  grep -v "^WARNING: Location" "$log" || true
  rm -f "$log"
  return "$status"
}

# A fresh virtualenv at $2 for interpreter $1, with an up-to-date pip.
fresh_venv() {
  "$1" -m venv "$2"
  quiet_pip "$2/bin/pip" install -q --upgrade pip
}

# pip install into venv $1. --no-compile: these venvs live for one run, and byte-compiling
# every file of OpenCV, SciPy and friends costs more than it saves.
venv_install() {
  local venv=$1
  shift
  quiet_pip "$venv/bin/pip" install -q --no-compile "$@"
}

# The replay every deployable must run: a real clip (a sample name, resolved through the
# shipped manifest), every output, signed events checked with `detector verify`.
# Usage: replay_check BIN_DIR OUT_DIR KEY_DIR
replay_check() {
  local bin=$1 out=$2 keys=$3
  mkdir -p "$out"
  DETECTOR_OFFLINE=1 "$bin/detector" replay porch_bottle_drop_bad2 --no-progress \
    --tracks "$out/tracks.jsonl" --acts "$out/acts.jsonl" \
    --events "$out/events.jsonl" --key "$keys/ci.key" --start-time 2026-11-26T08:00:00Z
  "$bin/detector" verify "$out/events.jsonl" --pubkey "$keys/ci.pub"
  [ -s "$out/tracks.jsonl" ] || fail "replay wrote no tracks ($out)"
}

# Replays give the same bytes for the same clip, config and key. Within one Python and the same
# libraries (the edge install) that is the product's promise: a difference fails. Across Pythons
# the libraries differ too (NumPy 2.5 needs 3.12+), so a difference is reported, not failed.
# Usage: same_replay REF_DIR OUT_DIR WHAT strict|report
same_replay() {
  local ref=$1 out=$2 what=$3 mode=$4 f differ=""
  for f in tracks.jsonl acts.jsonl events.jsonl; do
    cmp -s "$ref/$f" "$out/$f" || differ="$differ $f"
  done
  if [ -z "$differ" ]; then
    echo "$what: tracks, acts and signed events byte-identical to the reference replay (Python 3.11, development install)"
  elif [ "$mode" = strict ]; then
    fail "$what:$differ differ from the reference replay of the development install"
  else
    echo "NOTE: $what:$differ differ from the Python 3.11 reference replay (other library versions?)"
  fi
}

# Where the models and sample clips are (as the Makefile does): ../shared beside the clone.
if [ -d ../shared/models ] && [ -z "${DETECTOR_MODEL_DIR:-}" ]; then export DETECTOR_MODEL_DIR=$(cd ../shared/models && pwd); fi
if [ -d ../shared/footage ] && [ -z "${DETECTOR_SAMPLE_DIR:-}" ]; then export DETECTOR_SAMPLE_DIR=$(cd ../shared/footage && pwd); fi

# One scratch folder per CI run, shared by the scripts (.ci/run sets CI_WORK); removed at the end.
if [ -z "${CI_WORK:-}" ]; then
  CI_WORK=$(mktemp -d "${TMPDIR:-/tmp}/detector-ci.XXXXXX")
  trap 'rm -rf "$CI_WORK"' EXIT
fi
export CI_WORK

# The reference replay, by the development install (.venv, Python 3.11, from `make install`),
# and the camera key every replay signs with (Ed25519 signatures are deterministic, so the
# same acts give the same signed bytes).
reference_replay() {
  if [ ! -s "$CI_WORK/ref/tracks.jsonl" ]; then
    [ -x .venv/bin/detector ] || fail "no development install: run 'make install' first"
    .venv/bin/detector keys generate --camera ci --out "$CI_WORK/keys" >/dev/null
    replay_check .venv/bin "$CI_WORK/ref" "$CI_WORK/keys"
  fi
}

# Size of what an install put into a venv beyond a bare venv with pip, in MiB.
installed_mib() {
  local site
  site=$("$1/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  du -sm --exclude='pip' --exclude='pip-*' "$site" | cut -f1
}
