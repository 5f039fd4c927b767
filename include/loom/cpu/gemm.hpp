// loom/cpu/gemm.hpp: the packed GEMM engine of the CPU backend (includes only).
//
// gemm<T>(M, N, K, a_source, b_source, epilogue): sources in gemm/source.hpp, epilogues in
// gemm/epilogue.hpp, blocking in gemm/blocking.hpp, the loops and threads in gemm/driver.hpp.
#pragma once

#include "loom/cpu/gemm/blocking.hpp"
#include "loom/cpu/gemm/driver.hpp"
#include "loom/cpu/gemm/epilogue.hpp"
#include "loom/cpu/gemm/micro_kernel.hpp"
#include "loom/cpu/gemm/pack.hpp"
#include "loom/cpu/gemm/source.hpp"
#include "loom/cpu/gemm/workspace.hpp"
