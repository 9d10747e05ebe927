#!/usr/bin/env bash
# Commit the records the grid workers have finished, with every report rebuilt from exactly those records.
#   bash scripts/commit_results.sh "results: base T15 5 shots, seed 2"
# Workers keep writing while the reports are rebuilt: the listing of new records is taken before and after, and
# the rebuild is redone (up to 3 times) until no record landed in between, so a commit never holds a record its
# reports leave out. The report of every suite with a results folder and a committed report is rebuilt, then the
# claims. BENCH overrides the command (default: bench on PATH).
set -u
cd "$(dirname "$0")/.."
MSG=${1:?usage: scripts/commit_results.sh MESSAGE}
BENCH=${BENCH:-bench}
for attempt in 1 2 3; do
  before=$(git ls-files --others --exclude-standard results/ | sort)
  for dir in results/*/; do
    suite=$(basename "$dir")
    [ -f "reports/$suite.md" ] || continue
    $BENCH report --suite "$suite" > /dev/null 2>&1 || echo "report failed: $suite" >&2
  done
  $BENCH report --suite claims > /dev/null 2>&1 || echo "report failed: claims" >&2
  after=$(git ls-files --others --exclude-standard results/ | sort)
  if [ "$before" = "$after" ]; then
    if [ -n "$after" ]; then echo "$after" | xargs -d "\n" git add --; fi
    git add reports/ && git add -u results/
    if git diff --cached --quiet; then echo "nothing to commit"; exit 0; fi
    git commit -qm "$MSG" && echo "committed: $(git log --oneline -1)"
    exit 0
  fi
  echo "a record landed while the reports were rebuilt; again" >&2
done
exit 1
