#!/usr/bin/env bash
# Rewrites references to documents outside the repository (SPEC §n, TESTBED §n, STACK.md, STYLE) in code comments
# into references to the project's own docs, as listed in docs/.refs.tsv. Idempotent: a second run changes nothing.
#
#   docs/.apply-refs.sh            rewrite in place, then list any reference left over (exit 1 if some remain)
#   docs/.apply-refs.sh --check    only verify that every target in docs/.refs.tsv exists (file and heading anchor)
#   docs/.apply-refs.sh --dry-run  show which files would change, change nothing
#
# Files: *.rs under src sim testkit tests bench testbed/agent; also the comments of k8s/**/*.yaml, Cargo.toml and
# BENCHMARKS.md. Run from anywhere; the repository is the parent of this script's directory.
set -euo pipefail
export LC_ALL=C

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tsv="$root/docs/.refs.tsv"
mode="${1:-apply}"

# The rows of the table, without comments and blank lines.
rows() { grep -v -e '^#' -e '^[[:space:]]*$' "$tsv"; }

check_anchors() {
	python3 - "$root" "$tsv" <<'PY'
import re, sys, pathlib
root, tsv = pathlib.Path(sys.argv[1]), sys.argv[2]

def slugs(path):
    """GitHub heading anchors of a Markdown file (duplicates get -1, -2 …)."""
    seen, out, fence = {}, set(), False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fence = not fence
        if fence:
            continue
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", m.group(1))   # links: keep their text
        text = text.replace("`", "").strip().lower()
        slug = re.sub(r"[^\w\- ]", "", text).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out

bad = 0
for line in open(tsv, encoding="utf-8"):
    if line.startswith("#") or not line.strip():
        continue
    _, target = line.rstrip("\n").split("\t")
    for ref in re.findall(r"(?:docs/[\w.-]+\.md|README\.md)(?:#[\w-]+)?", target):
        file, _, anchor = ref.partition("#")
        path = root / file
        if not path.is_file():
            print(f"missing file: {ref}"); bad += 1
        elif anchor and anchor not in slugs(path):
            print(f"missing anchor: {ref}"); bad += 1
sys.exit(1 if bad else 0)
PY
}

# A sed script with one substitution per row, longest form first, every character taken literally.
sed_script() {
	local form target
	rows | awk -F'\t' '{ print length($1) "\t" $0 }' | sort -t$'\t' -k1,1nr | cut -f2- |
		while IFS=$'\t' read -r form target; do
			form="$(printf '%s' "$form" | sed -e 's/[]\\.*^$[@]/\\&/g')"
			target="$(printf '%s' "$target" | sed -e 's/[\\&@]/\\&/g')"
			printf 's@%s@%s@g\n' "$form" "$target"
		done
}

files() {
	local d
	for d in src sim testkit tests bench testbed/agent; do
		[ -d "$root/$d" ] && find "$root/$d" -name '*.rs' -not -path '*/target/*'
	done
	[ -d "$root/k8s" ] && find "$root/k8s" -name '*.yaml'
	for f in Cargo.toml BENCHMARKS.md; do [ -f "$root/$f" ] && echo "$root/$f"; done
	return 0
}

leftovers() {
	files | xargs grep -nE '(SPEC|TESTBED|STACK|STYLE)( §|\.md|:| defaults)' 2>/dev/null || true
}

case "$mode" in
--check)
	check_anchors && echo "every target in docs/.refs.tsv exists"
	;;
--dry-run | apply)
	check_anchors
	script="$(mktemp)"
	trap 'rm -f "$script"' EXIT
	sed_script >"$script"
	changed=0
	while IFS= read -r file; do
		if ! sed -f "$script" "$file" | cmp -s - "$file"; then
			changed=$((changed + 1))
			echo "${file#"$root"/}"
			[ "$mode" = apply ] && sed -i -f "$script" "$file"
		fi
	done < <(files)
	echo "$changed file(s) $([ "$mode" = apply ] && echo rewritten || echo would change)"
	left="$(leftovers)"
	if [ -n "$left" ]; then
		echo "references left (add a row to docs/.refs.tsv):"
		echo "${left//"$root"\//}"
		[ "$mode" = apply ] && exit 1
	fi
	;;
*)
	echo "usage: $0 [--check|--dry-run]" >&2
	exit 2
	;;
esac
