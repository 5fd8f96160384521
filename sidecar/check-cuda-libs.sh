#!/usr/bin/env bash
# Checks, without a GPU, that ONNX Runtime's CUDA provider library can load in this image: every library it
# links is found, and the CUDA and cuDNN majors it was built for are the image's. A CUDA 12 base image with
# provider libraries built for CUDA 13 (onnxruntime-node 1.27+) otherwise leaves the worker silently on the CPU.
# The worker image runs it at build time (sidecar/Dockerfile); test/check-cuda-libs.test.ts tests it.
#
#   check-cuda-libs.sh PROVIDER_LIB [--cuda-major N] [--cudnn-major N]
#
# The image's majors default to the nvidia/cuda images' own variables: CUDA_VERSION (13.2.1) and
# NV_CUDNN_VERSION (9.x.y.z-1). Exit 0 and one "ok" line, or exit 1 with one line per problem on stderr.
set -uo pipefail

lib="${1:-}"
[ -n "$lib" ] || { echo "usage: check-cuda-libs.sh PROVIDER_LIB [--cuda-major N] [--cudnn-major N]" >&2; exit 2; }
shift
cuda_major="${CUDA_VERSION:-}"; cuda_major="${cuda_major%%.*}"
cudnn_major="${NV_CUDNN_VERSION:-}"; cudnn_major="${cudnn_major%%.*}"
while [ $# -gt 0 ]; do
  case "$1" in
    --cuda-major) cuda_major="${2:-}"; shift 2 ;;
    --cudnn-major) cudnn_major="${2:-}"; shift 2 ;;
    *) echo "check-cuda-libs: unknown argument $1" >&2; exit 2 ;;
  esac
done

fail() { echo "check-cuda-libs: $lib: $1" >&2; exit 1; }
[ -f "$lib" ] || fail "missing"
[ -n "$cuda_major" ] || fail "the image's CUDA major is unknown: set CUDA_VERSION (the nvidia/cuda images do) or pass --cuda-major"
[ -n "$cudnn_major" ] || fail "the image's cuDNN major is unknown: set NV_CUDNN_VERSION (the -cudnn- images do) or pass --cudnn-major"

# ONNX Runtime loads libonnxruntime_providers_shared.so from the provider's own directory before the provider:
# resolve it from there as the loader will.
dir="$(cd "$(dirname "$lib")" && pwd)"
# -r: also resolve every function the provider calls, so an image whose CUDA or cuDNN minor is older than the
# one the provider was built with (a symbol it lacks) fails here too, not at the first session
if ! links="$(LD_LIBRARY_PATH="$dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ldd -r "$lib" 2>&1)"; then
  fail "ldd failed: $(echo "$links" | head -n 1)"
fi

problems=()
# the driver's own libraries are not in any image: the NVIDIA container toolkit mounts them when a GPU task starts
driver_libs='^(libcuda\.so\.1|libnvidia-ml\.so\.1)$'
not_found="$(echo "$links" | awk '$2 == "=>" && $3 == "not" { print $1 }' | sort -u)"
missing="$(echo "$not_found" | grep -Ev "$driver_libs" | paste -sd ' ' -)"
from_driver="$(echo "$not_found" | grep -E "$driver_libs" | paste -sd ' ' -)"
[ -n "$missing" ] && problems+=("not found: $missing")
# functions of the CUDA runtime and libraries (cuda*, cublas*, cudnn*, curand*, cufft*; the driver's cuXxx come at run time)
undefined="$(echo "$links" | sed -n 's/^[[:space:]]*undefined symbol: \(\(cuda\|cublas\|cudnn\|curand\|cufft\)[A-Za-z0-9_]*\).*/\1/p' | sort -u)"
if [ -n "$undefined" ]; then
  problems+=("calls functions the image's CUDA / cuDNN libraries lack (built against newer minors?): $(echo "$undefined" | head -n 5 | paste -sd ' ' -)$( [ "$(echo "$undefined" | wc -l)" -gt 5 ] && echo ' …')")
fi

# the soname's major: libcudart.so.13 -> 13; the CUDA runtime and cuBLAS follow the toolkit's major, cuDNN its own
major_of() { local m="${1##*.so.}"; echo "${m%%.*}"; }
seen_cuda=""; seen_cudnn=""
for soname in $(echo "$links" | awk '{ print $1 }' | sort -u); do
  case "$soname" in
    libcudart.so.*|libcublas.so.*|libcublasLt.so.*)
      seen_cuda=1
      m="$(major_of "$soname")"
      [ "$m" = "$cuda_major" ] || problems+=("$soname is built for CUDA $m, the image has CUDA $cuda_major")
      ;;
    libcudnn.so.*)
      seen_cudnn=1
      m="$(major_of "$soname")"
      [ "$m" = "$cudnn_major" ] || problems+=("$soname is cuDNN $m, the image has cuDNN $cudnn_major")
      ;;
  esac
done
[ -n "$seen_cuda" ] || problems+=("links no CUDA runtime (libcudart.so.N or libcublas.so.N): not a CUDA provider library?")
[ -n "$seen_cudnn" ] || problems+=("links no cuDNN (libcudnn.so.N)")

if [ ${#problems[@]} -gt 0 ]; then
  for p in "${problems[@]}"; do echo "check-cuda-libs: $lib: $p" >&2; done
  exit 1
fi
echo "check-cuda-libs: ok: $lib links CUDA $cuda_major and cuDNN $cudnn_major, every library found${from_driver:+ (from the driver, mounted at run time: $from_driver)}"
