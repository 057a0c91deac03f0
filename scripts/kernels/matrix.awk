#!/usr/bin/awk -f
# Reads the logs of run.sh (one per kernel, named KERNEL.log) and prints the
# matrix package x kernel, then every failed, skipped or unfinished test.
# Exits 1 unless every package passed on every kernel with no test skipped.
# -v hostonly="pkg ..." names packages that only build with cgo (not in VMs).
function kname(f,   n) { n = f; sub(/.*\//, "", n); sub(/\.log$/, "", n); return n }
{ sub(/\r$/, "") }
FNR == 1 { k = kname(FILENAME); kernels[++nk] = k; pkg = ""; release[k] = "?" }
/^@@VM kernel / { release[k] = $3 }
/^@@VM begin / { pkg = $3; if (!(pkg in seen)) { seen[pkg] = 1; pkgs[++np] = pkg }; began[k, pkg] = 1; next }
/^@@VM end / {
  split($4, a, "="); rc[k, pkg] = a[2]; split($5, b, "="); secs[k, pkg] = b[2]; ended[k, pkg] = 1; pkg = ""; next
}
/^@@VM done/ { done[k] = 1 }
pkg != "" && /^--- PASS: / { pass[k, pkg]++ }
# The last three messages of each failed test or subtest, which usually say
# why. go test -v prints a subtest's result after its parent's, so messages
# are kept per test name (=== RUN/NAME/CONT say whose lines follow).
pkg != "" && /^=== (RUN|NAME|CONT) / { test = $3 }
pkg != "" && /^    [^ ].*\.go:[0-9]+: / { n = nmsg[k, pkg, test]++; last[k, pkg, test, n % 3] = substr($0, 5, 300) }
pkg != "" && /^ *--- FAIL: / {
  if ($0 ~ /^---/) { fail[k, pkg]++; failed[k, pkg] = failed[k, pkg] " " $3 }
  n = nmsg[k, pkg, $3]
  if (n > 0) {
    msg = ""
    for (i = (n > 3 ? n - 3 : 0); i < n; i++) msg = msg "\n      " last[k, pkg, $3, i % 3]
    why[k, pkg] = why[k, pkg] "\n    " $3 ":" msg
  }
}
pkg != "" && /^--- SKIP: / { skip[k, pkg]++; skipped[k, pkg] = skipped[k, pkg] " " $3 }
pkg != "" && /^(panic: |fatal error: |\[signal )/ { crash[k, pkg] = $0 }
END {
  bad = 0
  w = 28
  printf "%-" w "s", "package"
  for (i = 1; i <= nk; i++) printf " %-22s", kernels[i] " (" release[kernels[i]] ")"
  printf "\n"
  for (j = 1; j <= np; j++) {
    p = pkgs[j]; printf "%-" w "s", p
    for (i = 1; i <= nk; i++) {
      k = kernels[i]
      if (!((k, p) in began)) { cell = "not run"; bad = 1 }
      else if (!((k, p) in ended)) { cell = "CRASHED"; bad = 1 }
      else if (rc[k, p] != 0 || fail[k, p] > 0) { cell = sprintf("FAIL %d/%d", fail[k, p], pass[k, p] + fail[k, p]); bad = 1 }
      else if (skip[k, p] > 0) { cell = sprintf("SKIP %d, %d ok", skip[k, p], pass[k, p]); bad = 1 }
      else cell = sprintf("ok %d (%ds)", pass[k, p], secs[k, p])
      printf " %-22s", cell
    }
    printf "\n"
  }
  n = split(hostonly, ho, " ")
  for (j = 1; j <= n; j++) printf "%-" w "s %s\n", ho[j], "host only: needs cgo (make test runs it)"
  for (i = 1; i <= nk; i++) {
    k = kernels[i]
    if (!(k in done)) { printf "\n%s: the run did not finish (boot failure, panic or timeout): see its log\n", k; bad = 1 }
    for (j = 1; j <= np; j++) {
      p = pkgs[j]
      if (failed[k, p] != "") printf "%s %s: failed:%s%s\n", k, p, failed[k, p], why[k, p]
      if (skipped[k, p] != "") printf "%s %s: skipped:%s\n", k, p, skipped[k, p]
      if ((k, p) in crash) printf "%s %s: %s\n", k, p, crash[k, p]
      if (((k, p) in ended) && rc[k, p] != 0 && failed[k, p] == "") printf "%s %s: exit status %s\n", k, p, rc[k, p]
    }
  }
  # One closing line over every kernel and package, in the form CI reads.
  tp = tf = ts = 0
  for (i = 1; i <= nk; i++) for (j = 1; j <= np; j++) {
    tp += pass[kernels[i], pkgs[j]]; tf += fail[kernels[i], pkgs[j]]; ts += skip[kernels[i], pkgs[j]]
  }
  printf "\nmatrix: %d passed, %d failed, %d skipped\n", tp, tf, ts
  exit bad
}
