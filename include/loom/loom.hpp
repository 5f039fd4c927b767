// loom/loom.hpp: the CPU library, all of it. The CUDA backend is loom/cuda.hpp.
#pragma once

#include "loom/core/config.hpp"
#include "loom/core/dtype.hpp"
#include "loom/core/error.hpp"
#include "loom/core/shape.hpp"
#include "loom/cpu/assign.hpp"
#include "loom/cpu/thread_pool.hpp"
#include "loom/expr/elementwise.hpp"
#include "loom/expr/map.hpp"
#include "loom/expr/node.hpp"
#include "loom/expr/ops.hpp"
#include "loom/cpu/explain.hpp"
#include "loom/plan/explain.hpp"
#include "loom/plan/plan.hpp"
#include "loom/tensor/tensor.hpp"
#include "loom/tensor/view.hpp"
