// loom/cuda.hpp: the CUDA backend, all of it. Builds with plain g++: nothing CUDA is needed to
// compile or link; the driver, NVRTC and cuBLASLt are loaded at run time.
#pragma once

#include "loom/cuda/assign.hpp"
#include "loom/cuda/codegen/emit.hpp"
#include "loom/cuda/codegen/kernel.hpp"
#include "loom/cuda/codegen/layout.hpp"
#include "loom/cuda/codegen/preamble.hpp"
#include "loom/cuda/codegen/reduce_kernel.hpp"
#include "loom/cuda/compile.hpp"
#include "loom/cuda/copy.hpp"
#include "loom/cuda/options.hpp"
#include "loom/cuda/reduce.hpp"
#include "loom/cuda/runtime/device.hpp"
#include "loom/cuda/runtime/launch.hpp"
#include "loom/cuda/runtime/memory.hpp"
#include "loom/cuda/runtime/module_cache.hpp"
#include "loom/cuda/runtime/nvrtc.hpp"
#include "loom/cuda/runtime/stream.hpp"
#include "loom/cuda/tensor.hpp"
#include "loom/expr/elementwise.hpp"
