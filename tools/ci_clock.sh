# Sourced by tools/checks/*.sh: ci_elapsed prints the seconds since the CI run began
# (tools/quickstart.sh exports LOOM_QUICKSTART_START) and fails outside such a run, so that a check
# can do less late in a run:  if t=$(ci_elapsed) && ((t > limit)); then ...
ci_elapsed() {
  [[ -n ${LOOM_QUICKSTART_START:-} ]] || return 1
  echo $(($(date +%s) - LOOM_QUICKSTART_START))
}
