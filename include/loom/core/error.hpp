// loom/core/error.hpp: the exceptions loom throws for user errors.
//
// Every user mistake is reported by throwing one of these, with the user's values (shapes, axis,
// generated source, compiler log) in the message. Nothing calls exit or abort.
#pragma once

#include <stdexcept>
#include <string>

namespace loom {

/// Base of every exception loom throws.
class error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Shapes that do not fit: broadcasting, assignment, matmul inner extents, reshape, bad axes,
/// reducing an empty axis with max/min/argmax/argmin.
class shape_error : public error {
 public:
  using error::error;
};

/// The CUDA driver, a device or a launch failed, or CUDA is not there at all.
class cuda_error : public error {
 public:
  using error::error;
};

/// Run-time compilation (NVRTC) failed; the message holds the log and the numbered source.
class jit_error : public error {
 public:
  using error::error;
};

}  // namespace loom
