// loom/cuda/runtime/library.hpp: open a shared library at run time, trying several names.
//
// Why: nothing CUDA is linked into a loom program, so the CPU library builds and runs on a machine
// without the toolkit or a driver. Each CUDA library is found by trying the sonames that drivers
// and toolkits install (newest first), then the toolkit's usual folders. A failed search keeps
// every dlerror() so that the eventual loom::cuda_error can say exactly what was tried.
//
// The libraries loom opens for its own use are never closed: they live in leaked process-wide
// state, because unloading the driver while static destructors may still free device memory
// would crash at exit. shared_library itself is RAII so that probes (tests) can close what they
// open.
#pragma once

#include <dlfcn.h>
#include <link.h>

#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

namespace loom::cuda::detail {

/// An open dlopen() handle; closed on destruction unless release()d.
class shared_library {
 public:
  shared_library() noexcept = default;
  shared_library(void* handle, std::string name) noexcept : handle_(handle), name_(std::move(name)) {}
  shared_library(const shared_library&) = delete;
  shared_library& operator=(const shared_library&) = delete;
  shared_library(shared_library&& other) noexcept
      : handle_(std::exchange(other.handle_, nullptr)), name_(std::move(other.name_)) {}
  shared_library& operator=(shared_library&& other) noexcept {
    if (this != &other) {
      close();
      handle_ = std::exchange(other.handle_, nullptr);
      name_ = std::move(other.name_);
    }
    return *this;
  }
  ~shared_library() { close(); }

  /// The address of `name`, or nullptr when the library does not export it.
  [[nodiscard]] void* symbol(const char* name) const noexcept {
    return handle_ != nullptr ? ::dlsym(handle_, name) : nullptr;
  }

  /// Sets `fn` to the exported function `name`; false when it is not exported.
  template <class Fn>
  bool bind(Fn*& fn, const char* name) const noexcept {
    fn = reinterpret_cast<Fn*>(symbol(name));
    return fn != nullptr;
  }

  /// The name it was opened by, e.g. "libnvrtc.so.13".
  [[nodiscard]] const std::string& name() const noexcept { return name_; }

  /// The file the loader actually mapped, e.g. "/usr/local/cuda-13.0/lib64/libnvrtc.so.13".
  [[nodiscard]] std::string file() const {
    link_map* map = nullptr;
    if (handle_ != nullptr && ::dlinfo(handle_, RTLD_DI_LINKMAP, &map) == 0 && map != nullptr &&
        map->l_name != nullptr && map->l_name[0] != '\0') {
      return map->l_name;
    }
    return name_;
  }

  /// Keeps the library loaded for the rest of the process.
  void release() noexcept { handle_ = nullptr; }

  explicit operator bool() const noexcept { return handle_ != nullptr; }

 private:
  void close() noexcept {
    if (handle_ != nullptr) ::dlclose(handle_);
    handle_ = nullptr;
  }

  void* handle_ = nullptr;
  std::string name_;
};

/// Opens the first of `names` that the loader finds; when none is found, tries each name under
/// each of `dirs`. On failure returns an empty library and appends one "name: dlerror" line per
/// attempt to *why.
inline shared_library open_first(const std::vector<std::string>& names, const std::vector<std::string>& dirs,
                                 std::string* why) {
  auto attempt = [&](const std::string& path) -> shared_library {
    ::dlerror();
    void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle != nullptr) return shared_library(handle, path);
    if (why != nullptr) {
      const char* err = ::dlerror();
      *why += "\n  " + path + ": " + (err != nullptr ? err : "not found");
    }
    return {};
  };
  for (const std::string& name : names) {
    if (shared_library lib = attempt(name)) return lib;
  }
  for (const std::string& dir : dirs) {
    for (const std::string& name : names) {
      if (shared_library lib = attempt(dir + "/" + name)) return lib;
    }
  }
  return {};
}

/// The folders where a CUDA Toolkit keeps its libraries: $CUDA_PATH/lib64, $CUDA_HOME/lib64 (when
/// set) and /usr/local/cuda/lib64. Never the driver stubs folder: a stub libcuda only fails cuInit.
inline std::vector<std::string> toolkit_library_dirs() {
  std::vector<std::string> dirs;
  for (const char* var : {"CUDA_PATH", "CUDA_HOME"}) {
    const char* root = std::getenv(var);
    if (root != nullptr && root[0] != '\0') dirs.push_back(std::string(root) + "/lib64");
  }
  dirs.emplace_back("/usr/local/cuda/lib64");
  return dirs;
}

}  // namespace loom::cuda::detail
