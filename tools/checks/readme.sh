#!/usr/bin/env bash
# Every C++ code block of README.md compiles: a block with a main() is built and run; any other
# block is compiled as the body of a function (with loom.hpp, and cuda.hpp where it uses cuda::).
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 - "$here/README.md" "$tmp" <<'PY'
import pathlib, re, sys
text = pathlib.Path(sys.argv[1]).read_text()
out = pathlib.Path(sys.argv[2])
blocks = re.findall(r"```cpp\n(.*?)```", text, re.S)
for i, b in enumerate(blocks):
    if "int main" in b:
        src = b
    else:
        inc = "#include <loom/loom.hpp>\n" + ("#include <loom/cuda.hpp>\n" if "cuda::" in b else "")
        src = inc + "using namespace loom;\n[[maybe_unused]] static void snippet() {\n" + b + "\n}\nint main() {}\n"
    (out / f"block{i:02d}.cpp").write_text(src)
print(f"readme: {len(blocks)} C++ blocks")
PY
for src in "$tmp"/block*.cpp; do
  g++ -std=c++20 -O1 -march=native -I"$here/include" "$src" -o "${src%.cpp}" -pthread -ldl ||
    { echo "README block does not compile: $(basename "$src")"; cat -n "$src"; exit 1; }
  if grep -q "int main() {$" "$src" || grep -q "int main()$" "$src"; then "${src%.cpp}" >/dev/null; fi
done
echo "readme: every C++ block compiles"
